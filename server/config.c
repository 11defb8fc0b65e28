/* config.c - table-driven configuration: one row per option serves the flag parser, the
 * environment, the JSON file, --help and the start-up log. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "file_util.h"
#include "log.h"
#include "sysres.h"
#include "rm/alloc.h"
#include "rm_version.h"

typedef enum {
  T_STR,
  T_INT,
  T_I64,
  T_UINT,
  T_BOOL,
  T_BYTES     /* uint64_t with an optional K/M/G (KiB/MiB/GiB) suffix */
} opt_type_t; /* char*, int, int64_t, uint64_t, int, uint64_t */

typedef struct opt {
  const char *name; /* flag without "--", JSON key with '-' replaced by '_' */
  const char *env;
  opt_type_t type;
  size_t offset;
  const char *def; /* textual default */
  int64_t min, max;
  int secret;
  const char *help;
} opt_t;

#define OFF(f) offsetof(rm_config_t, f)
static const opt_t opts[] = {
    {"listen", "RM_LISTEN", T_STR, OFF(listen), "127.0.0.1:50051", 0, 0, 0,
     "address to listen on: host:port, [IPv6]:port or unix:PATH; the port is 0 to 65535 in digits "
     "(use 0.0.0.0:50051 in containers; port 0 picks a free port)"},
    {"threads", "RM_THREADS", T_INT, OFF(threads), "0", 0, 256, 0,
     "completion-queue polling threads (0 = one per two CPUs the process may use, rounded up: "
     "affinity, cgroup quota)"},
    {"workers", "RM_WORKERS", T_INT, OFF(workers), "0", 0, 1024, 0,
     "threads that run heavy pipelines off the polling threads (0 = two per polling thread)"},
    {"request-slots", "RM_REQUEST_SLOTS", T_INT, OFF(request_slots), "64", 1, 4096, 0,
     "outstanding request tags per polling thread"},
    {"max-message-bytes", "RM_MAX_MESSAGE_BYTES", T_UINT, OFF(max_message_bytes), "67108864", 1024,
     INT_MAX, 0, "largest request or response message; larger is RESOURCE_EXHAUSTED"},
    {"max-nodes", "RM_MAX_NODES", T_UINT, OFF(max_nodes), "256", 1, 1000000, 0,
     "most nodes in one pipeline"},
    {"max-audio-samples", "RM_MAX_AUDIO_SAMPLES", T_UINT, OFF(max_audio_samples), "33554432", 1,
     INT64_MAX, 0, "most samples (frames x channels) in one audio buffer, input or produced"},
    {"max-input-bytes", "RM_MAX_INPUT_BYTES", T_UINT, OFF(max_input_bytes), "67108864", 1,
     INT64_MAX, 0, "most payload bytes over all inputs of one request"},
    {"max-items", "RM_MAX_ITEMS", T_UINT, OFF(max_items), "100000", 1, INT64_MAX, 0,
     "most buffers the nodes of one run may produce (chunking into tiny frames is bounded)"},
    {"max-concurrent", "RM_MAX_CONCURRENT", T_UINT, OFF(max_concurrent), "64", 1, 100000, 0,
     "ExecutePipeline calls running at once; more are RESOURCE_EXHAUSTED at once"},
    {"max-execution-ms", "RM_MAX_EXECUTION_MS", T_UINT, OFF(max_execution_ms), "60000", 1, 86400000,
     0, "wall time one pipeline run may take"},
    {"send-timeout-ms", "RM_SEND_TIMEOUT_MS", T_UINT, OFF(send_timeout_ms), "60000", 0, 86400000, 0,
     "a unary response holding 64 KiB or more of the server's memory that the client has not "
     "taken whole in this long is cancelled (DEADLINE_EXCEEDED; 0 = never; a 64 MiB response "
     "needs 9 Mbit/s)"},
    {"inline-max-bytes", "RM_INLINE_MAX_BYTES", T_UINT, OFF(inline_max_bytes), "262144", 0, INT_MAX,
     0, "light pipelines whose request is at most this big run on the polling thread"},
    {"pipeline-cache", "RM_PIPELINE_CACHE", T_BOOL, OFF(pipeline_cache), "true", 0, 1, 0,
     "reuse compiled pipelines for requests whose manifest has the same bytes and limits"},
    {"warm-call", "RM_WARM_CALL", T_BOOL, OFF(warm_call), "false", 0, 1, 0,
     "before reporting SERVING, make one call to itself so the first client's call finds the "
     "call path warm (skipped with TLS)"},
    {"grace-ms", "RM_GRACE_MS", T_UINT, OFF(grace_ms), "10000", 0, 3600000, 0,
     "on SIGTERM/SIGINT, how long in-flight calls may take before they are cancelled"},
    {"auth-token-file", "RM_AUTH_TOKEN_FILE", T_STR, OFF(auth_token_file), "", 0, 0, 0,
     "file of accepted bearer tokens, one per line, each at most 4096 bytes (a longer line is a "
     "start-up error); a regular file of at most 1 MiB; enables auth; SIGHUP re-reads it "
     "(replace it atomically: a new file renamed over it)"},
    {"auth-tokens", "RM_AUTH_TOKENS", T_STR, OFF(auth_tokens), "", 0, 0, 1,
     "comma-separated accepted bearer tokens, each at most 4096 bytes; enables auth (prefer the "
     "file or env)"},
    {"require-auth", "RM_REQUIRE_AUTH", T_BOOL, OFF(require_auth), "false", 0, 1, 0,
     "refuse to start (exit 2) unless auth-token-file or auth-tokens is set, so a missing "
     "token secret cannot silently turn auth off"},
    {"health-needs-token", "RM_HEALTH_NEEDS_TOKEN", T_BOOL, OFF(health_needs_token), "false", 0, 1,
     0,
     "health checks (grpc.health.v1 Check and Watch) need a token like every other method, so a "
     "client without one cannot make the server read any message; probes without a token use "
     "the metrics listener's /healthz and /readyz instead (needs auth-token-file or auth-tokens; "
     "see docs/security.md)"},
    {"tls-cert", "RM_TLS_CERT", T_STR, OFF(tls_cert), "", 0, 0, 0,
     "PEM server certificate chain file; enables TLS (with --tls-key); SIGHUP re-reads it, the "
     "key and the client CA"},
    {"tls-key", "RM_TLS_KEY", T_STR, OFF(tls_key), "", 0, 0, 0, "PEM private key file"},
    {"tls-client-ca", "RM_TLS_CLIENT_CA", T_STR, OFF(tls_client_ca), "", 0, 0, 0,
     "PEM CA bundle to verify client certificates (mutual TLS)"},
    {"tls-require-client-cert", "RM_TLS_REQUIRE_CLIENT_CERT", T_BOOL, OFF(tls_require_client_cert),
     "false", 0, 1, 0, "reject clients without a certificate signed by --tls-client-ca"},
    {"log-level", "RM_LOG_LEVEL", T_STR, OFF(log_level), "info", 0, 0, 0,
     "debug, info (one line per call), warn, error or off"},
    /* observability (issue 12, docs/observability.md) */
    {"log-stream", "RM_LOG_STREAM", T_STR, OFF(log_stream), "stderr", 0, 0, 0,
     "where the JSON log lines go: stderr or stdout"},
    {"metrics-listen", "RM_METRICS_LISTEN", T_STR, OFF(metrics_listen), "", 0, 0, 0,
     "serve Prometheus metrics at http://HOST:PORT/metrics (e.g. 0.0.0.0:9464; port 0 picks a "
     "free one; empty = off)"},
    {"stats-max-pipelines", "RM_STATS_MAX_PIPELINES", T_UINT, OFF(stats_max_pipelines), "100", 0,
     100000, 0,
     "pipeline names counted under their own label (metrics, GetStatistics): the first this "
     "many seen; later ones count as \"other\""},
    {"keepalive-time-ms", "RM_KEEPALIVE_TIME_MS", T_I64, OFF(keepalive_time_ms), "7200000", 1000,
     INT_MAX, 0, "send a keepalive ping after this long without activity"},
    {"keepalive-timeout-ms", "RM_KEEPALIVE_TIMEOUT_MS", T_I64, OFF(keepalive_timeout_ms), "20000",
     1000, INT_MAX, 0, "close the connection if a keepalive ping is not answered in this time"},
    {"keepalive-permit-without-calls", "RM_KEEPALIVE_PERMIT_WITHOUT_CALLS", T_BOOL,
     OFF(keepalive_permit_without_calls), "true", 0, 1, 0,
     "accept client keepalive pings on connections without calls"},
    {"min-ping-interval-ms", "RM_MIN_PING_INTERVAL_MS", T_I64, OFF(min_ping_interval_ms), "10000",
     0, INT_MAX, 0, "least interval between client pings before they count as abuse"},
    {"max-connection-idle-ms", "RM_MAX_CONNECTION_IDLE_MS", T_I64, OFF(max_connection_idle_ms), "0",
     0, INT_MAX, 0, "close connections idle this long (0 = never)"},
    {"max-connection-age-ms", "RM_MAX_CONNECTION_AGE_MS", T_I64, OFF(max_connection_age_ms), "0", 0,
     INT_MAX, 0,
     "send GOAWAY after a connection lived this long, so clients rebalance (0 = never)"},
    {"max-connection-age-grace-ms", "RM_MAX_CONNECTION_AGE_GRACE_MS", T_I64,
     OFF(max_connection_age_grace_ms), "30000", 0, INT_MAX, 0,
     "time calls get to finish after a connection-age GOAWAY"},
    {"max-concurrent-streams", "RM_MAX_CONCURRENT_STREAMS", T_UINT, OFF(max_concurrent_streams),
     "1000", 1, INT_MAX, 0, "HTTP/2 streams per connection"},
    {"max-metadata-bytes", "RM_MAX_METADATA_BYTES", T_UINT, OFF(max_metadata_bytes), "16384", 1024,
     16777216, 0,
     "largest request metadata (headers: names + values + 32 per entry); a call above it is "
     "RESOURCE_EXHAUSTED alone. The connection's hard limit is 4 times this: above it the gRPC "
     "core fails the call itself (see docs/hardening.md)"},
    /* memory budgets (docs/security.md) */
    {"max-memory", "RM_MAX_MEMORY", T_BYTES, OFF(max_memory), "0", 0, INT64_MAX, 0,
     "server-wide memory budget: received requests, responses and every run's memory draw from "
     "it; what does not fit is RESOURCE_EXHAUSTED at once (0 = the cgroup memory limit less "
     "max(1/8 of it, 64 MiB), never below half the limit, else half the physical memory; otherwise "
     "at least 1M; K/M/G "
     "suffixes are KiB/MiB/GiB)"},
    {"max-core-memory", "RM_MAX_CORE_MEMORY", T_BYTES, OFF(max_core_memory), "0", 0, INT64_MAX, 0,
     "a resource quota on the gRPC core's own buffers (connections, request messages it takes "
     "in before the server sees their call): past it the core closes idle connections and "
     "cancels streams, any stream, not only a flood's (0 = none; a last resort against floods "
     "of big messages on a server without tokens, set below the container's limit and above "
     "max-memory plus max-message-bytes; see docs/security.md)"},
    {"max-request-memory", "RM_MAX_REQUEST_MEMORY", T_BYTES, OFF(max_request_memory), "256M",
     1 << 20, INT64_MAX, 0,
     "memory one run may allocate (buffers, node state, library memory); a request's "
     "limits.max_memory_bytes may lower it (capped at max-memory)"},
    {"warm-bytes", "RM_WARM_BYTES", T_BYTES, OFF(warm_bytes), "8M", 0, 12 << 20, 0,
     "heap each polling thread and worker pre-faults at start-up and the allocator keeps, so "
     "the first big request does not fault in every page it is copied into (0 = none; at most "
     "12M, under the 16 MiB the heaps keep free; capped at max-memory/8; one heap's worth per "
     "malloc arena in use is idle RSS, see docs/security.md, Warm heaps)"},
    {"memory-wait-ms", "RM_MEMORY_WAIT_MS", T_UINT, OFF(memory_wait_ms), "0", 0, 600000, 0,
     "how long a run on a worker waits for its memory reservation when max-memory is in use "
     "before it is RESOURCE_EXHAUSTED (0 = refuse at once; runs on polling threads never "
     "wait)"},
    /* streaming sessions (docs/streaming.md) */
    {"max-sessions", "RM_MAX_SESSIONS", T_UINT, OFF(max_sessions), "256", 1, 100000, 0,
     "StreamPipeline sessions open at once (apart from max-concurrent); more are "
     "RESOURCE_EXHAUSTED at init"},
    {"session-idle-timeout-ms", "RM_SESSION_IDLE_TIMEOUT_MS", T_UINT, OFF(session_idle_timeout_ms),
     "30000", 1, 86400000, 0,
     "a session whose client sends nothing for this long ends with DEADLINE_EXCEEDED"},
    {"max-session-ms", "RM_MAX_SESSION_MS", T_UINT, OFF(max_session_ms), "0", 0, 31536000000LL, 0,
     "longest a session may stay open; then it ends with RESOURCE_EXHAUSTED (0 = no limit)"},
};
#define N_OPTS (sizeof opts / sizeof opts[0])

int rm__config_fail(rm_error_t *err, int code, const char *field, const char *fmt, ...) {
  if (!err)
    return code;
  err->code = code;
  err->retry_later = 0;
  err->node_id[0] = '\0';
  snprintf(err->field, sizeof err->field, "%s", field ? field : "");
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->message, sizeof err->message, fmt, ap);
  va_end(ap);
  return code;
}

int rm__config_read_file(const char *what, const char *field, const char *path, char **text,
                         size_t *len, rm_error_t *err) {
  if ((*text = rm__file_read_regular(path, RM_OPERATOR_FILE_MAX, len, rm_realloc, rm_free)))
    return 0;
  int e = errno;
  if (e == ENOMEM)
    return rm__config_fail(err, RM_ENOMEM, field, "out of memory");
  if (e == EFBIG) /* the content, not the file system: a configuration error (exit 2) */
    return rm__config_fail(err, RM_EPARAM, field, "%s %s is larger than the %d bytes allowed", what,
                           path, RM_OPERATOR_FILE_MAX);
  return rm__config_fail(err, RM_EIO, field, "%s %s cannot be read: %s", what, path,
                         e == EISDIR   ? "a directory"
                         : e == EINVAL ? "not a regular file"
                                       : strerror(e));
}

static int out_of_memory(rm_error_t *err, const char *field) {
  return rm__config_fail(err, RM_ENOMEM, field, "out of memory");
}

static const char *type_name(opt_type_t t) {
  return t == T_STR     ? "a string"
         : t == T_BOOL  ? "a boolean"
         : t == T_BYTES ? "a size"
                        : "an integer";
}

static int parse_bool(const char *v, int *out) {
  if (!strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "on"))
    return *out = 1, 0;
  if (!strcmp(v, "0") || !strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "off"))
    return *out = 0, 0;
  return -1;
}

/* Sets option o from text; `source` names where it came from for the error message. */
static int set_text(rm_config_t *cfg, const opt_t *o, const char *v, const char *source,
                    rm_error_t *err) {
  void *field = (char *)cfg + o->offset;
  switch (o->type) {
  case T_STR: {
    char *copy = rm_strdup(v);
    if (!copy)
      return out_of_memory(err, o->name);
    rm_free(*(char **)field);
    *(char **)field = copy;
    return 0;
  }
  case T_BOOL: {
    int b;
    if (parse_bool(v, &b))
      return rm__config_fail(err, RM_EPARAM, o->name, "%s: %s must be true or false, got '%s'",
                             source, o->name, v);
    *(int *)field = b;
    return 0;
  }
  case T_BYTES: {
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    int digits = end != v;
    unsigned shift = 0;
    if (*end == 'K' || *end == 'k')
      shift = 10;
    else if (*end == 'M' || *end == 'm')
      shift = 20;
    else if (*end == 'G' || *end == 'g')
      shift = 30;
    if (shift)
      end += !strcmp(end + 1, "iB") || !strcmp(end + 1, "B") ? 1 + strlen(end + 1) : 1;
    if (errno || !digits || *end || *v == '-' || n > (unsigned long long)o->max >> shift ||
        (n << shift) < (unsigned long long)o->min)
      return rm__config_fail(err, RM_EPARAM, o->name,
                             "%s: %s must be a size in %lld..%lld bytes (suffix K, M or G for "
                             "KiB, MiB, GiB), got '%s'",
                             source, o->name, (long long)o->min, (long long)o->max, v);
    *(uint64_t *)field = (uint64_t)n << shift;
    return 0;
  }
  case T_INT:
  case T_I64:
  case T_UINT: {
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (errno || end == v || *end || n < o->min || n > o->max)
      return rm__config_fail(err, RM_EPARAM, o->name,
                             "%s: %s must be an integer in %lld..%lld, got '%s'", source, o->name,
                             (long long)o->min, (long long)o->max, v);
    if (o->type == T_INT)
      *(int *)field = (int)n;
    else if (o->type == T_I64)
      *(int64_t *)field = n;
    else
      *(uint64_t *)field = (uint64_t)n;
    return 0;
  }
  }
  return rm__config_fail(err, RM_EINTERNAL, o->name, "%s: %s has no type", source, o->name);
}

/* An option name as flags spell it (max-nodes) or as JSON keys do (max_nodes). */
static void spelled(const char *name, char from, char to, char *out, size_t cap) {
  snprintf(out, cap, "%s", name);
  for (char *c = out; *c; c++)
    if (*c == from)
      *c = to;
}

static const opt_t *find_opt(const char *name, size_t len) {
  for (size_t i = 0; i < N_OPTS; i++)
    if (strlen(opts[i].name) == len && strncmp(opts[i].name, name, len) == 0)
      return &opts[i];
  return NULL;
}

/* One key of the config file: known, of the option's JSON type, valid. */
static int set_json(rm_config_t *cfg, const char *key, json_t *v, const char *source,
                    rm_error_t *err) {
  char flag[64];
  spelled(key, '_', '-', flag, sizeof flag);
  const opt_t *o = find_opt(flag, strlen(flag));
  if (!o)
    return rm__config_fail(err, RM_EPARAM, key, "%s: unknown key '%s'", source, key);
  char text[64];
  const char *val = text;
  if (o->type == T_STR && json_is_string(v))
    val = json_string_value(v);
  else if (o->type == T_BOOL && json_is_boolean(v))
    val = json_is_true(v) ? "true" : "false";
  else if (o->type != T_STR && o->type != T_BOOL && json_is_integer(v))
    snprintf(text, sizeof text, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
  else if (o->type == T_BYTES && json_is_string(v))
    val = json_string_value(v);
  else
    return rm__config_fail(err, RM_EPARAM, o->name, "%s: '%s' must be %s", source, key,
                           type_name(o->type));
  return set_text(cfg, o, val, source, err);
}

/* Step 2: the JSON file, every key an option ("config" itself is not one). */
static int load_file(rm_config_t *cfg, const char *path, rm_error_t *err) {
  json_error_t je;
  char *text;
  size_t len;
  /* unreadable (missing, no permission, a directory, a FIFO) is exit 1, like the other
   * files; readable but too long or not a JSON object is a configuration error */
  int rc = rm__config_read_file("config file", "config", path, &text, &len, err);
  if (rc)
    return rc;
  json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
  rm_free(text);
  if (!root)
    return rm__config_fail(err, RM_EPARAM, "config", "config file %s: %s (line %d)", path, je.text,
                           je.line);
  char source[300];
  snprintf(source, sizeof source, "config file %s", path);
  if (!json_is_object(root))
    rc = rm__config_fail(err, RM_EPARAM, "config", "config file %s: must hold a JSON object", path);
  const char *key;
  json_t *v;
  json_object_foreach(root, key, v) {
    if (rc)
      break;
    rc = set_json(cfg, key, v, source, err);
  }
  json_decref(root);
  return rc;
}

void rm_config_usage(FILE *out) {
  fprintf(out, "usage: remotemedia-server [options]\n\n"
               "Runs the remotemedia pipeline execution server (gRPC). Options come from, in\n"
               "increasing precedence: defaults, a JSON config file (--config FILE or RM_CONFIG;\n"
               "keys are the option names with '_' for '-'), environment variables, flags.\n\n"
               "  --config FILE  (RM_CONFIG)\n      JSON configuration file\n");
  for (size_t i = 0; i < N_OPTS; i++) {
    const opt_t *o = &opts[i];
    fprintf(out, "  --%s=%s  (%s)\n      %s [default: %s]\n", o->name,
            o->type == T_BOOL    ? "BOOL"
            : o->type == T_STR   ? "TEXT"
            : o->type == T_BYTES ? "BYTES"
                                 : "N",
            o->env, o->help, *o->def ? o->def : "none");
  }
  fprintf(out, "  --help\n      this text\n  --version\n      print the version\n\n"
               "Signals: SIGTERM/SIGINT drain (health NOT_SERVING, new calls UNAVAILABLE,\n"
               "in-flight calls get --grace-ms), then exit 0. SIGHUP reloads the token file and\n"
               "the TLS certificate, key and client CA (a file that cannot be used keeps the one\n"
               "in use and logs an error); calls in flight are unaffected.\n\n"
               "Exit status: 0 after a drain; 1 when start-up fails for a reason outside the\n"
               "configuration (port in use or not available, a file that cannot be read or is\n"
               "not a regular file, no threads); 2 for an invalid configuration (a bad option\n"
               "value, a token longer than 4096 bytes or a token line with a NUL byte, a token,\n"
               "PEM or config file above 1 MiB, a file that holds no valid certificate or key).\n");
}

void rm_config_print_version(FILE *out) { fprintf(out, "remotemedia-server %s\n", RM_VERSION); }

/* Step 0: every option's textual default. */
static int load_defaults(rm_config_t *cfg, rm_error_t *err) {
  for (size_t i = 0; i < N_OPTS; i++) {
    int rc = set_text(cfg, &opts[i], opts[i].def, "default", err);
    if (rc)
      return rc;
  }
  return 0;
}

/* Step 1: a first look at argv for --help/-h/--version (cfg->action, first one wins) and
 * for the config file, which RM_CONFIG names unless --config does. */
static const char *scan_argv(rm_config_t *cfg, int argc, char **argv) {
  const char *file = getenv("RM_CONFIG");
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      cfg->action = RM_CONFIG_HELP;
      return NULL;
    }
    if (!strcmp(argv[i], "--version")) {
      cfg->action = RM_CONFIG_VERSION;
      return NULL;
    }
    if (!strncmp(argv[i], "--config=", 9))
      file = argv[i] + 9;
    else if (!strcmp(argv[i], "--config"))
      file = i + 1 < argc ? argv[++i] : ""; /* load_argv says it needs a value */
  }
  return file;
}

/* Step 3: one environment variable per option. */
static int load_env(rm_config_t *cfg, rm_error_t *err) {
  for (size_t i = 0; i < N_OPTS; i++) {
    const char *v = getenv(opts[i].env);
    int rc = v ? set_text(cfg, &opts[i], v, opts[i].env, err) : 0;
    if (rc)
      return rc;
  }
  return 0;
}

/* Step 4: the flags, --name=value or --name value (a bare boolean flag means true);
 * --config was read in step 1. */
static int load_argv(rm_config_t *cfg, int argc, char **argv, rm_error_t *err) {
  const opt_t *bare_bool = NULL; /* the previous argument, a boolean flag without '=' */
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    int word;
    if (strncmp(a, "--", 2) != 0 && bare_bool && parse_bool(a, &word) == 0)
      return rm__config_fail(err, RM_EPARAM, bare_bool->name,
                             "unexpected argument '%s': a boolean option takes its value after "
                             "'=' (--%s=%s)",
                             a, bare_bool->name, a);
    if (strncmp(a, "--", 2) != 0)
      return rm__config_fail(err, RM_EPARAM, "", "unexpected argument '%s' (see --help)", a);
    bare_bool = NULL;
    const char *name = a + 2, *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    if (len == 6 && !strncmp(name, "config", 6)) { /* read in step 2 */
      if ((eq && !eq[1]) || (!eq && i + 1 >= argc))
        return rm__config_fail(err, RM_EPARAM, "config", "option --config needs a file");
      if (!eq)
        i++;
      continue;
    }
    const opt_t *o = find_opt(name, len);
    if (!o) {
      char given[RM_ERROR_FIELD_MAX];
      snprintf(given, sizeof given, "%.*s", (int)len, name);
      return rm__config_fail(err, RM_EPARAM, given, "unknown option '--%.*s' (see --help)",
                             (int)len, name);
    }
    const char *v;
    if (eq)
      v = eq + 1;
    else if (o->type == T_BOOL)
      v = "true", bare_bool = o;
    else if (i + 1 < argc)
      v = argv[++i];
    else
      return rm__config_fail(err, RM_EPARAM, o->name, "option --%s needs a value", o->name);
    char source[80];
    snprintf(source, sizeof source, "--%s", o->name);
    int rc = set_text(cfg, o, v, source, err);
    if (rc)
      return rc;
  }
  return 0;
}

/* A host name or IPv4 address: letters, digits, '.', '-', '_'. */
static int is_host(const char *h, size_t len) {
  if (!len)
    return 0;
  for (size_t i = 0; i < len; i++)
    if (!isalnum((unsigned char)h[i]) && !strchr(".-_", h[i]))
      return 0;
  return 1;
}

/* An IPv6 address as written in brackets: hex digits, ':' and '.' (an embedded IPv4). */
static int is_ipv6(const char *h, size_t len) {
  if (len < 2 || !memchr(h, ':', len))
    return 0;
  for (size_t i = 0; i < len; i++)
    if (!isxdigit((unsigned char)h[i]) && h[i] != ':' && h[i] != '.')
      return 0;
  return 1;
}

/* --listen: host:port, [IPv6]:port (port: 1 to 5 digits, 0 to 65535) or unix:PATH (what
 * grpc_server_add_http2_port accepts; PATH fits a socket address). */
static int check_listen(const char *l, rm_error_t *err) {
  if (!strncmp(l, "unix:", 5)) {
    size_t plen = strlen(l + 5);
    if (plen && plen < 108) /* sizeof(sockaddr_un.sun_path) */
      return 0;
    return rm__config_fail(err, RM_EPARAM, "listen",
                           "listen must be host:port, [IPv6]:port or unix:PATH with a path of 1 to "
                           "107 bytes, got '%s'",
                           l);
  }
  const char *colon = strrchr(l, ':');
  if (!colon)
    return rm__config_fail(err, RM_EPARAM, "listen", "listen must be host:port, got '%s'", l);
  int host_ok = 0;
  if (l[0] == '[')
    host_ok = colon > l + 1 && colon[-1] == ']' && is_ipv6(l + 1, (size_t)(colon - l - 2));
  else
    host_ok = is_host(l, (size_t)(colon - l));
  if (!host_ok)
    return rm__config_fail(err, RM_EPARAM, "listen",
                           "listen must be host:port, [IPv6]:port or unix:PATH (IPv6 addresses "
                           "in brackets), got '%s'",
                           l);
  const char *port = colon + 1;
  size_t digits = strspn(port, "0123456789");
  if (!digits || digits > 5 || port[digits] || strtol(port, NULL, 10) > 65535)
    return rm__config_fail(err, RM_EPARAM, "listen",
                           "listen must be host:port with a port of 0 to 65535 in digits, got '%s'",
                           l);
  return 0;
}

/* Step 5: what no single option can check alone. */
static int check(const rm_config_t *cfg, rm_error_t *err) {
  if (strcmp(cfg->log_stream, "stderr") != 0 && strcmp(cfg->log_stream, "stdout") != 0)
    return rm__config_fail(err, RM_EPARAM, "log-stream",
                           "log-stream must be stderr or stdout, got '%s'", cfg->log_stream);
  if (rm_log_level_parse(cfg->log_level) < 0)
    return rm__config_fail(err, RM_EPARAM, "log-level",
                           "log-level must be debug, info, warn, error or off, got '%s'",
                           cfg->log_level);
  if (!*cfg->tls_cert != !*cfg->tls_key)
    return rm__config_fail(err, RM_EPARAM, *cfg->tls_cert ? "tls-key" : "tls-cert",
                           "tls-cert and tls-key go together: give both or neither");
  if (*cfg->tls_client_ca && !*cfg->tls_cert)
    return rm__config_fail(err, RM_EPARAM, "tls-client-ca",
                           "tls-client-ca needs tls-cert and tls-key");
  if (cfg->tls_require_client_cert && !*cfg->tls_client_ca)
    return rm__config_fail(err, RM_EPARAM, "tls-require-client-cert",
                           "tls-require-client-cert needs tls-client-ca");
  /* a budget below one MiB cannot hold a single run (a "2048" meant as MiB is a typo) */
  if (cfg->max_memory && cfg->max_memory < (1u << 20))
    return rm__config_fail(err, RM_EPARAM, "max-memory",
                           "max-memory must be 0 (what the container allows) or at least 1M, "
                           "got %lld bytes",
                           (long long)cfg->max_memory);
  if (cfg->max_core_memory && cfg->max_core_memory < (1u << 20))
    return rm__config_fail(err, RM_EPARAM, "max-core-memory",
                           "max-core-memory must be 0 (none) or at least 1M, got %lld bytes",
                           (long long)cfg->max_core_memory);
  return check_listen(cfg->listen, err);
}

/* Step 6 for memory: max-memory 0 is what the container allows less a margin for the
 * process's own memory outside the budget (code, gRPC's buffers, allocator slack): the cgroup
 * limit less max(1/8 of it, 64 MiB) (half of it when that leaves less than half), else half
 * of physical memory. A request's budget is at most the server's. */
static void derive_memory(rm_config_t *cfg) {
  if (cfg->max_memory == 0) {
    int cgroup = 0;
    uint64_t mem = rm_sysres_memory("", &cgroup);
    uint64_t margin = mem / 8 > (64u << 20) ? mem / 8 : (64u << 20);
    if (!cgroup || margin > mem / 2)
      margin = mem / 2;
    cfg->max_memory = mem - margin;
  }
  if (cfg->max_request_memory > cfg->max_memory)
    cfg->max_request_memory = cfg->max_memory;
  if (cfg->warm_bytes > cfg->max_memory / 8)
    cfg->warm_bytes = cfg->max_memory / 8;
}

/* Step 6: defaults that depend on the machine: 0 threads is one per two CPUs the process may
 * use, rounded up (sched affinity, cgroup CPU quota: never the host's count), 0 workers two
 * per polling thread. From bench/wire_bench.py's matrix on 2 CPUs: one polling thread did
 * 0.85-0.89 of the best echo at 1 and 4 streams where two did 0.64-0.70 (the polling threads
 * contend for the completion queues and the CPUs the calls' I/O needs). */
static void derive(rm_config_t *cfg) {
  if (cfg->threads == 0) /* the CPUs the container allows, not the host's */
    cfg->threads = (rm_sysres_cpus("") + 1) / 2;
  if (cfg->workers == 0)
    cfg->workers = cfg->threads * 2;
  derive_memory(cfg);
}

int rm_config_load(rm_config_t *cfg, int argc, char **argv, rm_error_t *err) {
  memset(cfg, 0, sizeof *cfg);
  int rc = load_defaults(cfg, err);
  if (rc)
    return rc;
  const char *file = scan_argv(cfg, argc, argv);
  if (cfg->action != RM_CONFIG_SERVE)
    return 0;
  const char *env_file = getenv("RM_CONFIG");
  if (file == env_file && file && !*file) /* a template's empty variable, not "no file" */
    return rm__config_fail(err, RM_EPARAM, "config", "RM_CONFIG is set but empty");
  if (file && *file) {
    if (!(cfg->config_file = rm_strdup(file)))
      return out_of_memory(err, "config");
    if ((rc = load_file(cfg, file, err)))
      return rc;
  }
  if ((rc = load_env(cfg, err)) || (rc = load_argv(cfg, argc, argv, err)) || (rc = check(cfg, err)))
    return rc;
  derive(cfg);
  return 0;
}

void rm_config_destroy(rm_config_t *cfg) {
  for (size_t i = 0; i < N_OPTS; i++)
    if (opts[i].type == T_STR) {
      char **f = (char **)((char *)cfg + opts[i].offset);
      rm_free(*f);
      *f = NULL;
    }
  rm_free(cfg->config_file);
  cfg->config_file = NULL;
}

int rm_config_split_address(const char *listen, char *host, size_t host_cap, char *port,
                            size_t port_cap) {
  const char *colon;
  const char *h = listen;
  size_t hl;
  if (listen[0] == '[') {
    const char *close = strchr(listen, ']');
    if (!close || close[1] != ':')
      return -1;
    h = listen + 1;
    hl = (size_t)(close - h);
    colon = close + 1;
  } else {
    colon = strrchr(listen, ':');
    if (!colon)
      return -1;
    hl = (size_t)(colon - listen);
  }
  size_t pl = strlen(colon + 1);
  if (hl == 0 || hl >= host_cap || pl == 0 || pl >= port_cap ||
      strspn(colon + 1, "0123456789") != pl)
    return -1;
  memcpy(host, h, hl);
  host[hl] = '\0';
  memcpy(port, colon + 1, pl + 1);
  return atoi(port) <= 65535 ? 0 : -1;
}

uint64_t rm_config_metadata_hard_limit(const rm_config_t *cfg) {
  return cfg->max_metadata_bytes * RM_METADATA_HARD_FACTOR;
}

json_t *rm_config_to_json(const rm_config_t *cfg) {
  json_t *o = json_object();
  if (!o)
    return NULL;
  for (size_t i = 0; i < N_OPTS; i++) {
    const opt_t *op = &opts[i];
    const void *f = (const char *)cfg + op->offset;
    char key[64];
    spelled(op->name, '-', '_', key, sizeof key);
    json_t *v;
    if (op->type == T_STR) {
      const char *s = *(char *const *)f;
      v = json_string(op->secret && s && *s ? "<redacted>" : s ? s : "");
    } else if (op->type == T_BOOL) {
      v = json_boolean(*(const int *)f);
    } else if (op->type == T_UINT || op->type == T_BYTES) {
      v = json_integer((json_int_t) * (const uint64_t *)f);
    } else if (op->type == T_INT) {
      v = json_integer(*(const int *)f);
    } else {
      v = json_integer((json_int_t) * (const int64_t *)f);
    }
    json_object_set_new(o, key, v);
  }
  if (cfg->config_file)
    json_object_set_new(o, "config_file", json_string(cfg->config_file));
  return o;
}
