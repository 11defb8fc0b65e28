/* test_buffer.c - buffers: creation, accounting, validation, sample conversion. */
#include <math.h>
#include <string.h>

#include "test_support.h"

static void test_i16_f32_roundtrip_exact(void) {
  int16_t src[65536];
  for (int i = 0; i < 65536; i++)
    src[i] = (int16_t)(i - 32768);
  float f[65536];
  int16_t back[65536];
  rm_audio_convert(src, RM_SAMPLE_I16, f, RM_SAMPLE_F32, 65536);
  rm_audio_convert(f, RM_SAMPLE_F32, back, RM_SAMPLE_I16, 65536);
  CU_ASSERT_EQUAL(memcmp(src, back, sizeof src), 0);
  CU_ASSERT_EQUAL(f[0], -1.0f);
  CU_ASSERT_EQUAL(f[32768], 0.0f);
}

int main(void) {
  static const rm_test_case_t cases[] = {RM_TEST(test_i16_f32_roundtrip_exact), {NULL, NULL}};
  rm_test_suite("buffer", cases);
  return rm_test_run();
}
