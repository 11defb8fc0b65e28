/* warm_call.c - the server's own first call, made before it reports SERVING. */
#include "warm_call.h"

#include <arpa/inet.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <stdio.h>
#include <string.h>

#include "auth.h"
#include "bytebuf.h"
#include "grpc_unary.h"
#include "log.h"
#include "remotemedia/v1/pipeline_service.pb-c.h"
#include "rm/clock.h"

/* The payload crosses the view and borrowing paths of real audio (RM_VIEW_MIN_BYTES). */
#define WARM_SAMPLES (16 * 1024)
#define WARM_DEADLINE_MS 10000

/* The address a client on this host reaches `listen` at, as a gRPC target: a wildcard host
 * as 127.0.0.1 (gRPC listens on [::] dual-stack, or on 0.0.0.0 where IPv6 is off), the port
 * the bound one. Numeric addresses are given as ipv4:/ipv6: targets, which need no resolver
 * (the DNS resolver's c-ares keeps a few bytes for good); a host name as it is. */
static void local_target(const char *listen, int port, char *out, size_t cap) {
  if (!strncmp(listen, "unix:", 5) || !strncmp(listen, "unix-abstract:", 14)) {
    snprintf(out, cap, "%s", listen);
    return;
  }
  char host[256], given_port[8];
  struct in_addr a4;
  struct in6_addr a6;
  /* a host that does not split (a name too long to bind to) is taken as a wildcard */
  if (rm_config_split_address(listen, host, sizeof host, given_port, sizeof given_port) ||
      !strcmp(host, "0.0.0.0") || !strcmp(host, "::"))
    snprintf(out, cap, "ipv4:127.0.0.1:%d", port);
  else if (inet_pton(AF_INET, host, &a4) == 1)
    snprintf(out, cap, "ipv4:%s:%d", host, port);
  else if (inet_pton(AF_INET6, host, &a6) == 1)
    snprintf(out, cap, "ipv6:[%s]:%d", host, port);
  else
    snprintf(out, cap, "%s:%d", host, port);
}

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

/* One ExecutePipeline call of the warm request with `samples` samples to target on its own
 * channel: its status code, and the response's size in *received (0: none). */
static grpc_status_code call_once(const char *target, size_t samples, const char *token,
                                  size_t *received) {
  grpc_channel_credentials *creds = grpc_insecure_credentials_create();
  /* straight to the port: an http_proxy in the environment is for the clients' traffic */
  grpc_arg no_proxy = {
      .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_ENABLE_HTTP_PROXY, .value.integer = 0};
  grpc_channel_args args = {1, &no_proxy};
  grpc_channel *ch = grpc_channel_create(target, creds, &args);
  grpc_channel_credentials_release(creds);
  grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
  gpr_timespec deadline = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                       gpr_time_from_millis(WARM_DEADLINE_MS, GPR_TIMESPAN));
  grpc_call *call = grpc_channel_create_call(
      ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
      grpc_slice_from_static_string("/remotemedia.v1.PipelineService/ExecutePipeline"), NULL,
      deadline, NULL);
  grpc_byte_buffer *request = warm_request(samples), *response = NULL;
  grpc_metadata_array trailing;
  grpc_metadata_array_init(&trailing);
  grpc_status_code code = GRPC_STATUS_UNKNOWN;
  grpc_slice details = grpc_empty_slice();
  grpc_metadata auth = {.key = grpc_slice_from_static_string("authorization"),
                        .value = grpc_slice_from_copied_string(token ? token : "")};
  int completed;
  if (rm__grpc_unary(call, cq, &auth, token ? 1 : 0, 0, request, &response, &code, &details,
                     &trailing, &completed) != GRPC_CALL_OK)
    code = GRPC_STATUS_INTERNAL;
  *received = response ? grpc_byte_buffer_length(response) : 0;
  grpc_byte_buffer_destroy(response);
  grpc_byte_buffer_destroy(request);
  grpc_slice_unref(details);
  grpc_slice_unref(auth.value);
  grpc_metadata_array_destroy(&trailing);
  grpc_call_unref(call);
  grpc_channel_destroy(ch);
  grpc_completion_queue_shutdown(cq);
  while (grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type !=
         GRPC_QUEUE_SHUTDOWN)
    ;
  grpc_completion_queue_destroy(cq);
  return code;
}

void rm_warm_call(rm_server_t *s) {
  const rm_config_t *cfg = rm_server_config(s);
  if (!cfg->warm_call)
    return;
  /* a fresh process's first call faults in the code and data of the transport and the call
   * path: ~2 ms of CPU on this machine, which would otherwise be a client's */
  if (*cfg->tls_cert) {
    RM_LOG(RM_LOG_INFO, "warm_call", "{s:s}", "skipped",
           "TLS: the server holds no client identity");
    return;
  }
  char target[512];
  local_target(cfg->listen, rm_server_port(s), target, sizeof target);
  rm_server_set_own_call(s, 1);
  uint64_t t0 = rm_clock_ns();
  size_t received = 0;
  /* with tokens, one of them: the whole call path is warmed, not only up to the refusal */
  char bearer[sizeof "Bearer " + RM_AUTH_TOKEN_MAX];
  int token = !rm_server_copy_token(s, bearer + 7, sizeof bearer - 7);
  if (token)
    memcpy(bearer, "Bearer ", 7);
  grpc_status_code code = call_once(target, warm_samples(cfg), token ? bearer : NULL, &received);
  if (token) /* no copy of a token is left on the stack */
    explicit_bzero(bearer, sizeof bearer);
  uint64_t ns = rm_clock_ns() - t0;
  rm_server_set_own_call(s, 0);
  RM_LOG(code == GRPC_STATUS_OK ? RM_LOG_INFO : RM_LOG_WARN, "warm_call", "{s:s, s:i, s:I, s:f}",
         "target", target, "code", (int)code, "response_bytes", (json_int_t)received, "ms",
         (double)ns / 1e6);
}
