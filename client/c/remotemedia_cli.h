/* remotemedia_cli.h - the `remotemedia` CLI's modules: commands and options
 * (remotemedia_cli.c), file I/O and printing (remotemedia_cli_io.c) and the in-process
 * engine (remotemedia_cli_local.c), shared by `remotemedia` and its `remotemedia-run`
 * alias. */
#ifndef REMOTEMEDIA_CLI_H
#define REMOTEMEDIA_CLI_H

#include <jansson.h>
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>

#include "remotemedia/v1/pipeline_service.pb-c.h"
#include "rmclient.h"

/* The whole program: `remotemedia COMMAND [options]` in argv. Returns the exit status
 * (CLI_OK, CLI_FAILED, CLI_USAGE; CLI_USAGE too when stdout cannot be written). Closes
 * stdout. Main thread. */
int cli_main(int argc, char **argv);

/* Exit statuses (documented in --help). */
enum {
  CLI_OK = 0,
  CLI_FAILED = 1, /* the call or the pipeline failed */
  CLI_USAGE = 2,  /* bad command line, or a local file that cannot be used */
};

/* A CLI error: which exit status it means, and what to print. */
typedef struct cli_error {
  int exit_code;
  int status; /* gRPC status (0 for local errors) */
  char kind[64];
  char node_id[128];
  char field[64];
  char message[600];
} cli_error_t;

int cli_fail(cli_error_t *e, int exit_code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prints e to stderr in the CLI's one error format. */
void cli_print_error(const cli_error_t *e);

/* One --input NODE=FILE, loaded. `bytes` owns the payload the view points into. */
typedef struct cli_input {
  const char *node_id; /* points into the argument */
  const char *path;
  void *bytes;
  rm_client_buffer_t buf;
} cli_input_t;

/* Loads FILE by its extension: .wav/.flac/.ogg/.aiff/.au (audio, the file's own sample
 * format where the wire has it, else f32), .json (validated), .txt (text), .raw/.bin
 * (binary); or by the type it is prefixed with: "audio:F", "json:F", "text:F", "binary:F".
 * CLI_USAGE on failure (a file whose type cannot be told says how to give it). */
int cli_input_load(cli_input_t *in, const char *node_id, const char *path, cli_error_t *e);
void cli_input_destroy(cli_input_t *in);

/* Whole file as a NUL-terminated malloc string; NULL with e filled (CLI_USAGE). */
char *cli_read_text(const char *path, size_t *len, cli_error_t *e);

/* Writes len bytes to stdout, where every command's document goes; the errno of the first
 * write there that fails is kept for cli_stdout_flush (glibc drops its buffer after a failed
 * write, so a later fflush succeeds and errno no longer says why). 0 or -1. */
int cli_write_stdout(const void *data, size_t len);

/* Flushes stdout: NULL when everything written to it went out, else why not (the first
 * failed write's strerror, or "write error" when stdio gave no errno). */
const char *cli_stdout_flush(void);

/* What a run produced, from either mode. */
typedef struct cli_run_result {
  const char *pipeline_name;
  const rm_client_output_t *outputs; /* sorted by key */
  size_t n_outputs;
  json_t *metrics; /* the seed JSON, NULL when not asked */
} cli_run_result_t;

/* Prints the run's JSON document to stdout; with output_dir, writes each item to a file
 * there (WAV for audio) and names the file in the document. CLI_USAGE if a file or stdout
 * cannot be written. */
int cli_emit_outputs(const cli_run_result_t *r, const char *output_dir, int with_metrics_json,
                     cli_error_t *e);
/* The readable per-node table of a seed-JSON metrics object, to `f`. */
void cli_print_metrics_table(FILE *f, const json_t *metrics);

/* Node types as text (or a JSON array with as_json) to stdout. */
void cli_print_node_types(const Remotemedia__V1__ListNodeTypesResponse *types, int as_json);

/* The CLI error for a client library error (exit 2 for local argument and file errors,
 * 1 for call failures; kind "deadline_exceeded" for a DEADLINE_EXCEEDED without a kind
 * trailer). Returns e->exit_code. */
int cli_from_client_error(const rm_client_error_t *ce, cli_error_t *e);

/* ---- streaming (remotemedia_cli_stream.c) ---- */

typedef struct cli_stream_opts {
  const char *manifest_text;       /* the manifest JSON ... */
  const char *manifest_path;       /* ... and the file it came from (named in its errors) */
  const char *node_id;             /* the source fed; NULL = the only one */
  const rm_client_buffer_t *audio; /* the whole file */
  int chunk_ms;                    /* > 0 */
  int realtime;                    /* pace chunks at real time, one in flight */
  int metrics, metrics_json, metrics_table;
  int64_t timeout_ms; /* the session's deadline; < 0 = none */
  const char *request_id;
  const char *output_dir;
} cli_stream_opts_t;

/* Streams o->audio through one session in chunks of chunk_ms: per-chunk latency lines and
 * a p50/p99 summary on stderr, then run's JSON document (each output's audio joined) on
 * stdout. Returns the exit status (CLI_OK, or e filled). */
int cli_stream(rm_client_t *client, const cli_stream_opts_t *o, cli_error_t *e);

/* ---- in-process mode (remotemedia_cli_local.c) ---- */

typedef struct cli_local_run cli_local_run_t;

/* Loads, compiles and runs the manifest in this process. On success *out holds the run
 * (free with cli_local_free) and r describes it. */
int cli_local_run(const char *manifest_path, const cli_input_t *inputs, size_t n_inputs,
                  long long timeout_ms, int metrics, cli_local_run_t **out, cli_run_result_t *r,
                  cli_error_t *e);
void cli_local_free(cli_local_run_t *run);

/* The in-process ValidatePipeline: loads and compiles the manifest, checks the inputs as a
 * run would, runs nothing; *doc is {"pipeline", "schedule", "predicted_memory_bytes"} (new
 * reference). */
int cli_local_validate(const char *manifest_path, const cli_input_t *inputs, size_t n_inputs,
                       json_t **doc, cli_error_t *e);

/* The registry as a ListNodeTypesResponse (free with cli_local_node_types_free). */
Remotemedia__V1__ListNodeTypesResponse *cli_local_node_types(void);
void cli_local_node_types_free(Remotemedia__V1__ListNodeTypesResponse *m);

#endif
