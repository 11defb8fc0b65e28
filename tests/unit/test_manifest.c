/* test_manifest.c - loading manifests from JSON text and files (the wire message: test_wire). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_support.h"

/* Loads single-quoted JSON that must fail; returns the code. */
static int load_error(const char *json, rm_error_t *err) {
  char *text = rm_test_unquote(json);
  rm_manifest_t *m = (rm_manifest_t *)1;
  rm_error_clear(err);
  int rc = rm_manifest_from_json_text(text, strlen(text), &m, err);
  rm_free(text);
  CU_ASSERT_PTR_EQUAL(m, (rm_manifest_t *)1); /* *out untouched on failure */
  return rc;
}

#define EXPECT(json, code, node, field, msg)                                                       \
  do {                                                                                             \
    rm_error_t err_;                                                                               \
    int rc_ = load_error(json, &err_);                                                             \
    RM_ASSERT_ERR(rc_, &err_, code, node, field, msg);                                             \
  } while (0)

static void test_json_full_manifest(void) {
  rm_manifest_t *m = rm_test_manifest(
      "{'name': 'demo', 'nodes': ["
      " {'id': 'src', 'node_type': 'PassThrough'},"
      " {'id': 'g', 'node_type': 'Gain', 'params': {'db': -6}},"
      " {'id': 'f', 'node_type': 'AudioFormat', 'params': '{\\'format\\': \\'i16\\'}'},"
      " {'id': 'n', 'node_type': 'PassThrough', 'params': null}],"
      " 'connections': [{'from': 'src', 'to': 'g'},"
      "  {'from': 'g', 'to': 'f', 'from_port': 'out', 'to_port': 'in'}]}");
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  RM_ASSERT_STR(m->name, "demo");
  RM_ASSERT_INT(m->n_nodes, 4);
  RM_ASSERT_STR(m->nodes[0].id, "src");
  RM_ASSERT_STR(m->nodes[0].type, "PassThrough");
  RM_ASSERT_INT(json_object_size(m->nodes[0].params), 0);
  RM_ASSERT_NEAR(json_number_value(json_object_get(m->nodes[1].params, "db")), -6.0, 0);
  RM_ASSERT_STR(json_string_value(json_object_get(m->nodes[2].params, "format")), "i16");
  CU_ASSERT(json_is_object(m->nodes[3].params));
  RM_ASSERT_INT(m->n_conns, 2);
  RM_ASSERT_STR(m->conns[0].from, "src");
  RM_ASSERT_STR(m->conns[0].to, "g");
  RM_ASSERT_STR(m->conns[0].from_port, "");
  RM_ASSERT_STR(m->conns[0].to_port, "");
  RM_ASSERT_STR(m->conns[1].from_port, "out");
  RM_ASSERT_STR(m->conns[1].to_port, "in");

  /* the JSON form round-trips */
  json_t *j = rm_manifest_to_json(m);
  CU_ASSERT_PTR_NOT_NULL_FATAL(j);
  char *text = json_dumps(j, JSON_COMPACT);
  char *want =
      rm_test_unquote("{'name':'demo','nodes':[{'id':'src','node_type':'PassThrough','params':{}},"
                      "{'id':'g','node_type':'Gain','params':{'db':-6}},"
                      "{'id':'f','node_type':'AudioFormat','params':{'format':'i16'}},"
                      "{'id':'n','node_type':'PassThrough','params':{}}],"
                      "'connections':[{'from':'src','to':'g'},"
                      "{'from':'g','to':'f','from_port':'out','to_port':'in'}]}");
  RM_ASSERT_STR(text, want);
  rm_manifest_t *again = NULL;
  rm_error_t err;
  RM_ASSERT_INT(rm_manifest_from_json(j, &again, &err), 0);
  RM_ASSERT_INT(again->n_nodes, 4);
  RM_ASSERT_INT(again->n_conns, 2);
  rm_manifest_free(again);
  free(text);
  rm_free(want);
  json_decref(j);
  rm_manifest_free(m);
}

static void test_json_empty_manifest_loads(void) {
  /* shape is fine; emptiness is a graph rule checked by rm_pipeline_new */
  rm_manifest_t *m = rm_test_manifest("{}");
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  RM_ASSERT_STR(m->name, "");
  RM_ASSERT_INT(m->n_nodes, 0);
  RM_ASSERT_INT(m->n_conns, 0);
  rm_manifest_free(m);
}

static void test_json_shape_errors(void) {
  EXPECT("[]", RM_EMANIFEST, "", "", "manifest must be a JSON object");
  EXPECT("{'nodes': [], 'edges': []}", RM_EMANIFEST, "", "edges", "manifest: unknown key 'edges'");
  EXPECT("{'name': 5}", RM_EMANIFEST, "", "name", "manifest: 'name' must be a string");
  EXPECT("{'nodes': {}}", RM_EMANIFEST, "", "nodes", "manifest: 'nodes' must be an array");
  EXPECT("{'nodes': ['a']}", RM_EMANIFEST, "", "nodes", "nodes[0] must be an object");
  EXPECT("{'nodes': [{'id': 'a', 'type': 'Gain'}]}", RM_EMANIFEST, "", "type",
         "nodes[0]: unknown key 'type'");
  EXPECT("{'nodes': [{'id': 'a', 'node_type': 'Gain'}, {'node_type': 'Gain'}]}", RM_EMANIFEST, "",
         "id", "nodes[1]: missing 'id'");
  EXPECT("{'nodes': [{'id': 7, 'node_type': 'Gain'}]}", RM_EMANIFEST, "", "id",
         "nodes[0]: 'id' must be a string");
  EXPECT("{'nodes': [{'id': 'a'}]}", RM_EMANIFEST, "", "node_type",
         "nodes[0]: missing 'node_type'");
  EXPECT("{'nodes': [{'id': 'a', 'node_type': ['Gain']}]}", RM_EMANIFEST, "", "node_type",
         "nodes[0]: 'node_type' must be a string");
  EXPECT("{'connections': {}}", RM_EMANIFEST, "", "connections",
         "manifest: 'connections' must be an array");
  EXPECT("{'connections': [1]}", RM_EMANIFEST, "", "connections",
         "connections[0] must be an object");
  EXPECT("{'connections': [{'from': 'a', 'to': 'b', 'port': 'x'}]}", RM_EMANIFEST, "", "port",
         "connections[0]: unknown key 'port'");
  EXPECT("{'connections': [{'to': 'b'}]}", RM_EMANIFEST, "", "from",
         "connections[0]: missing 'from'");
  EXPECT("{'connections': [{'from': 'a'}]}", RM_EMANIFEST, "", "to",
         "connections[0]: missing 'to'");
  EXPECT("{'connections': [{'from': 'a', 'to': 'b', 'to_port': 1}]}", RM_EMANIFEST, "", "to_port",
         "connections[0]: 'to_port' must be a string");
}

static void test_json_params_errors(void) {
  EXPECT("{'nodes': [{'id': 'a', 'node_type': 'Gain', 'params': 3}]}", RM_EPARAM, "a", "params",
         "node 'a': params must be a JSON object");
  EXPECT("{'nodes': [{'id': 'a', 'node_type': 'Gain', 'params': [1]}]}", RM_EPARAM, "a", "params",
         "node 'a': params must be a JSON object");
  EXPECT("{'nodes': [{'id': 'a', 'node_type': 'Gain', 'params': '[1]'}]}", RM_EPARAM, "a", "params",
         "node 'a': params must be a JSON object");
  EXPECT("{'nodes': [{'id': 'a', 'node_type': 'Gain', 'params': '5'}]}", RM_EPARAM, "a", "params",
         "node 'a': params must be a JSON object");
  EXPECT("{'nodes': [{'id': 'a', 'node_type': 'Gain', 'params': '{db: 1}'}]}", RM_EPARAM, "a",
         "params",
         "node 'a': params are not valid JSON: string or '}' expected near 'db' "
         "(line 1, column 3)");
}

static void test_json_syntax_errors(void) {
  EXPECT("{", RM_EMANIFEST, "", "",
         "manifest is not valid JSON: string or '}' expected near end of file (line 1, column 1)");
  EXPECT("{'name': 'a', 'name': 'b'}", RM_EMANIFEST, "", "",
         "manifest is not valid JSON: duplicate object key near '\"name\"' (line 1, column 20)");
}

static void test_file(void) {
  char path[] = "/tmp/rm_test_manifest_XXXXXX";
  int fd = mkstemp(path);
  CU_ASSERT_FATAL(fd >= 0);
  const char text[] = "{\"name\": \"f\", \"nodes\": [{\"id\": \"a\", \"node_type\": \"Gain\"}]}";
  CU_ASSERT_EQUAL(write(fd, text, sizeof text - 1), (ssize_t)(sizeof text - 1));
  close(fd);
  rm_manifest_t *m = NULL;
  rm_error_t err;
  RM_ASSERT_INT(rm_manifest_from_file(path, &m, &err), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  RM_ASSERT_STR(m->name, "f");
  RM_ASSERT_STR(m->nodes[0].type, "Gain");
  rm_manifest_free(m);
  unlink(path);
  m = NULL;
  RM_ASSERT_ERR(rm_manifest_from_file("/nonexistent/m.json", &m, &err), &err, RM_EIO, "", "",
                "unable to open /nonexistent/m.json: No such file or directory");
  CU_ASSERT_PTR_NULL(m);
}

static void test_builders(void) {
  rm_manifest_t *m = rm_manifest_new(NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  RM_ASSERT_STR(m->name, "");
  rm_error_t err;
  char id[16];
  for (int i = 0; i < 100; i++) { /* past several array growths */
    snprintf(id, sizeof id, "n%d", i);
    RM_ASSERT_INT(rm_manifest_add_node(m, id, "PassThrough", NULL, &err), 0);
    if (i)
      RM_ASSERT_INT(rm_manifest_add_connection(m, m->nodes[i - 1].id, NULL, id, NULL), 0);
  }
  RM_ASSERT_INT(m->n_nodes, 100);
  RM_ASSERT_INT(m->n_conns, 99);
  RM_ASSERT_STR(m->nodes[99].id, "n99");
  RM_ASSERT_STR(m->conns[98].to, "n99");
  json_t *arr = json_array();
  RM_ASSERT_ERR(rm_manifest_add_node(m, "x", "Gain", arr, &err), &err, RM_EPARAM, "x", "params",
                "node 'x': params must be a JSON object");
  json_decref(arr);
  RM_ASSERT_INT(m->n_nodes, 100);
  /* params are referenced, not stolen */
  json_t *params = json_pack("{s:f}", "db", 1.0);
  RM_ASSERT_INT(rm_manifest_add_node(m, "y", "Gain", params, &err), 0);
  CU_ASSERT_PTR_EQUAL(m->nodes[100].params, params);
  RM_ASSERT_INT(params->refcount, 2);
  json_decref(params);
  rm_manifest_free(m);
  rm_manifest_free(NULL);
}

int main(void) {
  static const rm_test_case_t cases[] = {
      RM_TEST(test_json_full_manifest), RM_TEST(test_json_empty_manifest_loads),
      RM_TEST(test_json_shape_errors),  RM_TEST(test_json_params_errors),
      RM_TEST(test_json_syntax_errors), RM_TEST(test_file),
      RM_TEST(test_builders),           {NULL, NULL}};
  rm_test_suite("manifest", cases);
  return rm_test_run();
}
