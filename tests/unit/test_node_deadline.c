/* test_node_deadline.c - every node type whose work grows with its input stops at the run's
 * deadline within that work: a long input, a deadline 1 ms after the run starts, and the run
 * fails RM_ETIMEDOUT naming the node. The pipeline checks only before each node, so a node
 * that never checked ran on past the deadline and, as the last node, succeeded.
 *
 * No timing is asserted: each input takes its node far longer than 1 ms, so a check inside
 * the work finds the deadline passed (were the machine to stall before the node starts, the
 * pipeline's own check names the same node). */
#include <stdint.h>
#include <string.h>

#include "rm/clock.h"
#include "test_media_support.h"

#define LONG ((size_t)16 << 20) /* samples: tens of ms of work even for a copy */

/* An audio buffer of `samples` samples of silence. */
static rm_buffer_t *silence(rm_sample_format_t fmt, uint32_t rate, uint32_t ch, size_t samples) {
  rm_buffer_t *b = rm_buffer_new_audio(NULL, rate, ch, fmt, samples / ch);
  CU_ASSERT_PTR_NOT_NULL_FATAL(b);
  memset(b->data, 0, b->size);
  return b;
}

/* Runs p (a stream already started, or not) once over `in` for node "n", ending the stream,
 * with a deadline 1 ms away: the run must stop in "n" with RM_ETIMEDOUT. */
static void expect_deadline(rm_pipeline_t *p, rm_buffer_t *in) {
  rm_input_t input = {"n", in};
  rm_run_opts_t opts = {.end_of_stream = 1, .deadline_ns = rm_clock_ns() + 1000000ull};
  rm_result_t *r = NULL;
  rm_error_t err;
  RM_ASSERT_ERR(rm_pipeline_run(p, &input, 1, &opts, &r, &err), &err, RM_ETIMEDOUT, "n", "",
                "deadline exceeded before node 'n' finished");
  for (size_t i = 0; r && i < r->n_nodes; i++)
    if (strcmp(r->nodes[i].node_id, "n") == 0)
      RM_ASSERT_INT(r->nodes[i].state, RM_NODE_FAILED);
  rm_result_free(r);
}

/* A one-node pipeline of `type` over `in` (taken) stops at the deadline. */
static void stops(const char *type, const char *params, rm_buffer_t *in) {
  rm_pipeline_t *p = media_node(type, params);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  expect_deadline(p, in);
  rm_buffer_unref(in);
  rm_pipeline_free(p);
}

/* A stream of `first` (no deadline, not ended) then a last chunk of 10 frames under the
 * deadline: for nodes whose long work comes when the stream ends. */
static void stops_at_end(const char *type, const char *params, rm_buffer_t *first) {
  rm_pipeline_t *p = media_node(type, params);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  rm_input_t input = {"n", first};
  rm_run_opts_t opts = {0};
  rm_result_t *r = NULL;
  rm_error_t err;
  RM_ASSERT_INT(rm_pipeline_run(p, &input, 1, &opts, &r, &err), 0);
  rm_result_free(r);
  rm_buffer_t *last = silence(first->u.audio.format, first->u.audio.sample_rate,
                              first->u.audio.channels, 10 * first->u.audio.channels);
  expect_deadline(p, last);
  rm_buffer_unref(last);
  rm_buffer_unref(first);
  rm_pipeline_free(p);
}

/* ---------------- nodes on media_util's conversions and down-mix */

/* Same rate: no libsoxr, only the channel mapping and the format conversion. */
static void test_audio_resample(void) {
  stops("AudioResample", "{\"rate\":48000,\"channels\":1}", silence(RM_SAMPLE_I16, 48000, 2, LONG));
}

/* 63 frames of 16384 samples over 16 channels: fewer frames than the FFT loop's check
 * interval, so only the down-mix can notice the deadline. */
static void test_spectrogram(void) {
  stops("Spectrogram", "{\"n_fft\":16384,\"hop\":16384,\"center\":false}",
        silence(RM_SAMPLE_I16, 48000, 16, (size_t)16384 * 63 * 16));
}

static void test_mel_spectrogram(void) {
  stops("MelSpectrogram", "{\"n_fft\":16384,\"hop\":16384,\"center\":false}",
        silence(RM_SAMPLE_I16, 48000, 16, (size_t)16384 * 63 * 16));
}

/* 63 frames of 30 ms at 48 kHz over 64 channels: fewer frames than the detector's check
 * interval, so only the down-mix can notice the deadline. */
static void test_vad(void) {
  stops("VAD", "{\"frame_ms\":30}", silence(RM_SAMPLE_I16, 48000, 64, (size_t)1440 * 63 * 64));
}

/* These already checked later in their work (per frame or packet): the tests pin the outcome,
 * which the checks in the conversions before and after that work bring sooner. */
static void test_denoise(void) { stops("Denoise", "{}", silence(RM_SAMPLE_I16, 48000, 2, LONG)); }

static void test_autogain(void) { stops("AutoGain", "{}", silence(RM_SAMPLE_I16, 48000, 2, LONG)); }

static void test_opus_encode(void) {
  stops("OpusEncode", "{}", silence(RM_SAMPLE_I16, 48000, 2, LONG));
}

/* The stream's encoding, made without a deadline. */
static rm_buffer_t *encoded(const char *type, const char *params, rm_buffer_t *in) {
  rm_pipeline_t *p = media_node(type, params);
  media_items_t it = {0};
  rm_error_t err;
  CU_ASSERT_EQUAL_FATAL(media_run1(p, in, &it, &err), 0);
  CU_ASSERT_EQUAL_FATAL(it.n, 1);
  rm_buffer_t *out = rm_buffer_ref(it.items[0]);
  media_items_free(&it);
  rm_buffer_unref(in);
  rm_pipeline_free(p);
  return out;
}

static void test_opus_decode(void) {
  rm_buffer_t *in = silence(RM_SAMPLE_I16, 48000, 2, (size_t)4 << 20);
  stops("OpusDecode", "{\"format\":\"i16\"}", encoded("OpusEncode", "{\"complexity\":0}", in));
}

/* ---------------- Gain, AudioFormat, ChannelMix, Mixer */

static void test_gain(void) { stops("Gain", "{\"db\":6}", silence(RM_SAMPLE_I16, 48000, 2, LONG)); }

static void test_audio_format(void) {
  stops("AudioFormat", "{\"format\":\"f32\"}", silence(RM_SAMPLE_I16, 48000, 2, LONG));
}

static void test_channel_mix(void) {
  stops("ChannelMix", "{\"mode\":\"mono\"}", silence(RM_SAMPLE_I16, 48000, 2, LONG));
}

/* One input: Mixer checked only between inputs. */
static void test_mixer(void) { stops("Mixer", "{}", silence(RM_SAMPLE_I16, 48000, 2, LONG)); }

/* ---------------- SilenceTrim */

static void test_silence_trim(void) {
  stops("SilenceTrim", "{}", silence(RM_SAMPLE_I16, 48000, 2, LONG));
}

/* ---------------- Chunk */

static void test_chunk(void) {
  stops("Chunk", "{\"frames\":1000000}", silence(RM_SAMPLE_F32, 48000, 1, LONG));
}

/* ---------------- LoudnessMeter, LoudnessNormalize */

/* LoudnessMeter already checked after each second of audio: the test pins the outcome. */
static void test_loudness_meter(void) {
  stops("LoudnessMeter", "{}", silence(RM_SAMPLE_I16, 48000, 2, (size_t)4 << 20));
}

/* The gain is applied to the whole stream when it ends. */
static void test_loudness_normalize(void) {
  stops_at_end("LoudnessNormalize", "{\"format\":\"f64\"}",
               silence(RM_SAMPLE_F32, 16000, 1, (size_t)2 << 20));
}

/* ---------------- AudioEncode, AudioDecode */

/* The file is emitted when the stream ends. */
static void test_audio_encode(void) {
  stops_at_end("AudioEncode", "{}", silence(RM_SAMPLE_I16, 48000, 2, LONG));
}

/* 16 MB of Ogg pages whose checksums are right and whose data is not Vorbis: the checksums
 * are verified before libsndfile refuses the data. */
static void test_audio_decode(void) {
  uint32_t table[256];
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i << 24;
    for (int k = 0; k < 8; k++)
      c = c & 0x80000000u ? (c << 1) ^ 0x04c11db7u : c << 1;
    table[i] = c;
  }
  size_t page = 27 + 255 + 255 * 255, pages = ((size_t)16 << 20) / page;
  uint8_t *file = calloc(pages, page);
  CU_ASSERT_PTR_NOT_NULL_FATAL(file);
  for (size_t p = 0; p < pages; p++) {
    uint8_t *h = file + p * page;
    memcpy(h, "OggS", 4);
    h[5] = p == 0 ? 2 : p + 1 == pages ? 4 : 1; /* begin, continued, end of stream */
    h[26] = 255;
    memset(h + 27, 255, 255);
    uint32_t crc = 0;
    for (size_t i = 0; i < page; i++)
      crc = (crc << 8) ^ table[(crc >> 24) ^ h[i]];
    for (int k = 0; k < 4; k++)
      h[22 + k] = (uint8_t)(crc >> (8 * k));
  }
  rm_buffer_t *in = rm_buffer_new_binary(NULL, file, pages * page, "audio/ogg");
  free(file);
  stops("AudioDecode", "{}", in);
}

/* ---------------- Calculator */

/* A valid request padded with 32 MB of blanks: jansson reads them all. */
static void test_calculator(void) {
  static const char req[] = "{\"operation\":\"add\",\"operands\":[1,2]}";
  size_t n = (size_t)32 << 20;
  char *text = malloc(n);
  CU_ASSERT_PTR_NOT_NULL_FATAL(text);
  memcpy(text, req, sizeof req - 1);
  memset(text + sizeof req - 1, ' ', n - (sizeof req - 1));
  rm_buffer_t *in = rm_buffer_new_text(NULL, RM_KIND_JSON, text, n);
  free(text);
  stops("Calculator", "{}", in);
}

int main(void) {
  static const rm_test_case_t cases[] = {RM_TEST(test_audio_resample),
                                         RM_TEST(test_spectrogram),
                                         RM_TEST(test_mel_spectrogram),
                                         RM_TEST(test_vad),
                                         RM_TEST(test_denoise),
                                         RM_TEST(test_autogain),
                                         RM_TEST(test_opus_encode),
                                         RM_TEST(test_opus_decode),
                                         RM_TEST(test_gain),
                                         RM_TEST(test_audio_format),
                                         RM_TEST(test_channel_mix),
                                         RM_TEST(test_mixer),
                                         RM_TEST(test_silence_trim),
                                         RM_TEST(test_chunk),
                                         RM_TEST(test_loudness_meter),
                                         RM_TEST(test_loudness_normalize),
                                         RM_TEST(test_audio_encode),
                                         RM_TEST(test_audio_decode),
                                         RM_TEST(test_calculator),
                                         {NULL, NULL}};
  rm_test_suite("node_deadline", cases);
  return rm_test_run();
}
