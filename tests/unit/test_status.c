/* test_status.c - server/status.c: every engine and transport error code maps to its exact
 * gRPC status and error kind, and a failure's trailers are exactly what it names. */
#include <grpc/grpc.h>
#include <grpc/support/alloc.h>
#include <stdio.h>
#include <string.h>

#include "google/rpc/error_details.pb-c.h"
#include "google/rpc/status.pb-c.h"
#include "status.h"
#include "test_support.h"

typedef struct expectation {
  int code;
  grpc_status_code status;
  const char *kind;
} expectation_t;

static const expectation_t table[] = {
    {RM_OK, GRPC_STATUS_OK, "ok"},
    {RM_EMANIFEST, GRPC_STATUS_INVALID_ARGUMENT, "invalid_manifest"},
    {RM_EPARAM, GRPC_STATUS_INVALID_ARGUMENT, "invalid_params"},
    {RM_EINPUT, GRPC_STATUS_INVALID_ARGUMENT, "invalid_input"},
    {RM_ENOTYPE, GRPC_STATUS_NOT_FOUND, "unknown_node_type"},
    {RM_ENODE, GRPC_STATUS_INVALID_ARGUMENT, "node_failed"},
    {RM_ELIMIT, GRPC_STATUS_RESOURCE_EXHAUSTED, "limit_exceeded"},
    {RM_ENOMEM, GRPC_STATUS_RESOURCE_EXHAUSTED, "out_of_memory"},
    {RM_ETIMEDOUT, GRPC_STATUS_DEADLINE_EXCEEDED, "deadline_exceeded"},
    {RM_ECANCELED, GRPC_STATUS_CANCELLED, "cancelled"},
    {RM_EINTERNAL, GRPC_STATUS_INTERNAL, "internal"},
    {RM_EIO, GRPC_STATUS_INTERNAL, "io_error"},
    {RM_EUNAUTHENTICATED, GRPC_STATUS_UNAUTHENTICATED, "unauthenticated"},
    {RM_EUNAVAILABLE, GRPC_STATUS_UNAVAILABLE, "unavailable"},
    {RM_EUNIMPLEMENTED, GRPC_STATUS_UNIMPLEMENTED, "unimplemented"},
    {RM_EUNKNOWNSERVICE, GRPC_STATUS_NOT_FOUND, "unknown_service"},
    {RM_EBADREQUEST, GRPC_STATUS_INVALID_ARGUMENT, "invalid_request"},
    {RM_ENOTFOUND, GRPC_STATUS_NOT_FOUND, "not_found"},
};

static void test_every_code_has_its_status_and_kind(void) {
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
    RM_ASSERT_INT(rm_status_from_error(table[i].code), table[i].status);
    RM_ASSERT_STR(rm_status_kind(table[i].code), table[i].kind);
  }
}

static void test_unknown_codes_are_internal(void) {
  static const int unknown[] = {-12, -99, -106, 1, 42, -1000};
  for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
    RM_ASSERT_INT(rm_status_from_error(unknown[i]), GRPC_STATUS_INTERNAL);
    RM_ASSERT_STR(rm_status_kind(unknown[i]), "unknown_error");
  }
}

static void test_status_names(void) {
  RM_ASSERT_STR(rm_status_name(GRPC_STATUS_OK), "OK");
  RM_ASSERT_STR(rm_status_name(GRPC_STATUS_RESOURCE_EXHAUSTED), "RESOURCE_EXHAUSTED");
  RM_ASSERT_STR(rm_status_name(GRPC_STATUS_UNAUTHENTICATED), "UNAUTHENTICATED");
  CU_ASSERT(rm_status_is_bug(GRPC_STATUS_INTERNAL));
  CU_ASSERT(!rm_status_is_bug(GRPC_STATUS_INVALID_ARGUMENT));
}

/* Checks trailer i against key/value and releases it. */
static void check_trailer(grpc_metadata *md, const char *key, const char *value) {
  char *k = grpc_slice_to_c_string(md->key), *v = grpc_slice_to_c_string(md->value);
  RM_ASSERT_STR(k, key);
  RM_ASSERT_STR(v, value);
  gpr_free(k);
  gpr_free(v);
  grpc_slice_unref(md->key);
  grpc_slice_unref(md->value);
}

static void test_trailers_name_kind_node_and_field(void) {
  rm_error_t err;
  grpc_metadata md[RM_STATUS_TRAILERS_MAX];
  rm_error_set(&err, RM_EPARAM, "gain1", "gain_db", "node 'gain1': gain_db out of range");
  RM_ASSERT_INT(rm_status_trailers(&err, md), 3);
  check_trailer(&md[0], "rm-error-kind", "invalid_params");
  check_trailer(&md[1], "rm-failing-node", "gain1");
  check_trailer(&md[2], "rm-field", "gain_db");
  RM_ASSERT_INT(rm_status_code_of(&err), RM_EPARAM);
  RM_ASSERT_STR(rm_status_message_of(&err), "node 'gain1': gain_db out of range");

  rm_error_set(&err, RM_ELIMIT, NULL, "max_concurrent", "busy");
  RM_ASSERT_INT(rm_status_trailers(&err, md), 2);
  check_trailer(&md[0], "rm-error-kind", "limit_exceeded");
  check_trailer(&md[1], "rm-field", "max_concurrent");

  rm_error_set(&err, RM_EUNAVAILABLE, NULL, NULL, "draining");
  RM_ASSERT_INT(rm_status_trailers(&err, md), 1);
  check_trailer(&md[0], "rm-error-kind", "unavailable");
}

/* A failure nobody described is a bug: INTERNAL, never OK. */
static void test_undescribed_failure_is_internal(void) {
  rm_error_t err;
  grpc_metadata md[RM_STATUS_TRAILERS_MAX];
  rm_error_clear(&err);
  RM_ASSERT_INT(rm_status_code_of(&err), RM_EINTERNAL);
  RM_ASSERT_INT(rm_status_from_error(rm_status_code_of(&err)), GRPC_STATUS_INTERNAL);
  RM_ASSERT_STR(rm_status_message_of(&err), "internal error");
  RM_ASSERT_INT(rm_status_trailers(&err, md), 1);
  check_trailer(&md[0], "rm-error-kind", "internal");
}

/* The decoded google.rpc.Status of a failure; NULL-terminated list of "key=value" metadata
 * and the violation (field, description) are checked against the expectation. */
static void check_details(const rm_error_t *err, const char *request_id, int status,
                          const char *reason, const char *metadata, const char *violation_field) {
  grpc_slice s = rm_status_details(err, request_id);
  Google__Rpc__Status *st =
      google__rpc__status__unpack(NULL, GRPC_SLICE_LENGTH(s), GRPC_SLICE_START_PTR(s));
  grpc_slice_unref(s);
  CU_ASSERT_PTR_NOT_NULL_FATAL(st);
  RM_ASSERT_INT(st->code, status);
  RM_ASSERT_STR(st->message, err->message);
  RM_ASSERT_INT(st->n_details, violation_field ? 2 : 1);
  RM_ASSERT_STR(st->details[0]->type_url, "type.googleapis.com/google.rpc.ErrorInfo");
  Google__Rpc__ErrorInfo *info =
      google__rpc__error_info__unpack(NULL, st->details[0]->value.len, st->details[0]->value.data);
  CU_ASSERT_PTR_NOT_NULL_FATAL(info);
  RM_ASSERT_STR(info->reason, reason);
  RM_ASSERT_STR(info->domain, "remotemedia.v1");
  char md[512] = "";
  for (size_t i = 0; i < info->n_metadata; i++)
    snprintf(md + strlen(md), sizeof md - strlen(md), "%s%s=%s", i ? " " : "",
             info->metadata[i]->key, info->metadata[i]->value);
  RM_ASSERT_STR(md, metadata);
  google__rpc__error_info__free_unpacked(info, NULL);
  if (violation_field) {
    RM_ASSERT_STR(st->details[1]->type_url, "type.googleapis.com/google.rpc.BadRequest");
    Google__Rpc__BadRequest *bad = google__rpc__bad_request__unpack(NULL, st->details[1]->value.len,
                                                                    st->details[1]->value.data);
    CU_ASSERT_PTR_NOT_NULL_FATAL(bad);
    RM_ASSERT_INT(bad->n_field_violations, 1);
    RM_ASSERT_STR(bad->field_violations[0]->field, violation_field);
    RM_ASSERT_STR(bad->field_violations[0]->description, err->message);
    google__rpc__bad_request__free_unpacked(bad, NULL);
  }
  google__rpc__status__free_unpacked(st, NULL);
}

/* grpc-status-details-bin: ErrorInfo always, BadRequest for errors about a request field. */
static void test_details_carry_error_info_and_bad_request(void) {
  rm_error_t err;
  rm_error_set(&err, RM_EPARAM, "gain1", "db", "node 'gain1' param 'db': out of range");
  check_details(&err, "req-7", GRPC_STATUS_INVALID_ARGUMENT, "INVALID_PARAMS",
                "node=gain1 field=db request_id=req-7", "manifest.nodes[gain1].params.db");
  rm_error_set(&err, RM_EPARAM, "g", "params", "node 'g': params must be a JSON object");
  check_details(&err, NULL, GRPC_STATUS_INVALID_ARGUMENT, "INVALID_PARAMS", "node=g field=params",
                "manifest.nodes[g].params");
  rm_error_set(&err, RM_ENOTYPE, "x", "node_type", "node 'x': unknown node type 'Nope'");
  check_details(&err, "", GRPC_STATUS_NOT_FOUND, "UNKNOWN_NODE_TYPE", "node=x field=node_type",
                "manifest.nodes[x].node_type");
  rm_error_set(&err, RM_EMANIFEST, NULL, "manifest", "request has no manifest");
  check_details(&err, NULL, GRPC_STATUS_INVALID_ARGUMENT, "INVALID_MANIFEST", "field=manifest",
                "manifest");
  rm_error_set(&err, RM_EINPUT, "src", "sample_rate", "input for node 'src': bad rate");
  check_details(&err, NULL, GRPC_STATUS_INVALID_ARGUMENT, "INVALID_INPUT",
                "node=src field=sample_rate", "inputs[src].sample_rate");
  rm_error_set(&err, RM_ELIMIT, NULL, "max_concurrent", "busy");
  check_details(&err, NULL, GRPC_STATUS_RESOURCE_EXHAUSTED, "LIMIT_EXCEEDED",
                "field=max_concurrent", NULL);
  rm_error_set(&err, RM_EUNAVAILABLE, NULL, NULL, "draining");
  check_details(&err, NULL, GRPC_STATUS_UNAVAILABLE, "UNAVAILABLE", "", NULL);
  rm_error_clear(&err); /* undescribed: INTERNAL "internal error" */
  grpc_slice s = rm_status_details(&err, NULL);
  Google__Rpc__Status *st =
      google__rpc__status__unpack(NULL, GRPC_SLICE_LENGTH(s), GRPC_SLICE_START_PTR(s));
  CU_ASSERT_PTR_NOT_NULL_FATAL(st);
  RM_ASSERT_INT(st->code, GRPC_STATUS_INTERNAL);
  RM_ASSERT_STR(st->message, "internal error");
  google__rpc__status__free_unpacked(st, NULL);
  grpc_slice_unref(s);
}

/* Bytes a client sent (request ids; rm_error_set already keeps its text ASCII, an error
 * filled by hand may not) are echoed as valid UTF-8: '?' for each bad byte. */
static void test_details_are_valid_utf8(void) {
  rm_error_t err;
  rm_error_set(&err, RM_EMANIFEST, NULL, "id", "x");
  strcpy(err.node_id, "a\xff"
                      "b");
  strcpy(err.message, "node 'a\xff"
                      "b': bad id \xc3\xa9");
  grpc_slice s = rm_status_details(&err, "r\xc0\x80");
  Google__Rpc__Status *st =
      google__rpc__status__unpack(NULL, GRPC_SLICE_LENGTH(s), GRPC_SLICE_START_PTR(s));
  grpc_slice_unref(s);
  CU_ASSERT_PTR_NOT_NULL_FATAL(st);
  RM_ASSERT_STR(st->message, "node 'a?b': bad id \xc3\xa9");
  Google__Rpc__ErrorInfo *info =
      google__rpc__error_info__unpack(NULL, st->details[0]->value.len, st->details[0]->value.data);
  CU_ASSERT_PTR_NOT_NULL_FATAL(info);
  RM_ASSERT_STR(info->metadata[0]->value, "a?b");
  RM_ASSERT_STR(info->metadata[2]->value, "r??");
  google__rpc__error_info__free_unpacked(info, NULL);
  google__rpc__status__free_unpacked(st, NULL);
}

/* Releases md[0..n) but md[checked] (released by check_trailer; checked >= n: none). */
static void release_trailers(grpc_metadata *md, size_t n, size_t checked) {
  for (size_t i = 0; i < n; i++)
    if (i != checked) {
      grpc_slice_unref(md[i].key);
      grpc_slice_unref(md[i].value);
    }
}

/* All trailers: the old three, the details, and the pushback only for limits not marked
 * retry_later. */
static void test_full_trailers_and_pushback(void) {
  rm_error_t err;
  grpc_metadata md[RM_STATUS_TRAILERS_MAX];
  rm_error_set(&err, RM_ELIMIT, NULL, "nodes", "pipeline has 9 nodes, above the limit of 8");
  CU_ASSERT(rm_status_no_retry(&err));
  RM_ASSERT_INT(rm_status_trailers_full(&err, NULL, md), 4);
  check_trailer(&md[0], "rm-error-kind", "limit_exceeded");
  check_trailer(&md[1], "rm-field", "nodes");
  char *k = grpc_slice_to_c_string(md[2].key);
  RM_ASSERT_STR(k, "grpc-status-details-bin");
  gpr_free(k);
  grpc_slice_unref(md[2].key);
  grpc_slice_unref(md[2].value);
  check_trailer(&md[3], "grpc-retry-pushback-ms", "-1");

  /* memory other calls hold: a retry may pass */
  rm_error_set(&err, RM_ELIMIT, NULL, "max_memory", "... in use (max-memory); retry later");
  err.retry_later = 1;
  CU_ASSERT(!rm_status_no_retry(&err));
  RM_ASSERT_INT(rm_status_trailers_full(&err, NULL, md), 3);
  release_trailers(md, 3, 3); /* none checked */
  /* the same limit when no wait can help; rm_error_set clears the mark */
  rm_error_set(&err, RM_ELIMIT, NULL, "max_memory", "... it cannot be served here");
  CU_ASSERT(rm_status_no_retry(&err));
  RM_ASSERT_INT(rm_status_trailers_full(&err, NULL, md), 4);
  check_trailer(&md[3], "grpc-retry-pushback-ms", "-1");
  release_trailers(md, 4, 3);
  rm_error_set(&err, RM_ENOMEM, NULL, NULL, "out of memory");
  CU_ASSERT(!rm_status_no_retry(&err));
  rm_error_set(&err, RM_EPARAM, "g", "db", "bad");
  CU_ASSERT(!rm_status_no_retry(&err)); /* not RESOURCE_EXHAUSTED: clients never retry it */
}

/* A stream step's failure: rm-sequence and rm-flushed beside the rest, and both in
 * ErrorInfo; with a node, a field and the pushback that is every trailer at once. */
static void test_stream_trailers_sequence_and_flushed(void) {
  rm_error_t err;
  grpc_metadata md[RM_STATUS_TRAILERS_MAX];
  rm_error_set(&err, RM_ELIMIT, "ln", "samples", "flush after chunk 3: too many samples");
  RM_ASSERT_INT(rm_status_trailers_seq(&err, "rid", "3", 1, md), RM_STATUS_TRAILERS_MAX);
  check_trailer(&md[0], "rm-error-kind", "limit_exceeded");
  check_trailer(&md[1], "rm-failing-node", "ln");
  check_trailer(&md[2], "rm-field", "samples");
  check_trailer(&md[3], "rm-sequence", "3");
  check_trailer(&md[4], "rm-flushed", "true");
  Google__Rpc__Status *st = google__rpc__status__unpack(NULL, GRPC_SLICE_LENGTH(md[5].value),
                                                        GRPC_SLICE_START_PTR(md[5].value));
  grpc_slice_unref(md[5].key);
  grpc_slice_unref(md[5].value);
  CU_ASSERT_PTR_NOT_NULL_FATAL(st);
  Google__Rpc__ErrorInfo *info =
      google__rpc__error_info__unpack(NULL, st->details[0]->value.len, st->details[0]->value.data);
  CU_ASSERT_PTR_NOT_NULL_FATAL(info);
  RM_ASSERT_INT(info->n_metadata, 5);
  RM_ASSERT_STR(info->metadata[3]->key, "sequence");
  RM_ASSERT_STR(info->metadata[3]->value, "3");
  RM_ASSERT_STR(info->metadata[4]->key, "flushed");
  RM_ASSERT_STR(info->metadata[4]->value, "true");
  google__rpc__error_info__free_unpacked(info, NULL);
  google__rpc__status__free_unpacked(st, NULL);
  check_trailer(&md[6], "grpc-retry-pushback-ms", "-1");

  /* a flush before any chunk: flushed, no sequence; a chunk's: no flushed */
  RM_ASSERT_INT(rm_status_trailers_seq(&err, NULL, NULL, 1, md), 6);
  check_trailer(&md[3], "rm-flushed", "true");
  release_trailers(md, 6, 3);
  RM_ASSERT_INT(rm_status_trailers_seq(&err, NULL, "4", 0, md), 6);
  check_trailer(&md[3], "rm-sequence", "4");
  release_trailers(md, 6, 3);
}

int main(void) {
  grpc_init();
  static const rm_test_case_t cases[] = {RM_TEST(test_every_code_has_its_status_and_kind),
                                         RM_TEST(test_unknown_codes_are_internal),
                                         RM_TEST(test_status_names),
                                         RM_TEST(test_trailers_name_kind_node_and_field),
                                         RM_TEST(test_undescribed_failure_is_internal),
                                         RM_TEST(test_details_carry_error_info_and_bad_request),
                                         RM_TEST(test_details_are_valid_utf8),
                                         RM_TEST(test_full_trailers_and_pushback),
                                         RM_TEST(test_stream_trailers_sequence_and_flushed),
                                         {NULL, NULL}};
  rm_test_suite("status", cases);
  int rc = rm_test_run();
  grpc_shutdown();
  return rc;
}
