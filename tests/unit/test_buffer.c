/* test_buffer.c - buffers: creation, accounting, validation, sample conversion. */
#include <math.h>
#include <string.h>

#include "test_support.h"

/* ---- creation and accounting ---- */

static void test_account_counts_payload_bytes(void) {
  rm_mem_account_t acc = {0};
  rm_buffer_t *a = rm_buffer_new(RM_KIND_BINARY, 100, &acc);
  CU_ASSERT_PTR_NOT_NULL_FATAL(a);
  RM_ASSERT_INT(acc.current, 100);
  RM_ASSERT_INT(acc.peak, 100);
  rm_buffer_t *b = rm_buffer_new(RM_KIND_BINARY, 50, &acc);
  CU_ASSERT_PTR_NOT_NULL_FATAL(b);
  RM_ASSERT_INT(acc.current, 150);
  RM_ASSERT_INT(acc.peak, 150);
  /* a second reference shares the bytes: nothing more is held */
  CU_ASSERT_PTR_EQUAL(rm_buffer_ref(a), a);
  RM_ASSERT_INT(acc.current, 150);
  rm_buffer_unref(a);
  RM_ASSERT_INT(acc.current, 150);
  rm_buffer_unref(a);
  RM_ASSERT_INT(acc.current, 50);
  RM_ASSERT_INT(acc.peak, 150);
  /* borrowed bytes are held by the pipeline all the same */
  static const char borrowed[30] = "borrowed";
  rm_buffer_t *w = rm_buffer_new_borrowed(RM_KIND_TEXT, borrowed, sizeof borrowed, &acc);
  CU_ASSERT_PTR_NOT_NULL_FATAL(w);
  CU_ASSERT_PTR_EQUAL(w->data, (const uint8_t *)borrowed);
  RM_ASSERT_INT(acc.current, 80);
  RM_ASSERT_INT(acc.peak, 150);
  rm_buffer_unref(w);
  rm_buffer_unref(b);
  RM_ASSERT_INT(acc.current, 0);
  RM_ASSERT_INT(acc.peak, 150);
  rm_buffer_unref(NULL); /* no-op */
}

static void test_owned_payload_is_aligned_and_terminated(void) {
  for (size_t size = 0; size < 40; size += 7) {
    rm_buffer_t *b = rm_buffer_new(RM_KIND_TEXT, size, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    RM_ASSERT_INT((uintptr_t)b->data % 16, 0);
    RM_ASSERT_INT(b->data[size], 0);
    RM_ASSERT_INT(b->size, size);
    RM_ASSERT_INT(b->kind, RM_KIND_TEXT);
    rm_buffer_unref(b);
  }
}

static void test_new_audio_sizes_and_rejects(void) {
  rm_buffer_t *b = rm_buffer_new_audio(NULL, 48000, 2, RM_SAMPLE_I16, 10);
  CU_ASSERT_PTR_NOT_NULL_FATAL(b);
  RM_ASSERT_INT(b->kind, RM_KIND_AUDIO);
  RM_ASSERT_INT(b->size, 40);
  RM_ASSERT_INT(b->u.audio.sample_rate, 48000);
  RM_ASSERT_INT(b->u.audio.channels, 2);
  RM_ASSERT_INT(b->u.audio.format, RM_SAMPLE_I16);
  RM_ASSERT_INT(rm_audio_frames(b), 10);
  RM_ASSERT_INT(rm_audio_samples(b), 20);
  rm_buffer_unref(b);
  CU_ASSERT_PTR_NULL(rm_buffer_new_audio(NULL, 48000, 0, RM_SAMPLE_F32, 10));
  CU_ASSERT_PTR_NULL(rm_buffer_new_audio(NULL, 48000, 1, (rm_sample_format_t)0, 10));
  CU_ASSERT_PTR_NULL(rm_buffer_new_audio(NULL, 48000, 2, RM_SAMPLE_F64, SIZE_MAX / 8));
}

static void test_new_tensor_shapes(void) {
  int64_t shape[9] = {2, 3, 1, 1, 1, 1, 1, 1, 1};
  rm_buffer_t *t = rm_buffer_new_tensor(NULL, RM_DTYPE_F32, shape, 2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(t);
  RM_ASSERT_INT(t->size, 24);
  RM_ASSERT_INT(t->u.tensor.ndim, 2);
  RM_ASSERT_INT(t->u.tensor.shape[1], 3);
  rm_buffer_unref(t);
  t = rm_buffer_new_tensor(NULL, RM_DTYPE_I64, shape, 0); /* a scalar */
  CU_ASSERT_PTR_NOT_NULL_FATAL(t);
  RM_ASSERT_INT(t->size, 8);
  rm_buffer_unref(t);
  CU_ASSERT_PTR_NULL(rm_buffer_new_tensor(NULL, RM_DTYPE_F32, shape, 9));
  CU_ASSERT_PTR_NULL(rm_buffer_new_tensor(NULL, (rm_dtype_t)99, shape, 2));
  int64_t neg[2] = {2, -1};
  CU_ASSERT_PTR_NULL(rm_buffer_new_tensor(NULL, RM_DTYPE_U8, neg, 2));
  int64_t huge[2] = {INT64_MAX, INT64_MAX};
  CU_ASSERT_PTR_NULL(rm_buffer_new_tensor(NULL, RM_DTYPE_U8, huge, 2));
}

static void test_new_text_and_binary_copy(void) {
  char text[] = "{\"a\":1}";
  rm_buffer_t *j = rm_buffer_new_text(NULL, RM_KIND_JSON, text, 7);
  CU_ASSERT_PTR_NOT_NULL_FATAL(j);
  text[0] = 'X'; /* a copy, not a borrow */
  RM_ASSERT_STR((const char *)j->data, "{\"a\":1}");
  rm_buffer_unref(j);
  rm_buffer_t *b = rm_buffer_new_binary(NULL, "\x00\x01\x02", 3, "application/x-test");
  CU_ASSERT_PTR_NOT_NULL_FATAL(b);
  RM_ASSERT_INT(b->size, 3);
  RM_ASSERT_INT(b->data[2], 2);
  RM_ASSERT_STR(b->mime_type, "application/x-test");
  rm_buffer_unref(b);
  b = rm_buffer_new_binary(NULL, "", 0, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(b);
  CU_ASSERT_PTR_NULL(b->mime_type);
  rm_buffer_unref(b);
}

/* ---- validation ---- */

static void test_validate_audio(void) {
  rm_error_t err;
  rm_buffer_t *b = rm_buffer_new_audio(NULL, 48000, 2, RM_SAMPLE_F32, 4);
  CU_ASSERT_PTR_NOT_NULL_FATAL(b);
  rm_error_clear(&err);
  RM_ASSERT_INT(rm_buffer_validate(b, &err), 0);
  RM_ASSERT_INT(err.code, 0);

  b->u.audio.format = (rm_sample_format_t)9;
  RM_ASSERT_ERR(rm_buffer_validate(b, &err), &err, RM_EINPUT, "", "format",
                "audio format 9 is not one of f32, i16, i32, f64");
  b->u.audio.format = RM_SAMPLE_F32;
  b->u.audio.sample_rate = 0;
  RM_ASSERT_ERR(rm_buffer_validate(b, &err), &err, RM_EINPUT, "", "sample_rate",
                "audio sample_rate 0 is outside 1..768000");
  b->u.audio.sample_rate = 768001;
  RM_ASSERT_ERR(rm_buffer_validate(b, &err), &err, RM_EINPUT, "", "sample_rate",
                "audio sample_rate 768001 is outside 1..768000");
  b->u.audio.sample_rate = 768000;
  b->u.audio.channels = 65;
  RM_ASSERT_ERR(rm_buffer_validate(b, &err), &err, RM_EINPUT, "", "channels",
                "audio channels 65 is outside 1..64");
  b->u.audio.channels = 3; /* 32 bytes are not whole 3-channel f32 frames */
  RM_ASSERT_ERR(rm_buffer_validate(b, &err), &err, RM_EINPUT, "", "samples",
                "audio samples hold 32 bytes, not a whole number of 3-channel f32 frames");
  b->u.audio.channels = 4;
  RM_ASSERT_INT(rm_buffer_validate(b, &err), 0);
  rm_buffer_unref(b);
}

static void test_validate_tensor_and_others(void) {
  rm_error_t err;
  int64_t shape[2] = {2, 3};
  rm_buffer_t *t = rm_buffer_new_tensor(NULL, RM_DTYPE_I16, shape, 2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(t);
  RM_ASSERT_INT(rm_buffer_validate(t, &err), 0);
  t->u.tensor.shape[1] = 4;
  RM_ASSERT_ERR(rm_buffer_validate(t, &err), &err, RM_EINPUT, "", "data",
                "tensor data holds 12 bytes but its shape and dtype need 16");
  t->u.tensor.shape[1] = -3;
  RM_ASSERT_ERR(rm_buffer_validate(t, &err), &err, RM_EINPUT, "", "shape",
                "tensor dimension 1 is negative");
  t->u.tensor.shape[1] = 3;
  t->u.tensor.ndim = 9;
  RM_ASSERT_ERR(rm_buffer_validate(t, &err), &err, RM_EINPUT, "", "shape",
                "tensor has 9 dimensions, at most 8 allowed");
  t->u.tensor.ndim = 2;
  t->u.tensor.dtype = (rm_dtype_t)0;
  RM_ASSERT_ERR(rm_buffer_validate(t, &err), &err, RM_EINPUT, "", "dtype",
                "tensor dtype 0 is not supported");
  rm_buffer_unref(t);

  rm_buffer_t *j = rm_buffer_new_text(NULL, RM_KIND_JSON, "1", 1);
  RM_ASSERT_INT(rm_buffer_validate(j, &err), 0);
  j->kind = RM_KIND_NONE;
  RM_ASSERT_ERR(rm_buffer_validate(j, &err), &err, RM_EINPUT, "", "kind",
                "buffer has no data kind");
  rm_buffer_unref(j);
}

/* ---- names ---- */

static void test_names(void) {
  RM_ASSERT_INT(rm_sample_format_size(RM_SAMPLE_F32), 4);
  RM_ASSERT_INT(rm_sample_format_size(RM_SAMPLE_I16), 2);
  RM_ASSERT_INT(rm_sample_format_size(RM_SAMPLE_I32), 4);
  RM_ASSERT_INT(rm_sample_format_size(RM_SAMPLE_F64), 8);
  RM_ASSERT_INT(rm_sample_format_size(0), 0);
  RM_ASSERT_STR(rm_sample_format_name(RM_SAMPLE_I32), "i32");
  CU_ASSERT_PTR_NULL(rm_sample_format_name(7));
  RM_ASSERT_INT(rm_sample_format_from_name("f64"), RM_SAMPLE_F64);
  RM_ASSERT_INT(rm_sample_format_from_name("s16"), 0);
  RM_ASSERT_INT(rm_sample_format_from_name(NULL), 0);
  RM_ASSERT_INT(rm_dtype_size(RM_DTYPE_U8), 1);
  RM_ASSERT_INT(rm_dtype_size(RM_DTYPE_I64), 8);
  RM_ASSERT_STR(rm_dtype_name(RM_DTYPE_I16), "i16");
  RM_ASSERT_STR(rm_kind_name(RM_KIND_TENSOR), "tensor");
  RM_ASSERT_STR(rm_kind_name(RM_KIND_NONE), "none");
  RM_ASSERT_STR(rm_kind_name(RM_KIND_AUDIO | RM_KIND_JSON), "mixed");
}

/* ---- sample conversion ---- */

static void test_i16_f32_roundtrip_exact(void) {
  int16_t src[65536];
  for (int i = 0; i < 65536; i++)
    src[i] = (int16_t)(i - 32768);
  static float f[65536];
  static int16_t back[65536];
  rm_audio_convert(src, RM_SAMPLE_I16, f, RM_SAMPLE_F32, 65536);
  rm_audio_convert(f, RM_SAMPLE_F32, back, RM_SAMPLE_I16, 65536);
  CU_ASSERT_EQUAL(memcmp(src, back, sizeof src), 0);
  CU_ASSERT_EQUAL(f[0], -1.0f);
  CU_ASSERT_EQUAL(f[32768], 0.0f);
  CU_ASSERT_EQUAL(f[32768 + 16384], 0.5f);
  CU_ASSERT_EQUAL(f[65535], 32767.0f / 32768.0f);
}

static void test_f32_to_i16_clips_at_full_scale(void) {
  const float in[] = {1.5f, -1.5f, 1.0f, -1.0f, 0.5f, -0.5f, NAN, INFINITY, -INFINITY, 0.0f};
  const int16_t want[] = {32767, -32768, 32767, -32768, 16384, -16384, 0, 32767, -32768, 0};
  int16_t out[10];
  rm_audio_convert(in, RM_SAMPLE_F32, out, RM_SAMPLE_I16, 10);
  for (int i = 0; i < 10; i++)
    RM_ASSERT_INT(out[i], want[i]);
}

static void test_i32_conversions(void) {
  const float f[] = {1.5f, -1.5f, 1.0f, -1.0f, 0.5f, -0.25f};
  const int32_t want[] = {INT32_MAX, INT32_MIN, INT32_MAX, INT32_MIN, 1073741824, -536870912};
  int32_t out[6];
  rm_audio_convert(f, RM_SAMPLE_F32, out, RM_SAMPLE_I32, 6);
  for (int i = 0; i < 6; i++)
    RM_ASSERT_INT(out[i], want[i]);

  /* i16 -> i32 is exact (x * 65536) and back again */
  int16_t s16[65536];
  for (int i = 0; i < 65536; i++)
    s16[i] = (int16_t)(i - 32768);
  static int32_t s32[65536];
  static int16_t back[65536];
  rm_audio_convert(s16, RM_SAMPLE_I16, s32, RM_SAMPLE_I32, 65536);
  for (int i = 0; i < 65536; i += 4099)
    RM_ASSERT_INT(s32[i], (int32_t)s16[i] * 65536);
  rm_audio_convert(s32, RM_SAMPLE_I32, back, RM_SAMPLE_I16, 65536);
  CU_ASSERT_EQUAL(memcmp(s16, back, sizeof s16), 0);

  /* i32 -> i16 rounds to nearest (ties to even) and clips */
  const int32_t wide[] = {INT32_MAX, INT32_MIN, 65535, 32768, 98304, -98304, 32767};
  const int16_t narrow[] = {32767, -32768, 1, 0, 2, -2, 0};
  int16_t n16[7];
  rm_audio_convert(wide, RM_SAMPLE_I32, n16, RM_SAMPLE_I16, 7);
  for (int i = 0; i < 7; i++)
    RM_ASSERT_INT(n16[i], narrow[i]);

  /* i32 -> f32 / f64 full scale */
  const int32_t ends[] = {INT32_MIN, 1073741824};
  double d[2];
  rm_audio_convert(ends, RM_SAMPLE_I32, d, RM_SAMPLE_F64, 2);
  CU_ASSERT_EQUAL(d[0], -1.0);
  CU_ASSERT_EQUAL(d[1], 0.5);
  float f2[2];
  rm_audio_convert(ends, RM_SAMPLE_I32, f2, RM_SAMPLE_F32, 2);
  CU_ASSERT_EQUAL(f2[0], -1.0f);
  CU_ASSERT_EQUAL(f2[1], 0.5f);
}

static void test_float_to_float_is_a_plain_cast(void) {
  const double d[] = {1.5, -2.0, 0.1};
  float f[3];
  rm_audio_convert(d, RM_SAMPLE_F64, f, RM_SAMPLE_F32, 3);
  CU_ASSERT_EQUAL(f[0], 1.5f);
  CU_ASSERT_EQUAL(f[1], -2.0f);
  CU_ASSERT_EQUAL(f[2], (float)0.1);
  double back[3];
  rm_audio_convert(f, RM_SAMPLE_F32, back, RM_SAMPLE_F64, 3);
  CU_ASSERT_EQUAL(back[0], 1.5);
  CU_ASSERT_EQUAL(back[2], (double)(float)0.1);
  /* f64 -> i16 clips like f32 */
  const double big[] = {2.0, -2.0, 0.25};
  int16_t s[3];
  rm_audio_convert(big, RM_SAMPLE_F64, s, RM_SAMPLE_I16, 3);
  RM_ASSERT_INT(s[0], 32767);
  RM_ASSERT_INT(s[1], -32768);
  RM_ASSERT_INT(s[2], 8192);
}

static void test_get_set_every_format(void) {
  static const rm_sample_format_t fmts[] = {RM_SAMPLE_F32, RM_SAMPLE_I16, RM_SAMPLE_I32,
                                            RM_SAMPLE_F64};
  for (int k = 0; k < 4; k++) {
    rm_buffer_t *b = rm_buffer_new_audio(NULL, 8000, 1, fmts[k], 3);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    rm_audio_set(b, 0, 0.5);
    rm_audio_set(b, 1, -0.25);
    rm_audio_set(b, 2, 3.0);
    RM_ASSERT_NEAR(rm_audio_get(b, 0), 0.5, 0);
    RM_ASSERT_NEAR(rm_audio_get(b, 1), -0.25, 0);
    /* integers clip at full scale, floats keep the value */
    int is_int = fmts[k] == RM_SAMPLE_I16 || fmts[k] == RM_SAMPLE_I32;
    double top = fmts[k] == RM_SAMPLE_I16 ? 32767.0 / 32768.0 : 2147483647.0 / 2147483648.0;
    RM_ASSERT_NEAR(rm_audio_get(b, 2), is_int ? top : 3.0, 0);
    rm_buffer_unref(b);
  }
}

static void test_f32_view_borrows_or_converts(void) {
  const float f[] = {0.5f, -0.5f};
  rm_buffer_t *a = rm_test_audio_f32(f, 2, 8000, 1);
  float *tmp = (float *)1;
  const float *v = rm_audio_f32_view(a, &tmp);
  CU_ASSERT_PTR_EQUAL(v, (const float *)(void *)a->data);
  CU_ASSERT_PTR_NULL(tmp);
  rm_buffer_unref(a);

  const int16_t s[] = {16384, -32768, 0};
  rm_buffer_t *b = rm_test_audio_i16(s, 3, 8000, 1);
  v = rm_audio_f32_view(b, &tmp);
  CU_ASSERT_PTR_NOT_NULL_FATAL(v);
  CU_ASSERT_PTR_EQUAL(v, tmp);
  CU_ASSERT_EQUAL(v[0], 0.5f);
  CU_ASSERT_EQUAL(v[1], -1.0f);
  CU_ASSERT_EQUAL(v[2], 0.0f);
  rm_free(tmp);
  rm_buffer_unref(b);
}

/* Regression: a result's buffers may outlive the account they were counted in (a pipeline
 * freed before its result); the last release must not touch freed memory. */
static void test_buffer_outlives_pipeline_account(void) {
  rm_pipeline_t *p =
      rm_test_pipeline("{'nodes': [{'id': 'g', 'node_type': 'Gain', 'params': {'db': 0}}]}");
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  const float f[] = {0.5f, 0.25f};
  rm_buffer_t *in = rm_test_audio_f32(f, 2, 8000, 1);
  rm_result_t *r = NULL;
  rm_error_t err;
  RM_ASSERT_INT(rm_test_run1(p, "g", in, 0, &r, &err), 0);
  rm_buffer_t *out = rm_test_item(r, "g", 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(out);
  CU_ASSERT_PTR_EQUAL(out->account, rm_pipeline_account(p));
  RM_ASSERT_INT(rm_pipeline_account(p)->current, 8);
  rm_pipeline_free(p);
  CU_ASSERT_EQUAL(((const float *)(void *)out->data)[1], 0.25f);
  rm_result_free(r); /* valgrind/ASan would flag a use after free here */
  rm_buffer_unref(in);
}

/* A cached pipeline's result released on another thread: its buffers move to an account of
 * their own first, and that orphaned account goes with the last of them. */
static void test_result_moves_to_its_own_account(void) {
  rm_pipeline_t *p =
      rm_test_pipeline("{'nodes': [{'id': 'g', 'node_type': 'Gain', 'params': {'db': 0}}, "
                       "{'id': 'h', 'node_type': 'Gain', 'params': {'db': 0}}], 'connections': "
                       "[{'from': 'g', 'to': 'h'}]}");
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  const float f[] = {0.5f, 0.25f, 0.125f};
  rm_buffer_t *in = rm_test_audio_f32(f, 3, 8000, 1);
  rm_result_t *r = NULL;
  rm_error_t err;
  RM_ASSERT_INT(rm_test_run1(p, "g", in, 0, &r, &err), 0);
  RM_ASSERT_INT(rm_pipeline_account(p)->current, 12); /* the sink h's output */
  rm_mem_account_t *own = rm_mem_account_new();
  CU_ASSERT_PTR_NOT_NULL_FATAL(own);
  rm_result_move_account(r, p, own);
  RM_ASSERT_INT(rm_pipeline_account(p)->current, 0);
  RM_ASSERT_INT(own->current, 12);
  RM_ASSERT_INT(own->live, 1);
  rm_buffer_t *out = rm_test_item(r, "h", 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(out);
  CU_ASSERT_PTR_EQUAL(out->account, own);
  /* a buffer counting elsewhere stays where it is */
  rm_buffer_move_account(in, rm_pipeline_account(p), own);
  CU_ASSERT_PTR_NULL(in->account);
  RM_ASSERT_INT(own->current, 12);
  rm_mem_account_free(own); /* orphaned: the result's last buffer frees it (ASan checks) */
  rm_result_t *r2 = NULL;   /* the pipeline serves its next run while r lives */
  RM_ASSERT_INT(rm_test_run1(p, "g", in, 0, &r2, &err), 0);
  RM_ASSERT_INT(rm_pipeline_account(p)->current, 12);
  RM_ASSERT_INT(own->current, 12);
  rm_result_free(r2);
  rm_result_free(r);
  rm_pipeline_free(p);
  rm_buffer_unref(in);
}

int main(void) {
  static const rm_test_case_t cases[] = {RM_TEST(test_account_counts_payload_bytes),
                                         RM_TEST(test_owned_payload_is_aligned_and_terminated),
                                         RM_TEST(test_new_audio_sizes_and_rejects),
                                         RM_TEST(test_new_tensor_shapes),
                                         RM_TEST(test_new_text_and_binary_copy),
                                         RM_TEST(test_validate_audio),
                                         RM_TEST(test_validate_tensor_and_others),
                                         RM_TEST(test_names),
                                         RM_TEST(test_i16_f32_roundtrip_exact),
                                         RM_TEST(test_f32_to_i16_clips_at_full_scale),
                                         RM_TEST(test_i32_conversions),
                                         RM_TEST(test_float_to_float_is_a_plain_cast),
                                         RM_TEST(test_get_set_every_format),
                                         RM_TEST(test_f32_view_borrows_or_converts),
                                         RM_TEST(test_buffer_outlives_pipeline_account),
                                         RM_TEST(test_result_moves_to_its_own_account),
                                         {NULL, NULL}};
  rm_test_suite("buffer", cases);
  return rm_test_run();
}
