/* test_media_opus.c - OpusEncode / OpusDecode: tone round trip SNR with delay compensation,
 * exact lengths, chunked streams, truncated and corrupt packets, parameter errors. */
#include "test_media_support.h"

static rm_buffer_t *tone(uint32_t rate, uint32_t ch, double secs, double freq) {
  size_t n = (size_t)(secs * rate);
  rm_buffer_t *b = media_f32(rate, ch, n);
  for (size_t i = 0; i < n; i++)
    for (uint32_t c = 0; c < ch; c++)
      media_fdata(b)[i * ch + c] = (float)(0.5 * sin(2 * M_PI * freq * (double)i / rate));
  return b;
}

/* Encodes chunks with enc_params; returns the binary items. */
static void encode(rm_buffer_t **chunks, size_t n, const char *enc_params, media_items_t *pk) {
  rm_pipeline_t *p = media_node("OpusEncode", enc_params);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  static const char *const keys[] = {"n"};
  rm_error_t err;
  CU_ASSERT_EQUAL_FATAL(media_stream(p, chunks, n, keys, pk, 1, &err), 0);
  rm_pipeline_free(p);
}

static int decode(media_items_t *pk, const char *dec_params, media_items_t *out, rm_error_t *err) {
  rm_pipeline_t *p = media_node("OpusDecode", dec_params);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  static const char *const keys[] = {"n"};
  int rc = media_stream(p, pk->items, pk->n, keys, out, 1, err);
  rm_pipeline_free(p);
  return rc;
}

/* SNR of y against x (channel 0 of each, interleaved by ch) for a lag of y behind x. */
static double snr_at(const double *x, const double *y, size_t n, uint32_t ch, long lag,
                     size_t margin) {
  double s = 0, e = 0;
  for (size_t i = margin; i + margin < n; i++) {
    long j = (long)i + lag;
    if (j < 0 || (size_t)j >= n)
      continue;
    double a = x[i * ch], b = y[(size_t)j * ch];
    s += a * a;
    e += (a - b) * (a - b);
  }
  return 10 * log10(s / (e > 0 ? e : 1e-300));
}

static void round_trip(uint32_t rate, uint32_t ch, const char *params) {
  rm_buffer_t *in = tone(rate, ch, 1.0, 1000);
  media_items_t pk = {0}, out = {0};
  encode(&in, 1, params, &pk);
  /* one-shot: process()'s header and packets and flush()'s tail and end record are joined
   * into one packet stream (RM_NODE_JOIN_TAIL) */
  CU_ASSERT_EQUAL_FATAL(pk.n, 1);
  CU_ASSERT_STRING_EQUAL(pk.items[0]->mime_type, "application/x-rm-opus");
  size_t bytes = pk.items[0]->size;
  rm_error_t err;
  CU_ASSERT_EQUAL_FATAL(decode(&pk, "{}", &out, &err), 0);
  double *x, *y;
  size_t nx = media_concat(&(media_items_t){.items = {in}, .n = 1}, &x);
  size_t ny = media_concat(&out, &y);
  CU_ASSERT_EQUAL_FATAL(ny, nx); /* exactly as long as the input */
  size_t frames = nx / ch, margin = rate / 50;
  double snr = snr_at(x, y, frames, ch, 0, margin);
  long best = 0;
  double best_snr = snr;
  /* a tone repeats every rate/1000 samples: alignment is only testable within a period */
  long half_period = (long)rate / 2000;
  for (long lag = -half_period; lag <= half_period; lag++) {
    double s = snr_at(x, y, frames, ch, lag, margin);
    if (s > best_snr + 0.01) {
      best_snr = s;
      best = lag;
    }
  }
  printf("\n    %u Hz %u ch %s: %.1f kbit/s, SNR %.1f dB at lag 0 (best lag %ld) ", rate, ch,
         params, bytes * 8 / 1000.0, snr, best);
  CU_ASSERT(snr >= 20.0);
  CU_ASSERT_EQUAL(best, 0);
  free(x);
  free(y);
  media_items_free(&pk);
  media_items_free(&out);
  rm_buffer_unref(in);
}

static void test_tone_round_trip_64k_snr_20db(void) {
  round_trip(48000, 1, "{\"bitrate\":64000}");
  round_trip(48000, 2, "{\"bitrate\":64000}");
  round_trip(16000, 1, "{\"bitrate\":64000,\"frame_ms\":10}");
}

/* Fed in 7 ms chunks (not a multiple of the frame), the stream decodes to the same length;
 * decoding at another rate gives round(n * out / in) frames. */
static void test_chunked_stream_and_rate_change(void) {
  rm_buffer_t *whole = tone(48000, 2, 0.5, 440);
  size_t n = rm_audio_frames(whole), step = 336;
  size_t n_chunks = (n + step - 1) / step;
  rm_buffer_t **chunks = malloc(n_chunks * sizeof *chunks);
  for (size_t c = 0; c < n_chunks; c++) {
    size_t len = c + 1 < n_chunks ? step : n - c * step;
    chunks[c] = media_f32(48000, 2, len);
    memcpy(chunks[c]->data, whole->data + c * step * 8, len * 8);
  }
  media_items_t pk = {0}, out = {0}, out16 = {0};
  encode(chunks, n_chunks, "{\"frame_ms\":20}", &pk);
  CU_ASSERT(pk.n > 10); /* packets go out as frames complete */
  rm_error_t err;
  CU_ASSERT_EQUAL_FATAL(decode(&pk, "{\"format\":\"i16\"}", &out, &err), 0);
  size_t frames = 0;
  for (size_t i = 0; i < out.n; i++) {
    CU_ASSERT_EQUAL(out.items[i]->u.audio.format, RM_SAMPLE_I16);
    frames += rm_audio_frames(out.items[i]);
  }
  CU_ASSERT_EQUAL(frames, n);
  CU_ASSERT_EQUAL_FATAL(decode(&pk, "{\"rate\":16000,\"channels\":1}", &out16, &err), 0);
  frames = 0;
  for (size_t i = 0; i < out16.n; i++) {
    CU_ASSERT_EQUAL(out16.items[i]->u.audio.sample_rate, 16000);
    CU_ASSERT_EQUAL(out16.items[i]->u.audio.channels, 1);
    frames += rm_audio_frames(out16.items[i]);
  }
  CU_ASSERT_EQUAL(frames, n / 3);
  media_items_free(&pk);
  media_items_free(&out);
  media_items_free(&out16);
  for (size_t c = 0; c < n_chunks; c++)
    rm_buffer_unref(chunks[c]);
  free(chunks);
  rm_buffer_unref(whole);
}

static void expect_bad_stream(const uint8_t *bytes, size_t len, const char *needle) {
  rm_buffer_t *b = rm_buffer_new_binary(NULL, bytes, len, "application/x-rm-opus");
  media_items_t pk = {.items = {b}, .n = 1}, out = {0};
  rm_error_t err;
  CU_ASSERT_EQUAL(decode(&pk, "{}", &out, &err), RM_EINPUT);
  CU_ASSERT_STRING_EQUAL(err.node_id, "n");
  CU_ASSERT_STRING_EQUAL(err.field, "in");
  CU_ASSERT_PTR_NOT_NULL(strstr(err.message, needle));
  if (!strstr(err.message, needle))
    fprintf(stderr, "\n  message: %s\n", err.message);
  CU_ASSERT_EQUAL(out.n, 0);
  media_items_free(&out);
  rm_buffer_unref(b);
}

static void expect_good_stream(const uint8_t *bytes, size_t len, size_t frames) {
  rm_buffer_t *b = rm_buffer_new_binary(NULL, bytes, len, "application/x-rm-opus");
  media_items_t pk = {.items = {b}, .n = 1}, out = {0};
  rm_error_t err;
  CU_ASSERT_EQUAL(decode(&pk, "{}", &out, &err), 0);
  CU_ASSERT_EQUAL_FATAL(out.n, 1);
  CU_ASSERT_EQUAL(rm_audio_frames(out.items[0]), frames);
  media_items_free(&out);
  rm_buffer_unref(b);
}

static void test_truncated_and_corrupt_packets(void) {
  rm_buffer_t *in = tone(48000, 1, 0.1, 1000);
  media_items_t pk = {0};
  encode(&in, 1, "{}", &pk);
  /* the framing is a byte stream: join the items */
  size_t len = 0;
  for (size_t i = 0; i < pk.n; i++)
    len += pk.items[i]->size;
  uint8_t *s = malloc(len);
  for (size_t i = 0, at = 0; i < pk.n; at += pk.items[i]->size, i++)
    memcpy(s + at, pk.items[i]->data, pk.items[i]->size);
  expect_good_stream(s, len, rm_audio_frames(in));
  size_t first = (size_t)(s[16] << 8 | s[17]);
  CU_ASSERT_FATAL(first > 4 && len > 16 + 2 + first);
  expect_bad_stream(s, 16 + 2 + first / 2, "truncated packet"); /* cut inside packet 1 */
  expect_bad_stream(s, 16 + 1, "truncated packet");             /* cut inside a length */
  /* a record longer than any packet, though the bytes are there */
  uint8_t *big = calloc(1, 16 + 2 + 4001);
  memcpy(big, s, 16);
  big[16] = 4001 >> 8;
  big[17] = 4001 & 0xff;
  big[18] = s[18];
  expect_bad_stream(big, 16 + 2 + 4001,
                    "a packet record announces 4001 bytes, above the most an Opus packet may "
                    "hold (4000)");
  free(big);
  expect_bad_stream(s, len - 3, "truncated end record");
  expect_bad_stream(s, 10, "RMOP header");
  expect_bad_stream((const uint8_t *)"OggS0000000000000000", 20, "RMOP header");
  /* a packet whose TOC byte promises more than it holds */
  uint8_t bad[16 + 2 + 2];
  memcpy(bad, s, 16);
  bad[16] = 0;
  bad[17] = 2;
  bad[18] = 0x03; /* code 3: frame count byte follows */
  bad[19] = 0xff; /* 63 frames, VBR, padding, with no bytes for any of it */
  expect_bad_stream(bad, sizeof bad, "corrupt Opus packet");
  uint8_t *extra = malloc(len + 3);
  memcpy(extra, s, len);
  memcpy(extra + len, "\0\1x", 3);
  expect_bad_stream(extra, len + 3, "after the end record");
  free(extra);
  free(s);
  media_items_free(&pk);
  rm_buffer_unref(in);
}

/* An empty input round-trips to one empty item (one item per input, as AudioResample and the
 * FLAC decoder give), at the encoder's rate and channels; it gave none. */
static void test_empty_audio_round_trips_to_one_empty_item(void) {
  rm_buffer_t *none = media_f32(48000, 2, 0);
  media_items_t pk = {0}, out = {0};
  encode(&none, 1, "{}", &pk);
  CU_ASSERT_EQUAL_FATAL(pk.n, 1);
  rm_error_t err;
  CU_ASSERT_EQUAL(decode(&pk, "{}", &out, &err), 0);
  CU_ASSERT_EQUAL_FATAL(out.n, 1);
  CU_ASSERT_EQUAL(out.items[0]->kind, RM_KIND_AUDIO);
  CU_ASSERT_EQUAL(rm_audio_frames(out.items[0]), 0);
  CU_ASSERT_EQUAL(out.items[0]->u.audio.sample_rate, 48000);
  CU_ASSERT_EQUAL(out.items[0]->u.audio.channels, 2);
  media_items_free(&out);
  media_items_free(&pk);
  rm_buffer_unref(none);
}

static void test_params_inputs_registry(void) {
  CU_ASSERT_PTR_NOT_NULL(rm_registry_find("OpusEncode"));
  CU_ASSERT_PTR_NOT_NULL(rm_registry_find("OpusDecode"));
  media_expect_create_error("OpusEncode", "{\"frame_ms\":30}", "frame_ms");
  media_expect_param_error("OpusEncode", "{\"frame_ms\":80}", "frame_ms");
  media_expect_param_error("OpusEncode", "{\"bitrate\":1000}", "bitrate");
  media_expect_param_error("OpusEncode", "{\"complexity\":11}", "complexity");
  media_expect_param_error("OpusEncode", "{\"application\":\"music\"}", "application");
  media_expect_create_error("OpusDecode", "{\"rate\":44100}", "rate");
  media_expect_param_error("OpusDecode", "{\"channels\":3}", "channels");
  rm_pipeline_t *p = media_node("OpusEncode", "{}");
  rm_buffer_t *a = media_f32(44100, 1, 441), *b = media_f32(48000, 3, 480);
  memset(a->data, 0, a->size);
  memset(b->data, 0, b->size);
  media_items_t it = {0};
  rm_error_t err;
  CU_ASSERT_EQUAL(media_run1(p, a, &it, &err), RM_EINPUT);
  CU_ASSERT_STRING_EQUAL(err.field, "sample_rate");
  CU_ASSERT_EQUAL(media_run1(p, b, &it, &err), RM_EINPUT);
  CU_ASSERT_STRING_EQUAL(err.field, "channels");
  CU_ASSERT_EQUAL(it.n, 0);
  rm_buffer_unref(a);
  rm_buffer_unref(b);
  rm_pipeline_free(p);
}

int main(void) {
  static const rm_test_case_t cases[] = {RM_TEST(test_params_inputs_registry),
                                         RM_TEST(test_tone_round_trip_64k_snr_20db),
                                         RM_TEST(test_chunked_stream_and_rate_change),
                                         RM_TEST(test_truncated_and_corrupt_packets),
                                         RM_TEST(test_empty_audio_round_trips_to_one_empty_item),
                                         {NULL, NULL}};
  rm_test_suite("media_opus", cases);
  return rm_test_run();
}
