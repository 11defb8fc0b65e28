/* test_params.c - parameter schemas: every rejection names node and key; defaults fill in. */
#include <string.h>

#include "rm/params.h"
#include "test_support.h"

static const char *const colours[] = {"red", "green", NULL};
static const rm_param_spec_t specs[] = {
    {"gain", RM_PARAM_NUMBER, RM_PARAM_HAS_MIN | RM_PARAM_HAS_MAX, -12, 12, "0", NULL, ""},
    {"count", RM_PARAM_INTEGER, RM_PARAM_HAS_MIN, 1, 0, "4", NULL, ""},
    {"on", RM_PARAM_BOOLEAN, 0, 0, 0, "true", NULL, ""},
    {"label", RM_PARAM_STRING, 0, 0, 0, "null", NULL, ""},
    {"colour", RM_PARAM_ENUM, 0, 0, 0, "\"red\"", colours, ""},
    {"weights", RM_PARAM_NUMBER_ARRAY, RM_PARAM_HAS_MAX, 0, 1, "[]", NULL, ""},
    {"rate", RM_PARAM_INTEGER, RM_PARAM_REQUIRED, 0, 0, NULL, NULL, ""},
};
#define N_SPECS (sizeof specs / sizeof specs[0])

/* Validates single-quoted JSON; returns the code, *out set on success. */
static int validate(const char *json, json_t **out, rm_error_t *err) {
  char *text = rm_test_unquote(json);
  json_t *params = json_loads(text, 0, NULL);
  rm_free(text);
  CU_ASSERT_PTR_NOT_NULL_FATAL(params);
  rm_error_clear(err);
  *out = NULL;
  int rc = rm_params_validate(specs, N_SPECS, params, "n1", out, err);
  json_decref(params);
  return rc;
}

static void expect_error(const char *json, const char *field, const char *message) {
  rm_error_t err;
  json_t *out;
  int rc = validate(json, &out, &err);
  RM_ASSERT_ERR(rc, &err, RM_EPARAM, "n1", field, message);
  CU_ASSERT_PTR_NULL(out);
}

static void test_defaults_are_filled(void) {
  rm_error_t err;
  json_t *out;
  RM_ASSERT_INT(validate("{'rate': 48000}", &out, &err), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(out);
  RM_ASSERT_INT(json_object_size(out), N_SPECS);
  RM_ASSERT_NEAR(rm_params_number(out, "gain"), 0.0, 0);
  RM_ASSERT_INT(rm_params_integer(out, "count"), 4);
  RM_ASSERT_INT(rm_params_boolean(out, "on"), 1);
  CU_ASSERT_PTR_NULL(rm_params_string(out, "label"));
  RM_ASSERT_INT(rm_params_is_null(out, "label"), 1);
  RM_ASSERT_STR(rm_params_string(out, "colour"), "red");
  RM_ASSERT_INT(json_array_size(json_object_get(out, "weights")), 0);
  RM_ASSERT_INT(rm_params_integer(out, "rate"), 48000);
  json_decref(out);
}

static void test_given_values_are_kept(void) {
  rm_error_t err;
  json_t *out;
  RM_ASSERT_INT(validate("{'gain': -12, 'count': 7.0, 'on': false, 'label': 'x', "
                         "'colour': 'green', 'weights': [0, 0.5, 1], 'rate': 8000}",
                         &out, &err),
                0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(out);
  RM_ASSERT_NEAR(rm_params_number(out, "gain"), -12.0, 0);
  RM_ASSERT_INT(rm_params_integer(out, "count"), 7);
  RM_ASSERT_INT(rm_params_boolean(out, "on"), 0);
  RM_ASSERT_STR(rm_params_string(out, "label"), "x");
  RM_ASSERT_INT(rm_params_is_null(out, "label"), 0);
  RM_ASSERT_STR(rm_params_string(out, "colour"), "green");
  RM_ASSERT_INT(json_array_size(json_object_get(out, "weights")), 3);
  json_decref(out);
  /* an explicit null for an optional param means "not set" */
  RM_ASSERT_INT(validate("{'label': null, 'rate': 1}", &out, &err), 0);
  RM_ASSERT_INT(rm_params_is_null(out, "label"), 1);
  json_decref(out);
}

/* Integers above 2^53 must not lose precision on the way through a double. */
static void test_large_integer_is_exact(void) {
  rm_error_t err;
  json_t *out;
  RM_ASSERT_INT(validate("{'rate': 9007199254740993}", &out, &err), 0);
  RM_ASSERT_INT(rm_params_integer(out, "rate"), 9007199254740993LL);
  json_decref(out);
}

static void test_unknown_key(void) {
  expect_error("{'rate': 1, 'gian': 3}", "gian", "node 'n1': unknown param 'gian'");
}

static void test_missing_required(void) {
  expect_error("{'gain': 1}", "rate", "node 'n1': missing required param 'rate'");
}

static void test_wrong_types(void) {
  expect_error("{'rate': 1, 'gain': '3'}", "gain",
               "node 'n1' param 'gain': expected number, got string");
  expect_error("{'rate': 1, 'count': 2.5}", "count",
               "node 'n1' param 'count': expected integer, got 2.5");
  expect_error("{'rate': 1, 'count': true}", "count",
               "node 'n1' param 'count': expected integer, got boolean");
  expect_error("{'rate': 1, 'on': 1}", "on", "node 'n1' param 'on': expected boolean, got integer");
  expect_error("{'rate': 1, 'label': 5}", "label",
               "node 'n1' param 'label': expected string, got integer");
  expect_error("{'rate': 1, 'colour': 1}", "colour",
               "node 'n1' param 'colour': expected string, got integer");
  expect_error("{'rate': 1, 'weights': {}}", "weights",
               "node 'n1' param 'weights': expected number_array, got object");
  expect_error("{'rate': 1, 'weights': [0.5, 'x']}", "weights",
               "node 'n1' param 'weights': element 1: expected number, got string");
  /* null is only "not set" for params without a default */
  expect_error("{'rate': null}", "rate", "node 'n1' param 'rate': expected integer, got null");
  expect_error("{'rate': 1, 'gain': null}", "gain",
               "node 'n1' param 'gain': expected number, got null");
}

static void test_out_of_range(void) {
  expect_error("{'rate': 1, 'gain': 12.5}", "gain",
               "node 'n1' param 'gain': 12.5 is out of range [-12, 12]");
  expect_error("{'rate': 1, 'gain': -13}", "gain",
               "node 'n1' param 'gain': -13 is out of range [-12, 12]");
  expect_error("{'rate': 1, 'count': 0}", "count",
               "node 'n1' param 'count': 0 is out of range [1, inf)");
  expect_error("{'rate': 1, 'weights': [1, 2]}", "weights",
               "node 'n1' param 'weights': element 1 = 2 is out of range (-inf, 1]");
}

static void test_enum_lists_allowed_values(void) {
  expect_error("{'rate': 1, 'colour': 'blue'}", "colour",
               "node 'n1' param 'colour': 'blue' is not one of: red, green");
}

static void test_params_must_be_object(void) {
  rm_error_t err;
  json_t *out = NULL;
  json_t *arr = json_array();
  rm_error_clear(&err);
  RM_ASSERT_ERR(rm_params_validate(specs, N_SPECS, arr, "n1", &out, &err), &err, RM_EPARAM, "n1",
                "params", "node 'n1': params must be a JSON object, got array");
  CU_ASSERT_PTR_NULL(out);
  json_decref(arr);
  /* NULL means {}: here the required key is then missing */
  RM_ASSERT_ERR(rm_params_validate(specs, N_SPECS, NULL, "n1", &out, &err), &err, RM_EPARAM, "n1",
                "rate", "node 'n1': missing required param 'rate'");
  /* no schema, no params: an empty object */
  RM_ASSERT_INT(rm_params_validate(NULL, 0, NULL, "n1", &out, &err), 0);
  RM_ASSERT_INT(json_object_size(out), 0);
  json_decref(out);
}

static void test_type_names(void) {
  RM_ASSERT_STR(rm_param_type_name(RM_PARAM_NUMBER), "number");
  RM_ASSERT_STR(rm_param_type_name(RM_PARAM_INTEGER), "integer");
  RM_ASSERT_STR(rm_param_type_name(RM_PARAM_BOOLEAN), "boolean");
  RM_ASSERT_STR(rm_param_type_name(RM_PARAM_STRING), "string");
  RM_ASSERT_STR(rm_param_type_name(RM_PARAM_ENUM), "enum");
  RM_ASSERT_STR(rm_param_type_name(RM_PARAM_NUMBER_ARRAY), "number_array");
}

/* The same checks reach the caller through rm_pipeline_new with the node's id. */
static void test_node_params_through_pipeline(void) {
  rm_error_t err;
  RM_ASSERT_ERR(
      rm_test_pipeline_error(
          "{'nodes': [{'id': 'boost', 'node_type': 'Gain', 'params': {'db': 61}}]}", &err),
      &err, RM_EPARAM, "boost", "db", "node 'boost' param 'db': 61 is out of range [-120, 60]");
  RM_ASSERT_ERR(
      rm_test_pipeline_error(
          "{'nodes': [{'id': 'boost', 'node_type': 'Gain', 'params': {'gain': 1}}]}", &err),
      &err, RM_EPARAM, "boost", "gain", "node 'boost': unknown param 'gain'");
  RM_ASSERT_ERR(rm_test_pipeline_error(
                    "{'nodes': [{'id': 'fmt', 'node_type': 'AudioFormat', 'params': {}}]}", &err),
                &err, RM_EPARAM, "fmt", "format", "node 'fmt': missing required param 'format'");
  RM_ASSERT_ERR(rm_test_pipeline_error("{'nodes': [{'id': 'fmt', 'node_type': 'AudioFormat', "
                                       "'params': {'format': 'u8'}}]}",
                                       &err),
                &err, RM_EPARAM, "fmt", "format",
                "node 'fmt' param 'format': 'u8' is not one of: f32, i16, i32, f64");
  RM_ASSERT_ERR(rm_test_pipeline_error("{'nodes': [{'id': 'ck', 'node_type': 'Chunk', "
                                       "'params': {'frames': '10'}}]}",
                                       &err),
                &err, RM_EPARAM, "ck", "frames",
                "node 'ck' param 'frames': expected integer, got string");
  RM_ASSERT_ERR(rm_test_pipeline_error("{'nodes': [{'id': 'ck', 'node_type': 'Chunk', "
                                       "'params': {'frames': 0}}]}",
                                       &err),
                &err, RM_EPARAM, "ck", "frames",
                "node 'ck' param 'frames': 0 is out of range [1, 10000000]");
  RM_ASSERT_ERR(rm_test_pipeline_error("{'nodes': [{'id': 'c', 'node_type': 'Calculator', "
                                       "'params': {'precision': 2}}]}",
                                       &err),
                &err, RM_EPARAM, "c", "precision", "node 'c': unknown param 'precision'");
}

int main(void) {
  static const rm_test_case_t cases[] = {RM_TEST(test_defaults_are_filled),
                                         RM_TEST(test_given_values_are_kept),
                                         RM_TEST(test_large_integer_is_exact),
                                         RM_TEST(test_unknown_key),
                                         RM_TEST(test_missing_required),
                                         RM_TEST(test_wrong_types),
                                         RM_TEST(test_out_of_range),
                                         RM_TEST(test_enum_lists_allowed_values),
                                         RM_TEST(test_params_must_be_object),
                                         RM_TEST(test_type_names),
                                         RM_TEST(test_node_params_through_pipeline),
                                         {NULL, NULL}};
  rm_test_suite("params", cases);
  return rm_test_run();
}
