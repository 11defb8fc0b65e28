/* remotemedia_run.c - remotemedia-run: runs a pipeline manifest in-process (the engine, no
 * server) over input files and prints its outputs and, when asked, its metrics.
 *
 *   remotemedia-run manifest.json --input NODE=file.wav|file.json|file.txt ...
 *                   [--output-dir DIR] [--metrics] [--metrics-json]
 *
 * Exit status: 0 ok, 1 the pipeline (or a file it needs) failed, 2 usage error. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "rm/alloc.h"
#include "rm/manifest.h"
#include "rm/metrics.h"
#include "rm/pipeline.h"
#include "run_wav.h"

enum { EXIT_PIPELINE = 1, EXIT_USAGE = 2 };

typedef struct opts {
  const char *manifest;
  char **input_specs; /* "NODE=path" */
  size_t n_inputs;
  const char *output_dir;
  int metrics;      /* print the seed JSON after the outputs */
  int metrics_json; /* stdout carries only the seed JSON; outputs go to stderr */
} opts_t;

static void usage(FILE *f) {
  fputs("usage: remotemedia-run MANIFEST.json --input NODE=FILE ... [--output-dir DIR]\n"
        "                       [--metrics] [--metrics-json]\n"
        "\n"
        "Runs the pipeline in MANIFEST.json in this process and prints every sink's output.\n"
        "  --input NODE=FILE  data for a node without incoming connections: .wav (or any\n"
        "                     sound file libsndfile reads) is audio, .json is JSON, .txt text\n"
        "  --output-dir DIR   also write each output there: audio as NODE.wav, JSON as\n"
        "                     NODE.json, text as NODE.txt, binary as NODE.bin\n"
        "  --metrics          measure the run and print its metrics (JSON) after the outputs\n"
        "  --metrics-json     print only the metrics JSON on stdout (outputs go to stderr)\n"
        "Exit status: 0 ok, 1 pipeline or file error, 2 usage error.\n",
        f);
}

static int parse_args(int argc, char **argv, opts_t *o) {
  static const struct option longs[] = {
      {"input", required_argument, NULL, 'i'}, {"output-dir", required_argument, NULL, 'o'},
      {"metrics", no_argument, NULL, 'm'},     {"metrics-json", no_argument, NULL, 'j'},
      {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0}};
  memset(o, 0, sizeof *o);
  o->input_specs = calloc((size_t)argc, sizeof *o->input_specs);
  if (!o->input_specs)
    return EXIT_PIPELINE;
  int c;
  opterr = 0;
  /* GNU getopt permutes: options may come before or after the manifest */
  while ((c = getopt_long(argc, argv, "i:o:h", longs, NULL)) != -1) {
    switch (c) {
    case 'i':
      if (!strchr(optarg, '=') || optarg[0] == '=' || !strchr(optarg, '=')[1]) {
        fprintf(stderr, "remotemedia-run: --input wants NODE=FILE, got '%s'\n", optarg);
        return EXIT_USAGE;
      }
      o->input_specs[o->n_inputs++] = optarg;
      break;
    case 'o': o->output_dir = optarg; break;
    case 'm': o->metrics = 1; break;
    case 'j': o->metrics_json = 1; break;
    case 'h': usage(stdout); exit(0);
    default:
      fprintf(stderr, "remotemedia-run: unknown or incomplete option '%s'\n", argv[optind - 1]);
      usage(stderr);
      return EXIT_USAGE;
    }
  }
  if (optind < argc)
    o->manifest = argv[optind++];
  if (optind < argc) {
    fprintf(stderr, "remotemedia-run: unexpected argument '%s'\n", argv[optind]);
    usage(stderr);
    return EXIT_USAGE;
  }
  if (!o->manifest) {
    usage(stderr);
    return EXIT_USAGE;
  }
  return 0;
}

static const char *extension(const char *path) {
  const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');
  return dot && (!slash || dot > slash) ? dot + 1 : "";
}

/* Reads a whole file into a new buffer of `kind`. */
static int read_text_file(const char *path, rm_kind_t kind, rm_buffer_t **out, char *msg,
                          size_t cap) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(msg, cap, "%s: %s", path, strerror(errno));
    return RM_EIO;
  }
  int rc = 0;
  long len = -1;
  if (fseek(f, 0, SEEK_END) == 0)
    len = ftell(f);
  rm_buffer_t *b = NULL;
  if (len < 0 || fseek(f, 0, SEEK_SET) != 0) {
    snprintf(msg, cap, "%s: cannot tell its size", path);
    rc = RM_EIO;
  } else if (!(b = rm_buffer_new(kind, (size_t)len, NULL))) {
    snprintf(msg, cap, "%s: out of memory", path);
    rc = RM_ENOMEM;
  } else if (fread(b->data, 1, (size_t)len, f) != (size_t)len) {
    snprintf(msg, cap, "%s: read error", path);
    rc = RM_EIO;
  }
  fclose(f);
  if (!rc && kind == RM_KIND_JSON) { /* say which file is bad before any node parses it */
    json_error_t je;
    json_t *v = json_loadb((const char *)b->data, b->size, JSON_DECODE_ANY, &je);
    if (!v) {
      snprintf(msg, cap, "%s: not valid JSON: %s (line %d, column %d)", path, je.text, je.line,
               je.column);
      rc = RM_EINPUT;
    }
    json_decref(v);
  }
  if (rc) {
    rm_buffer_unref(b);
    return rc;
  }
  *out = b;
  return 0;
}

/* Loads every --input; on error names the file. Returns 0, EXIT_USAGE or an RM_E* code. */
static int load_inputs(const opts_t *o, rm_input_t *inputs, char *msg, size_t cap) {
  for (size_t i = 0; i < o->n_inputs; i++) {
    char *spec = o->input_specs[i];
    char *eq = strchr(spec, '=');
    *eq = '\0'; /* spec becomes the node id */
    const char *path = eq + 1, *ext = extension(path);
    inputs[i].node_id = spec;
    int rc;
    if (!strcasecmp(ext, "json"))
      rc = read_text_file(path, RM_KIND_JSON, &inputs[i].buf, msg, cap);
    else if (!strcasecmp(ext, "txt"))
      rc = read_text_file(path, RM_KIND_TEXT, &inputs[i].buf, msg, cap);
    else if (!strcasecmp(ext, "wav") || !strcasecmp(ext, "flac") || !strcasecmp(ext, "ogg") ||
             !strcasecmp(ext, "aiff") || !strcasecmp(ext, "aif"))
      rc = run_wav_read(path, &inputs[i].buf, msg, cap);
    else {
      snprintf(msg, cap,
               "--input %s=%s: unknown file type '.%s' (use .wav, .flac, .ogg, .aiff, "
               ".json or .txt)",
               spec, path, ext);
      return EXIT_USAGE;
    }
    if (rc)
      return rc;
  }
  return 0;
}

/* ---------------------------------------------------------------- outputs */

static FILE *out_stream; /* stdout, or stderr under --metrics-json */

static int write_file(const char *path, const void *data, size_t len, char *msg, size_t cap) {
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(data, 1, len, f) != len) {
    snprintf(msg, cap, "%s: %s", path, strerror(errno));
    if (f)
      fclose(f);
    return RM_EIO;
  }
  if (fclose(f)) {
    snprintf(msg, cap, "%s: %s", path, strerror(errno));
    return RM_EIO;
  }
  return 0;
}

/* Prints one output item and, with --output-dir, saves it. */
static int print_item(const opts_t *o, const char *name, const rm_buffer_t *b, char *msg,
                      size_t cap) {
  char path[4096] = "";
  const char *ext = b->kind == RM_KIND_AUDIO  ? "wav"
                    : b->kind == RM_KIND_JSON ? "json"
                    : b->kind == RM_KIND_TEXT ? "txt"
                                              : "bin";
  if (o->output_dir)
    snprintf(path, sizeof path, "%s/%s.%s", o->output_dir, name, ext);
  int rc = 0;
  switch (b->kind) {
  case RM_KIND_AUDIO: {
    const rm_audio_info_t *a = &b->u.audio;
    size_t frames = rm_audio_frames(b);
    double peak = run_audio_peak(b);
    fprintf(out_stream, "%s: audio %u Hz, %u ch, %s, %zu frames (%.3f s), peak %.4f", name,
            a->sample_rate, a->channels, rm_sample_format_name(a->format), frames,
            (double)frames / a->sample_rate, peak);
    if (peak > 0)
      fprintf(out_stream, " (%.2f dBFS)", 20.0 * log10(peak));
    else
      fprintf(out_stream, " (-inf dBFS)");
    if (*path && !(rc = run_wav_write(path, b, msg, cap)))
      fprintf(out_stream, " -> %s", path);
    fputc('\n', out_stream);
    return rc;
  }
  case RM_KIND_JSON:
  case RM_KIND_TEXT:
    fprintf(out_stream, "%s: %.*s\n", name, (int)b->size, (const char *)b->data);
    break;
  case RM_KIND_TENSOR: {
    fprintf(out_stream, "%s: tensor %s [", name, rm_dtype_name(b->u.tensor.dtype));
    for (uint32_t d = 0; d < b->u.tensor.ndim; d++)
      fprintf(out_stream, "%s%lld", d ? ", " : "", (long long)b->u.tensor.shape[d]);
    fprintf(out_stream, "], %zu bytes\n", b->size);
    break;
  }
  default:
    fprintf(out_stream, "%s: binary %zu bytes%s%s\n", name, b->size, b->mime_type ? ", " : "",
            b->mime_type ? b->mime_type : "");
    break;
  }
  if (*path && (rc = write_file(path, b->data, b->size, msg, cap)) == 0)
    fprintf(out_stream, "  -> %s\n", path);
  return rc;
}

static int print_outputs(const opts_t *o, const rm_result_t *r, char *msg, size_t cap) {
  for (size_t i = 0; i < r->n_outputs; i++) {
    const rm_output_t *out = &r->outputs[i];
    if (out->n_items == 0)
      fprintf(out_stream, "%s: (no items)\n", out->key);
    for (size_t k = 0; k < out->n_items; k++) {
      char name[300];
      if (out->n_items == 1)
        snprintf(name, sizeof name, "%s", out->key);
      else
        snprintf(name, sizeof name, "%s.%zu", out->key, k);
      int rc = print_item(o, name, out->items[k], msg, cap);
      if (rc)
        return rc;
    }
  }
  return 0;
}

static int print_metrics(rm_pipeline_t *p, int compact) {
  char *text;
  if (compact) { /* one line for machines, its encoding inside its own overhead figure */
    text = rm_metrics_to_json_text(rm_pipeline_metrics(p), NULL);
  } else {
    json_t *j = rm_metrics_to_json(rm_pipeline_metrics(p));
    /* 12 significant digits: durations are whole nanoseconds, so this prints them exactly
     * up to 10^9 us (0.581, not 0.58099999999999996) */
    text = j ? json_dumps(j, JSON_REAL_PRECISION(12) | JSON_INDENT(2)) : NULL;
    json_decref(j);
  }
  if (!text)
    return RM_ENOMEM;
  if (!compact)
    printf("metrics:\n");
  printf("%s\n", text);
  rm_free(text);
  return 0;
}

static int fail(int code, const char *message) {
  fprintf(stderr, "error: %s: %s\n", rm_strerror(code), message);
  return EXIT_PIPELINE;
}

int main(int argc, char **argv) {
  opts_t o;
  int status = parse_args(argc, argv, &o);
  if (status) {
    free(o.input_specs);
    return status;
  }
  rm_alloc_install_jansson();
  out_stream = o.metrics_json ? stderr : stdout;
  char msg[RM_ERROR_MSG_MAX + 4096];
  rm_error_t err;
  rm_error_clear(&err);
  rm_manifest_t *m = NULL;
  rm_pipeline_t *p = NULL;
  rm_result_t *r = NULL;
  rm_input_t *inputs = calloc(o.n_inputs ? o.n_inputs : 1, sizeof *inputs);
  int rc;

  if (!inputs) {
    status = fail(RM_ENOMEM, "out of memory");
    goto out;
  }
  if (o.output_dir) {
    struct stat st;
    if (stat(o.output_dir, &st) != 0 && mkdir(o.output_dir, 0777) != 0) {
      snprintf(msg, sizeof msg, "--output-dir %s: %s", o.output_dir, strerror(errno));
      status = fail(RM_EIO, msg);
      goto out;
    }
  }
  if ((rc = rm_manifest_from_file(o.manifest, &m, &err)) ||
      (rc = rm_pipeline_new(m, NULL, &p, &err))) {
    snprintf(msg, sizeof msg, "%s: %s", o.manifest, err.message);
    status = fail(rc, msg);
    goto out;
  }
  if ((rc = load_inputs(&o, inputs, msg, sizeof msg))) {
    if (rc == EXIT_USAGE) {
      fprintf(stderr, "remotemedia-run: %s\n", msg);
      status = EXIT_USAGE;
    } else {
      status = fail(rc, msg);
    }
    goto out;
  }
  rm_run_opts_t run = {.metrics = o.metrics || o.metrics_json, .end_of_stream = 1};
  rc = rm_pipeline_run(p, inputs, o.n_inputs, &run, &r, &err);
  if (rc) {
    status = fail(rc, err.message);
  } else if ((rc = print_outputs(&o, r, msg, sizeof msg))) {
    status = fail(rc, msg);
  }
  /* metrics of a failed run are still worth seeing: which node failed, how long it took */
  if (run.metrics && print_metrics(p, o.metrics_json) && !status)
    status = fail(RM_ENOMEM, "out of memory exporting metrics");
out:
  if (fflush(stdout) && !status)
    status = fail(RM_EIO, "could not write to stdout");
  rm_result_free(r);
  for (size_t i = 0; inputs && i < o.n_inputs; i++)
    rm_buffer_unref(inputs[i].buf);
  free(inputs);
  rm_pipeline_free(p);
  rm_manifest_free(m);
  free(o.input_specs);
  return status;
}
