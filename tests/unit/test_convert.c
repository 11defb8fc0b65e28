/* test_convert.c - the vectorised sample kernels equal their per-sample definitions bit for bit. */
#include <fenv.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_support.h"

static const int formats[] = {RM_SAMPLE_F32, RM_SAMPLE_I16, RM_SAMPLE_I32, RM_SAMPLE_F64};
#define N_FORMATS 4
#define MAX_N 300 /* samples per comparison: several vector widths and every tail length */

static unsigned long long rng = 0x9E3779B97F4A7C15ull;
static uint64_t next_u64(void) {
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return rng;
}

/* Values around every edge of the conversions, as doubles (stored per format below). */
static double edge_value(size_t k) {
  static const double e[] = {0.0,
                             -0.0,
                             1.0,
                             -1.0,
                             1.00000011920928955, /* the float after 1 */
                             -1.00000011920928955,
                             32767.0 / 32768.0,
                             32767.5 / 32768.0, /* rounds to 32768: clipped */
                             32766.5 / 32768.0, /* a tie: even is 32766 */
                             -32768.5 / 32768.0,
                             0.5 / 32768.0,
                             1.5 / 32768.0,
                             2.5 / 32768.0,
                             -0.5 / 32768.0,
                             -2.5 / 32768.0,
                             0.5 / 2147483648.0,
                             2147483520.0 / 2147483648.0,
                             2147483647.5 / 2147483648.0,
                             -2147483648.5 / 2147483648.0,
                             1e-40, /* a float denormal */
                             -1e-40,
                             1.40129846432481707e-45,
                             4.9406564584124654e-324, /* a double denormal */
                             1e30,
                             -1e30,
                             1e300,
                             0.3,
                             -0.7};
  size_t n = sizeof e / sizeof e[0];
  if (k < n)
    return e[k];
  switch (k - n) {
  case 0: return NAN;
  case 1: return -NAN;
  case 2: return INFINITY;
  default: return -INFINITY;
  }
}
#define N_EDGES 32

/* Fills n samples of fmt: edge values first (for float formats; integer extremes for
 * integers), then random ones, in a random order so edges land in vector bodies and tails. */
static void fill(uint8_t *p, int fmt, size_t n) {
  for (size_t i = 0; i < n; i++) {
    uint64_t r = next_u64();
    int edge = (r & 3) == 0;
    size_t k = (size_t)(r >> 8) % N_EDGES;
    switch (fmt) {
    case RM_SAMPLE_F32: {
      float v = edge                 ? (float)edge_value(k)
                : (r & 0x30) == 0x30 ? (float)((double)(r >> 11) / 9007199254740992.0 * 3 - 1.5)
                                     : (float)((double)(r >> 11) / 9007199254740992.0 * 2 - 1);
      if ((r & 0xf0) == 0x10) { /* raw bits: every exponent, NaN payloads */
        uint32_t bits = (uint32_t)(r >> 20);
        if ((bits & 0x7f800000u) == 0x7f800000u && (bits & 0x7fffffu))
          bits |= 0x400000u; /* quiet NaNs only: the engine assumes no signalling NaN */
        memcpy(&v, &bits, 4);
      }
      memcpy(p + 4 * i, &v, 4);
      break;
    }
    case RM_SAMPLE_F64: {
      double v = edge ? edge_value(k) : (double)(r >> 11) / 9007199254740992.0 * 3 - 1.5;
      memcpy(p + 8 * i, &v, 8);
      break;
    }
    case RM_SAMPLE_I16: {
      static const int16_t ex[] = {INT16_MIN, INT16_MAX, 0, 1, -1, INT16_MIN + 1};
      int16_t v = edge ? ex[k % 6] : (int16_t)(r >> 30);
      memcpy(p + 2 * i, &v, 2);
      break;
    }
    case RM_SAMPLE_I32: {
      static const int32_t ex[] = {INT32_MIN, INT32_MAX, 0, 1, -1, (1 << 24) + 1, -(1 << 24) - 3};
      int32_t v = edge ? ex[k % 7] : (int32_t)(r >> 20);
      memcpy(p + 4 * i, &v, 4);
      break;
    }
    }
  }
}

/* The scalar definitions the kernels replace. */
static void ref_convert(const uint8_t *s, int sf, uint8_t *d, int df, size_t n) {
  for (size_t i = 0; i < n; i++)
    rm__sample_store(d, df, i, rm__sample_load(s, sf, i));
}

static void ref_gain(const uint8_t *s, uint8_t *d, int fmt, size_t n, double factor) {
  const float f = (float)factor; /* Gain multiplies f32 in float */
  for (size_t i = 0; i < n; i++) {
    if (fmt == RM_SAMPLE_F32) {
      float v;
      memcpy(&v, s + 4 * i, 4);
      v *= f;
      memcpy(d + 4 * i, &v, 4);
    } else {
      rm__sample_store(d, fmt, i, rm__sample_load(s, fmt, i) * factor);
    }
  }
}

static void ref_mix_mono(const uint8_t *s, uint8_t *d, int fmt, size_t frames, uint32_t ch) {
  for (size_t f = 0; f < frames; f++) {
    double sum = 0;
    for (uint32_t c = 0; c < ch; c++)
      sum += rm__sample_load(s, fmt, f * ch + c);
    rm__sample_store(d, fmt, f, sum / ch);
  }
}

static void ref_mix_dup(const uint8_t *s, uint8_t *d, int fmt, size_t frames) {
  for (size_t f = 0; f < frames; f++) {
    double v = rm__sample_load(s, fmt, f);
    rm__sample_store(d, fmt, 2 * f, v);
    rm__sample_store(d, fmt, 2 * f + 1, v);
  }
}

/* Buffers with 8 bytes of slack before, so payloads can start at any alignment. */
static uint8_t src_mem[8 * 6 * MAX_N + 16], got_mem[8 * 2 * MAX_N + 16],
    want_mem[8 * 2 * MAX_N + 16];

static int report(const char *what, int a, int b, size_t n, size_t off, const uint8_t *got,
                  const uint8_t *want, size_t bytes) {
  if (memcmp(got, want, bytes) == 0)
    return 0;
  size_t i = 0;
  while (got[i] == want[i])
    i++;
  fprintf(stderr, "%s %s->%s n=%zu offset=%zu: first difference at byte %zu\n", what,
          rm_sample_format_name(a), rm_sample_format_name(b), n, off, i);
  return 1;
}

/* Every pair of formats, lengths 0..MAX_N (all tails), every src/dst misalignment. */
static int compare_all_conversions(void) {
  int bad = 0;
  for (int a = 0; a < N_FORMATS; a++)
    for (int b = 0; b < N_FORMATS; b++)
      for (size_t n = 0; n <= MAX_N && bad < 5; n += n < 40 ? 1 : 37) {
        size_t off = (n * 3 + (size_t)a) % 8, doff = (n + (size_t)b) % 8;
        uint8_t *s = src_mem + off, *g = got_mem + doff, *w = want_mem + doff;
        fill(s, formats[a], n);
        size_t bytes = n * rm_sample_format_size(formats[b]);
        memset(g, 0xAB, bytes);
        memset(w, 0xAB, bytes);
        rm_audio_convert(s, formats[a], g, formats[b], n);
        ref_convert(s, formats[a], w, formats[b], n);
        bad += report("convert", formats[a], formats[b], n, off, g, w, bytes);
      }
  return bad;
}

static void test_convert_equals_scalar_definition(void) {
  for (int rep = 0; rep < 20; rep++)
    RM_ASSERT_INT(compare_all_conversions(), 0);
}

static void test_convert_follows_rounding_mode(void) {
  static const int modes[] = {FE_UPWARD, FE_DOWNWARD, FE_TOWARDZERO, FE_TONEAREST};
  for (size_t m = 0; m < 4; m++) {
    RM_ASSERT_INT(fesetround(modes[m]), 0);
    int bad = 0;
    for (int rep = 0; rep < 5; rep++)
      bad += compare_all_conversions();
    fesetround(FE_TONEAREST);
    RM_ASSERT_INT(bad, 0);
  }
}

static void test_edges_by_value(void) {
  /* the convention itself, independent of the reference */
  const float in[] = {1.0f,     -1.0f,     1.0000001f, -1.0000001f,        NAN,
                      INFINITY, -INFINITY, 1e-40f,     32766.5f / 32768.0f};
  const int16_t want16[] = {32767, -32768, 32767, -32768, 0, 32767, -32768, 0, 32766};
  const int32_t want32[] = {INT32_MAX, INT32_MIN, INT32_MAX, INT32_MIN, 0,
                            INT32_MAX, INT32_MIN, 0,         2147385344};
  int16_t o16[9];
  int32_t o32[9];
  rm_audio_convert(in, RM_SAMPLE_F32, o16, RM_SAMPLE_I16, 9);
  rm_audio_convert(in, RM_SAMPLE_F32, o32, RM_SAMPLE_I32, 9);
  for (int i = 0; i < 9; i++) {
    RM_ASSERT_INT(o16[i], want16[i]);
    RM_ASSERT_INT(o32[i], want32[i]);
  }
  const int16_t min16 = INT16_MIN;
  float f;
  rm_audio_convert(&min16, RM_SAMPLE_I16, &f, RM_SAMPLE_F32, 1);
  CU_ASSERT_EQUAL(f, -1.0f);
  /* a mean starts from +0: two -0 samples mix to +0, in the vector body and in the tail */
  float zeros[2 * 19], mono[19];
  for (int i = 0; i < 2 * 19; i++)
    zeros[i] = -0.0f;
  rm__audio_mix_mono(zeros, mono, RM_SAMPLE_F32, 19, 2);
  for (int i = 0; i < 19; i++)
    CU_ASSERT(mono[i] == 0.0f && !signbit(mono[i]));
}

static void test_gain_equals_scalar_definition(void) {
  static const double dbs[] = {-7000, -400, -120, -20, -3, 0, 0.01, 6.0206, 20, 60, 400};
  int bad = 0;
  for (int rep = 0; rep < 5; rep++)
    for (size_t k = 0; k < sizeof dbs / sizeof dbs[0]; k++)
      for (int a = 0; a < N_FORMATS; a++)
        for (size_t n = 0; n <= MAX_N && bad < 5; n += n < 40 ? 1 : 37) {
          double factor = pow(10.0, dbs[k] / 20.0);
          size_t off = (n + k) % 8, doff = (n * 5 + (size_t)a) % 8;
          uint8_t *s = src_mem + off, *g = got_mem + doff, *w = want_mem + doff;
          fill(s, formats[a], n);
          size_t bytes = n * rm_sample_format_size(formats[a]);
          rm__audio_gain(s, g, formats[a], n, factor);
          ref_gain(s, w, formats[a], n, factor);
          bad += report("gain", formats[a], formats[a], n, off, g, w, bytes);
        }
  RM_ASSERT_INT(bad, 0);
}

static void test_mix_equals_scalar_definition(void) {
  int bad = 0;
  for (int rep = 0; rep < 5; rep++)
    for (uint32_t ch = 1; ch <= 6; ch++)
      for (int a = 0; a < N_FORMATS; a++)
        for (size_t frames = 0; frames <= MAX_N && bad < 5; frames += frames < 40 ? 1 : 37) {
          size_t bps = rm_sample_format_size(formats[a]);
          size_t off = (frames + ch) % 8, doff = (frames * 3 + (size_t)a) % 8;
          uint8_t *s = src_mem + off, *g = got_mem + doff, *w = want_mem + doff;
          fill(s, formats[a], frames * ch);
          rm__audio_mix_mono(s, g, formats[a], frames, ch);
          ref_mix_mono(s, w, formats[a], frames, ch);
          bad += report("mix mono", formats[a], formats[a], frames, off, g, w, frames * bps);
          if (ch == 1) {
            rm__audio_mix_dup(s, g, formats[a], frames);
            ref_mix_dup(s, w, formats[a], frames);
            bad += report("mix dup", formats[a], formats[a], frames, off, g, w, 2 * frames * bps);
          }
        }
  RM_ASSERT_INT(bad, 0);
}

/* AudioResample's f32 down-mix: the sum in float from +0, times 1/channels. */
static void test_mean_f32_equals_scalar_definition(void) {
  int bad = 0;
  for (int rep = 0; rep < 5; rep++)
    for (uint32_t ch = 1; ch <= 6; ch++)
      for (size_t frames = 0; frames <= MAX_N && bad < 5; frames += frames < 40 ? 1 : 37) {
        size_t off = (frames + ch) % 8, doff = (frames * 3 + ch) % 8;
        uint8_t *s = src_mem + off, *g = got_mem + doff, *w = want_mem + doff;
        fill(s, RM_SAMPLE_F32, frames * ch);
        const float scale = 1.0f / (float)ch;
        for (size_t f = 0; f < frames; f++) {
          float sum = 0, v;
          for (uint32_t c = 0; c < ch; c++) {
            memcpy(&v, s + 4 * (f * ch + c), 4);
            sum += v;
          }
          v = sum * scale;
          memcpy(w + 4 * f, &v, 4);
        }
        rm__audio_mean_f32(s, g, frames, ch);
        bad += report("mean f32", RM_SAMPLE_F32, RM_SAMPLE_F32, frames, off, g, w, frames * 4);
      }
  float zeros[2 * 19], mono[19];
  for (int i = 0; i < 2 * 19; i++)
    zeros[i] = -0.0f;
  rm__audio_mean_f32(zeros, mono, 19, 2);
  for (int i = 0; i < 19; i++)
    CU_ASSERT(mono[i] == 0.0f && !signbit(mono[i]));
  RM_ASSERT_INT(bad, 0);
}

int main(void) {
  static const rm_test_case_t cases[] = {RM_TEST(test_convert_equals_scalar_definition),
                                         RM_TEST(test_convert_follows_rounding_mode),
                                         RM_TEST(test_edges_by_value),
                                         RM_TEST(test_gain_equals_scalar_definition),
                                         RM_TEST(test_mix_equals_scalar_definition),
                                         RM_TEST(test_mean_f32_equals_scalar_definition),
                                         {NULL, NULL}};
  rm_test_suite("convert", cases);
  return rm_test_run();
}
