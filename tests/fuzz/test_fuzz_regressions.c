/* test_fuzz_regressions.c - one test per defect the node fuzz targets found (fuzz_node.c),
 * named after it, asserting the exact outcome the fixed engine gives. The inputs that found
 * them also replay with their type's corpus (corpus/<Type>/regress_*). */
#include <stdint.h>
#include <string.h>

#include "test_support.h"

/* Runs `type` (params JSON text, single quotes allowed) as a one-node pipeline on one
 * input, ending the stream; the run's code, err filled. With `out`, a reference to the
 * node's first output item (NULL when there is none). */
static int run_node_out(const char *type, const char *params, const rm_limits_t *limits,
                        rm_buffer_t *in, rm_error_t *err, rm_buffer_t **out) {
  char *p = rm_test_unquote(params);
  rm_manifest_t *m = rm_manifest_new("regress");
  CU_ASSERT_FATAL(p && m);
  CU_ASSERT_FATAL(rm_manifest_add_node_text(m, "n", type, p, err) == 0);
  rm_pipeline_t *pl = NULL;
  int rc = rm_pipeline_new(m, limits, &pl, err);
  if (!rc) {
    rm_input_t input = {"n", in};
    rm_run_opts_t opts = {.end_of_stream = 1};
    rm_result_t *r = NULL;
    rc = rm_pipeline_run(pl, &input, 1, &opts, &r, err);
    if (out)
      *out = !rc && r->n_outputs && r->outputs[0].n_items ? rm_buffer_ref(r->outputs[0].items[0])
                                                          : NULL;
    rm_result_free(r);
  }
  rm_pipeline_free(pl);
  rm_manifest_free(m);
  rm_free(p);
  return rc;
}

static int run_node(const char *type, const char *params, const rm_limits_t *limits,
                    rm_buffer_t *in, rm_error_t *err) {
  return run_node_out(type, params, limits, in, err, NULL);
}

/* An empty audio buffer as the server makes it from an empty `samples` field: no data. */
static rm_buffer_t *empty_audio(void) {
  rm_buffer_t *b = rm_buffer_new_borrowed(RM_KIND_AUDIO, NULL, 0, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(b);
  b->u.audio = (rm_audio_info_t){.sample_rate = 16000, .channels = 1, .format = RM_SAMPLE_F32};
  return b;
}

/* An rm-opus stream: the 16 kHz mono header, then only an end record claiming `frames`. */
static rm_buffer_t *opus_end_record_only(uint64_t frames) {
  uint8_t s[16 + 10] = {'R', 'M', 'O', 'P', 1, 1, 0, 0, 0, 0, 0x3e, 0x80, 0, 0, 1, 0x40};
  for (int i = 0; i < 8; i++)
    s[18 + i] = (uint8_t)(frames >> (56 - 8 * i));
  return rm_buffer_new_binary(NULL, s, sizeof s, "application/x-rm-opus");
}

/* OpusDecode padded its output to the end record's length before any limit was asked:
 * 2^63-1 frames aborted an ASan build (allocation-size-too-big), 10^8 frames took 400 MB.
 * Now the length is checked against the run's limits first. */
static void test_opus_decode_end_record_length_before_limits(void) {
  rm_limits_t limits = {.max_audio_samples = 1u << 20, .max_buffer_bytes = 16u << 20};
  rm_error_t err;
  rm_buffer_t *huge = opus_end_record_only(INT64_MAX);
  RM_ASSERT_ERR(run_node("OpusDecode", "{}", &limits, huge, &err), &err, RM_ELIMIT, "n", "samples",
                "node 'n' (OpusDecode): the end record announces 9223372036854775807 frames: the "
                "output would be above the run's limits");
  /* with no limits at all, a length no memory could hold is refused the same way */
  RM_ASSERT_INT(run_node("OpusDecode", "{}", NULL, huge, &err), RM_ELIMIT);
  rm_buffer_unref(huge);
  rm_buffer_t *big = opus_end_record_only(100000000);
  RM_ASSERT_INT(run_node("OpusDecode", "{}", &limits, big, &err), RM_ELIMIT);
  rm_buffer_unref(big);
  /* a length within the limits still pads the stream with silence */
  rm_buffer_t *ok = opus_end_record_only(1000);
  RM_ASSERT_INT(run_node("OpusDecode", "{}", &limits, ok, &err), 0);
  rm_buffer_unref(ok);
}

/* OpusEncode on an empty buffer computed `pending.data + pending.len` with no storage yet
 * (NULL + 0: undefined, the UBSan build aborted). Now an empty chunk adds nothing and the
 * stream is the header and an end record announcing 0 frames. */
static void test_opus_encode_empty_audio_null_offset(void) {
  rm_buffer_t *in = empty_audio(), *out = NULL;
  rm_error_t err;
  RM_ASSERT_INT(run_node_out("OpusEncode", "{}", NULL, in, &err, &out), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(out);
  CU_ASSERT_FATAL(out->size >= 16 + 10);
  CU_ASSERT(memcmp(out->data, "RMOP", 4) == 0);
  static const uint8_t end_record[10] = {0};
  CU_ASSERT(memcmp(out->data + out->size - 10, end_record, 10) == 0);
  rm_buffer_unref(out);
  rm_buffer_unref(in);
}

/* Denoise on an empty first chunk computed `pending.data + pending.len` with no storage yet
 * (NULL + 0, the clang UBSan build aborted). Now an empty chunk adds nothing, and the empty
 * stream's one output is an empty buffer (one item per input). */
static void test_denoise_empty_audio_null_offset(void) {
  rm_buffer_t *in = empty_audio(), *out = NULL;
  rm_error_t err;
  RM_ASSERT_INT(run_node_out("Denoise", "{}", NULL, in, &err, &out), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(out);
  RM_ASSERT_INT(out->kind, RM_KIND_AUDIO);
  RM_ASSERT_INT(rm_audio_frames(out), 0);
  RM_ASSERT_INT(out->u.audio.sample_rate, in->u.audio.sample_rate);
  rm_buffer_unref(out);
  rm_buffer_unref(in);
}

/* LoudnessMeter started libebur128 on an empty 31-channel 768 kHz buffer (a 4-byte request):
 * its 3 s history took 0.5-1.6 GB before any sample was seen. Now libebur128's memory is
 * predicted and asked of the run's budget first: over the budget is RM_ELIMIT, nothing
 * allocated. */
static void test_loudness_meter_empty_audio_ebur128_balloon(void) {
  rm_buffer_t *in = rm_buffer_new_borrowed(RM_KIND_AUDIO, NULL, 0, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(in);
  in->u.audio = (rm_audio_info_t){.sample_rate = 768000, .channels = 31, .format = RM_SAMPLE_F64};
  rm_limits_t limits = {.max_memory_bytes = 256u << 20};
  rm_error_t err;
  RM_ASSERT_INT(run_node("LoudnessMeter", "{'true_peak': true}", &limits, in, &err), RM_ELIMIT);
  RM_ASSERT_STR(err.node_id, "n");
  RM_ASSERT_STR(err.field, "max_memory_bytes");
  rm_buffer_unref(in);
}

int main(void) {
  static const rm_test_case_t cases[] = {
      RM_TEST(test_opus_decode_end_record_length_before_limits),
      RM_TEST(test_opus_encode_empty_audio_null_offset),
      RM_TEST(test_denoise_empty_audio_null_offset),
      RM_TEST(test_loudness_meter_empty_audio_ebur128_balloon),
      {NULL, NULL},
  };
  rm_test_suite("fuzz_regressions", cases);
  return rm_test_run();
}
