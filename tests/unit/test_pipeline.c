/* test_pipeline.c - graph validation (exact errors), topological scheduling, fan-in and
 * fan-out, and how runs report inputs, outputs and failures. */
#include <stdatomic.h>
#include <string.h>

#include "test_support.h"

#define EXPECT_BUILD_ERROR(json, code, node, field, msg)                                           \
  do {                                                                                             \
    rm_error_t err_;                                                                               \
    int rc_ = rm_test_pipeline_error(json, &err_);                                                 \
    RM_ASSERT_ERR(rc_, &err_, code, node, field, msg);                                             \
  } while (0)

static const float tone[] = {0.5f, -0.25f, 0.125f, 0.0f};

/* ---------------------------------------------------------------- validation */

static void test_empty_pipeline(void) {
  EXPECT_BUILD_ERROR("{}", RM_EMANIFEST, "", "nodes", "pipeline has no nodes");
  EXPECT_BUILD_ERROR("{'name': 'x', 'nodes': []}", RM_EMANIFEST, "", "nodes",
                     "pipeline has no nodes");
}

static void test_duplicate_ids(void) {
  EXPECT_BUILD_ERROR("{'nodes': [{'id': 'a', 'node_type': 'PassThrough'},"
                     " {'id': 'b', 'node_type': 'PassThrough'},"
                     " {'id': 'a', 'node_type': 'Gain'}]}",
                     RM_EMANIFEST, "a", "id", "duplicate node id 'a'");
}

static void test_invalid_ids(void) {
  EXPECT_BUILD_ERROR("{'nodes': [{'id': '', 'node_type': 'PassThrough'}]}", RM_EMANIFEST, "", "id",
                     "nodes[0]: node id is empty");
  EXPECT_BUILD_ERROR("{'nodes': [{'id': 'ok', 'node_type': 'PassThrough'},"
                     " {'id': 'a b', 'node_type': 'PassThrough'}]}",
                     RM_EMANIFEST, "a b", "id",
                     "nodes[1]: node id 'a b' is invalid: use 1 to 64 characters of A-Z a-z 0-9 "
                     "_ -");
  EXPECT_BUILD_ERROR("{'nodes': [{'id': 'a.b', 'node_type': 'PassThrough'}]}", RM_EMANIFEST, "a.b",
                     "id",
                     "nodes[0]: node id 'a.b' is invalid: use 1 to 64 characters of A-Z a-z 0-9 "
                     "_ -");
  char json[256], id[70];
  memset(id, 'x', 65);
  id[65] = '\0';
  snprintf(json, sizeof json, "{'nodes': [{'id': '%s', 'node_type': 'PassThrough'}]}", id);
  rm_error_t err;
  int rc = rm_test_pipeline_error(json, &err);
  RM_ASSERT_ERR(rc, &err, RM_EMANIFEST, id, "id", NULL);
  id[64] = '\0'; /* 64 characters are fine */
  snprintf(json, sizeof json, "{'nodes': [{'id': '%s', 'node_type': 'PassThrough'}]}", id);
  rm_pipeline_t *p = rm_test_pipeline(json);
  CU_ASSERT_PTR_NOT_NULL(p);
  rm_pipeline_free(p);
}

static void test_invalid_name(void) {
  EXPECT_BUILD_ERROR("{'name': 'tab\\there', 'nodes': [{'id': 'a', 'node_type': 'Gain'}]}",
                     RM_EMANIFEST, "", "name",
                     "pipeline name must be at most 256 bytes of printable UTF-8");
  /* names that do not come through JSON may hold any bytes: only well-formed UTF-8 passes */
  static const struct {
    const char *name;
    int ok;
  } cases[] = {
      {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x8e\xb5", 1}, /* 2-, 3- and 4-byte forms */
      {"\xff", 0},                                      /* never valid */
      {"\xc0\xaf", 0},                                  /* overlong '/' */
      {"\xed\xa0\x80", 0},                              /* a UTF-16 surrogate */
      {"\xf4\x90\x80\x80", 0},                          /* above U+10FFFF */
      {"\xe2\x82", 0},                                  /* truncated */
      {"del\x7f", 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    rm_manifest_t *m = rm_manifest_new(cases[i].name);
    rm_error_t err;
    RM_ASSERT_INT(rm_manifest_add_node(m, "a", "Gain", NULL, &err), 0);
    rm_pipeline_t *p = NULL;
    int rc = rm_pipeline_new(m, NULL, &p, &err);
    if (cases[i].ok) {
      RM_ASSERT_INT(rc, 0);
      if (p)
        RM_ASSERT_STR(rm_pipeline_name(p), cases[i].name);
    } else {
      RM_ASSERT_ERR(rc, &err, RM_EMANIFEST, "", "name", NULL);
    }
    rm_pipeline_free(p);
    rm_manifest_free(m);
  }
  char longname[300];
  memset(longname, 'n', 257);
  longname[257] = '\0';
  rm_manifest_t *m = rm_manifest_new(longname);
  rm_error_t err;
  RM_ASSERT_INT(rm_manifest_add_node(m, "a", "Gain", NULL, &err), 0);
  rm_pipeline_t *p = NULL;
  RM_ASSERT_ERR(rm_pipeline_new(m, NULL, &p, &err), &err, RM_EMANIFEST, "", "name", NULL);
  longname[256] = '\0';
  RM_ASSERT_INT(rm_manifest_set_name(m, longname), 0);
  RM_ASSERT_INT(rm_pipeline_new(m, NULL, &p, &err), 0);
  rm_pipeline_free(p);
  rm_manifest_free(m);
}

static void test_unknown_node_type(void) {
  EXPECT_BUILD_ERROR("{'nodes': [{'id': 'a', 'node_type': 'PassThrough'},"
                     " {'id': 'g', 'node_type': 'Gian'}]}",
                     RM_ENOTYPE, "g", "node_type", "node 'g': unknown node type 'Gian'");
  /* names are case-sensitive */
  EXPECT_BUILD_ERROR("{'nodes': [{'id': 'g', 'node_type': 'gain'}]}", RM_ENOTYPE, "g", "node_type",
                     "node 'g': unknown node type 'gain'");
}

static void test_connection_to_missing_node(void) {
  EXPECT_BUILD_ERROR("{'nodes': [{'id': 'a', 'node_type': 'PassThrough'}],"
                     " 'connections': [{'from': 'a', 'to': 'ghost'}]}",
                     RM_EMANIFEST, "ghost", "to",
                     "connection 0 (a -> ghost): node 'ghost' does not exist");
  EXPECT_BUILD_ERROR("{'nodes': [{'id': 'a', 'node_type': 'PassThrough'}],"
                     " 'connections': [{'from': 'ghost', 'to': 'a'}]}",
                     RM_EMANIFEST, "ghost", "from",
                     "connection 0 (ghost -> a): node 'ghost' does not exist");
}

static void test_missing_port(void) {
  static const char *nodes = "'nodes': [{'id': 'a', 'node_type': 'PassThrough'},"
                             " {'id': 'g', 'node_type': 'Gain'}]";
  char json[512];
  snprintf(json, sizeof json,
           "{%s, 'connections': [{'from': 'a', 'to': 'g', 'from_port': 'left'}]}", nodes);
  EXPECT_BUILD_ERROR(json, RM_EMANIFEST, "a", "from_port",
                     "connection 0 (a -> g): node 'a' (PassThrough) has no output port 'left'");
  snprintf(json, sizeof json,
           "{%s, 'connections': [{'from': 'a', 'to': 'g', 'to_port': 'sidechain'}]}", nodes);
  EXPECT_BUILD_ERROR(json, RM_EMANIFEST, "g", "to_port",
                     "connection 0 (a -> g): node 'g' (Gain) has no input port 'sidechain'");
  /* naming the primary port explicitly is fine */
  snprintf(json, sizeof json,
           "{%s, 'connections': [{'from': 'a', 'to': 'g', 'from_port': 'out', "
           "'to_port': 'in'}]}",
           nodes);
  rm_pipeline_t *p = rm_test_pipeline(json);
  CU_ASSERT_PTR_NOT_NULL(p);
  rm_pipeline_free(p);
}

static void test_single_port_takes_one_connection(void) {
  EXPECT_BUILD_ERROR("{'nodes': [{'id': 'a', 'node_type': 'PassThrough'},"
                     " {'id': 'b', 'node_type': 'PassThrough'},"
                     " {'id': 'g', 'node_type': 'Gain'}],"
                     " 'connections': [{'from': 'a', 'to': 'g'}, {'from': 'b', 'to': 'g'}]}",
                     RM_EMANIFEST, "g", "connections",
                     "node 'g' (Gain): input port 'in' accepts one connection, got 2");
}

static void test_cycles_name_a_node_on_them(void) {
  EXPECT_BUILD_ERROR("{'nodes': [{'id': 'a', 'node_type': 'PassThrough'},"
                     " {'id': 'b', 'node_type': 'Gain'},"
                     " {'id': 'c', 'node_type': 'PassThrough'}],"
                     " 'connections': [{'from': 'a', 'to': 'c'}, {'from': 'b', 'to': 'c'},"
                     "  {'from': 'c', 'to': 'b'}]}",
                     RM_EMANIFEST, "b", "connections", "cycle detected: b -> c -> b");
  EXPECT_BUILD_ERROR("{'nodes': [{'id': 'loop', 'node_type': 'PassThrough'}],"
                     " 'connections': [{'from': 'loop', 'to': 'loop'}]}",
                     RM_EMANIFEST, "loop", "connections", "cycle detected: loop -> loop");
  /* a cycle downstream of an acyclic part: x -> p -> q -> r -> p */
  EXPECT_BUILD_ERROR("{'nodes': [{'id': 'x', 'node_type': 'PassThrough'},"
                     " {'id': 'r', 'node_type': 'Gain'}, {'id': 'p', 'node_type': 'PassThrough'},"
                     " {'id': 'q', 'node_type': 'Gain'}],"
                     " 'connections': [{'from': 'x', 'to': 'p'}, {'from': 'p', 'to': 'q'},"
                     "  {'from': 'q', 'to': 'r'}, {'from': 'r', 'to': 'p'}]}",
                     RM_EMANIFEST, "r", "connections", "cycle detected: r -> p -> q -> r");
}

static void test_kind_mismatch(void) {
  EXPECT_BUILD_ERROR("{'nodes': [{'id': 'calc', 'node_type': 'Calculator'},"
                     " {'id': 'g', 'node_type': 'Gain'}],"
                     " 'connections': [{'from': 'calc', 'to': 'g'}]}",
                     RM_EMANIFEST, "g", "connections",
                     "connection calc -> g: 'calc' produces json but 'g' (Gain) accepts audio");
  /* a pass-through carries the kind that reaches it */
  EXPECT_BUILD_ERROR("{'nodes': [{'id': 'calc', 'node_type': 'Calculator'},"
                     " {'id': 'p', 'node_type': 'PassThrough'},"
                     " {'id': 'f', 'node_type': 'AudioFormat', 'params': {'format': 'i16'}}],"
                     " 'connections': [{'from': 'calc', 'to': 'p'}, {'from': 'p', 'to': 'f'}]}",
                     RM_EMANIFEST, "f", "connections",
                     "connection p -> f: 'p' produces json but 'f' (AudioFormat) accepts audio");
  EXPECT_BUILD_ERROR("{'nodes': [{'id': 'g', 'node_type': 'Gain'},"
                     " {'id': 'calc', 'node_type': 'Calculator'}],"
                     " 'connections': [{'from': 'g', 'to': 'calc'}]}",
                     RM_EMANIFEST, "calc", "connections",
                     "connection g -> calc: 'g' produces audio but 'calc' (Calculator) accepts "
                     "json");
}

/* A node's own cross-field check runs in create(), which cannot know its node's id: the
 * engine makes the message name the node. (Denoise is the utility-free example: it only
 * accepts 10 or 20 ms frames.) */
static void test_create_errors_name_the_node(void) {
  rm_error_t err;
  int rc = rm_test_pipeline_error(
      "{'nodes': [{'id': 'dn', 'node_type': 'Denoise', 'params': {'frame_ms': 15}}]}", &err);
  RM_ASSERT_ERR(rc, &err, RM_EPARAM, "dn", "frame_ms", NULL);
  const char *tail = " (node 'dn', Denoise)";
  size_t len = strlen(err.message);
  CU_ASSERT(len > strlen(tail) && strcmp(err.message + len - strlen(tail), tail) == 0);
  CU_ASSERT(strncmp(err.message, "node param 'frame_ms': ", 23) == 0);
}

static void test_node_limit(void) {
  rm_manifest_t *m = rm_test_manifest("{'nodes': [{'id': 'a', 'node_type': 'PassThrough'},"
                                      " {'id': 'b', 'node_type': 'PassThrough'}]}");
  rm_limits_t lim = {.max_nodes = 1};
  rm_pipeline_t *p = (rm_pipeline_t *)1;
  rm_error_t err;
  RM_ASSERT_ERR(rm_pipeline_new(m, &lim, &p, &err), &err, RM_ELIMIT, "", "nodes",
                "pipeline has 2 nodes, above the limit of 1");
  CU_ASSERT_PTR_EQUAL(p, (rm_pipeline_t *)1);
  lim.max_nodes = 2;
  RM_ASSERT_INT(rm_pipeline_new(m, &lim, &p, &err), 0);
  rm_pipeline_free(p);
  rm_manifest_free(m);
}

/* ---------------------------------------------------------------- inputs */

static const char *chain = "{'nodes': [{'id': 'src', 'node_type': 'PassThrough'},"
                           " {'id': 'g', 'node_type': 'Gain', 'params': {'db': 0}}],"
                           " 'connections': [{'from': 'src', 'to': 'g'}]}";

static void run_expect(rm_pipeline_t *p, const rm_input_t *in, size_t n, int code, const char *node,
                       const char *field, const char *msg) {
  rm_result_t *r = NULL;
  rm_error_t err;
  int rc = rm_pipeline_run(p, in, n, NULL, &r, &err);
  RM_ASSERT_ERR(rc, &err, code, node, field, msg);
  CU_ASSERT_PTR_NOT_NULL(r);
  if (r)
    RM_ASSERT_INT(r->n_outputs, 0);
  rm_result_free(r);
}

static void test_input_errors(void) {
  rm_pipeline_t *p = rm_test_pipeline(chain);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  rm_buffer_t *a = rm_test_audio_f32(tone, 4, 8000, 1);
  rm_buffer_t *j = rm_test_json("{}");

  rm_input_t ghost = {"ghost", a};
  run_expect(p, &ghost, 1, RM_EINPUT, "", "inputs",
             "input for node 'ghost': the pipeline has no such node");
  rm_input_t to_g = {"g", a};
  run_expect(p, &to_g, 1, RM_EINPUT, "g", "inputs",
             "input for node 'g': the node has incoming connections, its data comes from them");
  run_expect(p, NULL, 0, RM_EINPUT, "src", "inputs",
             "node 'src' has no input: a node without incoming connections needs one in the "
             "request's inputs");
  rm_input_t twice[2] = {{"src", a}, {"src", a}};
  run_expect(p, twice, 2, RM_EINPUT, "src", "inputs", "input for node 'src' is given twice");
  rm_input_t none = {"src", NULL};
  run_expect(p, &none, 1, RM_EINPUT, "src", "inputs", "input for node 'src' has no buffer");

  /* a malformed buffer is refused before any node sees it */
  a->u.audio.channels = 3; /* 16 bytes are not whole 3-channel f32 frames */
  rm_input_t bad = {"src", a};
  run_expect(p, &bad, 1, RM_EINPUT, "src", "samples",
             "input for node 'src': audio samples hold 16 bytes, not a whole number of "
             "3-channel f32 frames");
  a->u.audio.channels = 1;

  /* the source's declared kinds are checked at bind time... */
  rm_pipeline_t *g = rm_test_pipeline("{'nodes': [{'id': 'g', 'node_type': 'Gain'}]}");
  rm_input_t json_to_gain = {"g", j};
  run_expect(g, &json_to_gain, 1, RM_EINPUT, "g", "inputs",
             "input for node 'g': Gain accepts audio, got json");
  rm_pipeline_free(g);
  /* ...and what a pass-through forwards is checked where it arrives */
  rm_input_t json_src = {"src", j};
  run_expect(p, &json_src, 1, RM_EINPUT, "g", "in",
             "node 'g' (Gain): input from 'src' is json, but port 'in' accepts audio");

  rm_buffer_unref(a);
  rm_buffer_unref(j);
  rm_pipeline_free(p);
}

static void test_buffer_limits(void) {
  rm_manifest_t *m = rm_test_manifest(chain);
  rm_limits_t lim = {.max_buffer_bytes = 15};
  rm_pipeline_t *p = NULL;
  rm_error_t err;
  RM_ASSERT_INT(rm_pipeline_new(m, &lim, &p, &err), 0);
  rm_buffer_t *a = rm_test_audio_f32(tone, 4, 8000, 1);
  rm_input_t in = {"src", a};
  run_expect(p, &in, 1, RM_ELIMIT, "src", "size",
             "input for node 'src' holds 16 bytes, above the limit of 15");
  rm_pipeline_free(p);
  lim = (rm_limits_t){.max_audio_samples = 3};
  RM_ASSERT_INT(rm_pipeline_new(m, &lim, &p, &err), 0);
  run_expect(p, &in, 1, RM_ELIMIT, "src", "samples",
             "input for node 'src' holds 4 audio samples, above the limit of 3");
  rm_pipeline_free(p);
  rm_manifest_free(m);

  /* limits apply to what nodes emit too: stereo doubles the 16 input bytes */
  m = rm_test_manifest("{'nodes': [{'id': 'mix', 'node_type': 'ChannelMix', "
                       "'params': {'mode': 'stereo'}}]}");
  lim = (rm_limits_t){.max_buffer_bytes = 20};
  RM_ASSERT_INT(rm_pipeline_new(m, &lim, &p, &err), 0);
  rm_input_t to_mix = {"mix", a};
  run_expect(p, &to_mix, 1, RM_ELIMIT, "mix", "size",
             "node 'mix' (ChannelMix): output holds 32 bytes, above the limit of 20");
  RM_ASSERT_INT(rm_pipeline_account(p)->current, 0); /* the refused buffer is gone */
  rm_pipeline_free(p);
  lim = (rm_limits_t){.max_audio_samples = 7};
  RM_ASSERT_INT(rm_pipeline_new(m, &lim, &p, &err), 0);
  run_expect(p, &to_mix, 1, RM_ELIMIT, "mix", "samples",
             "node 'mix' (ChannelMix): output holds 8 audio samples, above the limit of 7");
  rm_pipeline_free(p);
  rm_manifest_free(m);
  rm_buffer_unref(a);
}

/* ---------------------------------------------------------------- scheduling */

/* Manifest order is scrambled on purpose: the schedule follows the edges, ties broken by
 * manifest order. src -> {a, b} -> mix (fan-out then fan-in), a -> tap. */
static const char *diamond =
    "{'name': 'diamond', 'nodes': [{'id': 'mix', 'node_type': 'PassThrough'},"
    " {'id': 'tap', 'node_type': 'AudioFormat', 'params': {'format': 'i16'}},"
    " {'id': 'b', 'node_type': 'Gain', 'params': {'db': -6.020599913279624}},"
    " {'id': 'a', 'node_type': 'Gain', 'params': {'db': 6.020599913279624}},"
    " {'id': 'src', 'node_type': 'PassThrough'}],"
    " 'connections': [{'from': 'a', 'to': 'mix'}, {'from': 'src', 'to': 'a'},"
    "  {'from': 'b', 'to': 'mix'}, {'from': 'src', 'to': 'b'}, {'from': 'a', 'to': 'tap'}]}";

static void test_diamond_order_and_outputs(void) {
  rm_pipeline_t *p = rm_test_pipeline(diamond);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  RM_ASSERT_STR(rm_pipeline_name(p), "diamond");
  RM_ASSERT_INT(rm_pipeline_node_count(p), 5);
  static const char *const order[] = {"src", "b", "a", "mix", "tap"};
  for (size_t i = 0; i < 5; i++)
    RM_ASSERT_STR(rm_test_node_id(p, i), order[i]);
  CU_ASSERT_PTR_NULL(rm_test_node_id(p, 5));
  RM_ASSERT_INT(rm_pipeline_is_heavy(p), 0);

  rm_buffer_t *in = rm_test_audio_f32(tone, 4, 8000, 1);
  rm_result_t *r = NULL;
  rm_error_t err;
  RM_ASSERT_INT(rm_test_run1(p, "src", in, 0, &r, &err), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  /* every sink, keyed by node id, in execution order */
  RM_ASSERT_INT(r->n_outputs, 2);
  RM_ASSERT_STR(r->outputs[0].key, "mix");
  RM_ASSERT_STR(r->outputs[0].node_id, "mix");
  RM_ASSERT_STR(r->outputs[0].port, "out");
  RM_ASSERT_STR(r->outputs[1].key, "tap");
  /* fan-in: the merge emits a's item then b's, in connection order */
  const rm_output_t *mix = rm_test_output(r, "mix");
  CU_ASSERT_PTR_NOT_NULL_FATAL(mix);
  RM_ASSERT_INT(mix->n_items, 2);
  const float *up = (const float *)(void *)mix->items[0]->data;
  const float *down = (const float *)(void *)mix->items[1]->data;
  for (int i = 0; i < 4; i++) {
    RM_ASSERT_NEAR(up[i], 2.0 * tone[i], 1e-6);
    RM_ASSERT_NEAR(down[i], 0.5 * tone[i], 1e-6);
  }
  /* fan-out: tap read the same buffer mix got from a */
  rm_buffer_t *tap = rm_test_item(r, "tap", 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(tap);
  RM_ASSERT_INT(tap->u.audio.format, RM_SAMPLE_I16);
  const int16_t *t16 = (const int16_t *)(void *)tap->data;
  RM_ASSERT_INT(t16[0], 32767); /* 2 * 0.5 = 1.0 clips */
  RM_ASSERT_INT(t16[1], -16384);
  RM_ASSERT_INT(t16[2], 8192);
  /* per-node results in execution order */
  RM_ASSERT_INT(r->n_nodes, 5);
  for (size_t i = 0; i < 5; i++) {
    RM_ASSERT_STR(r->nodes[i].node_id, order[i]);
    RM_ASSERT_INT(r->nodes[i].state, RM_NODE_OK);
    RM_ASSERT_INT(r->nodes[i].invocations, 1);
  }
  RM_ASSERT_INT(r->nodes[3].items_out, 2); /* mix */
  rm_result_free(r);
  rm_buffer_unref(in);
  rm_pipeline_free(p);
}

static void test_fan_out_shares_buffers(void) {
  rm_pipeline_t *p = rm_test_pipeline(
      "{'nodes': [{'id': 'src', 'node_type': 'PassThrough'},"
      " {'id': 'g', 'node_type': 'Gain', 'params': {'db': 0}},"
      " {'id': 'x', 'node_type': 'PassThrough'}, {'id': 'y', 'node_type': 'PassThrough'},"
      " {'id': 'z', 'node_type': 'PassThrough'}],"
      " 'connections': [{'from': 'src', 'to': 'g'}, {'from': 'g', 'to': 'x'},"
      "  {'from': 'g', 'to': 'y'}, {'from': 'src', 'to': 'z'}]}");
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  rm_buffer_t *in = rm_test_audio_f32(tone, 4, 8000, 1);
  rm_result_t *r = NULL;
  rm_error_t err;
  RM_ASSERT_INT(rm_test_run1(p, "src", in, 0, &r, &err), 0);
  RM_ASSERT_INT(r->n_outputs, 3);
  rm_buffer_t *x = rm_test_item(r, "x", 0), *y = rm_test_item(r, "y", 0);
  rm_buffer_t *z = rm_test_item(r, "z", 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(x);
  /* one buffer made by g reaches both consumers: same object, same bytes, no copy */
  CU_ASSERT_PTR_EQUAL(x, y);
  CU_ASSERT_PTR_EQUAL(x->data, y->data);
  RM_ASSERT_INT(x->refs, 2); /* held by the two outputs only */
  /* the request's buffer itself travels through pass-throughs */
  CU_ASSERT_PTR_EQUAL(z, in);
  CU_ASSERT_PTR_EQUAL(z->data, in->data);
  RM_ASSERT_INT(in->refs, 2); /* the test's and the result's */
  rm_result_free(r);
  RM_ASSERT_INT(in->refs, 1);
  rm_buffer_unref(in);
  rm_pipeline_free(p);
}

static void test_chosen_output_nodes(void) {
  rm_pipeline_t *p = rm_test_pipeline(diamond);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  rm_buffer_t *in = rm_test_audio_f32(tone, 4, 8000, 1);
  rm_input_t input = {"src", in};
  static const char *const want[] = {"a"};
  rm_run_opts_t opts = {.end_of_stream = 1, .output_nodes = want, .n_output_nodes = 1};
  rm_result_t *r = NULL;
  rm_error_t err;
  RM_ASSERT_INT(rm_pipeline_run(p, &input, 1, &opts, &r, &err), 0);
  RM_ASSERT_INT(r->n_outputs, 1);
  RM_ASSERT_STR(r->outputs[0].key, "a");
  RM_ASSERT_INT(r->outputs[0].n_items, 1);
  rm_result_free(r);
  static const char *const bad[] = {"nope"};
  opts.output_nodes = bad;
  RM_ASSERT_ERR(rm_pipeline_run(p, &input, 1, &opts, &r, &err), &err, RM_EINPUT, "", "output_nodes",
                "output_nodes[0]: 'nope' names no node output port");
  rm_result_free(r);
  rm_buffer_unref(in);
  rm_pipeline_free(p);
}

/* Items flow: a chunker's three items make its consumer run three times. */
static void test_items_drive_invocations(void) {
  rm_pipeline_t *p =
      rm_test_pipeline("{'nodes': [{'id': 'ck', 'node_type': 'Chunk', 'params': {'frames': 2}},"
                       " {'id': 'g', 'node_type': 'Gain', 'params': {'db': 0}}],"
                       " 'connections': [{'from': 'ck', 'to': 'g'}]}");
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  const float s[6] = {1, 2, 3, 4, 5, 6};
  rm_buffer_t *in = rm_test_audio_f32(s, 6, 8000, 1);
  rm_result_t *r = NULL;
  rm_error_t err;
  RM_ASSERT_INT(rm_test_run1(p, "ck", in, 0, &r, &err), 0);
  const rm_output_t *o = rm_test_output(r, "g");
  CU_ASSERT_PTR_NOT_NULL_FATAL(o);
  RM_ASSERT_INT(o->n_items, 3);
  for (size_t i = 0; i < 3; i++) {
    RM_ASSERT_INT(rm_audio_frames(o->items[i]), 2);
    RM_ASSERT_NEAR(rm_audio_get(o->items[i], 0), s[2 * i], 0);
  }
  RM_ASSERT_INT(r->nodes[0].invocations, 1);
  RM_ASSERT_INT(r->nodes[0].items_out, 3);
  RM_ASSERT_INT(r->nodes[1].invocations, 3);
  RM_ASSERT_INT(r->nodes[1].items_out, 3);
  rm_result_free(r);
  rm_buffer_unref(in);
  rm_pipeline_free(p);
}

/* Fan-in pairs the i-th items; a single item is reused; other counts must agree. */
static void test_fan_in_item_counts(void) {
  rm_pipeline_t *p = rm_test_pipeline(
      "{'nodes': [{'id': 'one', 'node_type': 'PassThrough'},"
      " {'id': 'three', 'node_type': 'Chunk', 'params': {'frames': 1}},"
      " {'id': 'two', 'node_type': 'Chunk', 'params': {'frames': 2}},"
      " {'id': 'm', 'node_type': 'PassThrough'}],"
      " 'connections': [{'from': 'one', 'to': 'm'}, {'from': 'three', 'to': 'm'}]}");
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  const float s[3] = {1, 2, 3};
  rm_buffer_t *in = rm_test_audio_f32(s, 3, 8000, 1);
  rm_input_t inputs[3] = {{"one", in}, {"three", in}, {"two", in}};
  rm_result_t *r = NULL;
  rm_error_t err;
  RM_ASSERT_INT(rm_pipeline_run(p, inputs, 3, NULL, &r, &err), 0);
  const rm_output_t *m = rm_test_output(r, "m");
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  /* three invocations, each emitting (one's item, three's i-th item) */
  RM_ASSERT_INT(m->n_items, 6);
  for (size_t i = 0; i < 3; i++) {
    CU_ASSERT_PTR_EQUAL(m->items[2 * i], in);
    RM_ASSERT_INT(rm_audio_frames(m->items[2 * i + 1]), 1);
    RM_ASSERT_NEAR(rm_audio_get(m->items[2 * i + 1], 0), s[i], 0);
  }
  RM_ASSERT_INT(r->nodes[3].invocations, 3);
  /* 'two' is a sink too: its 1 full chunk and its short remainder */
  const rm_output_t *two = rm_test_output(r, "two");
  CU_ASSERT_PTR_NOT_NULL_FATAL(two);
  RM_ASSERT_INT(two->n_items, 2);
  rm_result_free(r);
  rm_pipeline_free(p);

  p = rm_test_pipeline(
      "{'nodes': [{'id': 'three', 'node_type': 'Chunk', 'params': {'frames': 1}},"
      " {'id': 'two', 'node_type': 'Chunk', 'params': {'frames': 2}},"
      " {'id': 'm', 'node_type': 'PassThrough'}],"
      " 'connections': [{'from': 'three', 'to': 'm'}, {'from': 'two', 'to': 'm'}]}");
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  RM_ASSERT_ERR(rm_pipeline_run(p, inputs + 1, 2, NULL, &r, &err), &err, RM_ENODE, "m",
                "connections",
                "node 'm' (PassThrough): its inputs carry different numbers of items (3 from "
                "'three', 2 from 'two')");
  RM_ASSERT_INT(r->nodes[2].state, RM_NODE_FAILED);
  rm_result_free(r);
  rm_pipeline_free(p);
  /* the same with the shorter list on the first connection: still named against the longest */
  p = rm_test_pipeline(
      "{'nodes': [{'id': 'three', 'node_type': 'Chunk', 'params': {'frames': 1}},"
      " {'id': 'two', 'node_type': 'Chunk', 'params': {'frames': 2}},"
      " {'id': 'm', 'node_type': 'PassThrough'}],"
      " 'connections': [{'from': 'two', 'to': 'm'}, {'from': 'three', 'to': 'm'}]}");
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  RM_ASSERT_ERR(rm_pipeline_run(p, inputs + 1, 2, NULL, &r, &err), &err, RM_ENODE, "m",
                "connections",
                "node 'm' (PassThrough): its inputs carry different numbers of items (3 from "
                "'three', 2 from 'two')");
  rm_result_free(r);
  rm_pipeline_free(p);
  rm_buffer_unref(in);
}

/* A failing node: its state, the skipped rest, no outputs, err naming it. */
static void test_failure_stops_the_run(void) {
  rm_pipeline_t *p = rm_test_pipeline("{'nodes': [{'id': 'calc', 'node_type': 'Calculator'},"
                                      " {'id': 'after', 'node_type': 'PassThrough'}],"
                                      " 'connections': [{'from': 'calc', 'to': 'after'}]}");
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  rm_buffer_t *in = rm_test_json("{'operation': 'divide', 'operands': [1, 0]}");
  rm_result_t *r = NULL;
  rm_error_t err;
  RM_ASSERT_ERR(rm_test_run1(p, "calc", in, 0, &r, &err), &err, RM_ENODE, "calc", "operands",
                "node 'calc' (Calculator): division by zero (operands[1] is 0)");
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  RM_ASSERT_INT(r->n_outputs, 0);
  RM_ASSERT_INT(r->nodes[0].state, RM_NODE_FAILED);
  RM_ASSERT_INT(r->nodes[0].invocations, 1);
  RM_ASSERT_INT(r->nodes[1].state, RM_NODE_SKIPPED);
  RM_ASSERT_INT(r->nodes[1].invocations, 0);
  rm_result_free(r);
  rm_buffer_unref(in);
  /* the pipeline stays usable */
  in = rm_test_json("{'operation': 'add', 'operands': [1, 2]}");
  RM_ASSERT_INT(rm_test_run1(p, "calc", in, 0, &r, &err), 0);
  RM_ASSERT_INT(err.code, 0);
  rm_buffer_t *out = rm_test_item(r, "after", 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(out);
  RM_ASSERT_STR((const char *)out->data,
                "{\"operation\":\"add\",\"operands\":[1,2],\"result\":3.0}");
  rm_result_free(r);
  rm_buffer_unref(in);
  rm_pipeline_free(p);
}

static void test_cancel_before_start(void) {
  rm_pipeline_t *p = rm_test_pipeline(chain);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  rm_buffer_t *in = rm_test_audio_f32(tone, 4, 8000, 1);
  rm_input_t input = {"src", in};
  atomic_int cancel = 1;
  rm_run_opts_t opts = {.cancel = &cancel};
  rm_result_t *r = NULL;
  rm_error_t err;
  RM_ASSERT_ERR(rm_pipeline_run(p, &input, 1, &opts, &r, &err), &err, RM_ECANCELED, "src", "",
                "the call was cancelled");
  RM_ASSERT_INT(r->nodes[0].state, RM_NODE_FAILED);
  RM_ASSERT_INT(r->nodes[0].invocations, 0);
  rm_result_free(r);
  /* a deadline already in the past */
  opts = (rm_run_opts_t){.deadline_ns = 1};
  RM_ASSERT_ERR(rm_pipeline_run(p, &input, 1, &opts, &r, &err), &err, RM_ETIMEDOUT, "src", "",
                "deadline exceeded before node 'src' finished");
  rm_result_free(r);
  rm_buffer_unref(in);
  rm_pipeline_free(p);
}

/* err is optional everywhere: the code alone still comes back. */
static void test_null_error_record(void) {
  rm_manifest_t *m = rm_test_manifest("{'nodes': [{'id': 'g', 'node_type': 'Gain', "
                                      "'params': {'db': 100}}]}");
  rm_pipeline_t *p = NULL;
  RM_ASSERT_INT(rm_pipeline_new(m, NULL, &p, NULL), RM_EPARAM);
  CU_ASSERT_PTR_NULL(p);
  rm_manifest_free(m);
  m = rm_test_manifest("{'nodes': [{'id': 'c', 'node_type': 'Calculator'}]}");
  RM_ASSERT_INT(rm_pipeline_new(m, NULL, &p, NULL), 0);
  rm_buffer_t *in = rm_test_json("{'operation': 'modulo', 'operands': [1, 0]}");
  rm_input_t input = {"c", in};
  rm_result_t *r = NULL;
  RM_ASSERT_INT(rm_pipeline_run(p, &input, 1, NULL, &r, NULL), RM_ENODE);
  RM_ASSERT_INT(r->nodes[0].state, RM_NODE_FAILED);
  rm_result_free(r);
  RM_ASSERT_INT(rm_pipeline_run(p, NULL, 0, NULL, &r, NULL), RM_EINPUT);
  rm_result_free(r);
  rm_buffer_unref(in);
  rm_pipeline_free(p);
  rm_manifest_free(m);
}

static void test_heavy_flag(void) {
  rm_pipeline_t *p = rm_test_pipeline(
      "{'nodes': [{'id': 'a', 'node_type': 'PassThrough'}, {'id': 'd', 'node_type': 'Delay'}],"
      " 'connections': [{'from': 'a', 'to': 'd'}]}");
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  RM_ASSERT_INT(rm_pipeline_is_heavy(p), 1);
  rm_pipeline_free(p);
  rm_pipeline_free(NULL);
}

/* The same compiled pipeline runs again and again with fresh results. */
static void test_repeated_runs(void) {
  rm_pipeline_t *p = rm_test_pipeline(chain);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  for (int k = 0; k < 3; k++) {
    float s[2] = {0.1f * (float)k, -0.1f * (float)k};
    rm_buffer_t *in = rm_test_audio_f32(s, 2, 8000, 1);
    rm_result_t *r = NULL;
    rm_error_t err;
    RM_ASSERT_INT(rm_test_run1(p, "src", in, 0, &r, &err), 0);
    rm_buffer_t *out = rm_test_item(r, "g", 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    RM_ASSERT_NEAR(rm_audio_get(out, 0), s[0], 0);
    RM_ASSERT_NEAR(rm_audio_get(out, 1), s[1], 0);
    rm_result_free(r);
    rm_buffer_unref(in);
    RM_ASSERT_INT(rm_pipeline_account(p)->current, 0);
  }
  rm_pipeline_free(p);
}

/* rm_pipeline_flush ends a stream fed chunk by chunk: the source needs no input, the chunker
 * emits its remainder, and its state starts over (a second flush emits nothing). */
static void test_flush_ends_a_chunked_stream(void) {
  rm_pipeline_t *p = rm_test_pipeline(
      "{'nodes': [{'id': 'ck', 'node_type': 'Chunk', 'params': {'frames': 3, 'partial': 'keep'}},"
      " {'id': 'g', 'node_type': 'Gain', 'params': {'db': 0}}],"
      " 'connections': [{'from': 'ck', 'to': 'g'}]}");
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  float s[4] = {0.1f, 0.2f, 0.3f, 0.4f};
  rm_buffer_t *in = rm_test_audio_f32(s, 4, 8000, 1);
  rm_input_t input = {"ck", in};
  rm_run_opts_t chunk = {.end_of_stream = 0};
  rm_result_t *r = NULL;
  rm_error_t err;
  RM_ASSERT_INT(rm_pipeline_run(p, &input, 1, &chunk, &r, &err), 0);
  RM_ASSERT_INT(r->n_outputs, 1);
  RM_ASSERT_INT(r->outputs[0].n_items, 1); /* 3 frames out, 1 held */
  RM_ASSERT_INT(rm_audio_frames(r->outputs[0].items[0]), 3);
  rm_result_free(r);
  RM_ASSERT_INT(rm_pipeline_flush(p, NULL, &r, &err), 0);
  RM_ASSERT_STR(r->outputs[0].key, "g");
  RM_ASSERT_INT(r->outputs[0].n_items, 1);
  rm_buffer_t *tail = r->outputs[0].items[0];
  RM_ASSERT_INT(rm_audio_frames(tail), 1);
  RM_ASSERT_NEAR(rm_audio_get(tail, 0), 0.4f, 0);
  rm_result_free(r);
  RM_ASSERT_INT(rm_pipeline_flush(p, NULL, &r, &err), 0); /* nothing left */
  RM_ASSERT_INT(r->outputs[0].n_items, 0);
  rm_result_free(r);
  /* a plain run still needs its source's input */
  RM_ASSERT_ERR(rm_pipeline_run(p, NULL, 0, &chunk, &r, &err), &err, RM_EINPUT, "ck", "inputs",
                "node 'ck' has no input: a node without incoming connections needs one in the "
                "request's inputs");
  rm_result_free(r);
  RM_ASSERT_INT(rm_pipeline_run(p, &input, 1, &chunk, &r, &err), 0); /* a new stream */
  RM_ASSERT_INT(r->outputs[0].n_items, 1);
  RM_ASSERT_NEAR(rm_audio_get(r->outputs[0].items[0], 0), 0.1f, 0);
  rm_result_free(r);
  rm_buffer_unref(in);
  RM_ASSERT_INT(rm_pipeline_account(p)->current, 0);
  rm_pipeline_free(p);
}

int main(void) {
  static const rm_test_case_t cases[] = {RM_TEST(test_empty_pipeline),
                                         RM_TEST(test_duplicate_ids),
                                         RM_TEST(test_invalid_ids),
                                         RM_TEST(test_invalid_name),
                                         RM_TEST(test_unknown_node_type),
                                         RM_TEST(test_connection_to_missing_node),
                                         RM_TEST(test_missing_port),
                                         RM_TEST(test_single_port_takes_one_connection),
                                         RM_TEST(test_cycles_name_a_node_on_them),
                                         RM_TEST(test_kind_mismatch),
                                         RM_TEST(test_create_errors_name_the_node),
                                         RM_TEST(test_node_limit),
                                         RM_TEST(test_input_errors),
                                         RM_TEST(test_buffer_limits),
                                         RM_TEST(test_diamond_order_and_outputs),
                                         RM_TEST(test_fan_out_shares_buffers),
                                         RM_TEST(test_chosen_output_nodes),
                                         RM_TEST(test_items_drive_invocations),
                                         RM_TEST(test_fan_in_item_counts),
                                         RM_TEST(test_failure_stops_the_run),
                                         RM_TEST(test_cancel_before_start),
                                         RM_TEST(test_null_error_record),
                                         RM_TEST(test_heavy_flag),
                                         RM_TEST(test_repeated_runs),
                                         RM_TEST(test_flush_ends_a_chunked_stream),
                                         {NULL, NULL}};
  rm_test_suite("pipeline", cases);
  return rm_test_run();
}
