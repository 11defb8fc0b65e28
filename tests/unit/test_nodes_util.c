/* test_nodes_util.c - the utility nodes' numbers: Gain, AudioFormat, ChannelMix, Chunk,
 * Calculator, Delay, PassThrough. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "rm/clock.h"
#include "test_support.h"

/* A one-node pipeline "n" of `type` with params (single-quoted JSON object text). */
static rm_pipeline_t *single(const char *type, const char *params) {
  char json[512];
  snprintf(json, sizeof json, "{'nodes': [{'id': 'n', 'node_type': '%s', 'params': %s}]}", type,
           params ? params : "{}");
  rm_pipeline_t *p = rm_test_pipeline(json);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  return p;
}

/* Runs `type` once over in; returns the run's code, *r set. */
static int run_single(const char *type, const char *params, rm_buffer_t *in, rm_result_t **r,
                      rm_error_t *err) {
  rm_pipeline_t *p = single(type, params);
  int rc = rm_test_run1(p, "n", in, 0, r, err);
  rm_pipeline_free(p); /* results outlive their pipeline */
  return rc;
}

/* Output item i of node n of a successful single-node run. */
static rm_buffer_t *out_item(rm_result_t *r, size_t i) {
  rm_buffer_t *b = rm_test_item(r, "n", i);
  CU_ASSERT_PTR_NOT_NULL_FATAL(b);
  return b;
}

/* ---------------------------------------------------------------- Gain */

static void test_gain_6db_doubles(void) {
  const float s[] = {0.25f, -0.125f, 0.3f, -0.4f, 0.0f, 0.001f};
  rm_buffer_t *in = rm_test_audio_f32(s, 6, 48000, 2);
  rm_result_t *r;
  rm_error_t err;
  RM_ASSERT_INT(run_single("Gain", "{'db': 6.0206}", in, &r, &err), 0);
  rm_buffer_t *o = out_item(r, 0);
  RM_ASSERT_INT(o->u.audio.format, RM_SAMPLE_F32);
  RM_ASSERT_INT(o->u.audio.sample_rate, 48000);
  RM_ASSERT_INT(o->u.audio.channels, 2);
  RM_ASSERT_INT(rm_audio_samples(o), 6);
  CU_ASSERT_PTR_NOT_EQUAL(o->data, in->data); /* a new buffer, the input is untouched */
  for (size_t i = 0; i < 6; i++) {
    RM_ASSERT_NEAR(rm_audio_get(o, i), 2.0 * s[i], 1e-6);
    RM_ASSERT_NEAR(rm_audio_get(in, i), s[i], 0);
  }
  rm_result_free(r);
  RM_ASSERT_INT(run_single("Gain", "{'db': -6.0206}", in, &r, &err), 0);
  o = out_item(r, 0);
  for (size_t i = 0; i < 6; i++)
    RM_ASSERT_NEAR(rm_audio_get(o, i), 0.5 * s[i], 1e-6);
  rm_result_free(r);
  RM_ASSERT_INT(run_single("Gain", "{'db': 0}", in, &r, &err), 0);
  o = out_item(r, 0);
  CU_ASSERT_EQUAL(memcmp(o->data, in->data, in->size), 0);
  rm_result_free(r);
  rm_buffer_unref(in);
}

static void test_gain_integer_formats_clip(void) {
  const int16_t s[] = {1000, -1000, 20000, -20000, 16384, -16384, 0};
  rm_buffer_t *in = rm_test_audio_i16(s, 7, 16000, 1);
  rm_result_t *r;
  rm_error_t err;
  RM_ASSERT_INT(run_single("Gain", "{'db': 6.020599913279624}", in, &r, &err), 0);
  rm_buffer_t *o = out_item(r, 0);
  RM_ASSERT_INT(o->u.audio.format, RM_SAMPLE_I16);
  const int16_t want[] = {2000, -2000, 32767, -32768, 32767, -32768, 0};
  const int16_t *got = (const int16_t *)(void *)o->data;
  for (int i = 0; i < 7; i++)
    RM_ASSERT_INT(got[i], want[i]);
  rm_result_free(r);
  rm_buffer_unref(in);

  const int32_t w[] = {1 << 20, INT32_MAX / 2 + 1, -(1 << 30) - 1};
  in = rm_test_audio_i32(w, 3, 16000, 1);
  RM_ASSERT_INT(run_single("Gain", "{'db': 6.020599913279624}", in, &r, &err), 0);
  o = out_item(r, 0);
  const int32_t *g32 = (const int32_t *)(void *)o->data;
  RM_ASSERT_INT(g32[0], 1 << 21);
  RM_ASSERT_INT(g32[1], INT32_MAX);
  RM_ASSERT_INT(g32[2], INT32_MIN);
  rm_result_free(r);
  rm_buffer_unref(in);
}

/* ---------------------------------------------------------------- AudioFormat */

static void test_format_i16_f32_i16_roundtrip_exact(void) {
  static int16_t s[65536];
  for (int i = 0; i < 65536; i++)
    s[i] = (int16_t)(i - 32768);
  rm_buffer_t *in = rm_test_audio_i16(s, 65536, 48000, 2);
  rm_pipeline_t *p = rm_test_pipeline(
      "{'nodes': [{'id': 'to_f', 'node_type': 'AudioFormat', 'params': {'format': 'f32'}},"
      " {'id': 'to_i', 'node_type': 'AudioFormat', 'params': {'format': 'i16'}}],"
      " 'connections': [{'from': 'to_f', 'to': 'to_i'}]}");
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  rm_result_t *r;
  rm_error_t err;
  RM_ASSERT_INT(rm_test_run1(p, "to_f", in, 0, &r, &err), 0);
  rm_buffer_t *o = rm_test_item(r, "to_i", 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(o);
  RM_ASSERT_INT(o->u.audio.format, RM_SAMPLE_I16);
  RM_ASSERT_INT(o->u.audio.channels, 2);
  RM_ASSERT_INT(o->u.audio.sample_rate, 48000);
  RM_ASSERT_INT(o->size, in->size);
  CU_ASSERT_EQUAL(memcmp(o->data, in->data, in->size), 0);
  rm_result_free(r);
  rm_pipeline_free(p);
  rm_buffer_unref(in);
}

static void test_format_clips_at_full_scale(void) {
  const float s[] = {1.5f, -1.5f, 1.0f, -1.0f, 0.5f, -0.25f};
  rm_buffer_t *in = rm_test_audio_f32(s, 6, 8000, 1);
  rm_result_t *r;
  rm_error_t err;
  RM_ASSERT_INT(run_single("AudioFormat", "{'format': 'i16'}", in, &r, &err), 0);
  const int16_t *g16 = (const int16_t *)(void *)out_item(r, 0)->data;
  const int16_t w16[] = {32767, -32768, 32767, -32768, 16384, -8192};
  for (int i = 0; i < 6; i++)
    RM_ASSERT_INT(g16[i], w16[i]);
  rm_result_free(r);

  RM_ASSERT_INT(run_single("AudioFormat", "{'format': 'i32'}", in, &r, &err), 0);
  rm_buffer_t *o = out_item(r, 0);
  RM_ASSERT_INT(o->u.audio.format, RM_SAMPLE_I32);
  RM_ASSERT_INT(o->size, 24);
  const int32_t *g32 = (const int32_t *)(void *)o->data;
  const int32_t w32[] = {INT32_MAX, INT32_MIN, INT32_MAX, INT32_MIN, 1073741824, -536870912};
  for (int i = 0; i < 6; i++)
    RM_ASSERT_INT(g32[i], w32[i]);
  rm_result_free(r);

  RM_ASSERT_INT(run_single("AudioFormat", "{'format': 'f64'}", in, &r, &err), 0);
  o = out_item(r, 0);
  RM_ASSERT_INT(o->size, 48);
  RM_ASSERT_NEAR(rm_audio_get(o, 0), 1.5, 0); /* float to float does not clip */
  rm_result_free(r);
  rm_buffer_unref(in);

  const int32_t i32[] = {INT32_MIN, 65536, 1 << 30};
  in = rm_test_audio_i32(i32, 3, 8000, 1);
  RM_ASSERT_INT(run_single("AudioFormat", "{'format': 'f32'}", in, &r, &err), 0);
  const float *f = (const float *)(void *)out_item(r, 0)->data;
  CU_ASSERT_EQUAL(f[0], -1.0f);
  CU_ASSERT_EQUAL(f[1], 1.0f / 32768.0f);
  CU_ASSERT_EQUAL(f[2], 0.5f);
  rm_result_free(r);
  RM_ASSERT_INT(run_single("AudioFormat", "{'format': 'i16'}", in, &r, &err), 0);
  const int16_t *n16 = (const int16_t *)(void *)out_item(r, 0)->data;
  RM_ASSERT_INT(n16[0], -32768);
  RM_ASSERT_INT(n16[1], 1);
  RM_ASSERT_INT(n16[2], 16384);
  rm_result_free(r);
  rm_buffer_unref(in);
}

static void test_format_same_format_shares(void) {
  const float s[] = {0.1f, 0.2f};
  rm_buffer_t *in = rm_test_audio_f32(s, 2, 8000, 1);
  rm_result_t *r;
  rm_error_t err;
  RM_ASSERT_INT(run_single("AudioFormat", "{'format': 'f32'}", in, &r, &err), 0);
  CU_ASSERT_PTR_EQUAL(out_item(r, 0), in);
  rm_result_free(r);
  rm_buffer_unref(in);
}

/* ---------------------------------------------------------------- ChannelMix */

static void test_channel_mix_to_mono(void) {
  const float st[] = {0.5f, -0.25f, 1.0f, 0.5f, -1.0f, -0.5f};
  rm_buffer_t *in = rm_test_audio_f32(st, 6, 44100, 2);
  rm_result_t *r;
  rm_error_t err;
  RM_ASSERT_INT(run_single("ChannelMix", "{'mode': 'mono'}", in, &r, &err), 0);
  rm_buffer_t *o = out_item(r, 0);
  RM_ASSERT_INT(o->u.audio.channels, 1);
  RM_ASSERT_INT(o->u.audio.sample_rate, 44100);
  RM_ASSERT_INT(rm_audio_frames(o), 3);
  RM_ASSERT_NEAR(rm_audio_get(o, 0), 0.125, 0);
  RM_ASSERT_NEAR(rm_audio_get(o, 1), 0.75, 0);
  RM_ASSERT_NEAR(rm_audio_get(o, 2), -0.75, 0);
  rm_result_free(r);
  rm_buffer_unref(in);

  /* the default mode is mono; 4 channels average; i16 rounds to nearest */
  const int16_t q[] = {1000, 2000, 3000, 4000, 1, 2, 0, 0};
  in = rm_test_audio_i16(q, 8, 8000, 4);
  RM_ASSERT_INT(run_single("ChannelMix", NULL, in, &r, &err), 0);
  o = out_item(r, 0);
  RM_ASSERT_INT(o->u.audio.format, RM_SAMPLE_I16);
  const int16_t *m = (const int16_t *)(void *)o->data;
  RM_ASSERT_INT(m[0], 2500);
  RM_ASSERT_INT(m[1], 1); /* 0.75 rounds up */
  rm_result_free(r);
  rm_buffer_unref(in);
}

static void test_channel_mix_to_stereo(void) {
  const float mono[] = {0.5f, -0.25f};
  rm_buffer_t *in = rm_test_audio_f32(mono, 2, 8000, 1);
  rm_result_t *r;
  rm_error_t err;
  RM_ASSERT_INT(run_single("ChannelMix", "{'mode': 'stereo'}", in, &r, &err), 0);
  rm_buffer_t *o = out_item(r, 0);
  RM_ASSERT_INT(o->u.audio.channels, 2);
  RM_ASSERT_INT(rm_audio_frames(o), 2);
  const float want[] = {0.5f, 0.5f, -0.25f, -0.25f};
  for (int i = 0; i < 4; i++)
    RM_ASSERT_NEAR(rm_audio_get(o, (size_t)i), want[i], 0);
  rm_result_free(r);
  rm_buffer_unref(in);

  /* 3 channels: L = mean(c0, c2), R = c1 */
  const float three[] = {0.5f, 0.25f, -0.5f, 1.0f, -1.0f, 0.0f};
  in = rm_test_audio_f32(three, 6, 8000, 3);
  RM_ASSERT_INT(run_single("ChannelMix", "{'mode': 'stereo'}", in, &r, &err), 0);
  o = out_item(r, 0);
  RM_ASSERT_INT(rm_audio_frames(o), 2);
  const float w3[] = {0.0f, 0.25f, 0.5f, -1.0f};
  for (int i = 0; i < 4; i++)
    RM_ASSERT_NEAR(rm_audio_get(o, (size_t)i), w3[i], 0);
  rm_result_free(r);
  rm_buffer_unref(in);

  /* already stereo: shared, not copied */
  in = rm_test_audio_f32(want, 4, 8000, 2);
  RM_ASSERT_INT(run_single("ChannelMix", "{'mode': 'stereo'}", in, &r, &err), 0);
  CU_ASSERT_PTR_EQUAL(out_item(r, 0), in);
  rm_result_free(r);
  rm_buffer_unref(in);
}

/* ---------------------------------------------------------------- Chunk */

static void expect_chunks(const rm_result_t *r, const size_t *frames, size_t n,
                          const float *first_values) {
  const rm_output_t *o = rm_test_output(r, "n");
  CU_ASSERT_PTR_NOT_NULL_FATAL(o);
  RM_ASSERT_INT(o->n_items, n);
  for (size_t i = 0; i < n && i < o->n_items; i++) {
    RM_ASSERT_INT(rm_audio_frames(o->items[i]), frames[i]);
    if (first_values)
      RM_ASSERT_NEAR(rm_audio_get(o->items[i], 0), first_values[i], 0);
  }
}

static void test_chunk_partial_modes(void) {
  float s[20];
  for (int i = 0; i < 20; i++)
    s[i] = (float)i / 32.0f; /* 10 stereo frames: frame k starts with 2k/32 */
  rm_buffer_t *in = rm_test_audio_f32(s, 20, 8000, 2);
  rm_result_t *r;
  rm_error_t err;
  static const float starts[] = {0.0f, 8.0f / 32, 16.0f / 32};

  RM_ASSERT_INT(run_single("Chunk", "{'frames': 4}", in, &r, &err), 0); /* keep */
  static const size_t keep[] = {4, 4, 2};
  expect_chunks(r, keep, 3, starts);
  rm_buffer_t *last = out_item(r, 2);
  RM_ASSERT_INT(last->u.audio.channels, 2);
  RM_ASSERT_NEAR(rm_audio_get(last, 3), 19.0 / 32, 0);
  rm_result_free(r);

  RM_ASSERT_INT(run_single("Chunk", "{'frames': 4, 'partial': 'pad'}", in, &r, &err), 0);
  static const size_t pad[] = {4, 4, 4};
  expect_chunks(r, pad, 3, starts);
  last = out_item(r, 2);
  RM_ASSERT_NEAR(rm_audio_get(last, 3), 19.0 / 32, 0);
  for (size_t i = 4; i < 8; i++)
    RM_ASSERT_NEAR(rm_audio_get(last, i), 0.0, 0); /* padded with silence */
  rm_result_free(r);

  RM_ASSERT_INT(run_single("Chunk", "{'frames': 4, 'partial': 'drop'}", in, &r, &err), 0);
  static const size_t drop[] = {4, 4};
  expect_chunks(r, drop, 2, starts);
  rm_result_free(r);

  RM_ASSERT_INT(run_single("Chunk", "{'frames': 5, 'partial': 'pad'}", in, &r, &err), 0);
  static const size_t exact[] = {5, 5}; /* no remainder: nothing padded */
  expect_chunks(r, exact, 2, NULL);
  rm_result_free(r);

  RM_ASSERT_INT(run_single("Chunk", "{'frames': 64}", in, &r, &err), 0);
  static const size_t all[] = {10};
  expect_chunks(r, all, 1, starts);
  rm_result_free(r);
  rm_buffer_unref(in);
}

/* A stream in two requests: the remainder of the first opens the second's first chunk. */
static void test_chunk_streaming_remainder(void) {
  rm_pipeline_t *p = single("Chunk", "{'frames': 4}");
  int16_t s[11];
  for (int i = 0; i < 11; i++)
    s[i] = (int16_t)(100 * i);
  rm_buffer_t *a = rm_test_audio_i16(s, 6, 8000, 1);
  rm_buffer_t *b = rm_test_audio_i16(s + 6, 5, 8000, 1);
  rm_input_t in = {"n", a};
  rm_run_opts_t opts = {.end_of_stream = 0};
  rm_result_t *r;
  rm_error_t err;
  RM_ASSERT_INT(rm_pipeline_run(p, &in, 1, &opts, &r, &err), 0);
  static const size_t first[] = {4};
  static const float first_v[] = {0.0f};
  expect_chunks(r, first, 1, first_v);
  rm_result_free(r);

  in.buf = b;
  opts.end_of_stream = 1;
  RM_ASSERT_INT(rm_pipeline_run(p, &in, 1, &opts, &r, &err), 0);
  static const size_t second[] = {4, 3};
  expect_chunks(r, second, 2, NULL);
  const int16_t *c0 = (const int16_t *)(void *)out_item(r, 0)->data;
  const int16_t *c1 = (const int16_t *)(void *)out_item(r, 1)->data;
  for (int i = 0; i < 4; i++)
    RM_ASSERT_INT(c0[i], 100 * (4 + i)); /* frames 4, 5 from the first request, 6, 7 new */
  for (int i = 0; i < 3; i++)
    RM_ASSERT_INT(c1[i], 100 * (8 + i));
  rm_result_free(r);

  /* after end of stream the node starts clean */
  RM_ASSERT_INT(rm_pipeline_run(p, &in, 1, &opts, &r, &err), 0);
  static const size_t again[] = {4, 1};
  expect_chunks(r, again, 2, NULL);
  RM_ASSERT_INT(((const int16_t *)(void *)out_item(r, 0)->data)[0], 600);
  rm_result_free(r);

  /* the format may not change while frames are pending */
  opts.end_of_stream = 0;
  in.buf = a;
  RM_ASSERT_INT(rm_pipeline_run(p, &in, 1, &opts, &r, &err), 0);
  rm_result_free(r);
  const float f[4] = {0};
  rm_buffer_t *other = rm_test_audio_f32(f, 4, 16000, 1);
  in.buf = other;
  RM_ASSERT_ERR(rm_pipeline_run(p, &in, 1, &opts, &r, &err), &err, RM_ENODE, "n", "in",
                "node 'n' (Chunk): audio changed from 8000 Hz 1 ch i16 to 16000 Hz 1 ch f32 "
                "mid-stream");
  rm_result_free(r);
  rm_buffer_unref(other);
  rm_buffer_unref(a);
  rm_buffer_unref(b);
  rm_pipeline_free(p);
}

/* ---------------------------------------------------------------- Calculator */

static void expect_calc(const char *request, const char *response) {
  rm_buffer_t *in = rm_test_json(request);
  rm_result_t *r;
  rm_error_t err;
  int rc = run_single("Calculator", NULL, in, &r, &err);
  RM_ASSERT_INT(rc, 0);
  if (!rc) {
    rm_buffer_t *o = out_item(r, 0);
    RM_ASSERT_INT(o->kind, RM_KIND_JSON);
    char *want = rm_test_unquote(response);
    RM_ASSERT_STR((const char *)o->data, want);
    RM_ASSERT_INT(o->size, strlen(want));
    rm_free(want);
  }
  rm_result_free(r);
  rm_buffer_unref(in);
}

static void expect_calc_error(const char *request, const char *field, const char *message) {
  rm_buffer_t *in = rm_test_json(request);
  rm_result_t *r;
  rm_error_t err;
  int rc = run_single("Calculator", NULL, in, &r, &err);
  RM_ASSERT_ERR(rc, &err, RM_ENODE, "n", field, message);
  RM_ASSERT_INT(r->n_outputs, 0);
  rm_result_free(r);
  rm_buffer_unref(in);
}

static void test_calculator_operations(void) {
  expect_calc("{'operation': 'add', 'operands': [1, 2, 3.5]}",
              "{'operation':'add','operands':[1,2,3.5],'result':6.5}");
  expect_calc("{'operation': 'subtract', 'operands': [10, 3, 2]}",
              "{'operation':'subtract','operands':[10,3,2],'result':5.0}");
  expect_calc("{'operation': 'multiply', 'operands': [2, 3, 4]}",
              "{'operation':'multiply','operands':[2,3,4],'result':24.0}");
  expect_calc("{'operation': 'divide', 'operands': [12, 3, 2]}",
              "{'operation':'divide','operands':[12,3,2],'result':2.0}");
  expect_calc("{'operation': 'power', 'operands': [2, 10]}",
              "{'operation':'power','operands':[2,10],'result':1024.0}");
  expect_calc("{'operation': 'modulo', 'operands': [10, 3]}",
              "{'operation':'modulo','operands':[10,3],'result':1.0}");
  expect_calc("{'operation': 'min', 'operands': [3, -1, 2]}",
              "{'operation':'min','operands':[3,-1,2],'result':-1.0}");
  expect_calc("{'operation': 'max', 'operands': [3, -1, 2]}",
              "{'operation':'max','operands':[3,-1,2],'result':3.0}");
  expect_calc("{'operation': 'mean', 'operands': [1, 2, 3, 4]}",
              "{'operation':'mean','operands':[1,2,3,4],'result':2.5}");
  /* one operand is enough for the folds */
  expect_calc("{'operands': [7], 'operation': 'add'}",
              "{'operands':[7],'operation':'add','result':7.0}");
}

static void test_calculator_errors(void) {
  expect_calc_error("{'operation': 'divide', 'operands': [1, 0]}", "operands",
                    "node 'n' (Calculator): division by zero (operands[1] is 0)");
  expect_calc_error("{'operation': 'divide', 'operands': [1, 2, 0]}", "operands",
                    "node 'n' (Calculator): division by zero (operands[2] is 0)");
  expect_calc_error("{'operation': 'modulo', 'operands': [1, 0]}", "operands",
                    "node 'n' (Calculator): modulo by zero (operands[1] is 0)");
  expect_calc_error("{'operation': 'power', 'operands': [10, 400]}", "operands",
                    "node 'n' (Calculator): the result is not a finite number");
  expect_calc_error("{'operation': 'sqrt', 'operands': [4]}", "operation",
                    "node 'n' (Calculator): \"operation\" must be one of add, subtract, "
                    "multiply, divide, power, modulo, min, max, mean");
  expect_calc_error("{'operation': 'add'}", "in",
                    "node 'n' (Calculator): input must have exactly the keys \"operation\" and "
                    "\"operands\"");
  expect_calc_error("{'operation': 'add', 'operands': [1], 'x': 1}", "in",
                    "node 'n' (Calculator): input must have exactly the keys \"operation\" and "
                    "\"operands\"");
  expect_calc_error("[1, 2]", "in",
                    "node 'n' (Calculator): input must be a JSON object {\"operation\", "
                    "\"operands\"}");
  expect_calc_error("{'operation': 'add', 'operands': 3}", "operands",
                    "node 'n' (Calculator): \"operands\" must be an array of numbers");
  expect_calc_error("{'operation': 'add', 'operands': [1, '2']}", "operands",
                    "node 'n' (Calculator): operands[1] is not a number");
  expect_calc_error("{'operation': 'power', 'operands': [1, 2, 3]}", "operands",
                    "node 'n' (Calculator): power takes 2 operands, got 3");
  expect_calc_error("{'operation': 'subtract', 'operands': [1]}", "operands",
                    "node 'n' (Calculator): subtract takes at least 2 operands, got 1");
  expect_calc_error("{'operation': 'add', 'operands': []}", "operands",
                    "node 'n' (Calculator): add takes at least 1 operand, got 0");
  expect_calc_error("{'operation': 1, 'operands': [1]}", "operation",
                    "node 'n' (Calculator): \"operation\" must be one of add, subtract, "
                    "multiply, divide, power, modulo, min, max, mean");
  expect_calc_error("{'operation': 'add', ", "in",
                    "node 'n' (Calculator): input is not valid JSON: string or '}' expected "
                    "near end of file");
  char many[600] = "{'operation': 'add', 'operands': [0";
  for (int i = 1; i < 65; i++)
    strcat(many, ",1");
  strcat(many, "]}");
  expect_calc_error(many, "operands",
                    "node 'n' (Calculator): add takes at most 64 operands, got 65");
}

/* ---------------------------------------------------------------- Delay */

static void test_delay_passes_data(void) {
  rm_buffer_t *in = rm_test_json("{'x': 1}");
  rm_result_t *r;
  rm_error_t err;
  RM_ASSERT_INT(run_single("Delay", "{'ms': 2}", in, &r, &err), 0);
  CU_ASSERT_PTR_EQUAL(out_item(r, 0), in);
  rm_result_free(r);
  RM_ASSERT_INT(run_single("Delay", NULL, in, &r, &err), 0);
  CU_ASSERT_PTR_EQUAL(out_item(r, 0), in);
  rm_result_free(r);
  rm_buffer_unref(in);
}

static void test_delay_honours_deadline(void) {
  rm_pipeline_t *p = single("Delay", "{'ms': 600000}");
  rm_buffer_t *in = rm_test_json("1");
  rm_input_t input = {"n", in};
  /* The deadline passes while the node waits. Only the outcome is asserted, not where the
   * run stopped (that depends on scheduling): a ten-minute wait that returned at all, well
   * inside the test's timeout, means the deadline was honoured. */
  rm_run_opts_t opts = {.end_of_stream = 1, .deadline_ns = rm_clock_ns() + 100000000ull};
  rm_result_t *r;
  rm_error_t err;
  RM_ASSERT_ERR(rm_pipeline_run(p, &input, 1, &opts, &r, &err), &err, RM_ETIMEDOUT, "n", "",
                "deadline exceeded before node 'n' finished");
  RM_ASSERT_INT(r->nodes[0].state, RM_NODE_FAILED);
  RM_ASSERT_INT(r->n_outputs, 0);
  rm_result_free(r);
  rm_buffer_unref(in);
  rm_pipeline_free(p);
}

/* Cancels 100 ms after it starts, while the ten-minute Delay waits (as for the deadline,
 * only the outcome is asserted). */
static void *cancel_soon(void *arg) {
  struct timespec ts = {0, 100000000};
  nanosleep(&ts, NULL);
  atomic_store((atomic_int *)arg, 1);
  return NULL;
}

static void test_delay_honours_cancel(void) {
  rm_pipeline_t *p = single("Delay", "{'ms': 600000}");
  rm_buffer_t *in = rm_test_json("1");
  rm_input_t input = {"n", in};
  atomic_int cancel = 0;
  rm_run_opts_t opts = {.end_of_stream = 1, .cancel = &cancel};
  pthread_t th;
  CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, cancel_soon, (void *)&cancel), 0);
  rm_result_t *r;
  rm_error_t err;
  RM_ASSERT_ERR(rm_pipeline_run(p, &input, 1, &opts, &r, &err), &err, RM_ECANCELED, "n", "",
                "the call was cancelled");
  RM_ASSERT_INT(r->nodes[0].state, RM_NODE_FAILED);
  pthread_join(th, NULL);
  rm_result_free(r);
  rm_buffer_unref(in);
  rm_pipeline_free(p);
}

int main(void) {
  static const rm_test_case_t cases[] = {RM_TEST(test_gain_6db_doubles),
                                         RM_TEST(test_gain_integer_formats_clip),
                                         RM_TEST(test_format_i16_f32_i16_roundtrip_exact),
                                         RM_TEST(test_format_clips_at_full_scale),
                                         RM_TEST(test_format_same_format_shares),
                                         RM_TEST(test_channel_mix_to_mono),
                                         RM_TEST(test_channel_mix_to_stereo),
                                         RM_TEST(test_chunk_partial_modes),
                                         RM_TEST(test_chunk_streaming_remainder),
                                         RM_TEST(test_calculator_operations),
                                         RM_TEST(test_calculator_errors),
                                         RM_TEST(test_delay_passes_data),
                                         RM_TEST(test_delay_honours_deadline),
                                         RM_TEST(test_delay_honours_cancel),
                                         {NULL, NULL}};
  rm_test_suite("nodes_util", cases);
  return rm_test_run();
}
