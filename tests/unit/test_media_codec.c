/* test_media_codec.c - AudioDecode / AudioEncode: every fixture in tests/data/audio (made
 * by independent encoders) decodes to the sine it holds; cut, smashed and garbage copies
 * are input errors; encode -> decode round trips are exact for PCM and FLAC. */
#include <dirent.h>

#include "test_media_support.h"

typedef struct fixture {
  const char *file;
  uint32_t rate, ch;
  size_t frames;
  rm_sample_format_t native;
  double freq;
  double min_snr;  /* dB against the analytic sine */
  int checksummed; /* FLAC and Ogg detect corrupted payload bytes; WAV cannot */
} fixture_t;

static const fixture_t fixtures[] = {
    {"sine_1k_48k_mono.wav", 48000, 1, 24000, RM_SAMPLE_I16, 1000, 90, 0},
    {"sine_440_16k_stereo_pcm24.wav", 16000, 2, 4000, RM_SAMPLE_I32, 440, 130, 0},
    {"sine_1k_8k_mono_pcm32.wav", 8000, 1, 4000, RM_SAMPLE_I32, 1000, 140, 0},
    {"sine_1k_16k_mono_float.wav", 16000, 1, 4000, RM_SAMPLE_F32, 1000, 140, 0},
    {"sine_1k_22k05_stereo.flac", 22050, 2, 11025, RM_SAMPLE_I16, 1000, 90, 1},
    {"sine_1k_16k_mono_24bit.flac", 16000, 1, 4000, RM_SAMPLE_I32, 1000, 130, 1},
    {"sine_1k_48k_stereo.ogg", 48000, 2, 48000, RM_SAMPLE_F32, 1000, 30, 1},
};
#define N_FIXTURES (sizeof fixtures / sizeof fixtures[0])

/* Decodes bytes with `params`; returns the code, the audio (if any) in *out. */
static int decode(const void *bytes, size_t len, const char *params, rm_buffer_t **out,
                  rm_error_t *err) {
  rm_pipeline_t *p = media_node("AudioDecode", params);
  rm_buffer_t *in = rm_buffer_new_binary(NULL, bytes, len, "application/octet-stream");
  media_items_t it = {0};
  int rc = media_run1(p, in, &it, err);
  *out = NULL;
  if (!rc) {
    CU_ASSERT_EQUAL(it.n, 1);
    *out = rm_buffer_ref(it.items[0]);
  }
  media_items_free(&it);
  rm_buffer_unref(in);
  rm_pipeline_free(p);
  return rc;
}

static void test_decode_every_fixture(void) {
  for (size_t k = 0; k < N_FIXTURES; k++) {
    const fixture_t *f = &fixtures[k];
    size_t len;
    unsigned char *bytes = media_load_fixture(f->file, &len);
    rm_buffer_t *a;
    rm_error_t err;
    CU_ASSERT_EQUAL_FATAL(decode(bytes, len, "{}", &a, &err), 0);
    CU_ASSERT_EQUAL(a->u.audio.sample_rate, f->rate);
    CU_ASSERT_EQUAL(a->u.audio.channels, f->ch);
    CU_ASSERT_EQUAL(a->u.audio.format, f->native);
    CU_ASSERT_EQUAL(rm_audio_frames(a), f->frames);
    /* every channel against the analytic sine (right = -left in stereo fixtures) */
    size_t n = rm_audio_frames(a);
    double *x = malloc(n * sizeof *x), *ref = malloc(n * sizeof *ref);
    double worst = 1e9;
    for (uint32_t c = 0; c < f->ch; c++) {
      for (size_t i = 0; i < n; i++) {
        x[i] = rm_audio_get(a, i * f->ch + c);
        ref[i] = (c ? -0.5 : 0.5) * sin(2 * M_PI * f->freq * (double)i / f->rate);
      }
      double snr = media_snr_vs(x, ref, n);
      worst = fmin(worst, snr);
    }
    printf("\n    %-30s SNR %6.1f dB ", f->file, worst);
    CU_ASSERT(worst >= f->min_snr);
    free(x);
    free(ref);
    rm_buffer_unref(a);
    /* forced formats: the same samples in f32 and f64 */
    rm_buffer_t *b, *c;
    CU_ASSERT_EQUAL_FATAL(decode(bytes, len, "{\"format\":\"f32\"}", &b, &err), 0);
    CU_ASSERT_EQUAL_FATAL(decode(bytes, len, "{\"format\":\"f64\"}", &c, &err), 0);
    CU_ASSERT_EQUAL(b->u.audio.format, RM_SAMPLE_F32);
    CU_ASSERT_EQUAL(c->u.audio.format, RM_SAMPLE_F64);
    size_t diff = 0;
    for (size_t i = 0; i < rm_audio_samples(b); i++)
      diff += fabs(rm_audio_get(b, i) - rm_audio_get(c, i)) > 1e-7;
    CU_ASSERT_EQUAL(diff, 0);
    rm_buffer_unref(b);
    rm_buffer_unref(c);
    free(bytes);
  }
}

/* Whatever audio file lands in tests/data/audio decodes (the table above also checks the
 * content of the ones it lists, and all of those must be present). */
static void test_decode_whole_fixture_directory(void) {
  const char *dir = getenv("RM_TEST_DATA");
  char path[1024];
  snprintf(path, sizeof path, "%s/audio", dir ? dir : "tests/data");
  DIR *d = opendir(path);
  CU_ASSERT_PTR_NOT_NULL_FATAL(d);
  size_t files = 0, listed = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    const char *dot = strrchr(e->d_name, '.');
    if (!dot || (strcmp(dot, ".wav") && strcmp(dot, ".flac") && strcmp(dot, ".ogg")))
      continue;
    size_t len;
    unsigned char *bytes = media_load_fixture(e->d_name, &len);
    rm_buffer_t *a = NULL;
    rm_error_t err;
    int rc = decode(bytes, len, "{}", &a, &err);
    if (rc)
      fprintf(stderr, "\n  %s: %s\n", e->d_name, err.message);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT(a && rm_audio_frames(a) > 0);
    rm_buffer_unref(a);
    free(bytes);
    files++;
    for (size_t k = 0; k < N_FIXTURES; k++)
      listed += strcmp(fixtures[k].file, e->d_name) == 0;
  }
  closedir(d);
  CU_ASSERT_EQUAL(listed, N_FIXTURES);
  CU_ASSERT(files >= N_FIXTURES);
}

/* Expects an input error naming node n and field "in". */
static void expect_corrupt(const void *bytes, size_t len, const char *what, const char *file) {
  rm_buffer_t *a = NULL;
  rm_error_t err;
  int rc = decode(bytes, len, "{}", &a, &err);
  if (rc != RM_EINPUT)
    fprintf(stderr, "\n  %s %s: rc=%d\n", file, what, rc);
  CU_ASSERT_EQUAL(rc, RM_EINPUT);
  CU_ASSERT_PTR_NULL(a);
  CU_ASSERT_STRING_EQUAL(err.node_id, "n");
  CU_ASSERT_STRING_EQUAL(err.field, "in");
  CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "AudioDecode"));
  rm_buffer_unref(a);
}

static void test_decode_corrupted_copies(void) {
  for (size_t k = 0; k < N_FIXTURES; k++) {
    const fixture_t *f = &fixtures[k];
    size_t len;
    unsigned char *bytes = media_load_fixture(f->file, &len);
    unsigned char *c = malloc(len);
    expect_corrupt(bytes, len / 2, "cut in half", f->file);
    expect_corrupt(bytes, len - 1, "last byte cut", f->file);
    expect_corrupt(bytes, len * 9 / 10, "cut at 90%", f->file);
    expect_corrupt(bytes, 60, "header only", f->file);
    expect_corrupt(bytes, 3, "three bytes", f->file);
    memcpy(c, bytes, len);
    memset(c, 0, 16);
    expect_corrupt(c, len, "zeroed magic", f->file);
    /* payload bytes flipped: FLAC frame CRCs and Ogg page CRCs catch it; PCM WAV has no
     * checksum, so it decodes to the same length with only those samples changed */
    memcpy(c, bytes, len);
    for (size_t i = len / 3; i < len / 3 + 64; i++)
      c[i] ^= 0x5a;
    if (f->checksummed) {
      expect_corrupt(c, len, "flipped payload", f->file);
    } else {
      rm_buffer_t *a, *b;
      rm_error_t err;
      CU_ASSERT_EQUAL_FATAL(decode(c, len, "{}", &a, &err), 0);
      CU_ASSERT_EQUAL_FATAL(decode(bytes, len, "{}", &b, &err), 0);
      CU_ASSERT_EQUAL(a->size, b->size);
      size_t changed = 0;
      for (size_t i = 0; i < a->size; i++)
        changed += a->data[i] != b->data[i];
      CU_ASSERT(changed > 0 && changed <= 64);
      rm_buffer_unref(a);
      rm_buffer_unref(b);
    }
    /* junk after the last page of an Ogg stream, or a WAV with an extra byte, decodes
     * the same for WAV (trailing bytes are ignored) and is refused for Ogg */
    if (strstr(f->file, ".ogg")) {
      unsigned char *tail = malloc(len + 5);
      memcpy(tail, bytes, len);
      memcpy(tail + len, "junk!", 5);
      expect_corrupt(tail, len + 5, "junk after the last page", f->file);
      free(tail);
    }
    free(c);
    free(bytes);
  }
  /* not audio at all */
  unsigned char junk[4096];
  unsigned long long seed = 99;
  for (size_t i = 0; i < sizeof junk; i++)
    junk[i] = (unsigned char)(media_noise(&seed) * 127 + 128);
  expect_corrupt(junk, sizeof junk, "noise bytes", "junk");
  expect_corrupt("RIFF", 4, "bare magic", "junk");
  expect_corrupt("", 0, "empty", "junk");
}

/* Encodes `in` with params, returns the file; decodes it back (format f64) into *back. */
static rm_buffer_t *encode(rm_buffer_t **chunks, size_t n, const char *params) {
  rm_pipeline_t *p = media_node("AudioEncode", params);
  media_items_t it = {0};
  rm_error_t err;
  static const char *const keys[] = {"n"};
  CU_ASSERT_EQUAL_FATAL(media_stream(p, chunks, n, keys, &it, 1, &err), 0);
  CU_ASSERT_EQUAL_FATAL(it.n, 1);
  rm_buffer_t *file = rm_buffer_ref(it.items[0]);
  media_items_free(&it);
  rm_pipeline_free(p);
  CU_ASSERT_EQUAL(file->kind, RM_KIND_BINARY);
  return file;
}

static void test_encode_decode_round_trip(void) {
  static const struct {
    const char *params, *mime;
    rm_sample_format_t quant; /* the grid the samples land on; 0 = lossy */
    double tol;
  } cases[] = {
      {"{}", "audio/wav", RM_SAMPLE_I16, 0},
      {"{\"subtype\":\"pcm24\"}", "audio/wav", 0, 0.5 / 8388608},
      {"{\"subtype\":\"pcm32\"}", "audio/wav", RM_SAMPLE_I32, 0},
      {"{\"subtype\":\"float\"}", "audio/wav", RM_SAMPLE_F32, 0},
      {"{\"container\":\"flac\"}", "audio/flac", RM_SAMPLE_I16, 0},
      {"{\"container\":\"flac\",\"subtype\":\"pcm24\"}", "audio/flac", 0, 0.5 / 8388608},
      {"{\"container\":\"ogg\",\"quality\":0.6}", "audio/ogg", 0, -1},
  };
  size_t n = 8000;
  rm_buffer_t *in = media_f32(16000, 2, n);
  for (size_t i = 0; i < n; i++) {
    media_fdata(in)[2 * i] = (float)(0.7 * sin(2 * M_PI * 440 * (double)i / 16000));
    media_fdata(in)[2 * i + 1] = (float)(0.3 * sin(2 * M_PI * 1234 * (double)i / 16000));
  }
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    rm_buffer_t *file = encode(&in, 1, cases[k].params);
    CU_ASSERT_STRING_EQUAL(file->mime_type, cases[k].mime);
    rm_buffer_t *back;
    rm_error_t err;
    CU_ASSERT_EQUAL_FATAL(decode(file->data, file->size, "{\"format\":\"f64\"}", &back, &err), 0);
    CU_ASSERT_EQUAL(back->u.audio.sample_rate, 16000);
    CU_ASSERT_EQUAL(back->u.audio.channels, 2);
    CU_ASSERT_EQUAL_FATAL(rm_audio_frames(back), n);
    double maxerr = 0, sig = 0, noise = 0;
    for (size_t i = 0; i < 2 * n; i++) {
      double x = rm_audio_get(in, i), want = x;
      if (cases[k].quant) { /* exactly the project's conversion to that grid and back */
        unsigned char q[8];
        rm_audio_convert(media_fdata(in) + i, RM_SAMPLE_F32, q, cases[k].quant, 1);
        float f32;
        double f64;
        if (cases[k].quant == RM_SAMPLE_F32) {
          memcpy(&f32, q, 4);
          want = f32;
        } else {
          rm_audio_convert(q, cases[k].quant, &f64, RM_SAMPLE_F64, 1);
          want = f64;
        }
      }
      double y = rm_audio_get(back, i);
      maxerr = fmax(maxerr, fabs(y - want));
      sig += x * x;
      noise += (y - x) * (y - x);
    }
    if (cases[k].tol >= 0) {
      CU_ASSERT(maxerr <= cases[k].tol);
    } else {
      double snr = 10 * log10(sig / noise);
      printf("\n    ogg vorbis round trip SNR %.1f dB ", snr);
      CU_ASSERT(snr >= 20);
    }
    rm_buffer_unref(back);
    rm_buffer_unref(file);
  }
  /* a stream encoded in chunks is the same file as one-shot */
  rm_buffer_t *a = media_f32(16000, 2, 3000), *b = media_f32(16000, 2, n - 3000);
  memcpy(a->data, in->data, a->size);
  memcpy(b->data, in->data + a->size, b->size);
  rm_buffer_t *chunks[] = {a, b};
  rm_buffer_t *f1 = encode(&in, 1, "{\"container\":\"flac\"}");
  rm_buffer_t *f2 = encode(chunks, 2, "{\"container\":\"flac\"}");
  CU_ASSERT_EQUAL(f1->size, f2->size);
  CU_ASSERT(f1->size == f2->size && memcmp(f1->data, f2->data, f1->size) == 0);
  rm_buffer_unref(f1);
  rm_buffer_unref(f2);
  rm_buffer_unref(a);
  rm_buffer_unref(b);
  rm_buffer_unref(in);
}

/* Integer input goes to integer files without passing through float rounding. */
static void test_encode_i16_bit_exact(void) {
  int16_t s[1000];
  for (int i = 0; i < 1000; i++)
    s[i] = (int16_t)(i * 65 - 32768);
  rm_buffer_t *in = rm_test_audio_i16(s, 1000, 8000, 1);
  rm_buffer_t *file = encode(&in, 1, "{}");
  CU_ASSERT_EQUAL(file->size, 44 + 2000);
  rm_buffer_t *back;
  rm_error_t err;
  CU_ASSERT_EQUAL_FATAL(decode(file->data, file->size, "{}", &back, &err), 0);
  CU_ASSERT_EQUAL(back->u.audio.format, RM_SAMPLE_I16);
  CU_ASSERT(back->size == in->size && memcmp(back->data, in->data, in->size) == 0);
  rm_buffer_unref(back);
  rm_buffer_unref(file);
  rm_buffer_unref(in);
}

/* Rates libsndfile's format check passes but libFLAC / libvorbis refuse at the first write
 * are refused at the start, naming the input, also for an empty stream (which came out as an
 * empty file); an empty stream at a good rate is a FLAC file of no samples. So is 5.1 Ogg
 * Vorbis where libvorbis's 5.1 setup would leak (40-70 kHz; leak-checked by the sanitizer
 * and valgrind runs of this suite: the other rates below encode). */
static void test_encode_rates_the_codecs_refuse(void) {
  static const struct {
    const char *params;
    uint32_t rate, channels;
    const char *message;
  } bad[] = {
      {"{\"container\":\"flac\"}", 192001, 1,
       "node 'n' (AudioEncode): audio/flac cannot store 192001 Hz, 1 channels (above 65535 Hz, "
       "FLAC stores multiples of 10 Hz)"},
      {"{\"container\":\"ogg\"}", 250000, 1,
       "node 'n' (AudioEncode): audio/ogg cannot store 250000 Hz, 1 channels (Vorbis stores at "
       "most 200000 Hz)"},
      {"{\"container\":\"ogg\"}", 48000, 6,
       "node 'n' (AudioEncode): audio/ogg of 6 channels at 40000-70000 Hz (48000 Hz) is not "
       "encoded: libvorbis's 5.1 setup leaks memory on every stream; use flac, or another rate"},
      {"{\"container\":\"ogg\",\"quality\":0.1}", 40000, 6,
       "node 'n' (AudioEncode): audio/ogg of 6 channels at 40000-70000 Hz (40000 Hz) is not "
       "encoded: libvorbis's 5.1 setup leaks memory on every stream; use flac, or another rate"},
      {"{\"container\":\"ogg\"}", 70000, 6,
       "node 'n' (AudioEncode): audio/ogg of 6 channels at 40000-70000 Hz (70000 Hz) is not "
       "encoded: libvorbis's 5.1 setup leaks memory on every stream; use flac, or another rate"},
  };
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++)
    for (size_t frames = 0; frames < 2; frames++) {
      rm_pipeline_t *p = media_node("AudioEncode", bad[k].params);
      rm_buffer_t *in = media_f32(bad[k].rate, bad[k].channels, frames);
      media_items_t it = {0};
      rm_error_t err;
      CU_ASSERT_EQUAL(media_run1(p, in, &it, &err), RM_EINPUT);
      RM_ASSERT_STR(err.field, "in");
      RM_ASSERT_STR(err.message, bad[k].message);
      CU_ASSERT_EQUAL(it.n, 0);
      media_items_free(&it);
      rm_buffer_unref(in);
      rm_pipeline_free(p);
    }
  static const uint32_t six_ok[][2] = {{39999, 6}, {70001, 6}, {96000, 6}, {48000, 5}, {48000, 8}};
  for (size_t k = 0; k < sizeof six_ok / sizeof six_ok[0]; k++) {
    rm_buffer_t *pcm = media_f32(six_ok[k][0], six_ok[k][1], 4800);
    memset(pcm->data, 0, pcm->size); /* silence */
    rm_buffer_t *ogg = encode(&pcm, 1, "{\"container\":\"ogg\"}");
    CU_ASSERT(ogg && ogg->size > 4 && memcmp(ogg->data, "OggS", 4) == 0);
    rm_buffer_unref(ogg);
    rm_buffer_unref(pcm);
  }
  rm_buffer_t *none = media_f32(192000, 1, 0);
  rm_buffer_t *file = encode(&none, 1, "{\"container\":\"flac\"}");
  CU_ASSERT(file->size > 4 && memcmp(file->data, "fLaC", 4) == 0);
  rm_buffer_t *back = NULL;
  rm_error_t err;
  CU_ASSERT_EQUAL(decode(file->data, file->size, "{}", &back, &err), 0);
  if (back) {
    RM_ASSERT_INT(rm_audio_frames(back), 0);
    RM_ASSERT_INT(back->u.audio.sample_rate, 192000);
  }
  rm_buffer_unref(back);
  rm_buffer_unref(file);
  rm_buffer_unref(none);
}

static void test_params_and_registry(void) {
  CU_ASSERT_PTR_NOT_NULL(rm_registry_find("AudioDecode"));
  CU_ASSERT_PTR_NOT_NULL(rm_registry_find("AudioEncode"));
  media_expect_create_error("AudioEncode", "{\"container\":\"flac\",\"subtype\":\"float\"}",
                            "subtype");
  media_expect_create_error("AudioEncode", "{\"container\":\"ogg\",\"subtype\":\"pcm16\"}",
                            "subtype");
  media_expect_create_error("AudioEncode", "{\"subtype\":\"vorbis\"}", "subtype");
  media_expect_create_error("AudioEncode", "{\"quality\":0.5}", "quality");
  media_expect_param_error("AudioEncode", "{\"container\":\"ogg\",\"quality\":1.5}", "quality");
  media_expect_param_error("AudioEncode", "{\"container\":\"mp3\"}", "container");
  media_expect_param_error("AudioDecode", "{\"format\":\"u8\"}", "format");
  media_expect_param_error("AudioDecode", "{\"max_seconds\":0}", "max_seconds");
}

/* A file longer than max_seconds is a limit error, not a huge allocation. */
/* AIFF, AU, MP3 and a RIFF that is not WAVE are refused before libsndfile parses them: the
 * node reads WAV, FLAC and Ogg only, as documented (libsndfile took AIFF, AU and MP3 frames
 * through mpg123 too). */
static void test_decode_refuses_other_containers(void) {
  static const struct {
    const char *bytes;
    size_t len;
    const char *start;
  } cases[] = {
      {"FORM\0\0\0\x2e"
       "AIFFCOMM",
       16, "FORM"},
      {".snd\0\0\0\x18\0\0\0\0", 12, ".snd"},
      {"\xff\xfb\x90\x64\0\0\0\0", 8, "\\xff\\xfb\\x90d"},
      {"RIFF\x24\0\0\0"
       "AVI LIST",
       16, "RIFF"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    rm_buffer_t *a = NULL;
    rm_error_t err;
    RM_ASSERT_INT(decode(cases[i].bytes, cases[i].len, "{}", &a, &err), RM_EINPUT);
    CU_ASSERT_PTR_NULL(a);
    RM_ASSERT_STR(err.field, "in");
    char want[160];
    snprintf(want, sizeof want,
             "not a WAV, FLAC or Ogg file (%zu bytes starting '%s'): AudioDecode reads those "
             "containers only",
             cases[i].len, cases[i].start);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, want));
    if (!strstr(err.message, want))
      fprintf(stderr, "\n  case %zu: %s\n", i, err.message);
  }
}

static void test_decode_limit(void) {
  size_t len;
  unsigned char *bytes = media_load_fixture("sine_1k_48k_mono.wav", &len);
  rm_buffer_t *a;
  rm_error_t err;
  CU_ASSERT_EQUAL(decode(bytes, len, "{\"max_seconds\":0.1}", &a, &err), RM_ELIMIT);
  CU_ASSERT_PTR_NULL(a);
  RM_ASSERT_STR(err.field, "max_seconds");
  RM_ASSERT_STR(err.message,
                "node 'n' (AudioDecode): the file holds more than 0.100 s of audio (max_seconds)");
  CU_ASSERT_EQUAL(decode(bytes, len, "{\"max_seconds\":0.5}", &a, &err), 0);
  rm_buffer_unref(a);
  free(bytes);
}

/* A 16-bit mono PCM WAV of `frames` frames, sample i = i & 0x7fff. */
static unsigned char *pcm16_wav(size_t frames, size_t *len) {
  size_t data = frames * 2;
  unsigned char *w = malloc(44 + data);
  uint32_t v[] = {(uint32_t)(36 + data), 16, 0x10001, 16000, 32000, 0x100002, (uint32_t)data};
  memcpy(w, "RIFF", 4);
  memcpy(w + 4, &v[0], 4);
  memcpy(w + 8, "WAVEfmt ", 8);
  memcpy(w + 16, &v[1], 20);
  memcpy(w + 36, "data", 4);
  memcpy(w + 40, &v[6], 4);
  for (size_t i = 0; i < frames; i++) {
    int16_t x = (int16_t)(i & 0x7fff);
    memcpy(w + 44 + 2 * i, &x, 2);
  }
  *len = 44 + data;
  return w;
}

/* The decoded samples are written once, into a block the size the header announces, which
 * becomes the output: the run's memory peaks at the output plus libsndfile's charge. Decoding
 * into a doubling array and copying it out peaked near three times the output when its size
 * was just above a power of two. */
static void test_decode_memory_is_the_output_once(void) {
  size_t frames = ((size_t)1 << 20) + 4096, len; /* f32: 4 MiB + 16 KiB */
  unsigned char *bytes = pcm16_wav(frames, &len);
  rm_pipeline_t *p = media_node("AudioDecode", "{\"format\":\"f32\"}");
  rm_buffer_t *in = rm_buffer_new_binary(NULL, bytes, len, "audio/wav");
  media_items_t it = {0};
  rm_error_t err;
  size_t before = rm_budget_used(rm_pipeline_budget(p));
  rm_budget_reset_peak(rm_pipeline_budget(p));
  CU_ASSERT_EQUAL_FATAL(media_run1(p, in, &it, &err), 0);
  size_t peak = rm_budget_peak(rm_pipeline_budget(p)) - before, out = frames * 4;
  CU_ASSERT_EQUAL_FATAL(it.n, 1);
  CU_ASSERT_EQUAL(it.items[0]->size, out);
  int exact = 1;
  for (size_t i = 0; i < frames; i++)
    exact &= media_fdata(it.items[0])[i] == (float)(i & 0x7fff) / 32768.0f;
  CU_ASSERT(exact);
  /* the input (the run holds it), the output, libsndfile's 4 MiB, one decode block of slack
   * and the engine's small blocks */
  size_t most = len + out + ((size_t)4 << 20) + 4096 * 4 + (64 << 10);
  CU_ASSERT(peak >= out + ((size_t)4 << 20));
  CU_ASSERT(peak <= most);
  if (peak > most)
    printf("\n    peak %zu for an input of %zu and an output of %zu ", peak, len, out);
  media_items_free(&it);
  rm_buffer_unref(in);
  rm_pipeline_free(p);
  free(bytes);
}

/* A header that overstates the length is only a hint for the block decoded into: the file is
 * refused for what it holds (cut short), not for the memory its claim would take. */
static void test_decode_overstated_header_is_truncated(void) {
  size_t n = 100000;
  rm_buffer_t *noise = media_f32(16000, 2, n);
  uint32_t x = 1;
  for (size_t i = 0; i < 2 * n; i++) {
    x = x * 1664525u + 1013904223u;
    media_fdata(noise)[i] = (float)((double)(x >> 8) / (1 << 24) - 0.5);
  }
  rm_buffer_t *file = encode(&noise, 1, "{\"container\":\"flac\"}");
  /* STREAMINFO's total samples: the low 36 bits of the 8 bytes at offset 18 */
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = v << 8 | file->data[18 + i];
  CU_ASSERT_EQUAL_FATAL(v & 0xfffffffffull, n);
  v = (v & ~0xfffffffffull) | (n * 10);
  for (int i = 7; i >= 0; i--, v >>= 8)
    file->data[18 + i] = (uint8_t)v;
  /* a budget the decoded audio fits in with libsndfile's 4 MiB, but not ten times it */
  rm_manifest_t *m =
      rm_test_manifest("{'name':'t','nodes':[{'id':'n','node_type':'AudioDecode'}]}");
  rm_limits_t lim = {.max_memory_bytes = (6u << 20) + 2 * file->size};
  rm_pipeline_t *p = NULL;
  rm_error_t err;
  CU_ASSERT_EQUAL_FATAL(rm_pipeline_new(m, &lim, &p, &err), 0);
  rm_manifest_free(m);
  media_items_t it = {0};
  CU_ASSERT_EQUAL(media_run1(p, file, &it, &err), RM_EINPUT);
  RM_ASSERT_STR(err.field, "in");
  RM_ASSERT_STR(err.message, "node 'n' (AudioDecode): truncated audio file: the header announces "
                             "1000000 frames, 100000 decoded");
  media_items_free(&it);
  rm_pipeline_free(p);
  rm_buffer_unref(file);
  rm_buffer_unref(noise);
}

int main(void) {
  static const rm_test_case_t cases[] = {RM_TEST(test_params_and_registry),
                                         RM_TEST(test_encode_rates_the_codecs_refuse),
                                         RM_TEST(test_decode_every_fixture),
                                         RM_TEST(test_decode_whole_fixture_directory),
                                         RM_TEST(test_decode_corrupted_copies),
                                         RM_TEST(test_encode_decode_round_trip),
                                         RM_TEST(test_encode_i16_bit_exact),
                                         RM_TEST(test_decode_limit),
                                         RM_TEST(test_decode_memory_is_the_output_once),
                                         RM_TEST(test_decode_overstated_header_is_truncated),
                                         RM_TEST(test_decode_refuses_other_containers),
                                         {NULL, NULL}};
  rm_test_suite("media_codec", cases);
  return rm_test_run();
}
