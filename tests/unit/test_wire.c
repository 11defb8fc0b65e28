/* test_wire.c - the wire layer: finding a field in a message's bytes without unpacking, the
 * wire manifest to the engine's, and the JSON manifest to the wire message. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "remotemedia/v1/pipeline_service.pb-c.h"
#include "rm/wire.h"
#include "test_support.h"

/* An ExecuteRequest with every top-level field set, packed into buf; its length. */
static size_t pack_request(uint8_t *buf, size_t cap, const char *pipeline_name,
                           Remotemedia__V1__PipelineManifest *manifest_out) {
  static Remotemedia__V1__NodeManifest node = REMOTEMEDIA__V1__NODE_MANIFEST__INIT;
  static Remotemedia__V1__NodeManifest *nodes[] = {&node};
  static Remotemedia__V1__BinaryBuffer bin = REMOTEMEDIA__V1__BINARY_BUFFER__INIT;
  static Remotemedia__V1__DataBuffer data = REMOTEMEDIA__V1__DATA_BUFFER__INIT;
  static Remotemedia__V1__ExecuteRequest__InputsEntry entry =
      REMOTEMEDIA__V1__EXECUTE_REQUEST__INPUTS_ENTRY__INIT;
  static Remotemedia__V1__ExecuteRequest__InputsEntry *entries[] = {&entry};
  static Remotemedia__V1__ExecutionLimits limits = REMOTEMEDIA__V1__EXECUTION_LIMITS__INIT;
  static char *outs[] = {"p"};
  static uint8_t payload[3] = {7, 8, 9};
  Remotemedia__V1__PipelineManifest m = REMOTEMEDIA__V1__PIPELINE_MANIFEST__INIT;
  node.id = "p";
  node.node_type = "PassThrough";
  m.name = (char *)pipeline_name;
  m.nodes = nodes;
  m.n_nodes = 1;
  bin.data = (ProtobufCBinaryData){sizeof payload, payload};
  data.kind_case = REMOTEMEDIA__V1__DATA_BUFFER__KIND_BINARY;
  data.binary = &bin;
  entry.key = "p";
  entry.value = &data;
  limits.max_nodes = 5;
  Remotemedia__V1__ExecuteRequest req = REMOTEMEDIA__V1__EXECUTE_REQUEST__INIT;
  req.manifest = &m;
  req.inputs = entries;
  req.n_inputs = 1;
  req.enable_metrics = 1;
  req.limits = &limits;
  req.client_version = "test";
  req.output_nodes = outs;
  req.n_output_nodes = 1;
  CU_ASSERT_FATAL(remotemedia__v1__execute_request__get_packed_size(&req) <= cap);
  if (manifest_out)
    *manifest_out = m;
  return remotemedia__v1__execute_request__pack(&req, buf);
}

static void test_find_field_spans_the_manifest(void) {
  uint8_t buf[512], manifest[256];
  Remotemedia__V1__PipelineManifest m;
  size_t len = pack_request(buf, sizeof buf, "bench", &m);
  size_t mlen = remotemedia__v1__pipeline_manifest__pack(&m, manifest);
  rm_wire_span_t field, value;
  RM_ASSERT_INT(rm_wire_find_field(buf, len, 1, &field, &value), 1);
  /* written first, as serializers order fields by number: tag, one length byte, bytes */
  RM_ASSERT_INT(field.offset, 0);
  RM_ASSERT_INT(field.length, mlen + 2);
  RM_ASSERT_INT(value.offset, 2);
  RM_ASSERT_INT(value.length, mlen);
  CU_ASSERT_EQUAL(memcmp(buf + value.offset, manifest, mlen), 0);
  /* the other fields are found too; varints are stepped over */
  RM_ASSERT_INT(rm_wire_find_field(buf, len, 5, NULL, &value), 1);
  RM_ASSERT_INT(value.length, 4);
  CU_ASSERT_EQUAL(memcmp(buf + value.offset, "test", 4), 0);
  RM_ASSERT_INT(rm_wire_find_field(buf, len, 6, NULL, &value), 1);
  RM_ASSERT_INT(rm_wire_find_field(buf, len, 9, NULL, NULL), 0);
}

/* Cutting the field out leaves a valid message with everything else; the field's bytes
 * unpack on their own into the same manifest. */
static void test_rest_and_field_unpack_apart(void) {
  uint8_t buf[512];
  size_t len = pack_request(buf, sizeof buf, "bench", NULL);
  rm_wire_span_t field, value;
  RM_ASSERT_INT(rm_wire_find_field(buf, len, 1, &field, &value), 1);
  Remotemedia__V1__ExecuteRequest *rest = remotemedia__v1__execute_request__unpack(
      NULL, len - field.length, buf + field.offset + field.length);
  CU_ASSERT_PTR_NOT_NULL_FATAL(rest);
  CU_ASSERT_PTR_NULL(rest->manifest);
  RM_ASSERT_INT(rest->n_inputs, 1);
  RM_ASSERT_STR(rest->inputs[0]->key, "p");
  RM_ASSERT_INT(rest->inputs[0]->value->binary->data.len, 3);
  RM_ASSERT_INT(rest->enable_metrics, 1);
  RM_ASSERT_INT(rest->limits->max_nodes, 5);
  RM_ASSERT_STR(rest->client_version, "test");
  RM_ASSERT_INT(rest->n_output_nodes, 1);
  remotemedia__v1__execute_request__free_unpacked(rest, NULL);
  Remotemedia__V1__PipelineManifest *m =
      remotemedia__v1__pipeline_manifest__unpack(NULL, value.length, buf + value.offset);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  RM_ASSERT_STR(m->name, "bench");
  RM_ASSERT_INT(m->n_nodes, 1);
  RM_ASSERT_STR(m->nodes[0]->node_type, "PassThrough");
  remotemedia__v1__pipeline_manifest__free_unpacked(m, NULL);
}

/* A manifest over 127 bytes takes two length bytes; a field after others is found where
 * it is. */
static void test_long_field_and_field_not_first(void) {
  char name[200];
  memset(name, 'n', sizeof name - 1);
  name[sizeof name - 1] = '\0';
  uint8_t buf[1024];
  size_t len = pack_request(buf + 2, sizeof buf - 2, name, NULL);
  rm_wire_span_t field, value;
  RM_ASSERT_INT(rm_wire_find_field(buf + 2, len, 1, &field, &value), 1);
  RM_ASSERT_INT(field.length, value.length + 3);
  RM_ASSERT_INT(value.offset, 3);
  CU_ASSERT(value.length > 200);
  buf[0] = 0x18; /* enable_metrics (field 3, varint) = 1, in front */
  buf[1] = 0x01;
  RM_ASSERT_INT(rm_wire_find_field(buf, len + 2, 1, &field, &value), 1);
  RM_ASSERT_INT(field.offset, 2);
  RM_ASSERT_INT(value.offset, 5);
}

static void test_find_field_refuses_what_protobuf_would_merge_or_reject(void) {
  uint8_t buf[1024];
  size_t len = pack_request(buf, sizeof buf / 2, "bench", NULL);
  rm_wire_span_t field = {99, 99};
  /* twice: protobuf merges the copies, so no one span describes the field */
  memcpy(buf + len, buf, len);
  RM_ASSERT_INT(rm_wire_find_field(buf, 2 * len, 1, &field, NULL), RM_EINPUT);
  /* cut short inside the manifest, inside a length, inside a tag */
  RM_ASSERT_INT(rm_wire_find_field(buf, 10, 1, NULL, NULL), RM_EINPUT);
  RM_ASSERT_INT(rm_wire_find_field(buf, 1, 1, NULL, NULL), RM_EINPUT);
  static const uint8_t open_tag[] = {0x80};
  RM_ASSERT_INT(rm_wire_find_field(open_tag, sizeof open_tag, 1, NULL, NULL), RM_EINPUT);
  /* field 1 as a varint: the wrong wire type */
  static const uint8_t varint1[] = {0x08, 0x01};
  RM_ASSERT_INT(rm_wire_find_field(varint1, sizeof varint1, 1, NULL, NULL), RM_EINPUT);
  /* a group, field number 0, a varint of 11 bytes */
  static const uint8_t group[] = {0x0b, 0x0c};
  RM_ASSERT_INT(rm_wire_find_field(group, sizeof group, 1, NULL, NULL), RM_EINPUT);
  static const uint8_t zero[] = {0x02, 0x00};
  RM_ASSERT_INT(rm_wire_find_field(zero, sizeof zero, 1, NULL, NULL), RM_EINPUT);
  static const uint8_t long_varint[] = {0x18, 0xff, 0xff, 0xff, 0xff, 0xff,
                                        0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
  RM_ASSERT_INT(rm_wire_find_field(long_varint, sizeof long_varint, 1, NULL, NULL), RM_EINPUT);
  /* tags and lengths longer than protobuf-c reads (5 bytes), or above 32 bits: its call */
  static const uint8_t long_tag[] = {0x8a, 0x80, 0x80, 0x80, 0x80, 0x00, 0x00};
  RM_ASSERT_INT(rm_wire_find_field(long_tag, sizeof long_tag, 1, NULL, NULL), RM_EINPUT);
  static const uint8_t long_len[] = {0x0a, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00};
  RM_ASSERT_INT(rm_wire_find_field(long_len, sizeof long_len, 1, NULL, NULL), RM_EINPUT);
  static const uint8_t wide_tag[] = {0x8a, 0x80, 0x80, 0x80, 0x10, 0x00}; /* 2^32 + 10 */
  RM_ASSERT_INT(rm_wire_find_field(wide_tag, sizeof wide_tag, 1, NULL, NULL), RM_EINPUT);
  static const uint8_t huge_len[] = {0x0a, 0x80, 0x80, 0x80, 0x80, 0x08}; /* 2^31 */
  RM_ASSERT_INT(rm_wire_find_field(huge_len, sizeof huge_len, 1, NULL, NULL), RM_EINPUT);
  /* a 5-byte tag is long-winded but valid */
  static const uint8_t padded_tag[] = {0x8a, 0x80, 0x80, 0x80, 0x00, 0x01, 0x07};
  RM_ASSERT_INT(rm_wire_find_field(padded_tag, sizeof padded_tag, 1, &field, NULL), 1);
  RM_ASSERT_INT(field.length, 7);
  field = (rm_wire_span_t){99, 99};
  /* a length pointing past the end */
  static const uint8_t past[] = {0x0a, 0x05, 0x01};
  RM_ASSERT_INT(rm_wire_find_field(past, sizeof past, 1, NULL, NULL), RM_EINPUT);
  /* fixed-size fields are stepped over; nothing found leaves the spans alone */
  static const uint8_t fixed[] = {0x21, 1, 2, 3, 4, 5, 6, 7, 8, 0x2d, 1, 2, 3, 4};
  RM_ASSERT_INT(rm_wire_find_field(fixed, sizeof fixed, 1, &field, NULL), 0);
  RM_ASSERT_INT(rm_wire_find_field(fixed, 9, 1, NULL, NULL), 0);
  RM_ASSERT_INT(rm_wire_find_field(fixed, 8, 1, NULL, NULL), RM_EINPUT);
  RM_ASSERT_INT(field.offset, 99);
  RM_ASSERT_INT(rm_wire_find_field(NULL, 0, 1, NULL, NULL), 0);
  /* an empty field is a field */
  static const uint8_t empty[] = {0x0a, 0x00};
  rm_wire_span_t value;
  RM_ASSERT_INT(rm_wire_find_field(empty, sizeof empty, 1, &field, &value), 1);
  RM_ASSERT_INT(field.length, 2);
  RM_ASSERT_INT(value.offset, 2);
  RM_ASSERT_INT(value.length, 0);
}

/* A hand-built wire message: params travel as JSON text. */
static void test_manifest_from_proto(void) {
  Remotemedia__V1__NodeManifest n[3];
  for (int i = 0; i < 3; i++)
    remotemedia__v1__node_manifest__init(&n[i]);
  n[0].id = "src";
  n[0].node_type = "PassThrough"; /* params left empty: {} */
  n[1].id = "g";
  n[1].node_type = "Gain";
  n[1].params = "{\"db\": 6.5}";
  n[2].id = "f";
  n[2].node_type = "AudioFormat";
  n[2].params = "{\"format\": \"i32\"}";
  Remotemedia__V1__NodeManifest *nodes[3] = {&n[0], &n[1], &n[2]};
  Remotemedia__V1__Connection c[2];
  remotemedia__v1__connection__init(&c[0]);
  remotemedia__v1__connection__init(&c[1]);
  c[0].from = "src";
  c[0].to = "g";
  c[1].from = "g";
  c[1].to = "f";
  c[1].from_port = "out";
  Remotemedia__V1__Connection *conns[2] = {&c[0], &c[1]};
  Remotemedia__V1__PipelineManifest msg = REMOTEMEDIA__V1__PIPELINE_MANIFEST__INIT;
  msg.name = "wire";
  msg.n_nodes = 3;
  msg.nodes = nodes;
  msg.n_connections = 2;
  msg.connections = conns;

  rm_manifest_t *m = NULL;
  rm_error_t err;
  RM_ASSERT_INT(rm_wire_manifest_from_proto(&msg, &m, &err), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  RM_ASSERT_STR(m->name, "wire");
  RM_ASSERT_INT(m->n_nodes, 3);
  RM_ASSERT_INT(json_object_size(m->nodes[0].params), 0);
  RM_ASSERT_NEAR(json_number_value(json_object_get(m->nodes[1].params, "db")), 6.5, 0);
  RM_ASSERT_STR(json_string_value(json_object_get(m->nodes[2].params, "format")), "i32");
  RM_ASSERT_INT(m->n_conns, 2);
  RM_ASSERT_STR(m->conns[1].from_port, "out");
  RM_ASSERT_STR(m->conns[1].to_port, "");
  /* and it compiles */
  rm_pipeline_t *p = NULL;
  RM_ASSERT_INT(rm_pipeline_new(m, NULL, &p, &err), 0);
  RM_ASSERT_INT(rm_pipeline_node_count(p), 3);
  rm_pipeline_free(p);
  rm_manifest_free(m);

  /* bad params text: RM_EPARAM naming node and "params" */
  static const struct {
    const char *params, *message;
  } bad[] = {
      {"not json", "node 'g': params are not valid JSON: invalid token near 'not' (line 1, "
                   "column 3)"},
      {"[1, 2]", "node 'g': params must be a JSON object"},
      {"\"db\"", "node 'g': params must be a JSON object"},
      {"{\"db\": 1, \"db\": 2}", "node 'g': params are not valid JSON: duplicate object key "
                                 "near '\"db\"' (line 1, column 14)"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    n[1].params = (char *)bad[i].params;
    m = NULL;
    RM_ASSERT_ERR(rm_wire_manifest_from_proto(&msg, &m, &err), &err, RM_EPARAM, "g", "params",
                  bad[i].message);
    CU_ASSERT_PTR_NULL(m);
  }
  /* valid params that the node rejects: rm_pipeline_new names node and key */
  n[1].params = "{\"db\": \"loud\"}";
  RM_ASSERT_INT(rm_wire_manifest_from_proto(&msg, &m, &err), 0);
  RM_ASSERT_ERR(rm_pipeline_new(m, NULL, &p, &err), &err, RM_EPARAM, "g", "db",
                "node 'g' param 'db': expected number, got string");
  rm_manifest_free(m);

  RM_ASSERT_ERR(rm_wire_manifest_from_proto(NULL, &m, &err), &err, RM_EMANIFEST, "", "manifest",
                "request has no manifest");
}

/* Params as a google.protobuf.Struct: the engine's JSON with integral numbers as integers. */
static Google__Protobuf__Struct__FieldsEntry *struct_entry(Google__Protobuf__Struct__FieldsEntry *e,
                                                           Google__Protobuf__Value *v,
                                                           const char *key) {
  google__protobuf__struct__fields_entry__init(e);
  e->key = (char *)key;
  e->value = v;
  return e;
}

static void test_params_object_from_struct(void) {
  Google__Protobuf__Value v[8];
  for (int i = 0; i < 8; i++)
    google__protobuf__value__init(&v[i]);
  v[0].kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE;
  v[0].number_value = 3.0;
  v[1].kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE;
  v[1].number_value = -6.5;
  v[2].kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
  v[2].string_value = "pad";
  v[3].kind_case = GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE;
  v[3].bool_value = 1;
  v[4].kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NULL_VALUE;
  Google__Protobuf__Value *items[2] = {&v[0], &v[1]};
  Google__Protobuf__ListValue list = GOOGLE__PROTOBUF__LIST_VALUE__INIT;
  list.n_values = 2;
  list.values = items;
  v[5].kind_case = GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE;
  v[5].list_value = &list;
  v[6].kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE;
  v[6].number_value = 1e300;
  Google__Protobuf__Struct__FieldsEntry e[7],
      *ep[7] = {struct_entry(&e[0], &v[0], "i"),  struct_entry(&e[1], &v[1], "r"),
                struct_entry(&e[2], &v[2], "s"),  struct_entry(&e[3], &v[3], "b"),
                struct_entry(&e[4], &v[4], "n"),  struct_entry(&e[5], &v[5], "l"),
                struct_entry(&e[6], &v[6], "big")};
  Google__Protobuf__Struct st = GOOGLE__PROTOBUF__STRUCT__INIT;
  st.n_fields = 7;
  st.fields = ep;
  json_t *j = NULL;
  rm_error_t err;
  RM_ASSERT_INT(rm_wire_params_from_struct(&st, "g", &j, &err), 0);
  char *text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
  RM_ASSERT_STR(text, "{\"b\":true,\"big\":1.0000000000000001e300,\"i\":3,\"l\":[3,-6.5],"
                      "\"n\":null,\"r\":-6.5,\"s\":\"pad\"}");
  free(text);
  json_decref(j);

  /* not JSON numbers, text that is not UTF-8 */
  v[0].number_value = NAN;
  RM_ASSERT_ERR(rm_wire_params_from_struct(&st, "g", &j, &err), &err, RM_EPARAM, "g", "params",
                "node 'g' params_object: nan is not a JSON number");
  v[0].number_value = 3.0;
  v[2].string_value = "\xff";
  RM_ASSERT_ERR(rm_wire_params_from_struct(&st, "g", &j, &err), &err, RM_EPARAM, "g", "params",
                "node 'g' params_object: a string is not valid UTF-8");
  RM_ASSERT_INT(rm_wire_params_from_struct(NULL, "g", &j, &err), 0);
  RM_ASSERT_INT(json_object_size(j), 0);
  json_decref(j);

  /* a node with params_object: integer params take an integral double, refuse 2.5; giving
   * params and params_object is INVALID_ARGUMENT naming the node and "params" */
  Google__Protobuf__Value frames = GOOGLE__PROTOBUF__VALUE__INIT;
  frames.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE;
  frames.number_value = 4.0;
  Google__Protobuf__Struct__FieldsEntry fe, *fep = struct_entry(&fe, &frames, "frames");
  Google__Protobuf__Struct fs = GOOGLE__PROTOBUF__STRUCT__INIT;
  fs.n_fields = 1;
  fs.fields = &fep;
  Remotemedia__V1__NodeManifest n = REMOTEMEDIA__V1__NODE_MANIFEST__INIT, *np = &n;
  n.id = "c";
  n.node_type = "Chunk";
  n.params_object = &fs;
  Remotemedia__V1__PipelineManifest msg = REMOTEMEDIA__V1__PIPELINE_MANIFEST__INIT;
  msg.n_nodes = 1;
  msg.nodes = &np;
  rm_manifest_t *m = NULL;
  rm_pipeline_t *p = NULL;
  RM_ASSERT_INT(rm_wire_manifest_from_proto(&msg, &m, &err), 0);
  CU_ASSERT_TRUE(json_is_integer(json_object_get(m->nodes[0].params, "frames")));
  RM_ASSERT_INT(rm_pipeline_new(m, NULL, &p, &err), 0);
  rm_pipeline_free(p);
  rm_manifest_free(m);
  frames.number_value = 2.5;
  RM_ASSERT_INT(rm_wire_manifest_from_proto(&msg, &m, &err), 0);
  RM_ASSERT_ERR(rm_pipeline_new(m, NULL, &p, &err), &err, RM_EPARAM, "c", "frames",
                "node 'c' param 'frames': expected integer, got 2.5");
  rm_manifest_free(m);
  n.params = "{\"frames\": 4}";
  m = NULL;
  RM_ASSERT_ERR(rm_wire_manifest_from_proto(&msg, &m, &err), &err, RM_EPARAM, "c", "params",
                "node 'c': give params (JSON text) or params_object, not both");
  CU_ASSERT_PTR_NULL(m);
}

/* The proto half's JSON reader: the client's manifest loader. */
static void test_manifest_proto_from_text(void) {
  long live = rm_alloc_live();
  char *text = rm_test_unquote(
      "{'name': 'demo', 'nodes': ["
      " {'id': 'src', 'node_type': 'PassThrough'},"
      " {'id': 'g', 'node_type': 'Gain', 'params': {'db': 6}},"
      " {'id': 'f', 'node_type': 'AudioFormat', 'params': '{\\'format\\': \\'i16\\'}'},"
      " {'id': 'n', 'node_type': 'PassThrough', 'params': null}],"
      " 'connections': [{'from': 'src', 'to': 'g'},"
      "  {'from': 'g', 'to': 'f', 'from_port': 'out', 'to_port': 'in'}]}");
  Remotemedia__V1__PipelineManifest *m = NULL;
  rm_error_t err;
  RM_ASSERT_INT(rm_wire_manifest_proto_from_text(text, strlen(text), &m, &err), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  RM_ASSERT_STR(m->name, "demo");
  RM_ASSERT_INT(m->n_nodes, 4);
  RM_ASSERT_STR(m->nodes[0]->id, "src");
  RM_ASSERT_STR(m->nodes[0]->node_type, "PassThrough");
  RM_ASSERT_STR(m->nodes[0]->params, "");
  RM_ASSERT_STR(m->nodes[1]->params, "{\"db\":6}");            /* an object: compact JSON text */
  RM_ASSERT_STR(m->nodes[2]->params, "{\"format\": \"i16\"}"); /* text: sent as it is */
  RM_ASSERT_STR(m->nodes[3]->params, "");
  RM_ASSERT_INT(m->n_connections, 2);
  RM_ASSERT_STR(m->connections[0]->from_port, "");
  RM_ASSERT_STR(m->connections[1]->from_port, "out");
  RM_ASSERT_STR(m->connections[1]->to_port, "in");
  /* what the server makes of it is what the engine's own JSON loader makes */
  rm_manifest_t *from_wire = NULL, *from_json = NULL;
  RM_ASSERT_INT(rm_wire_manifest_from_proto(m, &from_wire, &err), 0);
  RM_ASSERT_INT(rm_manifest_from_json_text(text, strlen(text), &from_json, &err), 0);
  json_t *a = rm_manifest_to_json(from_wire), *b = rm_manifest_to_json(from_json);
  CU_ASSERT_TRUE(json_equal(a, b));
  json_decref(a);
  json_decref(b);
  rm_manifest_free(from_wire);
  rm_manifest_free(from_json);
  rm_wire_manifest_proto_free(m);
  rm_wire_manifest_proto_free(NULL); /* a no-op */
  rm_free(text);
  RM_ASSERT_INT(rm_alloc_live(), live);
}

/* The same errors as the engine's loader: code, node, field and message. */
static void test_manifest_proto_errors_match_the_engine(void) {
  static const char *const bad[] = {
      "[]",
      "{'nodes': [], 'edges': []}",
      "{'name': 5}",
      "{'nodes': [{'id': 'a', 'node_type': 'Gain'}, {'node_type': 'Gain'}]}",
      "{'nodes': [{'id': 'a', 'node_type': 'Gain', 'params': 3}]}",
      "{'connections': [{'from': 'a', 'to': 'b', 'to_port': 1}]}",
      "{",
      "{'name': 'a', 'name': 'b'}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    long live = rm_alloc_live();
    char *text = rm_test_unquote(bad[i]);
    Remotemedia__V1__PipelineManifest *m = (Remotemedia__V1__PipelineManifest *)1;
    rm_manifest_t *e = (rm_manifest_t *)1;
    rm_error_t werr, eerr;
    int rc = rm_wire_manifest_proto_from_text(text, strlen(text), &m, &werr);
    CU_ASSERT(rc < 0);
    RM_ASSERT_INT(rc, rm_manifest_from_json_text(text, strlen(text), &e, &eerr));
    RM_ASSERT_ERR(rc, &werr, eerr.code, eerr.node_id, eerr.field, eerr.message);
    CU_ASSERT_PTR_EQUAL(m, (Remotemedia__V1__PipelineManifest *)1); /* untouched */
    rm_free(text);
    RM_ASSERT_INT(rm_alloc_live(), live);
  }
}

static void test_manifest_proto_out_of_memory(void) {
  char *text = rm_test_unquote("{'name': 'x', 'nodes': [{'id': 'g', 'node_type': 'Gain', "
                               "'params': {'db': 1}}], 'connections': [{'from': 'a', 'to': 'g'}]}");
  long live = rm_alloc_live();
  for (long n = 0;; n++) {
    Remotemedia__V1__PipelineManifest *m = NULL;
    rm_error_t err;
    rm_alloc_fail_after(n);
    int rc = rm_wire_manifest_proto_from_text(text, strlen(text), &m, &err);
    rm_alloc_fail_never();
    if (!rc) {
      rm_wire_manifest_proto_free(m);
      RM_ASSERT_INT(rm_alloc_live(), live);
      CU_ASSERT(n > 5);
      break;
    }
    RM_ASSERT_ERR(rc, &err, RM_ENOMEM, "", "", "out of memory");
    RM_ASSERT_INT(rm_alloc_live(), live);
  }
  rm_free(text);
}

int main(void) {
  static const rm_test_case_t cases[] = {
      RM_TEST(test_find_field_spans_the_manifest),
      RM_TEST(test_rest_and_field_unpack_apart),
      RM_TEST(test_long_field_and_field_not_first),
      RM_TEST(test_find_field_refuses_what_protobuf_would_merge_or_reject),
      RM_TEST(test_manifest_from_proto),
      RM_TEST(test_params_object_from_struct),
      RM_TEST(test_manifest_proto_from_text),
      RM_TEST(test_manifest_proto_errors_match_the_engine),
      RM_TEST(test_manifest_proto_out_of_memory),
      {NULL, NULL}};
  rm_test_suite("wire", cases);
  return rm_test_run();
}
