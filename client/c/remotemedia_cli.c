/* remotemedia_cli.c - `remotemedia`: run a pipeline manifest on a server (or in this
 * process), list node types, check health, print versions. Commands and options are rows
 * of two tables; the help text is written once, below. */
#include <errno.h>
#include <grpc/grpc.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "remotemedia_cli.h"
#include "rm_version.h"

#define DEFAULT_RUN_TIMEOUT_MS 60000
#define DEFAULT_RPC_TIMEOUT_MS 10000

static const char usage_text[] =
    "usage: remotemedia <command> [options]\n"
    "\n"
    "commands:\n"
    "  run MANIFEST.json [--input NODE=FILE]... [--server HOST:PORT] [options]\n"
    "      Runs the pipeline on the server, or in this process when --server is not given.\n"
    "      FILE is read by its extension: .wav/.flac/.ogg (audio, in the file's sample\n"
    "      format: 16-bit PCM stays i16, float stays f32), .json (JSON), .txt (text),\n"
    "      .raw/.bin (binary). stdout gets one JSON document:\n"
    "        {\"pipeline\": NAME, \"outputs\": {KEY: [ITEM, ...]}, \"metrics\": {...}}\n"
    "      where KEY is the node id (\"node.port\" for other ports) and ITEM describes one\n"
    "      buffer: audio {kind, sample_rate, channels, format, frames, peak}, json {kind,\n"
    "      value}, text {kind, text}, binary {kind, mime_type, bytes}, tensor {kind, dtype,\n"
    "      shape, bytes}; with --output-dir each item is also written to DIR/KEY.EXT (WAV\n"
    "      for audio, KEY.I.EXT when a node produced several items) and named in \"file\".\n"
    "  nodes [--server HOST:PORT] [--json]\n"
    "      Lists the node types with their ports and params (type, range, default); from\n"
    "      the server, or from this program's own registry without --server.\n"
    "  health --server HOST:PORT [--service NAME]\n"
    "      grpc.health.v1 Check; prints SERVING, NOT_SERVING or SERVICE_UNKNOWN.\n"
    "  version [--server HOST:PORT]\n"
    "      This program's versions, and the server's with --server.\n"
    "  help\n"
    "\n"
    "options:\n"
    "  --server HOST:PORT     the server (any gRPC target, e.g. dns:///svc:50051)\n"
    "  --token T              bearer token, sent as \"authorization: Bearer T\"\n"
    "  --token-file F         read the token from the first line of F\n"
    "  --tls                  TLS with the system's roots\n"
    "  --tls-ca F             TLS, verifying the server with the PEM roots in F\n"
    "  --tls-cert F --tls-key F   mutual TLS: this client's PEM certificate and key\n"
    "  --tls-server-name N    the name the server certificate carries, when it is not the\n"
    "                         host in --server (e.g. connecting by IP address)\n"
    "  --timeout-ms N         deadline of the call (run: default 60000; others: 10000);\n"
    "                         0 = none. In-process runs stop at it too.\n"
    "  --input NODE=FILE      run: the input of source node NODE (repeatable)\n"
    "  --output-dir DIR       run: also write every output item to a file in DIR\n"
    "  --metrics              run: print a per-node metrics table on stderr\n"
    "  --metrics-json         run: add the metrics (the seed's JSON keys) to the document\n"
    "  --json                 nodes: print the node types as JSON\n"
    "  --service NAME         health: the service to check (default: the whole server)\n"
    "  -h, --help             this text\n"
    "\n"
    "exit status:\n"
    "  0  success (health: the service is SERVING)\n"
    "  1  the call or the pipeline failed: a gRPC status other than OK (also UNAVAILABLE\n"
    "     when the server cannot be reached) or an in-process pipeline error; stderr has\n"
    "     one line: remotemedia: error: STATUS kind=KIND node=NODE field=FIELD: MESSAGE\n"
    "     (health: also when the service is not SERVING)\n"
    "  2  usage error: bad command line, or a local file that cannot be used (manifest not\n"
    "     readable or malformed, input, certificate or token file, output directory)\n"
    "\n"
    "examples:\n"
    "  remotemedia run gain.json --input src=in.wav --server localhost:50051 \\\n"
    "      --output-dir out --metrics\n"
    "  remotemedia run gain.json --input src=in.wav --metrics-json       (in-process)\n"
    "  remotemedia nodes --server localhost:50051\n"
    "  remotemedia health --server localhost:50051 --tls-ca ca.pem\n";

/* ------------------------------------------------------------------ arguments */

enum { C_RUN = 1u, C_NODES = 2u, C_HEALTH = 4u, C_VERSION = 8u };
#define C_REMOTE (C_RUN | C_NODES | C_HEALTH | C_VERSION)

typedef struct cli_args {
  const char *server, *token, *token_file, *tls_ca, *tls_cert, *tls_key, *tls_name;
  const char *output_dir, *service, *manifest, *timeout_text;
  int tls, metrics, metrics_json, json;
  const char **inputs; /* "NODE=FILE" */
  size_t n_inputs;
  long long timeout_ms;
} cli_args_t;

typedef enum { O_STR, O_FLAG, O_INPUT } opt_kind_t;

typedef struct cli_opt {
  const char *name;
  opt_kind_t kind;
  size_t offset;
  unsigned commands;
} cli_opt_t;

#define A(f) offsetof(cli_args_t, f)
static const cli_opt_t options[] = {
    {"--server", O_STR, A(server), C_REMOTE},
    {"--token", O_STR, A(token), C_REMOTE},
    {"--token-file", O_STR, A(token_file), C_REMOTE},
    {"--tls", O_FLAG, A(tls), C_REMOTE},
    {"--tls-ca", O_STR, A(tls_ca), C_REMOTE},
    {"--tls-cert", O_STR, A(tls_cert), C_REMOTE},
    {"--tls-key", O_STR, A(tls_key), C_REMOTE},
    {"--tls-server-name", O_STR, A(tls_name), C_REMOTE},
    {"--timeout-ms", O_STR, A(timeout_text), C_REMOTE},
    {"--input", O_INPUT, 0, C_RUN},
    {"--output-dir", O_STR, A(output_dir), C_RUN},
    {"--metrics", O_FLAG, A(metrics), C_RUN},
    {"--metrics-json", O_FLAG, A(metrics_json), C_RUN},
    {"--json", O_FLAG, A(json), C_NODES},
    {"--service", O_STR, A(service), C_HEALTH},
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

static const cli_opt_t *find_option(const char *arg, size_t name_len) {
  for (size_t i = 0; i < N_OPTIONS; i++)
    if (strlen(options[i].name) == name_len && !strncmp(options[i].name, arg, name_len))
      return &options[i];
  return NULL;
}

/* Parses argv[2..] for `command`. --opt VALUE and --opt=VALUE are both accepted. */
static int parse_args(int argc, char **argv, unsigned command, const char *cmd_name, cli_args_t *a,
                      cli_error_t *e) {
  for (int i = 2; i < argc; i++) {
    const char *arg = argv[i];
    if (arg[0] != '-' || !arg[1]) {
      if (command == C_RUN && !a->manifest) {
        a->manifest = arg;
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

/* Cross-option rules shared by the commands. */
static int check_args(unsigned command, const char *cmd_name, cli_args_t *a, cli_error_t *e) {
  if (a->timeout_text) {
    char *end;
    errno = 0;
    a->timeout_ms = strtoll(a->timeout_text, &end, 10);
    if (errno || end == a->timeout_text || *end || a->timeout_ms < 0)
      return usage_error(e, "%s: --timeout-ms wants a number of milliseconds >= 0, not '%s'",
                         cmd_name, a->timeout_text);
  } else {
    a->timeout_ms = command == C_RUN ? DEFAULT_RUN_TIMEOUT_MS : DEFAULT_RPC_TIMEOUT_MS;
  }
  if (a->token && a->token_file)
    return usage_error(e, "%s: give --token or --token-file, not both", cmd_name);
  if (!a->tls_cert != !a->tls_key)
    return usage_error(e, "%s: --tls-cert and --tls-key go together", cmd_name);
  int remote_opts = a->token || a->token_file || a->tls || a->tls_ca || a->tls_cert || a->tls_name;
  if (!a->server && remote_opts)
    return usage_error(e, "%s: token and TLS options need --server", cmd_name);
  if (command == C_HEALTH && !a->server)
    return usage_error(e, "%s: --server is required", cmd_name);
  if (command == C_RUN && !a->manifest)
    return usage_error(e, "%s: the manifest file is missing (remotemedia run MANIFEST.json)",
                       cmd_name);
  return 0;
}

/* ------------------------------------------------------------------ remote */

static int from_client_error(const rm_client_error_t *ce, cli_error_t *e) {
  int usage =
      ce->code == RM_CLIENT_EINVAL || ce->code == RM_CLIENT_EIO || ce->code == RM_CLIENT_EMANIFEST;
  memset(e, 0, sizeof *e);
  e->exit_code = usage ? CLI_USAGE : CLI_FAILED;
  e->status = ce->code == RM_CLIENT_ESTATUS ? ce->status : 0;
  snprintf(e->kind, sizeof e->kind, "%s", ce->kind);
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
  rm_client_error_t ce;
  rc = rm_client_new(&o, client, &ce);
  if (token) {
    memset(token, 0, strlen(token));
    free(token);
  }
  return rc ? from_client_error(&ce, e) : 0;
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
                                .enable_metrics = a->metrics || a->metrics_json};
    rm_client_error_t ce;
    if (rm_client_execute(client, manifest, ins, n, &eo, &res, &ce)) {
      rc = from_client_error(&ce, e);
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

static int cmd_run(cli_args_t *a, cli_error_t *e) {
  cli_input_t *inputs = calloc(a->n_inputs ? a->n_inputs : 1, sizeof *inputs);
  if (!inputs)
    return cli_fail(e, CLI_FAILED, "out of memory");
  int rc = 0;
  size_t loaded = 0;
  for (size_t i = 0; i < a->n_inputs && !rc; i++) {
    char *spec = (char *)a->inputs[i];
    char *eq = strchr(spec, '=');
    if (!eq || eq == spec || !eq[1]) {
      rc = usage_error(e, "run: --input wants NODE=FILE, not '%s'", spec);
      break;
    }
    *eq = '\0'; /* argv is ours to split: NODE and FILE */
    for (size_t j = 0; j < loaded && !rc; j++)
      if (!strcmp(inputs[j].node_id, spec))
        rc = usage_error(e, "run: two --input for node '%s'", spec);
    if (!rc && !(rc = cli_input_load(&inputs[i], spec, eq + 1, e)))
      loaded++;
  }
  if (!rc)
    rc = a->server ? run_remote(a, inputs, loaded, e) : run_local(a, inputs, loaded, e);
  for (size_t i = 0; i < loaded; i++)
    cli_input_destroy(&inputs[i]);
  free(inputs);
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
    rc = from_client_error(&ce, e);
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
    rc = from_client_error(&ce, e);
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
    rc = from_client_error(&ce, e);
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
} cli_command_t;

static const cli_command_t commands[] = {
    {"run", C_RUN, cmd_run},
    {"nodes", C_NODES, cmd_nodes},
    {"health", C_HEALTH, cmd_health},
    {"version", C_VERSION, cmd_version},
};

static int wants_help(int argc, char **argv) {
  for (int i = 1; i < argc; i++)
    if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
      return 1;
  return argc > 1 && !strcmp(argv[1], "help");
}

int main(int argc, char **argv) {
  if (wants_help(argc, argv)) {
    fputs(usage_text, stdout);
    return CLI_OK;
  }
  cli_error_t e;
  memset(&e, 0, sizeof e);
  if (argc < 2) {
    fputs(usage_text, stderr);
    return CLI_USAGE;
  }
  const char *name = !strcmp(argv[1], "--version") ? "version" : argv[1];
  const cli_command_t *cmd = NULL;
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (!strcmp(commands[i].name, name))
      cmd = &commands[i];
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
