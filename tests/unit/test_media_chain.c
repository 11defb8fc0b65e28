/* test_media_chain.c - media nodes in whole pipelines: a streaming node's several items
 * feed whole-stream nodes correctly (decode -> resample -> normalise -> encode -> decode;
 * the bench's resample -> normalise -> VAD), and Opus keeps time alignment. */
#include "test_media_support.h"

static json_t *json_of(const rm_buffer_t *b) {
  json_t *j = json_loadb((const char *)b->data, b->size, 0, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(j);
  return j;
}

/* The committed 48 kHz PCM16 WAV -> 16 kHz -> -23 LUFS -> FLAC, then FLAC -> meter. */
static void test_file_to_normalised_flac(void) {
  size_t len;
  unsigned char *wav = media_load_fixture("sine_1k_48k_mono.wav", &len);
  rm_buffer_t *in = rm_buffer_new_binary(NULL, wav, len, "audio/wav");
  rm_pipeline_t *p = rm_test_pipeline(
      "{\"name\":\"chain\",\"nodes\":["
      "{\"id\":\"dec\",\"node_type\":\"AudioDecode\"},"
      "{\"id\":\"rs\",\"node_type\":\"AudioResample\",\"params\":{\"rate\":16000}},"
      "{\"id\":\"ln\",\"node_type\":\"LoudnessNormalize\"},"
      "{\"id\":\"enc\",\"node_type\":\"AudioEncode\",\"params\":{\"container\":\"flac\"}}],"
      "\"connections\":[{\"from\":\"dec\",\"to\":\"rs\"},{\"from\":\"rs\",\"to\":\"ln\"},"
      "{\"from\":\"ln\",\"to\":\"enc\"}]}");
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  rm_result_t *r = NULL;
  rm_error_t err;
  CU_ASSERT_EQUAL_FATAL(rm_test_run1(p, "dec", in, 0, &r, &err), 0);
  const rm_output_t *o = rm_test_output(r, "enc");
  CU_ASSERT_FATAL(o && o->n_items == 1);
  CU_ASSERT_STRING_EQUAL(o->items[0]->mime_type, "audio/flac");
  rm_buffer_t *flac = rm_buffer_ref(o->items[0]);
  rm_result_free(r);
  rm_pipeline_free(p);

  p = rm_test_pipeline(
      "{\"name\":\"check\",\"nodes\":[{\"id\":\"dec\",\"node_type\":\"AudioDecode\"},"
      "{\"id\":\"m\",\"node_type\":\"LoudnessMeter\"}],"
      "\"connections\":[{\"from\":\"dec\",\"to\":\"m\"}]}");
  static const char *const outs[] = {"dec", "m"};
  rm_input_t input = {"dec", flac};
  rm_run_opts_t opts = {.end_of_stream = 1, .output_nodes = outs, .n_output_nodes = 2};
  CU_ASSERT_EQUAL_FATAL(rm_pipeline_run(p, &input, 1, &opts, &r, &err), 0);
  const rm_buffer_t *audio = rm_test_output(r, "dec")->items[0];
  CU_ASSERT_EQUAL(audio->u.audio.sample_rate, 16000);
  CU_ASSERT_EQUAL(audio->u.audio.format, RM_SAMPLE_I16);
  CU_ASSERT_EQUAL(rm_audio_frames(audio), 8000); /* 24000 frames at 48 kHz, exactly */
  json_t *j = json_of(rm_test_output(r, "m")->items[0]);
  double lufs = json_number_value(json_object_get(j, "integrated_lufs"));
  printf("\n    wav -> 16 kHz -> normalised -> flac: %.3f LUFS ", lufs);
  CU_ASSERT(fabs(lufs - -23.0) <= 0.1);
  json_decref(j);
  rm_result_free(r);
  rm_pipeline_free(p);
  rm_buffer_unref(flac);
  rm_buffer_unref(in);
  free(wav);
}

/* The bench's chain on speech-like bursts in stereo 48 kHz: the resampler's two items
 * reach the normaliser as one stream and VAD finds the bursts. */
static void test_resample_normalise_vad(void) {
  size_t n = 4 * 48000;
  rm_buffer_t *in = media_f32(48000, 2, n);
  unsigned long long seed = 9;
  for (size_t i = 0; i < n; i++) {
    double t = (double)i / 48000, v = 0.0005 * media_noise(&seed);
    if ((t >= 0.5 && t < 1.5) || (t >= 2.5 && t < 3.2))
      for (int k = 1; k * 150 <= 3000; k++)
        v += 0.05 / k * sin(2 * M_PI * 150 * k * t) * (0.6 + 0.4 * sin(2 * M_PI * 4 * t));
    media_fdata(in)[2 * i] = (float)v;
    media_fdata(in)[2 * i + 1] = (float)(0.5 * v);
  }
  rm_pipeline_t *p = rm_test_pipeline(
      "{\"name\":\"b\",\"nodes\":[{\"id\":\"rs\",\"node_type\":\"AudioResample\","
      "\"params\":{\"rate\":16000,\"channels\":1}},"
      "{\"id\":\"ln\",\"node_type\":\"LoudnessNormalize\"},{\"id\":\"vad\",\"node_type\":\"VAD\"}],"
      "\"connections\":[{\"from\":\"rs\",\"to\":\"ln\"},{\"from\":\"ln\",\"to\":\"vad\"}]}");
  rm_result_t *r = NULL;
  rm_error_t err;
  CU_ASSERT_EQUAL_FATAL(rm_test_run1(p, "rs", in, 0, &r, &err), 0);
  const rm_output_t *o = rm_test_output(r, "vad");
  CU_ASSERT_FATAL(o && o->n_items == 1);
  json_t *j = json_of(o->items[0]);
  CU_ASSERT_EQUAL(json_array_size(j), 2);
  static const double truth[2][2] = {{500, 1500}, {2500, 3200}};
  for (size_t s = 0; s < json_array_size(j) && s < 2; s++) {
    json_t *seg = json_array_get(j, s);
    CU_ASSERT(fabs(json_number_value(json_object_get(seg, "start_ms")) - truth[s][0]) <= 30);
    CU_ASSERT(fabs(json_number_value(json_object_get(seg, "end_ms")) - truth[s][1]) <= 30);
  }
  json_decref(j);
  rm_result_free(r);
  rm_pipeline_free(p);
  rm_buffer_unref(in);
}

/* Opus keeps time: a noise burst (no periodicity to hide a shift) decodes at lag 0. */
static void test_opus_alignment_by_correlation(void) {
  size_t n = 48000;
  rm_buffer_t *in = media_f32(48000, 1, n);
  unsigned long long seed = 31;
  memset(in->data, 0, in->size);
  for (size_t i = 20000; i < 22400; i++)
    media_fdata(in)[i] = (float)(0.5 * media_noise(&seed));
  rm_pipeline_t *p = rm_test_pipeline(
      "{\"name\":\"o\",\"nodes\":[{\"id\":\"e\",\"node_type\":\"OpusEncode\","
      "\"params\":{\"bitrate\":128000}},{\"id\":\"d\",\"node_type\":\"OpusDecode\"}],"
      "\"connections\":[{\"from\":\"e\",\"to\":\"d\"}]}");
  rm_result_t *r = NULL;
  rm_error_t err;
  CU_ASSERT_EQUAL_FATAL(rm_test_run1(p, "e", in, 0, &r, &err), 0);
  const rm_output_t *o = rm_test_output(r, "d");
  CU_ASSERT_FATAL(o != NULL);
  media_items_t it = {0};
  for (size_t i = 0; i < o->n_items; i++)
    it.items[it.n++] = rm_buffer_ref(o->items[i]);
  double *y;
  size_t ny = media_concat(&it, &y);
  CU_ASSERT_EQUAL_FATAL(ny, n);
  long best = 0;
  double best_c = -1e300;
  for (long lag = -1000; lag <= 1000; lag++) {
    double c = 0;
    for (size_t i = 20000; i < 22400; i++)
      c += media_fdata(in)[i] * y[(size_t)((long)i + lag)];
    if (c > best_c) {
      best_c = c;
      best = lag;
    }
  }
  printf("\n    opus noise burst: best lag %ld ", best);
  CU_ASSERT_EQUAL(best, 0);
  free(y);
  media_items_free(&it);
  rm_result_free(r);
  rm_pipeline_free(p);
  rm_buffer_unref(in);
}

int main(void) {
  static const rm_test_case_t cases[] = {RM_TEST(test_file_to_normalised_flac),
                                         RM_TEST(test_resample_normalise_vad),
                                         RM_TEST(test_opus_alignment_by_correlation),
                                         {NULL, NULL}};
  rm_test_suite("media_chain", cases);
  return rm_test_run();
}
