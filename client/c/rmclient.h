/* rmclient.h - librmclient: a thin C client for the remotemedia pipeline execution server
 * (remotemedia.v1.PipelineService, grpc.health.v1.Health) over the gRPC C core.
 *
 * Usage:
 *
 *   rm_client_options_t opts = {0};
 *   opts.target = "localhost:50051";
 *   rm_client_t *client;
 *   rm_client_error_t err;
 *   if (rm_client_new(&opts, &client, &err) < 0) { ...err.message... }
 *   rm_client_input_t in = {"src", rm_client_buffer_audio(samples, bytes, 48000, 1,
 *                                                         RM_CLIENT_F32)};
 *   rm_client_exec_opts_t eo = {.timeout_ms = 5000, .enable_metrics = 1};
 *   rm_client_result_t *res;
 *   if (rm_client_execute(client, manifest_json, &in, 1, &eo, &res, &err) < 0)
 *     fprintf(stderr, "%s (%s) node %s: %s\n", rm_client_status_name(err.status),
 *             err.kind, err.node_id, err.message);
 *   const rm_client_output_t *out = rm_client_result_find(res, "g");
 *   json_t *metrics = rm_client_result_metrics_json(res);    (the seed's JSON keys)
 *   ...
 *   json_decref(metrics);
 *   rm_client_result_free(res);
 *   rm_client_free(client);
 *
 * Threads: an rm_client_t owns one gRPC channel (one HTTP/2 connection, or one per
 * backend with a load-balancing policy). Every call function may run concurrently on one
 * client from any number of threads: each call creates its own completion queue and
 * blocks only its caller. rm_client_free() must not race with calls on the same client.
 * Results and the messages returned are owned by the caller and independent of the
 * client (they may outlive it); a result may be read from several threads at once.
 *
 * Errors: every fallible function returns 0 or a negative RM_CLIENT_E* code, and fills
 * the optional rm_client_error_t with the detail. When the server (or the gRPC core)
 * ended the call with a non-OK status the code is RM_CLIENT_ESTATUS and err->status and
 * err->message carry the status; err->reason, domain, kind, node_id, field, request_id
 * and the field violations come from the standard grpc-status-details-bin trailer (a
 * google.rpc.Status with ErrorInfo and BadRequest), or, from a server that does not send
 * it, from the rm-error-kind / rm-failing-node / rm-field trailers.
 *
 * Retries: ExecutePipeline (a pure function of its request) is retried by the gRPC core on
 * UNAVAILABLE (no server reachable, a draining replica) and RESOURCE_EXHAUSTED (a full
 * server), with exponential backoff, through the channel's default service config: see
 * rm_client_retry_t. The server marks the RESOURCE_EXHAUSTED a retry cannot fix (a
 * per-request limit) with grpc-retry-pushback-ms: -1, and the core then does not retry.
 *
 * Out of memory: functions release what they had built and return RM_CLIENT_ENOMEM; this
 * library never aborts, exits or prints (the gRPC core itself aborts when one of its own
 * allocations fails). */
#ifndef RMCLIENT_H
#define RMCLIENT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define RM_CLIENT_API __attribute__((visibility("default")))
#else
#define RM_CLIENT_API
#endif

/* The wire messages: include "remotemedia/v1/pipeline_service.pb-c.h" (installed with
 * this header) to read their fields. */
struct Remotemedia__V1__ExecuteRequest;
struct Remotemedia__V1__ExecuteResponse;
struct Remotemedia__V1__PipelineMetrics;
struct Remotemedia__V1__ListNodeTypesResponse;
struct Remotemedia__V1__GetVersionResponse;
struct Remotemedia__V1__ValidateResponse;
struct Remotemedia__V1__StreamReady;

/* ------------------------------------------------------------------ errors */

typedef enum rm_client_errcode {
  RM_CLIENT_OK = 0,
  RM_CLIENT_EINVAL = -1,    /* a bad argument or option; nothing was sent */
  RM_CLIENT_ENOMEM = -2,    /* an allocation failed */
  RM_CLIENT_EIO = -3,       /* a file named in the options cannot be read */
  RM_CLIENT_EMANIFEST = -4, /* the manifest JSON is malformed; nothing was sent */
  RM_CLIENT_ESTATUS = -5,   /* the call ended with a non-OK gRPC status (err->status) */
  RM_CLIENT_EPROTO = -6,    /* an OK answer not handed over: it does not decode, or holds a
                             * string with a NUL byte or not UTF-8, an inconsistent output
                             * item or a metrics number that is not finite (err says which);
                             * a stream that gets one is cancelled */
  RM_CLIENT_EINTERNAL = -7, /* the gRPC core refused an operation (a bug) */
  RM_CLIENT_EEND = -8,      /* a stream ended with status OK: there are no more results */
  RM_CLIENT_ETIMEDOUT = -9, /* rm_client_stream_recv's wait passed; the stream goes on */
} rm_client_errcode_t;

#define RM_CLIENT_KIND_MAX 64
#define RM_CLIENT_NODE_MAX 128
#define RM_CLIENT_FIELD_MAX 64
#define RM_CLIENT_MSG_MAX 512
#define RM_CLIENT_DOMAIN_MAX 64
#define RM_CLIENT_REQUEST_ID_MAX 129
#define RM_CLIENT_VIOLATIONS_MAX 4
#define RM_CLIENT_PATH_MAX 256

/* One google.rpc.BadRequest field violation: the path of the bad field in the request
 * ("manifest.nodes[g].params.db", "inputs[src].sample_rate") and why. */
typedef struct rm_client_violation {
  char field[RM_CLIENT_PATH_MAX];
  char description[RM_CLIENT_MSG_MAX];
} rm_client_violation_t;

/* Detail of a failure. Callers allocate it (usually on the stack); functions fill it
 * only when they fail (all fields, empty strings where there is nothing to say). */
typedef struct rm_client_error {
  int code;                         /* the RM_CLIENT_E* code returned */
  int status;                       /* gRPC status code (grpc_status_code); 0 = no call
                                     * status (a local error) */
  char kind[RM_CLIENT_KIND_MAX];    /* the error kind: "invalid_params", ... (ErrorInfo
                                     * reason in lower case, else rm-error-kind) */
  char node_id[RM_CLIENT_NODE_MAX]; /* ErrorInfo metadata "node", else rm-failing-node */
  char field[RM_CLIENT_FIELD_MAX];  /* ErrorInfo metadata "field", else rm-field: the param
                                     * key or input field */
  char message[RM_CLIENT_MSG_MAX];  /* the status message or a local explanation */
  /* from grpc-status-details-bin (all empty/0 when the status carried none) */
  int has_details;                           /* the trailer was there and decoded */
  char reason[RM_CLIENT_KIND_MAX];           /* ErrorInfo.reason: "INVALID_PARAMS", ... */
  char domain[RM_CLIENT_DOMAIN_MAX];         /* ErrorInfo.domain: "remotemedia.v1" */
  char request_id[RM_CLIENT_REQUEST_ID_MAX]; /* ErrorInfo metadata "request_id": the
                                              * x-request-id the call sent */
  size_t n_violations;                       /* BadRequest field violations (the first
                                              * RM_CLIENT_VIOLATIONS_MAX) */
  rm_client_violation_t violations[RM_CLIENT_VIOLATIONS_MAX];
} rm_client_error_t;

/* Stable name of an RM_CLIENT_E* code ("status", "invalid_argument", ...); never NULL. */
RM_CLIENT_API const char *rm_client_strerror(int code);
/* Canonical name of a gRPC status code ("OK", "INVALID_ARGUMENT", ...; "UNKNOWN" for a
 * value outside 0..16). Never NULL. */
RM_CLIENT_API const char *rm_client_status_name(int status);

/* The library's version, e.g. "0.1.0". */
RM_CLIENT_API const char *rm_client_version(void);

/* ------------------------------------------------------------------ the client */

typedef struct rm_client rm_client_t;

/* The retry policy of ExecutePipeline, the same as the Python client's RetryPolicy. A
 * zeroed struct is the default: up to 4 attempts on UNAVAILABLE or RESOURCE_EXHAUSTED, the
 * n-th retry after a random wait in [0, min(100 ms * 2^(n-1), 2 s)], requests up to 16 MiB
 * kept for retrying (larger ones are sent once). */
typedef struct rm_client_retry {
  int disable;               /* non-zero: no retries, the first failure is returned */
  int max_attempts;          /* the first call and its retries, 2..5; 0 = 4 */
  int initial_backoff_ms;    /* 0 = 100 */
  int max_backoff_ms;        /* 0 = 2000; >= initial_backoff_ms */
  double backoff_multiplier; /* 0 = 2.0; > 0 */
  const char *codes;         /* status names retried, comma-separated (blanks around a
                              * name ignored); NULL = "UNAVAILABLE,RESOURCE_EXHAUSTED"; ""
                              * is EINVAL (use disable) */
  int per_rpc_buffer_bytes;  /* 0 = 16 MiB */
} rm_client_retry_t;

/* Connection options. A zeroed struct with `target` set is a plaintext client with the
 * defaults; every other field is optional. Strings are copied by rm_client_new. */
typedef struct rm_client_options {
  const char *target;        /* "host:port" or a gRPC target URI ("dns:///svc:50051") */
  const char *token;         /* sent as "authorization: Bearer <token>" on every call;
                              * printable ASCII (0x20-0x7E), as gRPC metadata must be */
  int tls;                   /* non-zero: TLS. Implied by any tls_* field below. */
  const char *tls_ca_file;   /* PEM roots that verify the server; NULL = gRPC defaults */
  const char *tls_cert_file; /* mutual TLS: PEM client certificate chain ... */
  const char *tls_key_file;  /* ... and its private key (both or neither). Each must hold
                              * a PEM block of its kind ("-----BEGIN CERTIFICATE-----",
                              * TRUSTED or X509 CERTIFICATE too; "-----BEGIN ... PRIVATE
                              * KEY-----"), no NUL byte, every certificate block must parse
                              * and the (unencrypted) key must parse and match the chain's
                              * first certificate, or EINVAL */
  const char *tls_ca_pem;    /* the same three as PEM text; each wins over its _file */
  const char *tls_cert_pem;
  const char *tls_key_pem;
  const char *tls_server_name; /* name the server certificate must carry when it is not
                                * the target's host (e.g. connecting by IP address) */
  int64_t default_timeout_ms;  /* deadline of calls that pass timeout 0; 0 = none */
  int wait_for_ready;          /* calls wait (until their deadline) for the channel to
                                * connect instead of failing UNAVAILABLE at once */
  int max_message_bytes;       /* largest message sent or received; 0 = 64 MiB */
  const char *lb_policy;       /* "round_robin", "pick_first"; NULL = gRPC's default */
  int keepalive_time_ms;       /* ping an idle connection this often; 0 = never */
  rm_client_retry_t retry;     /* retries of ExecutePipeline; zeroed = the defaults */
} rm_client_options_t;

/* Creates a client and its channel. Connecting is lazy: the first call connects, so an
 * unreachable server shows as UNAVAILABLE on the calls, not here. Returns 0 and *out, or
 * RM_CLIENT_EINVAL (no target, cert without key, a retry field out of range or retry.codes
 * without a status name, a token that is not printable ASCII, a tls_* file or text without
 * a PEM block of its kind, with a certificate block that does not parse (the message gives
 * its number and line), a key that does not parse or does not match the certificate, ...;
 * the message names the option), RM_CLIENT_EIO (a PEM file
 * cannot be read), RM_CLIENT_ENOMEM; *out is then untouched. Any thread. */
RM_CLIENT_API int rm_client_new(const rm_client_options_t *opts, rm_client_t **out,
                                rm_client_error_t *err);
/* Destroys the channel. No call on c may be running or start afterwards. NULL is a no-op. */
RM_CLIENT_API void rm_client_free(rm_client_t *c);

/* Timeouts of the call functions: > 0 is the call's deadline in milliseconds from now,
 * 0 means the client's default_timeout_ms, < 0 means no deadline. */

/* ------------------------------------------------------------------ data buffers */

/* Values match remotemedia.v1.DataBuffer's oneof field numbers. */
typedef enum rm_client_kind {
  RM_CLIENT_AUDIO = 1,
  RM_CLIENT_TENSOR = 2,
  RM_CLIENT_JSON = 3,
  RM_CLIENT_TEXT = 4,
  RM_CLIENT_BINARY = 5,
} rm_client_kind_t;

/* Values match remotemedia.v1.AudioFormat. Samples are interleaved little-endian. */
typedef enum rm_client_audio_format {
  RM_CLIENT_F32 = 1,
  RM_CLIENT_I16 = 2,
  RM_CLIENT_I32 = 3,
  RM_CLIENT_F64 = 4,
} rm_client_audio_format_t;

/* Values match remotemedia.v1.TensorDtype. */
typedef enum rm_client_dtype {
  RM_CLIENT_DTYPE_F32 = 1,
  RM_CLIENT_DTYPE_F64 = 2,
  RM_CLIENT_DTYPE_I32 = 3,
  RM_CLIENT_DTYPE_I64 = 4,
  RM_CLIENT_DTYPE_U8 = 5,
  RM_CLIENT_DTYPE_I16 = 6,
} rm_client_dtype_t;

/* A view of one data buffer; it never owns its bytes. As an input the caller keeps the
 * bytes alive for the call (they are copied once, into the request). As an output it
 * points into its result and lives as long as the result (kind 0 and no data if the
 * server sent an empty DataBuffer). JSON and TEXT bytes are UTF-8 and NUL-terminated
 * (data[size] == '\0'); inputs of those kinds must be too. */
typedef struct rm_client_buffer {
  rm_client_kind_t kind;
  const void *data;
  size_t size; /* bytes, without the NUL of JSON/TEXT */
  /* audio */
  uint32_t sample_rate; /* Hz */
  uint32_t channels;
  rm_client_audio_format_t format;
  /* tensor: row-major, little-endian */
  rm_client_dtype_t dtype;
  const int64_t *shape;
  size_t ndim;
  /* binary */
  const char *mime_type; /* may be NULL */
} rm_client_buffer_t;

/* Builders for input views (nothing is copied or allocated). */
RM_CLIENT_API rm_client_buffer_t rm_client_buffer_audio(const void *samples, size_t bytes,
                                                        uint32_t sample_rate, uint32_t channels,
                                                        rm_client_audio_format_t format);
RM_CLIENT_API rm_client_buffer_t rm_client_buffer_tensor(const void *data, size_t bytes,
                                                         rm_client_dtype_t dtype,
                                                         const int64_t *shape, size_t ndim);
RM_CLIENT_API rm_client_buffer_t rm_client_buffer_json(const char *json);
RM_CLIENT_API rm_client_buffer_t rm_client_buffer_text(const char *text);
RM_CLIENT_API rm_client_buffer_t rm_client_buffer_binary(const void *data, size_t bytes,
                                                         const char *mime_type);

/* Bytes per sample of an audio format, 0 for an unknown one; and "f32"/"i16"/"i32"/"f64"
 * (NULL for an unknown one). */
RM_CLIENT_API size_t rm_client_audio_format_size(int format);
RM_CLIENT_API const char *rm_client_audio_format_name(int format);
/* Bytes per value of a tensor dtype, 0 for an unknown one; and "f32"/"f64"/"i32"/"i64"/"u8"/
 * "i16" (NULL for an unknown one). */
RM_CLIENT_API size_t rm_client_dtype_size(int dtype);
RM_CLIENT_API const char *rm_client_dtype_name(int dtype);
/* "audio", "tensor", "json", "text", "binary", or "unknown". */
RM_CLIENT_API const char *rm_client_kind_name(int kind);

/* ------------------------------------------------------------------ ExecutePipeline */

/* One input: the buffer fed to the source node `node_id`. */
typedef struct rm_client_input {
  const char *node_id;
  rm_client_buffer_t buffer;
} rm_client_input_t;

/* Per-call limits; 0 = the server's. A request may lower the server's limits, never
 * raise them. */
typedef struct rm_client_limits {
  uint32_t max_nodes;
  uint64_t max_audio_samples;
  uint64_t max_input_bytes;
  uint32_t max_execution_ms;
} rm_client_limits_t;

typedef struct rm_client_exec_opts {
  int64_t timeout_ms;              /* see "Timeouts" above */
  int enable_metrics;              /* ask for the PipelineMetrics message */
  const char *const *output_nodes; /* nodes whose primary output to return; */
  size_t n_output_nodes;           /* none = every sink */
  rm_client_limits_t limits;
  const char *request_id; /* sent as x-request-id; the server echoes it in its error
                           * details (err->request_id). NULL or "" = none. Printable ASCII
                           * (0x20-0x7E): anything else is RM_CLIENT_EINVAL, nothing sent */
} rm_client_exec_opts_t;

typedef struct rm_client_result rm_client_result_t;

/* What one node produced on one port. */
typedef struct rm_client_output {
  const char *key; /* node id, or "node_id.port" for a non-primary port */
  const char *node_id;
  const char *port;
  const rm_client_buffer_t *items;
  size_t n_items;
} rm_client_output_t;

/* Runs a pipeline on the server. manifest_json is the JSON form of a manifest:
 *   {"name": "...", "nodes": [{"id", "node_type", "params": {...} | "<json text>"}],
 *    "connections": [{"from", "to", "from_port"?, "to_port"?}]}
 * (unknown keys are RM_CLIENT_EMANIFEST, as for the server's own loader). inputs may be
 * NULL when n_inputs is 0; opts may be NULL (defaults). Returns 0 and a new result in
 * *out, or an error (*out untouched): RM_CLIENT_EINVAL, RM_CLIENT_EMANIFEST,
 * RM_CLIENT_ENOMEM, RM_CLIENT_ESTATUS (INVALID_ARGUMENT, NOT_FOUND, DEADLINE_EXCEEDED,
 * UNAUTHENTICATED, UNAVAILABLE, ...), RM_CLIENT_EPROTO. Blocks until the call ends. */
RM_CLIENT_API int rm_client_execute(rm_client_t *c, const char *manifest_json,
                                    const rm_client_input_t *inputs, size_t n_inputs,
                                    const rm_client_exec_opts_t *opts, rm_client_result_t **out,
                                    rm_client_error_t *err);

/* The same for a request message the caller built (not modified, not retained). */
RM_CLIENT_API int rm_client_execute_request(rm_client_t *c,
                                            const struct Remotemedia__V1__ExecuteRequest *req,
                                            int64_t timeout_ms, rm_client_result_t **out,
                                            rm_client_error_t *err);

/* ValidatePipeline: the dry run of rm_client_execute with the same arguments. The server
 * checks limits, manifest, params and inputs as ExecutePipeline does (same errors) and
 * runs nothing. Returns 0 and the response in *out (pipeline_name, schedule: node ids in
 * execution order, predicted_memory_bytes), freed with rm_client_validation_free (NULL is
 * a no-op); errors as for rm_client_execute. Not retried. */
RM_CLIENT_API int rm_client_validate(rm_client_t *c, const char *manifest_json,
                                     const rm_client_input_t *inputs, size_t n_inputs,
                                     const rm_client_exec_opts_t *opts,
                                     struct Remotemedia__V1__ValidateResponse **out,
                                     rm_client_error_t *err);
RM_CLIENT_API void rm_client_validation_free(struct Remotemedia__V1__ValidateResponse *m);

/* The serialized ExecuteRequest rm_client_execute would send for these arguments, for
 * tools that replay it (ghz -B, h2load): 0 and *out (malloc: free() it), *len, or
 * RM_CLIENT_EINVAL / EMANIFEST / ENOMEM. No client needed; opts->timeout_ms is unused. */
RM_CLIENT_API int rm_client_request_pack(const char *manifest_json, const rm_client_input_t *inputs,
                                         size_t n_inputs, const rm_client_exec_opts_t *opts,
                                         uint8_t **out, size_t *len, rm_client_error_t *err);

/* Outputs, sorted by key, in one array: rm_client_result_output(r, 0) + i is output i. */
RM_CLIENT_API size_t rm_client_result_count(const rm_client_result_t *r);
RM_CLIENT_API const rm_client_output_t *rm_client_result_output(const rm_client_result_t *r,
                                                                size_t i);
/* The output with this key, or NULL. */
RM_CLIENT_API const rm_client_output_t *rm_client_result_find(const rm_client_result_t *r,
                                                              const char *key);
RM_CLIENT_API const char *rm_client_result_pipeline_name(const rm_client_result_t *r);
/* The metrics message, or NULL when the call did not ask for metrics. Borrowed. */
RM_CLIENT_API const struct Remotemedia__V1__PipelineMetrics *
rm_client_result_metrics(const rm_client_result_t *r);
/* The metrics as the seed's JSON object (new reference: json_decref it), or NULL when
 * the call did not ask for metrics (or on OOM). */
RM_CLIENT_API json_t *rm_client_result_metrics_json(const rm_client_result_t *r);
/* The whole response message (node_results, ...). Borrowed. */
RM_CLIENT_API const struct Remotemedia__V1__ExecuteResponse *
rm_client_result_response(const rm_client_result_t *r);
/* NULL is a no-op. */
RM_CLIENT_API void rm_client_result_free(rm_client_result_t *r);

/* The seed's JSON object for a metrics message:
 *   {pipeline_id, total_executions, total_duration_us, total_duration_ms, peak_memory_bytes,
 *    peak_memory_mb, metrics_overhead_us, node_metrics: [{node_id, execution_count,
 *    success_count, error_count, success_rate, total_duration_us, avg_duration_us,
 *    min_duration_us, max_duration_us}]}
 * Counts are JSON integers, durations and rates reals. New reference, NULL on OOM. */
RM_CLIENT_API json_t *rm_client_metrics_to_json(const struct Remotemedia__V1__PipelineMetrics *m);

/* ------------------------------------------------------------------ StreamPipeline */

/* A streaming session (remotemedia.v1.PipelineService/StreamPipeline): one pipeline whose
 * node state lives from the first chunk to the last.
 *
 *   rm_client_stream_t *s;
 *   rm_client_stream_opts_t so = {.enable_metrics = 1};
 *   if (rm_client_stream_open(client, manifest_json, &so, &s, &err) < 0) ...
 *   for (uint64_t seq = 1; ...; seq++) {
 *     rm_client_buffer_t chunk = rm_client_buffer_audio(p, bytes, 48000, 1, RM_CLIENT_F32);
 *     rm_client_stream_send(s, NULL, &chunk, seq, &err);       (NULL: the only source)
 *     rm_client_stream_result_t *r;
 *     rm_client_stream_recv(s, &r, -1, &err);                  (one result per chunk)
 *     ... rm_client_stream_result_find(r, "vad") ...
 *     rm_client_stream_result_free(r);
 *   }
 *   json_t *metrics;                                          (the seed's JSON, or NULL)
 *   rm_client_stream_close(s, &metrics, &err);
 *   rm_client_stream_free(s);
 *
 * The server answers every data chunk with exactly one result (possibly without outputs),
 * a flush with one result whose flushed flag is set, and a close with the flushed result,
 * the final metrics (when enabled) and then status OK. An error ends the whole stream
 * with a gRPC status: the function that sees it returns RM_CLIENT_ESTATUS with err filled
 * as for rm_client_execute (err->node_id names the node; the failing chunk's sequence
 * number is in the status message), and every later call returns the same error.
 *
 * Threads: a stream is used by one thread at a time, except that one thread may block in
 * rm_client_stream_recv while another sends (send / flush / close_send). Sends do not
 * wait for the server to answer: a send returns once the previous message has been
 * handed to the transport, so gRPC flow control paces a sender that runs far ahead of
 * its reader. A sender that never reads stalls once the server's bounded queue is full:
 * keep a bounded number of chunks unanswered (or read on another thread). */

typedef struct rm_client_stream rm_client_stream_t;
typedef struct rm_client_stream_result rm_client_stream_result_t;

typedef struct rm_client_stream_opts {
  int64_t timeout_ms;              /* deadline of the whole session; see "Timeouts" */
  int enable_metrics;              /* final metrics on close (and periodic ones below) */
  const char *const *output_nodes; /* nodes whose primary output results carry; */
  size_t n_output_nodes;           /* none = every sink */
  rm_client_limits_t limits;       /* per chunk (max_input_bytes, max_audio_samples,
                                    * max_execution_ms) */
  uint32_t metrics_every_chunks;   /* periodic metrics every N chunks; 0 = none */
  uint32_t metrics_every_ms;       /* ... or every T ms; 0 = none */
  const char *request_id;          /* sent as x-request-id; NULL = none; printable
                                    * ASCII, else RM_CLIENT_EINVAL */
} rm_client_stream_opts_t;

/* Opens a session: sends init (manifest, options) and waits for the server's ready.
 * opts may be NULL (defaults). Returns 0 and a new stream in *out (free it with
 * rm_client_stream_free), or an error with *out untouched: RM_CLIENT_EINVAL,
 * RM_CLIENT_EMANIFEST, RM_CLIENT_ENOMEM, RM_CLIENT_ESTATUS (INVALID_ARGUMENT for a bad
 * manifest, RESOURCE_EXHAUSTED for too many sessions, UNAUTHENTICATED, UNAVAILABLE,
 * UNIMPLEMENTED from a server without streaming, ...), RM_CLIENT_EPROTO. */
RM_CLIENT_API int rm_client_stream_open(rm_client_t *c, const char *manifest_json,
                                        const rm_client_stream_opts_t *opts,
                                        rm_client_stream_t **out, rm_client_error_t *err);
/* The server's ready message (session_id, pipeline_name, sources[] with node_id,
 * node_type and accepted kinds). Borrowed; lives as long as the stream. */
RM_CLIENT_API const struct Remotemedia__V1__StreamReady *
rm_client_stream_ready(const rm_client_stream_t *s);

/* Sends one chunk to source node_id (NULL or "": the pipeline's only source) with its
 * sequence number (strictly increasing; echoed in the result). The bytes are copied
 * before it returns. 0, or RM_CLIENT_EINVAL (a bad view; nothing sent), RM_CLIENT_ENOMEM,
 * RM_CLIENT_ESTATUS (the stream has ended with an error), RM_CLIENT_EEND (it has ended
 * OK, or close_send was called). */
RM_CLIENT_API int rm_client_stream_send(rm_client_stream_t *s, const char *node_id,
                                        const rm_client_buffer_t *buffer, uint64_t sequence,
                                        rm_client_error_t *err);
/* Sends FLUSH: the nodes emit what they hold and start over; answered by one result with
 * rm_client_stream_result_flushed() set. Errors as for send. */
RM_CLIENT_API int rm_client_stream_flush(rm_client_stream_t *s, rm_client_error_t *err);
/* Sends CLOSE and half-closes the stream: the server answers with the flushed result,
 * the final metrics and OK; read them with rm_client_stream_recv until RM_CLIENT_EEND.
 * Errors as for send. */
RM_CLIENT_API int rm_client_stream_close_send(rm_client_stream_t *s, rm_client_error_t *err);

/* The next result, waiting at most timeout_ms (< 0: until the session's deadline).
 * Metrics messages are not results: they are kept (rm_client_stream_metrics) and the
 * wait goes on. Returns 0 and a new result in *out (free with
 * rm_client_stream_result_free), RM_CLIENT_ETIMEDOUT (nothing yet; call again),
 * RM_CLIENT_EEND (the stream ended OK), RM_CLIENT_ESTATUS (it ended with an error),
 * RM_CLIENT_EPROTO, RM_CLIENT_ENOMEM. */
RM_CLIENT_API int rm_client_stream_recv(rm_client_stream_t *s, rm_client_stream_result_t **out,
                                        int64_t timeout_ms, rm_client_error_t *err);

/* close_send (unless done), then reads to the end of the stream: results not read yet
 * are discarded (read them first when they matter). Returns 0 and, when metrics is not
 * NULL, the final metrics as the seed's JSON object in *metrics (new reference; NULL when
 * metrics were not enabled); or an error as for recv. The stream must still be freed. */
RM_CLIENT_API int rm_client_stream_close(rm_client_stream_t *s, json_t **metrics,
                                         rm_client_error_t *err);

/* The latest metrics message received (periodic, or the final one after close), or
 * NULL. Borrowed: valid until the next recv/close. The _json form is a new reference. */
RM_CLIENT_API const struct Remotemedia__V1__PipelineMetrics *
rm_client_stream_metrics(const rm_client_stream_t *s);
RM_CLIENT_API json_t *rm_client_stream_metrics_json(const rm_client_stream_t *s);

/* Cancels the call if it has not ended and frees the stream. NULL is a no-op. */
RM_CLIENT_API void rm_client_stream_free(rm_client_stream_t *s);

/* A result: the data sequence number it answers (for a flush, the last one received
 * before it; 0 when none was), whether it has one (0 only for a flush before any data
 * chunk, which a flush after chunk 0 is not), whether it answers FLUSH/CLOSE, the server's
 * processing time, and its outputs sorted by key (as rm_client_result_*). Results are
 * independent of the stream. */
RM_CLIENT_API uint64_t rm_client_stream_result_sequence(const rm_client_stream_result_t *r);
RM_CLIENT_API int rm_client_stream_result_has_sequence(const rm_client_stream_result_t *r);
RM_CLIENT_API int rm_client_stream_result_flushed(const rm_client_stream_result_t *r);
RM_CLIENT_API uint64_t rm_client_stream_result_processing_ns(const rm_client_stream_result_t *r);
RM_CLIENT_API size_t rm_client_stream_result_count(const rm_client_stream_result_t *r);
RM_CLIENT_API const rm_client_output_t *
rm_client_stream_result_output(const rm_client_stream_result_t *r, size_t i);
RM_CLIENT_API const rm_client_output_t *
rm_client_stream_result_find(const rm_client_stream_result_t *r, const char *key);
/* NULL is a no-op. */
RM_CLIENT_API void rm_client_stream_result_free(rm_client_stream_result_t *r);

/* ------------------------------------------------------------------ other RPCs */

/* ListNodeTypes: every node type with its params and ports. *out is freed with
 * rm_client_node_types_free (NULL is a no-op). Errors as for rm_client_execute. */
RM_CLIENT_API int rm_client_list_node_types(rm_client_t *c, int64_t timeout_ms,
                                            struct Remotemedia__V1__ListNodeTypesResponse **out,
                                            rm_client_error_t *err);
RM_CLIENT_API void rm_client_node_types_free(struct Remotemedia__V1__ListNodeTypesResponse *m);

/* GetVersion: protocol, server and gRPC core versions, services. Freed with
 * rm_client_server_version_free (NULL is a no-op). */
RM_CLIENT_API int rm_client_server_version(rm_client_t *c, int64_t timeout_ms,
                                           struct Remotemedia__V1__GetVersionResponse **out,
                                           rm_client_error_t *err);
RM_CLIENT_API void rm_client_server_version_free(struct Remotemedia__V1__GetVersionResponse *m);

/* Values match grpc.health.v1.HealthCheckResponse.ServingStatus. */
typedef enum rm_client_health {
  RM_CLIENT_HEALTH_UNKNOWN = 0,
  RM_CLIENT_HEALTH_SERVING = 1,
  RM_CLIENT_HEALTH_NOT_SERVING = 2,
  RM_CLIENT_HEALTH_SERVICE_UNKNOWN = 3,
} rm_client_health_t;

/* grpc.health.v1.Health/Check for `service` (NULL or "" = the whole server). Returns 0
 * and the status in *status (a draining server answers NOT_SERVING), or an error (an
 * unknown service is RM_CLIENT_ESTATUS with status NOT_FOUND). */
RM_CLIENT_API int rm_client_health_check(rm_client_t *c, const char *service, int64_t timeout_ms,
                                         rm_client_health_t *status, rm_client_error_t *err);
/* "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN" or "UNKNOWN". */
RM_CLIENT_API const char *rm_client_health_name(int status);

#ifdef __cplusplus
}
#endif
#endif
