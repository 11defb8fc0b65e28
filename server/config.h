/* config.h - server configuration from flags, environment and a JSON file. */
#ifndef RM_SERVER_CONFIG_H
#define RM_SERVER_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "rm/error.h"

/* What the command line asked for; the caller acts on it (only SERVE starts a server). */
typedef enum rm_config_action {
  RM_CONFIG_SERVE = 0, /* run the server with the configuration */
  RM_CONFIG_HELP,      /* --help or -h: print rm_config_usage(), exit 0 */
  RM_CONFIG_VERSION,   /* --version: print rm_config_print_version(), exit 0 */
} rm_config_action_t;

typedef struct rm_config {
  rm_config_action_t action;
  char *listen;               /* host:port, [v6]:port or unix:path (checked) */
  int threads;                /* completion-queue polling threads */
  int workers;                /* threads running heavy pipelines */
  int request_slots;          /* outstanding request tags per queue and method */
  uint64_t max_message_bytes; /* receive and send */
  uint64_t max_nodes;
  uint64_t max_audio_samples;
  uint64_t max_input_bytes;
  uint64_t max_items;      /* buffers produced by one run */
  uint64_t max_concurrent; /* ExecutePipeline calls at once */
  uint64_t max_execution_ms;
  uint64_t send_timeout_ms;  /* a big unary response not taken in this long is cancelled */
  uint64_t inline_max_bytes; /* light pipelines with inputs up to this run inline */
  int pipeline_cache;        /* reuse compiled pipelines keyed by manifest bytes + limits */
  int warm_call;             /* one call to itself before reporting SERVING */
  uint64_t grace_ms;         /* shutdown grace period */
  char *auth_token_file;     /* one token per line */
  char *auth_tokens;         /* comma-separated (env RM_AUTH_TOKENS) */
  int require_auth;          /* start-up fails when neither tokens option is set */
  int health_needs_token;    /* health methods need a token too (needs tokens) */
  char *tls_cert;
  char *tls_key;
  char *tls_client_ca;
  int tls_require_client_cert;
  char *log_level;
  int64_t keepalive_time_ms;
  int64_t keepalive_timeout_ms;
  int keepalive_permit_without_calls;
  int64_t min_ping_interval_ms; /* least interval between client pings we accept */
  int64_t max_connection_idle_ms;
  int64_t max_connection_age_ms;
  int64_t max_connection_age_grace_ms;
  uint64_t max_concurrent_streams;
  uint64_t max_metadata_bytes; /* a call's request metadata; see rm_config_metadata_hard_limit */
  char *config_file;
  /* memory (issue 10): bytes */
  uint64_t max_memory;         /* the server-wide budget every request draws from */
  uint64_t max_request_memory; /* one request's budget (max_memory_bytes) by default */
  uint64_t max_core_memory;    /* the gRPC core's resource quota, 0 = none */
  uint64_t warm_bytes;         /* heap pre-faulted per thread at start-up (capped) */
  uint64_t memory_wait_ms;     /* how long a run on a worker may wait for its reservation */
  /* observability (issue 12) */
  char *log_stream;             /* "stderr" or "stdout" */
  char *metrics_listen;         /* HOST:PORT of the Prometheus endpoint; "" = off */
  uint64_t stats_max_pipelines; /* pipeline names with their own label */
  /* streaming sessions (issue 13) */
  uint64_t max_sessions;            /* StreamPipeline sessions open at once */
  uint64_t session_idle_timeout_ms; /* no client message for this long ends a session */
  uint64_t max_session_ms;          /* longest a session may stay open (0 = no limit) */
} rm_config_t;

/* Fills cfg from defaults, then the JSON file (--config or RM_CONFIG), then environment
 * variables, then argv; later sources win. A --help/-h or --version anywhere in argv (before
 * any other check) sets cfg->action and stops there, with only the defaults loaded; nothing
 * is printed. Returns 0, or on invalid configuration RM_EPARAM (RM_EIO for an unreadable
 * config file, RM_ENOMEM) with err (may be NULL) holding the option's name in err->field
 * (flag spelling, "" when the argument is no option) and a one-line reason in err->message.
 * cfg must be released with rm_config_destroy in every case. Reads the environment: call it
 * before starting threads. */
int rm_config_load(rm_config_t *cfg, int argc, char **argv, rm_error_t *err);

/* Frees the strings cfg holds and leaves them NULL. The struct itself is the caller's. */
void rm_config_destroy(rm_config_t *cfg);

/* Prints the option reference (flags, env names, defaults). */
void rm_config_usage(FILE *out);

/* Prints "remotemedia-server <version>" and a newline. */
void rm_config_print_version(FILE *out);

/* Internal to config, auth and tls: records an error like rm_error_set (node id empty),
 * but keeps the message's bytes as they are, since start-up errors echo paths and values
 * verbatim. Returns code; a NULL err only returns code. */
int rm__config_fail(rm_error_t *err, int code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The most bytes of a file an operator names (auth-token-file, tls-cert, tls-key,
 * tls-client-ca, config) that the server reads: far above any real one (a CA bundle with
 * every public root is ~220 KB; a token file of 1 MiB holds ~20,000 tokens of 48 bytes), and
 * a file that never ends (a link to /dev/zero) is refused after it, not read into memory. */
#define RM_OPERATOR_FILE_MAX (1024 * 1024)

/* Internal to config, auth and tls: the whole file `path` that option `field` names (`what`
 * names it in messages: the option, or "config file") into *text, followed by a NUL, from
 * rm_malloc; *len gets its byte count. Read with rm__file_read_regular: it never blocks (a
 * FIFO) and never reads more than RM_OPERATOR_FILE_MAX + 1 bytes. Returns 0, or with *text =
 * NULL and err (may be NULL) filled: RM_EIO "WHAT PATH cannot be read: REASON" (the open's or
 * read's error, "a directory", or "not a regular file" for a FIFO, device or socket),
 * RM_EPARAM "WHAT PATH is larger than the 1048576 bytes allowed", RM_ENOMEM. Any thread. */
int rm__config_read_file(const char *what, const char *field, const char *path, char **text,
                         size_t *len, rm_error_t *err);

/* "HOST:PORT" or "[V6]:PORT" (an address as --listen and --metrics-listen take it) into the
 * host (without brackets) and port strings. 0, or -1 when it is not of that form or a part
 * does not fit its buffer. Pure. */
int rm_config_split_address(const char *listen, char *host, size_t host_cap, char *port,
                            size_t port_cap);

/* The core's per-connection header-list limit for cfg: RM_METADATA_HARD_FACTOR times
 * max_metadata_bytes. A call with metadata between the two is refused alone
 * (RESOURCE_EXHAUSTED); above the hard limit the core's HPACK parser fails it itself. */
#define RM_METADATA_HARD_FACTOR 4
uint64_t rm_config_metadata_hard_limit(const rm_config_t *cfg);

/* The effective configuration as a JSON object for the start-up log; secrets redacted. */
struct json_t;
struct json_t *rm_config_to_json(const rm_config_t *cfg);

#endif
