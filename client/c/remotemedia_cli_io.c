/* remotemedia_cli_io.c - the CLI's files and printing: input files to buffers (libsndfile
 * for audio), outputs to a JSON document and files, the metrics table, node types. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <sndfile.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "file_util.h"
#include "rm/sndfile_check.h"
#include "remotemedia_cli.h"
#include "rm/buffer.h"

/* ------------------------------------------------------------------ errors */

int cli_fail(cli_error_t *e, int exit_code, const char *fmt, ...) {
  memset(e, 0, sizeof *e);
  e->exit_code = exit_code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->message, sizeof e->message, fmt, ap);
  va_end(ap);
  return exit_code;
}

/* ------------------------------------------------------------------ stdout */

/* The errno of the first write to stdout that failed, 0 while none has (-1: stdio gave none). */
static int stdout_errno;

static void stdout_failed(int why) {
  if (!stdout_errno)
    stdout_errno = why ? why : -1;
}

int cli_write_stdout(const void *data, size_t len) {
  errno = 0;
  if (fwrite(data, 1, len, stdout) == len)
    return 0;
  stdout_failed(errno);
  return -1;
}

const char *cli_stdout_flush(void) {
  errno = 0;
  if (fflush(stdout) != 0 || ferror(stdout))
    stdout_failed(errno);
  if (!stdout_errno)
    return NULL;
  return stdout_errno > 0 ? strerror(stdout_errno) : "write error";
}

/* Writes text and a newline to stdout (see cli_write_stdout). */
static void put_document(const char *text) {
  if (!cli_write_stdout(text, strlen(text)))
    cli_write_stdout("\n", 1);
}

/* ------------------------------------------------------------------ errors */

void cli_print_error(const cli_error_t *e) {
  if (!e->status) {
    fprintf(stderr, "remotemedia: %s\n", e->message);
    return;
  }
  fprintf(stderr, "remotemedia: error: %s", rm_client_status_name(e->status));
  if (e->kind[0])
    fprintf(stderr, " kind=%s", e->kind);
  if (e->node_id[0])
    fprintf(stderr, " node=%s", e->node_id);
  if (e->field[0])
    fprintf(stderr, " field=%s", e->field);
  fprintf(stderr, ": %s\n", e->message);
}

/* ------------------------------------------------------------------ inputs */

char *cli_read_text(const char *path, size_t *len, cli_error_t *e) {
  char *buf = rm__file_read(path, len, realloc, free);
  if (!buf && errno == ENOMEM)
    cli_fail(e, CLI_USAGE, "out of memory reading %s", path);
  else if (!buf)
    cli_fail(e, CLI_USAGE, "cannot read %s: %s", path, strerror(errno));
  return buf;
}

static const char *extension(const char *path) {
  const char *slash = strrchr(path, '/');
  const char *dot = strrchr(path, '.');
  return dot && (!slash || dot > slash) ? dot + 1 : "";
}

static int ext_is(const char *ext, const char *const *list) {
  for (; *list; list++)
    if (!strcasecmp(ext, *list))
      return 1;
  return 0;
}

/* Audio through libsndfile, kept in the file's own sample format where the wire has it. */
static int load_audio(cli_input_t *in, const char *path, cli_error_t *e) {
  SF_INFO info;
  memset(&info, 0, sizeof info);
  SNDFILE *sf = sf_open(path, SFM_READ, &info);
  if (!sf)
    return cli_fail(e, CLI_USAGE, "cannot read audio file %s: %s", path, sf_strerror(NULL));
  rm_client_audio_format_t fmt;
  switch (info.format & SF_FORMAT_SUBMASK) {
  case SF_FORMAT_PCM_S8:
  case SF_FORMAT_PCM_U8:
  case SF_FORMAT_PCM_16: fmt = RM_CLIENT_I16; break;
  case SF_FORMAT_PCM_24:
  case SF_FORMAT_PCM_32: fmt = RM_CLIENT_I32; break;
  case SF_FORMAT_DOUBLE: fmt = RM_CLIENT_F64; break;
  default: fmt = RM_CLIENT_F32; break;
  }
  size_t frames = (size_t)info.frames, ch = (size_t)info.channels;
  size_t width = rm_client_audio_format_size(fmt);
  if (info.channels <= 0 || info.frames < 0 || (frames && ch > SIZE_MAX / width / frames)) {
    sf_close(sf);
    return cli_fail(e, CLI_USAGE, "audio file %s has an impossible size", path);
  }
  size_t bytes = frames * ch * width;
  void *data = malloc(bytes ? bytes : 1);
  if (!data) {
    sf_close(sf);
    return cli_fail(e, CLI_USAGE, "out of memory reading %s", path);
  }
  sf_count_t got;
  switch (fmt) {
  case RM_CLIENT_I16: got = sf_readf_short(sf, data, (sf_count_t)frames); break;
  case RM_CLIENT_I32: got = sf_readf_int(sf, data, (sf_count_t)frames); break;
  case RM_CLIENT_F64: got = sf_readf_double(sf, data, (sf_count_t)frames); break;
  default: got = sf_readf_float(sf, data, (sf_count_t)frames); break;
  }
  /* a cut-off file reads as a shorter one: its header says more (as AudioDecode checks) */
  int cut = got == (sf_count_t)frames && rm_sndfile_cut_short(sf, &info);
  sf_close(sf);
  if (got != (sf_count_t)frames || cut) {
    free(data);
    return cli_fail(e, CLI_USAGE, "audio file %s is truncated (%lld frames, its header says more)",
                    path, (long long)got);
  }
  in->bytes = data;
  in->buf = rm_client_buffer_audio(data, bytes, (uint32_t)info.samplerate, (uint32_t)ch, fmt);
  return 0;
}

/* The input types, as the extensions that imply them and the prefix that names them. */
typedef enum { T_UNKNOWN, T_AUDIO, T_JSON, T_TEXT, T_BINARY } input_type_t;

static input_type_t type_of_extension(const char *ext) {
  static const char *const audio[] = {"wav",  "wave", "flac", "ogg", "oga",
                                      "aiff", "aif",  "au",   NULL};
  static const char *const json[] = {"json", NULL};
  static const char *const text[] = {"txt", "text", NULL};
  static const char *const binary[] = {"raw", "bin", NULL};
  return ext_is(ext, audio)    ? T_AUDIO
         : ext_is(ext, json)   ? T_JSON
         : ext_is(ext, text)   ? T_TEXT
         : ext_is(ext, binary) ? T_BINARY
                               : T_UNKNOWN;
}

/* "text:FILE" and the like: the type, and *path moved past the prefix; else T_UNKNOWN. */
static input_type_t type_of_prefix(const char **path) {
  static const struct {
    const char *prefix;
    input_type_t type;
  } prefixes[] = {{"audio:", T_AUDIO}, {"json:", T_JSON}, {"text:", T_TEXT}, {"binary:", T_BINARY}};
  for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
    size_t n = strlen(prefixes[i].prefix);
    if (!strncmp(*path, prefixes[i].prefix, n) && (*path)[n]) {
      *path += n;
      return prefixes[i].type;
    }
  }
  return T_UNKNOWN;
}

int cli_input_load(cli_input_t *in, const char *node_id, const char *path, cli_error_t *e) {
  memset(in, 0, sizeof *in);
  in->node_id = node_id;
  input_type_t type = type_of_prefix(&path);
  in->path = path;
  if (type == T_UNKNOWN)
    type = type_of_extension(extension(path));
  if (type == T_UNKNOWN)
    return cli_fail(e, CLI_USAGE,
                    "--input %s=%s: cannot tell the type of %s from its name: use .wav/.flac/.ogg "
                    "(audio), .json, .txt or .raw/.bin, or name the type: %s=text:%s (or audio:, "
                    "json:, binary:)",
                    node_id, path, path, node_id, path);
  if (type == T_AUDIO)
    return load_audio(in, path, e);
  size_t len = 0;
  char *bytes = cli_read_text(path, &len, e);
  if (!bytes)
    return CLI_USAGE;
  in->bytes = bytes;
  if (type == T_BINARY) {
    in->buf = rm_client_buffer_binary(bytes, len, "application/octet-stream");
    return 0;
  }
  if (strlen(bytes) != len) {
    cli_input_destroy(in);
    return cli_fail(e, CLI_USAGE, "%s contains a NUL byte; text and JSON inputs must be UTF-8 text",
                    path);
  }
  if (type == T_JSON) {
    json_error_t je;
    json_t *v = json_loadb(bytes, len, JSON_DECODE_ANY, &je);
    if (!v) {
      cli_input_destroy(in);
      return cli_fail(e, CLI_USAGE, "%s is not valid JSON: %s (line %d, column %d)", path, je.text,
                      je.line, je.column);
    }
    json_decref(v);
    in->buf = rm_client_buffer_json(bytes);
    return 0;
  }
  in->buf = rm_client_buffer_text(bytes);
  return 0;
}

void cli_input_destroy(cli_input_t *in) {
  free(in->bytes);
  in->bytes = NULL;
}

/* ------------------------------------------------------------------ outputs */

/* Sample i as a double in full-scale units: the engine's reader (the client's format values
 * are the wire's, as are the engine's). */
_Static_assert((int)RM_CLIENT_F32 == (int)RM_SAMPLE_F32 &&
                   (int)RM_CLIENT_I16 == (int)RM_SAMPLE_I16 &&
                   (int)RM_CLIENT_I32 == (int)RM_SAMPLE_I32 &&
                   (int)RM_CLIENT_F64 == (int)RM_SAMPLE_F64,
               "client and engine sample formats are both the wire's AudioFormat values");

static double sample_at(const rm_client_buffer_t *b, size_t i) {
  return rm__sample_load(b->data, (int)b->format, i);
}

static int write_wav(const char *path, const rm_client_buffer_t *b, cli_error_t *e) {
  size_t width = rm_client_audio_format_size(b->format);
  if (!width || !b->channels || !b->sample_rate)
    return cli_fail(e, CLI_USAGE, "cannot write %s: the audio has no valid format", path);
  SF_INFO info;
  memset(&info, 0, sizeof info);
  info.samplerate = (int)b->sample_rate;
  info.channels = (int)b->channels;
  int sub = b->format == RM_CLIENT_I16   ? SF_FORMAT_PCM_16
            : b->format == RM_CLIENT_I32 ? SF_FORMAT_PCM_32
            : b->format == RM_CLIENT_F64 ? SF_FORMAT_DOUBLE
                                         : SF_FORMAT_FLOAT;
  info.format = SF_FORMAT_WAV | sub;
  SNDFILE *sf = sf_open(path, SFM_WRITE, &info);
  if (!sf)
    return cli_fail(e, CLI_USAGE, "cannot write %s: %s", path, sf_strerror(NULL));
  sf_count_t frames = (sf_count_t)(b->size / width / b->channels), put;
  switch (b->format) {
  case RM_CLIENT_I16: put = sf_writef_short(sf, b->data, frames); break;
  case RM_CLIENT_I32: put = sf_writef_int(sf, b->data, frames); break;
  case RM_CLIENT_F64: put = sf_writef_double(sf, b->data, frames); break;
  default: put = sf_writef_float(sf, b->data, frames); break;
  }
  int closed = sf_close(sf);
  if (put != frames || closed)
    return cli_fail(e, CLI_USAGE, "cannot write %s: short write", path);
  return 0;
}

static int write_bytes(const char *path, const void *data, size_t size, cli_error_t *e) {
  FILE *f = fopen(path, "wb");
  if (!f)
    return cli_fail(e, CLI_USAGE, "cannot write %s: %s", path, strerror(errno));
  size_t put = size ? fwrite(data, 1, size, f) : 0;
  int closed = fclose(f);
  if (put != size || closed)
    return cli_fail(e, CLI_USAGE, "cannot write %s: %s", path, strerror(errno));
  return 0;
}

static const char *file_ext(int kind) {
  switch (kind) {
  case RM_CLIENT_AUDIO: return "wav";
  case RM_CLIENT_JSON: return "json";
  case RM_CLIENT_TEXT: return "txt";
  case RM_CLIENT_TENSOR: return "raw";
  default: return "bin";
  }
}

/* The document entry describing one item (and naming its file, if written). */
static json_t *describe_item(const rm_client_buffer_t *b, const char *file) {
  json_t *o = json_object();
  if (!o)
    return NULL;
  json_object_set_new(o, "kind", json_string(rm_client_kind_name(b->kind)));
  switch (b->kind) {
  case RM_CLIENT_AUDIO: {
    size_t width = rm_client_audio_format_size(b->format);
    size_t n = width ? b->size / width : 0;
    double peak = 0;
    for (size_t i = 0; i < n; i++) {
      double v = fabs(sample_at(b, i));
      if (v > peak)
        peak = v;
    }
    const char *fname = rm_client_audio_format_name(b->format);
    json_object_set_new(o, "sample_rate", json_integer(b->sample_rate));
    json_object_set_new(o, "channels", json_integer(b->channels));
    json_object_set_new(o, "format", json_string(fname ? fname : "unknown"));
    json_object_set_new(o, "frames", json_integer(b->channels ? (json_int_t)(n / b->channels) : 0));
    json_object_set_new(o, "peak", json_real(peak));
    break;
  }
  case RM_CLIENT_JSON: {
    json_t *v = json_loadb(b->data, b->size, JSON_DECODE_ANY, NULL);
    json_object_set_new(o, "value", v ? v : json_stringn(b->data, b->size));
    break;
  }
  case RM_CLIENT_TEXT: json_object_set_new(o, "text", json_stringn(b->data, b->size)); break;
  case RM_CLIENT_TENSOR: {
    json_t *shape = json_array();
    for (size_t i = 0; i < b->ndim; i++)
      json_array_append_new(shape, json_integer(b->shape[i]));
    const char *dtype = rm_client_dtype_name(b->dtype); /* known: the library checked it */
    json_object_set_new(o, "dtype", json_string(dtype ? dtype : "unknown"));
    json_object_set_new(o, "shape", shape);
    json_object_set_new(o, "bytes", json_integer((json_int_t)b->size));
    break;
  }
  case RM_CLIENT_BINARY:
    json_object_set_new(o, "mime_type", json_string(b->mime_type ? b->mime_type : ""));
    json_object_set_new(o, "bytes", json_integer((json_int_t)b->size));
    break;
  }
  if (file)
    json_object_set_new(o, "file", json_string(file));
  return o;
}

static int write_item(const char *dir, const rm_client_output_t *o, size_t j, char *path,
                      size_t cap, cli_error_t *e) {
  const rm_client_buffer_t *b = &o->items[j];
  if (o->n_items > 1)
    snprintf(path, cap, "%s/%s.%zu.%s", dir, o->key, j, file_ext(b->kind));
  else
    snprintf(path, cap, "%s/%s.%s", dir, o->key, file_ext(b->kind));
  if (b->kind == RM_CLIENT_AUDIO)
    return write_wav(path, b, e);
  return write_bytes(path, b->data, b->size, e);
}

/* ------------------------------------------------------------------ shortest reals */

/* d in the fewest significant digits (15, 16 or 17) that strtod() reads back as d, with
 * ".0" added to an integral value so it still reads as a real: 0.962, not
 * 0.96199999999999997. */
static void shortest_real(double d, char *out, size_t cap) {
  for (int prec = 15; prec <= 17; prec++) {
    snprintf(out, cap, "%.*g", prec, d);
    if (strtod(out, NULL) == d)
      break;
  }
  if (!strpbrk(out, ".eEn")) /* "n": inf and nan, which JSON has no form for anyway */
    snprintf(out + strlen(out), cap - strlen(out), ".0");
}

#define REAL_MARK '\x01' /* starts a placeholder string: no JSON text holds one raw */

static int mark_reals(json_t *v, json_t *reals);

/* For a real: its placeholder string (its shortest text appended to reals), else NULL
 * with *rc = mark_reals(child) (0, or -1 on OOM). */
static json_t *mark_one(json_t *child, json_t *reals, int *rc) {
  *rc = 0;
  if (!json_is_real(child)) {
    *rc = mark_reals(child, reals);
    return NULL;
  }
  char text[40], mark[24];
  shortest_real(json_real_value(child), text, sizeof text);
  snprintf(mark, sizeof mark, "%c%zu", REAL_MARK, json_array_size(reals));
  json_t *placeholder = json_string(mark);
  if (!placeholder || json_array_append_new(reals, json_string(text))) {
    json_decref(placeholder);
    *rc = -1;
    return NULL;
  }
  return placeholder;
}

/* Replaces every real in v (a private copy) by a placeholder string "\x01<index>" and
 * appends the real's shortest text to reals. 0 or -1 on OOM. */
static int mark_reals(json_t *v, json_t *reals) {
  int rc = 0;
  if (json_is_object(v)) {
    const char *key;
    json_t *child;
    json_object_foreach(v, key, child) {
      json_t *mark = mark_one(child, reals, &rc);
      if (rc || (mark && json_object_set_new(v, key, mark)))
        return -1;
    }
  } else if (json_is_array(v)) {
    for (size_t i = 0; i < json_array_size(v); i++) {
      json_t *mark = mark_one(json_array_get(v, i), reals, &rc);
      if (rc || (mark && json_array_set_new(v, i, mark)))
        return -1;
    }
  }
  return 0;
}

/* json_dumps(doc, flags) with every real in its shortest round-trip form (jansson prints
 * a fixed number of digits). malloc'd text, NULL on OOM. */
static char *dumps_shortest(const json_t *doc, size_t flags) {
  json_t *copy = json_deep_copy(doc), *reals = json_array();
  char *marked = copy && reals && !mark_reals(copy, reals) ? json_dumps(copy, flags) : NULL;
  size_t need = marked ? strlen(marked) + 1 : 0;
  for (size_t i = 0; i < json_array_size(reals); i++)
    need += strlen(json_string_value(json_array_get(reals, i)));
  char *out = marked ? malloc(need) : NULL;
  if (out) {
    static const char esc[] = "\"\\u0001"; /* how jansson writes a placeholder's start */
    const char *p = marked;
    char *o = out;
    for (const char *hit; (hit = strstr(p, esc)) != NULL;) {
      memcpy(o, p, (size_t)(hit - p));
      o += hit - p;
      char *end;
      unsigned long idx = strtoul(hit + sizeof esc - 1, &end, 10);
      const char *text = json_string_value(json_array_get(reals, idx));
      size_t n = strlen(text);
      memcpy(o, text, n);
      o += n;
      p = end + 1; /* past the closing quote */
    }
    strcpy(o, p);
  }
  free(marked);
  json_decref(copy);
  json_decref(reals);
  return out;
}

/* Non-zero when an output key can name a file in --output-dir: a node id and maybe a port
 * ([A-Za-z0-9_-] and '.', not first). The key comes from the server: "../x" or "/tmp/x"
 * would write outside the directory. */
static int key_is_file_name(const char *key) {
  if (!*key || *key == '.')
    return 0;
  for (const char *p = key; *p; p++)
    if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-' && *p != '.')
      return 0;
  return 1;
}

int cli_emit_outputs(const cli_run_result_t *r, const char *output_dir, int with_metrics_json,
                     cli_error_t *e) {
  for (size_t i = 0; output_dir && i < r->n_outputs; i++)
    if (!key_is_file_name(r->outputs[i].key))
      return cli_fail(e, CLI_FAILED,
                      "the server's response: output key '%.64s' is not a node id (or "
                      "node_id.port): it cannot name a file in --output-dir",
                      r->outputs[i].key);
  if (output_dir && mkdir(output_dir, 0777) && errno != EEXIST)
    return cli_fail(e, CLI_USAGE, "cannot create --output-dir %s: %s", output_dir, strerror(errno));
  json_t *doc = json_object(), *outs = json_object();
  json_object_set_new(doc, "pipeline", json_string(r->pipeline_name ? r->pipeline_name : ""));
  json_object_set_new(doc, "outputs", outs);
  int rc = 0;
  for (size_t i = 0; i < r->n_outputs && !rc; i++) {
    const rm_client_output_t *o = &r->outputs[i];
    json_t *items = json_array();
    /* set_new takes items even when it fails (a key that is not UTF-8): keep it alive */
    if (!items || json_object_set(outs, o->key, items)) {
      json_decref(items);
      rc = cli_fail(e, CLI_FAILED, "out of memory, or output key '%.64s' is not UTF-8", o->key);
      break;
    }
    json_decref(items);
    for (size_t j = 0; j < o->n_items && !rc; j++) {
      char path[4096];
      if (output_dir)
        rc = write_item(output_dir, o, j, path, sizeof path, e);
      json_array_append_new(items, describe_item(&o->items[j], output_dir ? path : NULL));
    }
  }
  if (!rc) {
    if (with_metrics_json && r->metrics)
      json_object_set(doc, "metrics", r->metrics);
    char *text = dumps_shortest(doc, JSON_INDENT(2));
    if (text)
      put_document(text);
    free(text);
    /* flushed before the metrics table goes to stderr; the document lost is an error */
    const char *why = cli_stdout_flush();
    if (why)
      rc = cli_fail(e, CLI_USAGE, "cannot write stdout: %s", why);
  }
  json_decref(doc);
  return rc;
}

/* ------------------------------------------------------------------ metrics table */

static double num(const json_t *o, const char *key) {
  return json_number_value(json_object_get(o, key));
}

void cli_print_metrics_table(FILE *f, const json_t *m) {
  if (!m)
    return;
  fprintf(f,
          "pipeline %s: %.0f execution(s) in %.3f us (%.3f ms), peak memory %.0f bytes "
          "(%.3f MiB), metrics overhead %.3f us\n",
          json_string_value(json_object_get(m, "pipeline_id")), num(m, "total_executions"),
          num(m, "total_duration_us"), num(m, "total_duration_ms"), num(m, "peak_memory_bytes"),
          num(m, "peak_memory_mb"), num(m, "metrics_overhead_us"));
  const json_t *nodes = json_object_get(m, "node_metrics");
  int w = 4;
  size_t i;
  const json_t *n;
  json_array_foreach(nodes, i, n) {
    int len = (int)strlen(json_string_value(json_object_get(n, "node_id")));
    if (len > w)
      w = len;
  }
  fprintf(f, "%-*s %6s %6s %6s %8s %12s %12s %12s %12s\n", w, "node", "runs", "ok", "errors",
          "success", "total_us", "avg_us", "min_us", "max_us");
  json_array_foreach(nodes, i, n) {
    fprintf(f, "%-*s %6.0f %6.0f %6.0f %7.1f%% %12.3f %12.3f %12.3f %12.3f\n", w,
            json_string_value(json_object_get(n, "node_id")), num(n, "execution_count"),
            num(n, "success_count"), num(n, "error_count"), 100.0 * num(n, "success_rate"),
            num(n, "total_duration_us"), num(n, "avg_duration_us"), num(n, "min_duration_us"),
            num(n, "max_duration_us"));
  }
  fflush(f);
}

/* ------------------------------------------------------------------ node types */

static const char *data_kind_name(int k) {
  static const char *const names[] = {"unspecified", "audio", "tensor", "json", "text", "binary"};
  return k >= 0 && k <= 5 ? names[k] : "unknown";
}

static void print_ports(const char *label, Remotemedia__V1__PortSpec *const *ports, size_t n) {
  printf("  %s", label);
  if (!n)
    printf(" none");
  for (size_t i = 0; i < n; i++) {
    const Remotemedia__V1__PortSpec *p = ports[i];
    printf("%s %s (", i ? "," : "", p->name);
    for (size_t k = 0; k < p->n_kinds; k++)
      printf("%s%s", k ? "|" : "", data_kind_name((int)p->kinds[k]));
    if (p->same_as_input)
      printf("%ssame as input", p->n_kinds ? "; " : "");
    if (p->variadic)
      printf("; fan-in");
    printf(")");
  }
  printf("\n");
}

static void print_param(const Remotemedia__V1__ParamSpec *p) {
  char range[96] = "";
  if (p->has_minimum && p->has_maximum)
    snprintf(range, sizeof range, "[%g, %g]", p->minimum, p->maximum);
  else if (p->has_minimum)
    snprintf(range, sizeof range, ">= %g", p->minimum);
  else if (p->has_maximum)
    snprintf(range, sizeof range, "<= %g", p->maximum);
  char values[256] = "";
  size_t used = 0;
  for (size_t i = 0; i < p->n_enum_values && used < sizeof values; i++)
    used += (size_t)snprintf(values + used, sizeof values - used, "%s%s", i ? "|" : "",
                             p->enum_values[i]);
  printf("    %-16s %-12s %-16s %s%s\n", p->name, p->type, range[0] ? range : values,
         p->required ? "required" : "default ", p->required ? "" : p->default_json);
  if (range[0] && values[0])
    printf("    %-16s values %s\n", "", values);
  if (p->description[0])
    printf("    %-16s %s\n", "", p->description);
}

static json_t *param_json(const Remotemedia__V1__ParamSpec *p) {
  json_t *o = json_pack("{s:s, s:s, s:b, s:s}", "name", p->name, "type", p->type, "required",
                        p->required, "description", p->description);
  if (!p->required) {
    json_t *d = json_loads(p->default_json, JSON_DECODE_ANY, NULL);
    json_object_set_new(o, "default", d ? d : json_string(p->default_json));
  }
  if (p->has_minimum)
    json_object_set_new(o, "minimum", json_real(p->minimum));
  if (p->has_maximum)
    json_object_set_new(o, "maximum", json_real(p->maximum));
  if (p->n_enum_values) {
    json_t *vals = json_array();
    for (size_t i = 0; i < p->n_enum_values; i++)
      json_array_append_new(vals, json_string(p->enum_values[i]));
    json_object_set_new(o, "enum", vals);
  }
  return o;
}

static json_t *ports_json(Remotemedia__V1__PortSpec *const *ports, size_t n) {
  json_t *a = json_array();
  for (size_t i = 0; i < n; i++) {
    json_t *kinds = json_array();
    for (size_t k = 0; k < ports[i]->n_kinds; k++)
      json_array_append_new(kinds, json_string(data_kind_name((int)ports[i]->kinds[k])));
    json_array_append_new(a, json_pack("{s:s, s:o, s:b, s:b}", "name", ports[i]->name, "kinds",
                                       kinds, "variadic", ports[i]->variadic, "same_as_input",
                                       ports[i]->same_as_input));
  }
  return a;
}

void cli_print_node_types(const Remotemedia__V1__ListNodeTypesResponse *types, int as_json) {
  if (as_json) {
    json_t *all = json_array();
    for (size_t i = 0; i < types->n_node_types; i++) {
      const Remotemedia__V1__NodeTypeInfo *t = types->node_types[i];
      json_t *params = json_array();
      for (size_t j = 0; j < t->n_params; j++)
        json_array_append_new(params, param_json(t->params[j]));
      json_array_append_new(all, json_pack("{s:s, s:s, s:o, s:o, s:o}", "name", t->name,
                                           "description", t->description, "params", params,
                                           "inputs", ports_json(t->inputs, t->n_inputs), "outputs",
                                           ports_json(t->outputs, t->n_outputs)));
    }
    char *text = json_dumps(all, JSON_INDENT(2));
    if (text)
      put_document(text);
    free(text);
    json_decref(all);
    return;
  }
  for (size_t i = 0; i < types->n_node_types; i++) {
    const Remotemedia__V1__NodeTypeInfo *t = types->node_types[i];
    printf("%s%s\n", i ? "\n" : "", t->name);
    if (t->description[0])
      printf("  %s\n", t->description);
    print_ports("inputs: ", t->inputs, t->n_inputs);
    print_ports("outputs:", t->outputs, t->n_outputs);
    if (!t->n_params) {
      printf("  params:  none\n");
      continue;
    }
    printf("  params:\n");
    for (size_t j = 0; j < t->n_params; j++)
      print_param(t->params[j]);
  }
}
