/* warm_call.c - the server's own first call, made before it reports SERVING. */
#include "warm_call.h"

#include <grpc/grpc.h>
#include <string.h>

#include "bytebuf.h"
#include "log.h"
#include "remotemedia/v1/pipeline_service.pb-c.h"
#include "rm/clock.h"
#include "self_call.h"

/* The payload crosses the view and borrowing paths of real audio (RM_VIEW_MIN_BYTES). */
#define WARM_SAMPLES (16 * 1024)
#define WARM_DEADLINE_MS 10000

/* How many samples the warm call sends: WARM_SAMPLES, or fewer where the limits allow less
 * (a request keeps within half of max-message-bytes, the rest is its framing). */
static size_t warm_samples(const rm_config_t *cfg) {
  uint64_t n = WARM_SAMPLES;
  uint64_t by_bytes = cfg->max_input_bytes / sizeof(float);
  uint64_t by_message = cfg->max_message_bytes / 2 / sizeof(float);
  if (n > cfg->max_audio_samples)
    n = cfg->max_audio_samples;
  if (n > by_bytes)
    n = by_bytes;
  if (n > by_message)
    n = by_message;
  return n ? (size_t)n : 1;
}

/* The warm call's request: a PassThrough of n (at most WARM_SAMPLES) f32 samples of
 * silence. */
static grpc_byte_buffer *warm_request(size_t n) {
  static float samples[WARM_SAMPLES];
  Remotemedia__V1__NodeManifest node = REMOTEMEDIA__V1__NODE_MANIFEST__INIT;
  node.id = "warm";
  node.node_type = "PassThrough";
  Remotemedia__V1__NodeManifest *nodes[] = {&node};
  Remotemedia__V1__PipelineManifest man = REMOTEMEDIA__V1__PIPELINE_MANIFEST__INIT;
  man.name = "warm-call";
  man.nodes = nodes;
  man.n_nodes = 1;
  Remotemedia__V1__AudioBuffer audio = REMOTEMEDIA__V1__AUDIO_BUFFER__INIT;
  audio.samples.data = (uint8_t *)samples;
  audio.samples.len = n * sizeof samples[0];
  audio.sample_rate = 16000;
  audio.channels = 1;
  audio.format = REMOTEMEDIA__V1__AUDIO_FORMAT__AUDIO_FORMAT_F32;
  Remotemedia__V1__DataBuffer data = REMOTEMEDIA__V1__DATA_BUFFER__INIT;
  data.kind_case = REMOTEMEDIA__V1__DATA_BUFFER__KIND_AUDIO;
  data.audio = &audio;
  Remotemedia__V1__ExecuteRequest__InputsEntry in =
      REMOTEMEDIA__V1__EXECUTE_REQUEST__INPUTS_ENTRY__INIT;
  in.key = "warm";
  in.value = &data;
  Remotemedia__V1__ExecuteRequest__InputsEntry *ins[] = {&in};
  Remotemedia__V1__ExecuteRequest req = REMOTEMEDIA__V1__EXECUTE_REQUEST__INIT;
  req.manifest = &man;
  req.inputs = ins;
  req.n_inputs = 1;
  req.enable_metrics = 1;
  return rm_bytebuf_pack(&req.base);
}

void rm_warm_call(rm_server_t *s) {
  const rm_config_t *cfg = rm_server_config(s);
  if (!cfg->warm_call)
    return;
  /* a fresh process's first call faults in the code and data of the transport and the call
   * path: ~2 ms of CPU on this machine, which would otherwise be a client's */
  const char *impossible = rm_self_call_impossible(s);
  if (impossible) {
    RM_LOG(RM_LOG_INFO, "warm_call", "{s:s}", "skipped", impossible);
    return;
  }
  char target[512];
  rm_self_call_target(s, target, sizeof target);
  rm_server_set_own_call(s, 1);
  uint64_t t0 = rm_clock_ns();
  size_t received = 0;
  /* with tokens, one of them: the whole call path is warmed, not only up to the refusal */
  grpc_byte_buffer *request = warm_request(warm_samples(cfg));
  grpc_status_code code = rm_self_call(s, "/remotemedia.v1.PipelineService/ExecutePipeline",
                                       request, WARM_DEADLINE_MS, NULL, &received, NULL);
  grpc_byte_buffer_destroy(request);
  uint64_t ns = rm_clock_ns() - t0;
  rm_server_set_own_call(s, 0);
  RM_LOG(code == GRPC_STATUS_OK ? RM_LOG_INFO : RM_LOG_WARN, "warm_call", "{s:s, s:i, s:I, s:f}",
         "target", target, "code", (int)code, "response_bytes", (json_int_t)received, "ms",
         (double)ns / 1e6);
}
