/* test_status.c - server/status.c: every engine and transport error code maps to its exact
 * gRPC status and error kind, and a failure's trailers are exactly what it names. */
#include <grpc/grpc.h>
#include <grpc/support/alloc.h>
#include <string.h>

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

int main(void) {
  grpc_init();
  static const rm_test_case_t cases[] = {RM_TEST(test_every_code_has_its_status_and_kind),
                                         RM_TEST(test_unknown_codes_are_internal),
                                         RM_TEST(test_status_names),
                                         RM_TEST(test_trailers_name_kind_node_and_field),
                                         RM_TEST(test_undescribed_failure_is_internal),
                                         {NULL, NULL}};
  rm_test_suite("status", cases);
  int rc = rm_test_run();
  grpc_shutdown();
  return rc;
}
