/* remotemedia_cli.c - `remotemedia`: run or validate a pipeline manifest on a server (or
 * in this process), write a binary request for load tests, list node types, check health,
 * print versions. Commands and options are rows of two tables, and every help text is
 * built from them. */
#include <errno.h>
#include <grpc/grpc.h>
#include <grpc/support/log.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "remotemedia_cli.h"
#include "rm/error.h"
#include "rm_version.h"
#include "rmclient_int.h"

#define DEFAULT_RUN_TIMEOUT_MS 60000
#define DEFAULT_RPC_TIMEOUT_MS 10000

enum {
  C_RUN = 1u,
  C_NODES = 2u,
  C_HEALTH = 4u,
  C_VERSION = 8u,
  C_VALIDATE = 16u,
  C_REQUEST = 32u,
  C_STREAM = 64u,
};
#define C_REMOTE (C_RUN | C_NODES | C_HEALTH | C_VERSION | C_VALIDATE | C_STREAM)
#define C_INPUTS (C_RUN | C_VALIDATE | C_REQUEST) /* commands that read MANIFEST and --input */

/* ------------------------------------------------------------------ arguments */

typedef struct cli_args {
  const char *server, *token, *token_file, *tls_ca, *tls_cert, *tls_key, *tls_name;
  const char *output_dir, *service, *manifest, *timeout_text, *output, *request_id;
  const char *attempts_text, *audio_file, *node, *chunk_ms_text;
  int realtime, chunk_ms;
  int tls, metrics, metrics_json, json, no_retry, help, frame;
  const char **inputs; /* "NODE=FILE" */
  size_t n_inputs;
  long long timeout_ms;
  int max_attempts;
} cli_args_t;

typedef enum { O_STR, O_FLAG, O_INPUT } opt_kind_t;

/* One option: its name (and a short alias, e.g. "-o"), what it holds, the commands it
 * applies to, its argument's name and its help (lines after the first are printed under
 * the first). The help texts are built from this table. */
typedef struct cli_opt {
  const char *name;
  opt_kind_t kind;
  size_t offset;
  unsigned commands;
  const char *arg;
  const char *help;
  const char *alias;
} cli_opt_t;

#define A(f) offsetof(cli_args_t, f)
static const cli_opt_t options[] = {
    {"--server", O_STR, A(server), C_REMOTE, "HOST:PORT",
     "the server (any gRPC target, e.g. dns:///svc:50051); run,\n"
     "validate and nodes work in this process without it",
     NULL},
    {"--token", O_STR, A(token), C_REMOTE, "T", "bearer token, sent as \"authorization: Bearer T\"",
     NULL},
    {"--token-file", O_STR, A(token_file), C_REMOTE, "F", "read the token from the first line of F",
     NULL},
    {"--tls", O_FLAG, A(tls), C_REMOTE, NULL, "TLS with the system's roots", NULL},
    {"--tls-ca", O_STR, A(tls_ca), C_REMOTE, "F",
     "TLS, verifying the server with the PEM roots in F", NULL},
    {"--tls-cert", O_STR, A(tls_cert), C_REMOTE, "F",
     "mutual TLS: this client's PEM certificate (with --tls-key)", NULL},
    {"--tls-key", O_STR, A(tls_key), C_REMOTE, "F", "mutual TLS: this client's PEM key", NULL},
    {"--tls-server-name", O_STR, A(tls_name), C_REMOTE, "N",
     "the name the server certificate carries, when it is not the\n"
     "host in --server (e.g. connecting by IP address)",
     NULL},
    {"--timeout-ms", O_STR, A(timeout_text), C_REMOTE, "N",
     "deadline of the call (run: default 60000; stream: none;\n"
     "others: 10000);\n"
     "0 = none. In-process runs stop at it too.",
     NULL},
    {"--input", O_INPUT, 0, C_INPUTS, "NODE=FILE",
     "the input of source node NODE (repeatable). FILE's type comes\n"
     "from its extension (.wav/.flac/.ogg audio, .json, .txt text,\n"
     ".raw/.bin binary) or is given: NODE=text:FILE (also audio:,\n"
     "json:, binary:)",
     NULL},
    {"--manifest", O_STR, A(manifest), C_STREAM, "M", "stream: the pipeline's manifest JSON file",
     NULL},
    {"--node", O_STR, A(node), C_STREAM, "NODE",
     "stream: the source node fed (default: the only one)", NULL},
    {"--chunk-ms", O_STR, A(chunk_ms_text), C_STREAM, "N",
     "stream: chunk length in milliseconds (default 20)", NULL},
    {"--realtime", O_FLAG, A(realtime), C_STREAM, NULL,
     "stream: send at real-time pace, one chunk in flight (default:\n"
     "as fast as flow control allows, 8 chunks in flight)",
     NULL},
    {"--output-dir", O_STR, A(output_dir), C_RUN | C_STREAM, "DIR",
     "also write every output item to a file in DIR", NULL},
    {"--metrics", O_FLAG, A(metrics), C_RUN | C_REQUEST | C_STREAM, NULL,
     "run: print a per-node metrics table on stderr; request: ask\n"
     "for metrics (enable_metrics)",
     NULL},
    {"--metrics-json", O_FLAG, A(metrics_json), C_RUN | C_STREAM, NULL,
     "add the metrics (the seed's JSON keys) to the document", NULL},
    {"--no-retry", O_FLAG, A(no_retry), C_RUN, NULL,
     "do not retry UNAVAILABLE / RESOURCE_EXHAUSTED (by default up\n"
     "to 4 attempts, backoff from 0.1 s doubling up to 2 s)",
     NULL},
    {"--max-attempts", O_STR, A(attempts_text), C_RUN, "N",
     "attempts of a retried call, 2..5 (default 4)", NULL},
    {"--request-id", O_STR, A(request_id), C_RUN | C_VALIDATE | C_STREAM, "ID",
     "sent as x-request-id; the server's error details echo it", NULL},
    {"--output", O_STR, A(output), C_REQUEST, "FILE", "where the request goes (default: stdout)",
     "-o"},
    {"--frame", O_FLAG, A(frame), C_REQUEST, NULL,
     "prefix gRPC's 5-byte message frame (flag 0, big-endian length):\n"
     "the HTTP/2 body h2load -d sends; ghz -B wants it without",
     NULL},
    {"--json", O_FLAG, A(json), C_NODES, NULL, "print the node types as JSON", NULL},
    {"--service", O_STR, A(service), C_HEALTH, "NAME",
     "the service to check (default: the whole server)", NULL},
    {"--help", O_FLAG, A(help), ~0u, NULL, "this text; remotemedia COMMAND --help: one command's",
     "-h"},
};
#define N_OPTIONS (sizeof options / sizeof options[0])

static int usage_error(cli_error_t *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A usage error (exit 2) with a pointer to --help. */
static int usage_error(cli_error_t *e, const char *fmt, ...) {
  memset(e, 0, sizeof *e);
  e->exit_code = CLI_USAGE;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->message, sizeof e->message, fmt, ap);
  va_end(ap);
  size_t len = strlen(e->message);
  snprintf(e->message + len, sizeof e->message - len, "\nTry 'remotemedia --help'.");
  return CLI_USAGE;
}

static int name_is(const char *name, const char *arg, size_t len) {
  return name && strlen(name) == len && !strncmp(name, arg, len);
}

static const cli_opt_t *find_option(const char *arg, size_t name_len) {
  for (size_t i = 0; i < N_OPTIONS; i++)
    if (name_is(options[i].name, arg, name_len) || name_is(options[i].alias, arg, name_len))
      return &options[i];
  return NULL;
}

/* Parses argv[2..] for `command`. --opt VALUE and --opt=VALUE are both accepted. */
static int parse_args(int argc, char **argv, unsigned command, const char *cmd_name, cli_args_t *a,
                      cli_error_t *e) {
  for (int i = 2; i < argc; i++) {
    const char *arg = argv[i];
    if (arg[0] != '-' || !arg[1]) {
      if ((command & C_INPUTS) && !a->manifest) {
        a->manifest = arg;
        continue;
      }
      if (command == C_STREAM && !a->audio_file) {
        a->audio_file = arg;
        continue;
      }
      return usage_error(e, "%s: unexpected argument '%s'", cmd_name, arg);
    }
    const char *eq = strchr(arg, '=');
    size_t name_len = eq ? (size_t)(eq - arg) : strlen(arg);
    const cli_opt_t *o = find_option(arg, name_len);
    if (!o)
      return usage_error(e, "%s: unknown option '%s'", cmd_name, arg);
    if (!(o->commands & command))
      return usage_error(e, "%s: option '%s' does not apply to this command", cmd_name, o->name);
    if (o->kind == O_FLAG) {
      if (eq)
        return usage_error(e, "%s: option '%s' takes no value", cmd_name, o->name);
      *(int *)((char *)a + o->offset) = 1;
      continue;
    }
    const char *value = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
    if (!value)
      return usage_error(e, "%s: option '%s' needs a value", cmd_name, o->name);
    if (o->kind == O_INPUT) {
      const char **grown = realloc(a->inputs, (a->n_inputs + 1) * sizeof *grown);
      if (!grown)
        return cli_fail(e, CLI_FAILED, "out of memory");
      a->inputs = grown;
      a->inputs[a->n_inputs++] = value;
    } else {
      *(const char **)((char *)a + o->offset) = value;
    }
  }
  return 0;
}

/* 0, or a usage error (one line, after "CMD_NAME: " unless that is NULL) when the value of
 * option `name` cannot travel as gRPC metadata. The library's own rule and sentence
 * (rm__client_check_metadata), said here so that the error names the option. */
static int check_metadata(const char *cmd_name, const char *name, const char *value,
                          cli_error_t *e) {
  char what[4200];
  rm_client_error_t ce;
  snprintf(what, sizeof what, "%s%s%s", cmd_name ? cmd_name : "", cmd_name ? ": " : "", name);
  if (rm__client_check_metadata(value, what, &ce))
    return cli_fail(e, CLI_USAGE, "%s", ce.message);
  return 0;
}

/* Cross-option rules shared by the commands. */
static int check_args(unsigned command, const char *cmd_name, cli_args_t *a, cli_error_t *e) {
  if (a->timeout_text) {
    char *end;
    errno = 0;
    a->timeout_ms = strtoll(a->timeout_text, &end, 10);
    if (errno || end == a->timeout_text || *end || a->timeout_ms < 0)
      return usage_error(e, "%s: --timeout-ms wants a number of milliseconds >= 0, not '%s'",
                         cmd_name, a->timeout_text);
  } else if (command == C_STREAM) {
    a->timeout_ms = 0; /* a session lasts as long as its audio */
  } else {
    a->timeout_ms = command == C_RUN ? DEFAULT_RUN_TIMEOUT_MS : DEFAULT_RPC_TIMEOUT_MS;
  }
  if (a->attempts_text) {
    char *end;
    long n = strtol(a->attempts_text, &end, 10);
    if (end == a->attempts_text || *end || n < 2 || n > 5)
      return usage_error(e, "%s: --max-attempts wants 2..5 (gRPC's limit), not '%s'", cmd_name,
                         a->attempts_text);
    if (a->no_retry)
      return usage_error(e, "%s: give --no-retry or --max-attempts, not both", cmd_name);
    a->max_attempts = (int)n;
  }
  if (a->token && a->token_file)
    return usage_error(e, "%s: give --token or --token-file, not both", cmd_name);
  if (a->token && check_metadata(cmd_name, "--token", a->token, e))
    return CLI_USAGE;
  if (a->request_id && check_metadata(cmd_name, "--request-id", a->request_id, e))
    return CLI_USAGE;
  if (!a->tls_cert != !a->tls_key)
    return usage_error(e, "%s: --tls-cert and --tls-key go together", cmd_name);
  int remote_opts = a->token || a->token_file || a->tls || a->tls_ca || a->tls_cert || a->tls_name;
  if (!a->server && remote_opts)
    return usage_error(e, "%s: token and TLS options need --server", cmd_name);
  if (command == C_STREAM) {
    a->chunk_ms = 20;
    if (a->chunk_ms_text) {
      char *end;
      long n = strtol(a->chunk_ms_text, &end, 10);
      if (end == a->chunk_ms_text || *end || n < 1 || n > 60000)
        return usage_error(e, "%s: --chunk-ms wants 1..60000 milliseconds, not '%s'", cmd_name,
                           a->chunk_ms_text);
      a->chunk_ms = (int)n;
    }
    if (!a->audio_file)
      return usage_error(e, "%s: the audio file is missing (remotemedia stream FILE.wav)",
                         cmd_name);
    if (!a->manifest)
      return usage_error(e, "%s: --manifest is required", cmd_name);
  }
  if ((command == C_HEALTH || command == C_STREAM) && !a->server)
    return usage_error(e, "%s: --server is required", cmd_name);
  if ((command & C_INPUTS) && !a->manifest)
    return usage_error(e, "%s: the manifest file is missing (remotemedia %s MANIFEST.json)",
                       cmd_name, cmd_name);
  return 0;
}

/* ------------------------------------------------------------------ remote */

int cli_from_client_error(const rm_client_error_t *ce, cli_error_t *e) {
  int usage =
      ce->code == RM_CLIENT_EINVAL || ce->code == RM_CLIENT_EIO || ce->code == RM_CLIENT_EMANIFEST;
  memset(e, 0, sizeof *e);
  e->exit_code = usage ? CLI_USAGE : CLI_FAILED;
  e->status = ce->code == RM_CLIENT_ESTATUS ? ce->status : 0;
  snprintf(e->kind, sizeof e->kind, "%s", ce->kind);
  /* A deadline that passed on this side ends the call without the server's trailers: the
   * kind is still known (the node is not), so the line reads as the in-process one. */
  if (e->status == GRPC_STATUS_DEADLINE_EXCEEDED && !e->kind[0])
    snprintf(e->kind, sizeof e->kind, "%s", rm_strerror(RM_ETIMEDOUT));
  snprintf(e->node_id, sizeof e->node_id, "%s", ce->node_id);
  snprintf(e->field, sizeof e->field, "%s", ce->field);
  snprintf(e->message, sizeof e->message, "%s", ce->message);
  return e->exit_code;
}

/* The token from --token or the first line of --token-file (malloc), or NULL. */
static int load_token(const cli_args_t *a, char **token, cli_error_t *e) {
  *token = NULL;
  if (a->token) {
    if (!(*token = strdup(a->token)))
      return cli_fail(e, CLI_FAILED, "out of memory");
    return 0;
  }
  if (!a->token_file)
    return 0;
  char *text = cli_read_text(a->token_file, NULL, e);
  if (!text)
    return CLI_USAGE;
  text[strcspn(text, "\r\n")] = '\0';
  size_t len = strlen(text);
  while (len && (text[len - 1] == ' ' || text[len - 1] == '\t'))
    text[--len] = '\0';
  if (!len) {
    free(text);
    return cli_fail(e, CLI_USAGE, "--token-file %s: the first line is empty", a->token_file);
  }
  char option[4096];
  snprintf(option, sizeof option, "--token-file %s", a->token_file);
  if (check_metadata(NULL, option, text, e)) {
    memset(text, 0, len);
    free(text);
    return CLI_USAGE;
  }
  *token = text;
  return 0;
}

static int connect_client(const cli_args_t *a, rm_client_t **client, cli_error_t *e) {
  char *token = NULL;
  int rc = load_token(a, &token, e);
  if (rc)
    return rc;
  rm_client_options_t o = {0};
  o.target = a->server;
  o.token = token;
  o.tls = a->tls;
  o.tls_ca_file = a->tls_ca;
  o.tls_cert_file = a->tls_cert;
  o.tls_key_file = a->tls_key;
  o.tls_server_name = a->tls_name;
  o.default_timeout_ms = a->timeout_ms > 0 ? a->timeout_ms : -1;
  o.retry.disable = a->no_retry;
  o.retry.max_attempts = a->max_attempts;
  rm_client_error_t ce;
  rc = rm_client_new(&o, client, &ce);
  if (token) {
    memset(token, 0, strlen(token));
    free(token);
  }
  return rc ? cli_from_client_error(&ce, e) : 0;
}

static int64_t call_timeout(const cli_args_t *a) { return a->timeout_ms > 0 ? a->timeout_ms : -1; }

/* ------------------------------------------------------------------ commands */

static int run_remote(const cli_args_t *a, const cli_input_t *inputs, size_t n, cli_error_t *e) {
  char *manifest = cli_read_text(a->manifest, NULL, e);
  if (!manifest)
    return CLI_USAGE;
  rm_client_input_t *ins = calloc(n ? n : 1, sizeof *ins);
  if (!ins) {
    free(manifest);
    return cli_fail(e, CLI_FAILED, "out of memory");
  }
  for (size_t i = 0; i < n; i++)
    ins[i] = (rm_client_input_t){inputs[i].node_id, inputs[i].buf};
  rm_client_t *client = NULL;
  rm_client_result_t *res = NULL;
  int rc = connect_client(a, &client, e);
  if (!rc) {
    rm_client_exec_opts_t eo = {.timeout_ms = call_timeout(a),
                                .enable_metrics = a->metrics || a->metrics_json,
                                .request_id = a->request_id};
    rm_client_error_t ce;
    if (rm_client_execute(client, manifest, ins, n, &eo, &res, &ce)) {
      rc = cli_from_client_error(&ce, e);
      if (ce.code == RM_CLIENT_EMANIFEST) {
        char msg[sizeof e->message];
        snprintf(msg, sizeof msg, "%s: %s", a->manifest, ce.message);
        snprintf(e->message, sizeof e->message, "%s", msg);
      }
    }
  }
  if (!rc) {
    size_t count = rm_client_result_count(res);
    cli_run_result_t r = {
        .pipeline_name = rm_client_result_pipeline_name(res),
        .outputs = count ? rm_client_result_output(res, 0) : NULL,
        .n_outputs = count,
        .metrics = rm_client_result_metrics_json(res),
    };
    rc = cli_emit_outputs(&r, a->output_dir, a->metrics_json, e);
    if (!rc && a->metrics)
      cli_print_metrics_table(stderr, r.metrics);
    json_decref(r.metrics);
  }
  rm_client_result_free(res);
  rm_client_free(client);
  free(ins);
  free(manifest);
  return rc;
}

static int run_local(const cli_args_t *a, const cli_input_t *inputs, size_t n, cli_error_t *e) {
  cli_local_run_t *run = NULL;
  cli_run_result_t r;
  int rc = cli_local_run(a->manifest, inputs, n, a->timeout_ms, a->metrics || a->metrics_json, &run,
                         &r, e);
  if (rc)
    return rc;
  rc = cli_emit_outputs(&r, a->output_dir, a->metrics_json, e);
  if (!rc && a->metrics)
    cli_print_metrics_table(stderr, r.metrics);
  json_decref(r.metrics);
  cli_local_free(run);
  return rc;
}

/* Loads every --input NODE=FILE into *out (calloc, *n loaded; free with free_inputs, also
 * after a failure). */
static int load_inputs(const cli_args_t *a, const char *cmd_name, cli_input_t **out, size_t *n,
                       cli_error_t *e) {
  cli_input_t *inputs = calloc(a->n_inputs ? a->n_inputs : 1, sizeof *inputs);
  *out = inputs;
  *n = 0;
  if (!inputs)
    return cli_fail(e, CLI_FAILED, "out of memory");
  for (size_t i = 0; i < a->n_inputs; i++) {
    char *spec = (char *)a->inputs[i];
    char *eq = strchr(spec, '=');
    if (!eq || eq == spec || !eq[1])
      return usage_error(e, "%s: --input wants NODE=FILE, not '%s'", cmd_name, spec);
    *eq = '\0'; /* argv is ours to split: NODE and FILE */
    for (size_t j = 0; j < *n; j++)
      if (!strcmp(inputs[j].node_id, spec))
        return usage_error(e, "%s: two --input for node '%s'", cmd_name, spec);
    int rc = cli_input_load(&inputs[i], spec, eq + 1, e);
    if (rc)
      return rc;
    (*n)++;
  }
  return 0;
}

static void free_inputs(cli_input_t *inputs, size_t n) {
  for (size_t i = 0; i < n; i++)
    cli_input_destroy(&inputs[i]);
  free(inputs);
}

/* The inputs as the client library's views (calloc), NULL on OOM. */
static rm_client_input_t *client_inputs(const cli_input_t *inputs, size_t n) {
  rm_client_input_t *ins = calloc(n ? n : 1, sizeof *ins);
  for (size_t i = 0; ins && i < n; i++)
    ins[i] = (rm_client_input_t){inputs[i].node_id, inputs[i].buf};
  return ins;
}

static int cmd_run(cli_args_t *a, cli_error_t *e) {
  cli_input_t *inputs;
  size_t loaded;
  int rc = load_inputs(a, "run", &inputs, &loaded, e);
  if (!rc)
    rc = a->server ? run_remote(a, inputs, loaded, e) : run_local(a, inputs, loaded, e);
  free_inputs(inputs, loaded);
  return rc;
}

/* ValidatePipeline on the server: the response as the CLI's JSON document. */
static int validate_remote(const cli_args_t *a, const cli_input_t *inputs, size_t n, json_t **doc,
                           cli_error_t *e) {
  char *manifest = cli_read_text(a->manifest, NULL, e);
  if (!manifest)
    return CLI_USAGE;
  rm_client_input_t *ins = client_inputs(inputs, n);
  rm_client_t *client = NULL;
  Remotemedia__V1__ValidateResponse *v = NULL;
  int rc = ins ? connect_client(a, &client, e) : cli_fail(e, CLI_FAILED, "out of memory");
  if (!rc) {
    rm_client_exec_opts_t eo = {.timeout_ms = call_timeout(a), .request_id = a->request_id};
    rm_client_error_t ce;
    if (rm_client_validate(client, manifest, ins, n, &eo, &v, &ce)) {
      rc = cli_from_client_error(&ce, e);
      if (ce.code == RM_CLIENT_EMANIFEST)
        snprintf(e->message, sizeof e->message, "%s: %s", a->manifest, ce.message);
    }
  }
  if (!rc) {
    json_t *schedule = json_array();
    for (size_t i = 0; i < v->n_schedule; i++)
      json_array_append_new(schedule, json_string(v->schedule[i]));
    *doc = json_pack("{s:s, s:o, s:I}", "pipeline", v->pipeline_name, "schedule", schedule,
                     "predicted_memory_bytes", (json_int_t)v->predicted_memory_bytes);
    if (!*doc)
      rc = cli_fail(e, CLI_FAILED, "out of memory");
  }
  rm_client_validation_free(v);
  rm_client_free(client);
  free(ins);
  free(manifest);
  return rc;
}

static int cmd_validate(cli_args_t *a, cli_error_t *e) {
  cli_input_t *inputs;
  size_t loaded;
  json_t *doc = NULL;
  int rc = load_inputs(a, "validate", &inputs, &loaded, e);
  if (!rc)
    rc = a->server ? validate_remote(a, inputs, loaded, &doc, e)
                   : cli_local_validate(a->manifest, inputs, loaded, &doc, e);
  if (!rc) {
    char *text = json_dumps(doc, JSON_INDENT(2));
    if (!text)
      rc = cli_fail(e, CLI_FAILED, "out of memory");
    else if (!cli_write_stdout(text, strlen(text)))
      cli_write_stdout("\n", 1);
    free(text);
  }
  json_decref(doc);
  free_inputs(inputs, loaded);
  return rc;
}

static int write_request(const cli_args_t *a, const uint8_t *bytes, size_t len, cli_error_t *e) {
  if (a->frame && len > UINT32_MAX)
    return cli_fail(e, CLI_USAGE, "the request is %zu bytes, too long for one gRPC frame", len);
  FILE *f = a->output && strcmp(a->output, "-") ? fopen(a->output, "wb") : stdout;
  if (!f)
    return cli_fail(e, CLI_USAGE, "cannot write %s: %s", a->output, strerror(errno));
  uint8_t frame[5] = {0, (uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
                      (uint8_t)len};
  if (f == stdout) {
    if (a->frame)
      cli_write_stdout(frame, sizeof frame);
    cli_write_stdout(bytes, len);
    const char *why = cli_stdout_flush();
    return why ? cli_fail(e, CLI_USAGE, "cannot write stdout: %s", why) : 0;
  }
  int bad = a->frame && fwrite(frame, 1, sizeof frame, f) != sizeof frame;
  bad |= fwrite(bytes, 1, len, f) != len;
  bad |= fclose(f) != 0;
  if (bad)
    return cli_fail(e, CLI_USAGE, "cannot write %s: %s", a->output, strerror(errno));
  return 0;
}

/* The binary ExecuteRequest for the manifest and inputs (ghz -B, h2load). */
static int cmd_request(cli_args_t *a, cli_error_t *e) {
  cli_input_t *inputs;
  size_t loaded;
  char *manifest = NULL;
  rm_client_input_t *ins = NULL;
  uint8_t *bytes = NULL;
  size_t len = 0;
  int rc = load_inputs(a, "request", &inputs, &loaded, e);
  if (!rc && !(manifest = cli_read_text(a->manifest, NULL, e)))
    rc = CLI_USAGE;
  if (!rc && !(ins = client_inputs(inputs, loaded)))
    rc = cli_fail(e, CLI_FAILED, "out of memory");
  if (!rc) {
    rm_client_exec_opts_t eo = {.enable_metrics = a->metrics};
    rm_client_error_t ce;
    if (rm_client_request_pack(manifest, ins, loaded, &eo, &bytes, &len, &ce)) {
      rc = cli_from_client_error(&ce, e);
      if (ce.code == RM_CLIENT_EMANIFEST)
        snprintf(e->message, sizeof e->message, "%s: %s", a->manifest, ce.message);
    }
  }
  if (!rc)
    rc = write_request(a, bytes, len, e);
  free(bytes);
  free(ins);
  free(manifest);
  free_inputs(inputs, loaded);
  return rc;
}

static int cmd_stream(cli_args_t *a, cli_error_t *e) {
  cli_input_t in;
  memset(&in, 0, sizeof in);
  int rc = cli_input_load(&in, a->node ? a->node : "(source)", a->audio_file, e);
  if (rc)
    return rc;
  char *manifest = cli_read_text(a->manifest, NULL, e);
  rm_client_t *client = NULL;
  if (!manifest)
    rc = CLI_USAGE;
  else if (in.buf.kind != RM_CLIENT_AUDIO)
    rc = usage_error(e, "stream: %s is not an audio file", a->audio_file);
  else
    rc = connect_client(a, &client, e);
  if (!rc) {
    cli_stream_opts_t so = {.manifest_text = manifest,
                            .manifest_path = a->manifest,
                            .node_id = a->node,
                            .audio = &in.buf,
                            .chunk_ms = a->chunk_ms,
                            .realtime = a->realtime,
                            .metrics = a->metrics || a->metrics_json,
                            .metrics_json = a->metrics_json,
                            .metrics_table = a->metrics,
                            .timeout_ms = call_timeout(a),
                            .request_id = a->request_id,
                            .output_dir = a->output_dir};
    rc = cli_stream(client, &so, e);
  }
  rm_client_free(client);
  free(manifest);
  cli_input_destroy(&in);
  return rc;
}

static int cmd_nodes(cli_args_t *a, cli_error_t *e) {
  if (!a->server) {
    Remotemedia__V1__ListNodeTypesResponse *types = cli_local_node_types();
    if (!types)
      return cli_fail(e, CLI_FAILED, "out of memory");
    cli_print_node_types(types, a->json);
    cli_local_node_types_free(types);
    return 0;
  }
  rm_client_t *client;
  int rc = connect_client(a, &client, e);
  if (rc)
    return rc;
  Remotemedia__V1__ListNodeTypesResponse *types = NULL;
  rm_client_error_t ce;
  if (rm_client_list_node_types(client, call_timeout(a), &types, &ce))
    rc = cli_from_client_error(&ce, e);
  else
    cli_print_node_types(types, a->json);
  rm_client_node_types_free(types);
  rm_client_free(client);
  return rc;
}

static int cmd_health(cli_args_t *a, cli_error_t *e) {
  rm_client_t *client;
  int rc = connect_client(a, &client, e);
  if (rc)
    return rc;
  rm_client_health_t status = RM_CLIENT_HEALTH_UNKNOWN;
  rm_client_error_t ce;
  if (rm_client_health_check(client, a->service, call_timeout(a), &status, &ce)) {
    rc = cli_from_client_error(&ce, e);
  } else {
    printf("%s\n", rm_client_health_name(status));
    if (status != RM_CLIENT_HEALTH_SERVING)
      rc =
          cli_fail(e, CLI_FAILED, "%s is %s", a->service && *a->service ? a->service : "the server",
                   rm_client_health_name(status));
  }
  rm_client_free(client);
  return rc;
}

static int cmd_version(cli_args_t *a, cli_error_t *e) {
  printf("remotemedia %s (librmclient %s, gRPC core %s)\n", RM_VERSION, rm_client_version(),
         grpc_version_string());
  if (!a->server)
    return 0;
  rm_client_t *client;
  int rc = connect_client(a, &client, e);
  if (rc)
    return rc;
  Remotemedia__V1__GetVersionResponse *v = NULL;
  rm_client_error_t ce;
  if (rm_client_server_version(client, call_timeout(a), &v, &ce)) {
    rc = cli_from_client_error(&ce, e);
  } else {
    printf("server %s: remotemedia-server %s, protocol %s, gRPC core %s\n", a->server,
           v->server_version, v->protocol_version, v->grpc_core_version);
    for (size_t i = 0; i < v->n_services; i++)
      printf("  service %s\n", v->services[i]);
  }
  rm_client_server_version_free(v);
  rm_client_free(client);
  return rc;
}

typedef struct cli_command {
  const char *name;
  unsigned id;
  int (*run)(cli_args_t *a, cli_error_t *e);
  const char *synopsis;    /* after "remotemedia " */
  const char *description; /* lines, indented when printed */
} cli_command_t;

static const cli_command_t commands[] = {
    {"run", C_RUN, cmd_run,
     "run MANIFEST.json [--input NODE=FILE]... [--server HOST:PORT] [options]",
     "Runs the pipeline on the server, or in this process when --server is not given;\n"
     "both print the same document. FILE is read by its extension: .wav/.flac/.ogg\n"
     "(audio, in the file's sample format: 16-bit PCM stays i16, float stays f32),\n"
     ".json (JSON), .txt (text), .raw/.bin (binary). stdout gets one JSON document:\n"
     "  {\"pipeline\": NAME, \"outputs\": {KEY: [ITEM, ...]}, \"metrics\": {...}}\n"
     "where KEY is the node id (\"node.port\" for other ports) and ITEM describes one\n"
     "buffer: audio {kind, sample_rate, channels, format, frames, peak}, json {kind,\n"
     "value}, text {kind, text}, binary {kind, mime_type, bytes}, tensor {kind, dtype,\n"
     "shape, bytes}; with --output-dir each item is also written to DIR/KEY.EXT (WAV\n"
     "for audio, KEY.I.EXT when a node produced several items) and named in \"file\".\n"
     "Numbers are printed in their shortest form that reads back as the same double."},
    {"validate", C_VALIDATE, cmd_validate,
     "validate MANIFEST.json [--input NODE=FILE]... [--server HOST:PORT] [options]",
     "A dry run: checks the manifest, the params and the inputs as run would (the\n"
     "server's ValidatePipeline with --server, the engine here without) and runs\n"
     "nothing. stdout gets {\"pipeline\": NAME, \"schedule\": [NODE, ...] (the order the\n"
     "nodes would run in), \"predicted_memory_bytes\": N (the input payloads plus what\n"
     "the compiled nodes hold)}; errors are those of run."},
    {"request", C_REQUEST, cmd_request,
     "request MANIFEST.json [--input NODE=FILE]... [-o FILE] [--metrics]",
     "Writes the binary ExecuteRequest that run would send (protobuf wire format), for\n"
     "load-test tools: ghz --binary-file (-B) as it is, h2load -d with --frame; see\n"
     "docs/load-testing.md. Nothing is sent."},
    {"stream", C_STREAM, cmd_stream,
     "stream FILE.wav --manifest M --server HOST:PORT [--chunk-ms 20] [--realtime] [options]",
     "Sends the audio file through one StreamPipeline session in chunks of --chunk-ms\n"
     "(the node state lives across chunks, as in one long run), at real-time pace with\n"
     "--realtime (one chunk in flight), else as fast as flow control allows. stderr gets\n"
     "one line per chunk, \"chunk SEQ rtt_us=R server_us=S items=N\" (round trip seen\n"
     "here, the server's processing time, output items), then \"summary: chunks=N\n"
     "rtt_p50_us= rtt_p99_us= server_p50_us= server_p99_us= behind=B\" (B: paced chunks\n"
     "sent over a chunk late). stdout gets run's JSON document, each output's audio\n"
     "items (the final flush's included) joined into one item."},
    {"nodes", C_NODES, cmd_nodes, "nodes [--server HOST:PORT] [--json]",
     "Lists the node types with their ports and params (type, range, default); from\n"
     "the server, or from this program's own registry without --server."},
    {"health", C_HEALTH, cmd_health, "health --server HOST:PORT [--service NAME]",
     "grpc.health.v1 Check; prints SERVING, NOT_SERVING or SERVICE_UNKNOWN."},
    {"version", C_VERSION, cmd_version, "version [--server HOST:PORT]",
     "This program's versions, and the server's with --server."},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static const char exit_text[] =
    "exit status:\n"
    "  0  success (health: the service is SERVING)\n"
    "  1  the call or the pipeline failed: a gRPC status other than OK (also UNAVAILABLE\n"
    "     when the server cannot be reached) or an in-process pipeline error; stderr has\n"
    "     one line: remotemedia: error: STATUS kind=KIND node=NODE field=FIELD: MESSAGE\n"
    "     (health: also when the service is not SERVING)\n"
    "  2  usage error: bad command line, or a local file that cannot be used (manifest not\n"
    "     readable or malformed, input, certificate or token file, output directory or\n"
    "     file, stdout)\n";

static const char examples_text[] =
    "examples:\n"
    "  remotemedia run gain.json --input src=in.wav --server localhost:50051 \\\n"
    "      --output-dir out --metrics\n"
    "  remotemedia run gain.json --input src=in.wav --metrics-json       (in-process)\n"
    "  remotemedia validate gain.json --input src=in.wav --server localhost:50051\n"
    "  remotemedia request gain.json --input src=in.wav -o req.bin\n"
    "  remotemedia stream speech.wav --manifest vad.json --server localhost:50051 --realtime\n"
    "  remotemedia nodes --server localhost:50051\n"
    "  remotemedia health --server localhost:50051 --tls-ca ca.pem\n";

/* Text with every line after the first indented by `indent` spaces. */
static void put_indented(FILE *f, const char *text, int indent) {
  for (const char *p = text; *p; p++) {
    fputc(*p, f);
    if (*p == '\n' && p[1])
      fprintf(f, "%*s", indent, "");
  }
}

/* The options that apply to any of `commands`. */
static void put_options(FILE *f, unsigned command_mask) {
  fputs("options:\n", f);
  for (size_t i = 0; i < N_OPTIONS; i++) {
    const cli_opt_t *o = &options[i];
    if (!(o->commands & command_mask))
      continue;
    char head[64];
    snprintf(head, sizeof head, "%s%s%s%s%s", o->alias ? o->alias : "", o->alias ? ", " : "",
             o->name, o->arg ? " " : "", o->arg ? o->arg : "");
    fprintf(f, "  %-22s ", head);
    if (strlen(head) > 22)
      fprintf(f, "\n  %-22s ", "");
    put_indented(f, o->help, 25);
    fputc('\n', f);
  }
}

static void put_usage(FILE *f) {
  fputs("usage: remotemedia <command> [options]\n\ncommands:\n", f);
  for (size_t i = 0; i < N_COMMANDS; i++) {
    fprintf(f, "  %s\n      ", commands[i].synopsis);
    put_indented(f, commands[i].description, 6);
    fputc('\n', f);
  }
  fputs("  help [COMMAND]\n\n", f);
  put_options(f, ~0u);
  fputc('\n', f);
  fputs(exit_text, f);
  fputc('\n', f);
  fputs(examples_text, f);
}

static void put_command_usage(FILE *f, const cli_command_t *c) {
  fprintf(f, "usage: remotemedia %s\n\n  ", c->synopsis);
  put_indented(f, c->description, 2);
  fputs("\n\n", f);
  put_options(f, c->id);
  fputc('\n', f);
  fputs(exit_text, f);
}

static const cli_command_t *find_command(const char *name) {
  for (size_t i = 0; i < N_COMMANDS; i++)
    if (!strcmp(commands[i].name, name))
      return &commands[i];
  return NULL;
}

/* Help asked for: 1 and *topic, the command it is about (NULL for the whole program),
 * when it was: "help [COMMAND]", or -h/--help anywhere. */
static int wants_help(int argc, char **argv, const char **topic) {
  *topic = NULL;
  if (argc < 2)
    return 0;
  if (!strcmp(argv[1], "help")) {
    *topic = argc > 2 && strcmp(argv[2], "help") ? argv[2] : NULL;
    return 1;
  }
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
      *topic = argv[1][0] != '-' ? argv[1] : NULL; /* "--help", "--version --help" */
      return 1;
    }
  }
  return 0;
}

/* gRPC core's own log lines (a TLS handshake that failed, a name that did not resolve)
 * would come before the one error line the CLI promises, whose status message says the
 * same. They are shown when GRPC_VERBOSITY or GRPC_TRACE asks for them. */
static void quiet_core_log(gpr_log_func_args *args) { (void)args; }

/* The command line's command (or help); its exit status, the error printed. */
static int cli_command(int argc, char **argv) {
  const cli_command_t *cmd = NULL;
  if (!getenv("GRPC_VERBOSITY") && !getenv("GRPC_TRACE"))
    gpr_set_log_function(quiet_core_log);
  cli_error_t e;
  memset(&e, 0, sizeof e);
  const char *topic;
  if (wants_help(argc, argv, &topic)) {
    if (topic && !(cmd = find_command(topic))) { /* not the general help, exit 0 */
      usage_error(&e, "unknown command '%s'", topic);
      cli_print_error(&e);
      return CLI_USAGE;
    }
    if (cmd)
      put_command_usage(stdout, cmd);
    else
      put_usage(stdout);
    return CLI_OK;
  }
  if (argc < 2) {
    put_usage(stderr);
    return CLI_USAGE;
  }
  cmd = find_command(!strcmp(argv[1], "--version") ? "version" : argv[1]);
  cli_args_t a;
  memset(&a, 0, sizeof a);
  int rc;
  if (!cmd)
    rc = usage_error(&e, "unknown command '%s'", argv[1]);
  else if (!(rc = parse_args(argc, argv, cmd->id, cmd->name, &a, &e)) &&
           !(rc = check_args(cmd->id, cmd->name, &a, &e)))
    rc = cmd->run(&a, &e);
  if (rc)
    cli_print_error(&e);
  free(a.inputs);
  return rc;
}

/* Flushes and closes stdout, where every command's document goes: a full disk or a closed
 * descriptor there loses the output, which must not exit 0 (as `request -o FILE` does not).
 * 0, or CLI_USAGE with e filled. */
static int close_stdout(cli_error_t *e) {
  const char *why = cli_stdout_flush(); /* the first failed write's reason */
  errno = 0;
  /* a descriptor closed from the start, with nothing written, is no loss */
  if (fclose(stdout) != 0 && !why && errno != EBADF)
    why = errno ? strerror(errno) : "write error";
  if (!why)
    return 0;
  return cli_fail(e, CLI_USAGE, "cannot write stdout: %s", why);
}

int cli_main(int argc, char **argv) {
  int rc = cli_command(argc, argv);
  cli_error_t e;
  if (close_stdout(&e) && !rc) { /* a failed command has said why already */
    cli_print_error(&e);
    rc = e.exit_code;
  }
  return rc;
}
