/* log.c - JSON-lines logging on stderr (or stdout), gRPC core's own messages included. */
#include "log.h"
#include "rm/clock.h"
#include "rm/utf8.h"

#include <grpc/support/log.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

rm_log_level_t rm_log_threshold = RM_LOG_INFO;

static FILE *log_out; /* NULL: stderr (not a constant, so not an initialiser) */
static FILE *out(void) { return log_out ? log_out : stderr; }

int rm_log_set_stream(const char *name) {
  if (strcmp(name, "stderr") == 0)
    log_out = stderr;
  else if (strcmp(name, "stdout") == 0)
    log_out = stdout;
  else
    return -1;
  return 0;
}

static _Thread_local const char *current_request_id;

const char *rm_log_set_request_id(const char *id) {
  const char *previous = current_request_id;
  current_request_id = id;
  return previous;
}

static pthread_t flusher;
static int flusher_running;
static pthread_mutex_t flush_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t flush_cv = PTHREAD_COND_INITIALIZER;
static int flush_stop;

static void *flush_main(void *arg) {
  (void)arg;
  pthread_mutex_lock(&flush_mu);
  while (!flush_stop) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += 100 * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
      until.tv_sec++;
      until.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&flush_cv, &flush_mu, &until);
    fflush(out());
  }
  pthread_mutex_unlock(&flush_mu);
  return NULL;
}

int rm_log_start_buffering(void) {
  static char buf[1 << 16];
  setvbuf(out(), buf, _IOFBF, sizeof buf);
  flush_stop = 0;
  if (pthread_create(&flusher, NULL, flush_main, NULL)) {
    setvbuf(out(), NULL, _IONBF, 0);
    return -1;
  }
  flusher_running = 1;
  return 0;
}

void rm_log_stop(void) {
  if (flusher_running) {
    pthread_mutex_lock(&flush_mu);
    flush_stop = 1;
    pthread_cond_signal(&flush_cv);
    pthread_mutex_unlock(&flush_mu);
    pthread_join(flusher, NULL);
    flusher_running = 0;
  }
  fflush(out());
}

static const char *const names[] = {"debug", "info", "warn", "error", "off"};

int rm_log_level_parse(const char *name) {
  for (int i = 0; i <= RM_LOG_OFF; i++)
    if (strcmp(name, names[i]) == 0)
      return i;
  return -1;
}

const char *rm_log_level_name(rm_log_level_t level) {
  return level >= RM_LOG_DEBUG && level <= RM_LOG_OFF ? names[level] : "?";
}

/* Writes v in decimal, at least min_digits (zero-padded), into out (24 bytes is enough);
 * returns the length. No printf: it is the hot path of every call's log line. */
static size_t format_uint(char *out, unsigned long long v, int min_digits) {
  char rev[24];
  size_t n = 0;
  do {
    rev[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v || n < (size_t)min_digits);
  for (size_t i = 0; i < n; i++)
    out[i] = rev[n - 1 - i];
  return n;
}

#define TIMESTAMP_LEN 27 /* 2026-11-29T00:13:08.123456Z */
/* the header of a line ({"ts":"...","level":"error","event":) and an event of 64 bytes
 * escaped at worst, with the closing "}\n" */
_Static_assert(sizeof(((rm_log_line_t *)0)->buf) >=
                   7 + TIMESTAMP_LEN + 11 + 5 + 10 + 6 * 64 + 2 + 2,
               "an event always fits");

/* RFC 3339 UTC time with microseconds, NUL-terminated, of the monotonic instant mono_ns.
 * The wall clock is read once per second and thread (at each second's start, so a step
 * of the clock shows within a second); lines in between add the monotonic time elapsed,
 * which saves a clock read per line. The date part is formatted once per second too. */
static void timestamp_at(char out[TIMESTAMP_LEN + 1], uint64_t mono_ns) {
  static _Thread_local uint64_t resync_at; /* monotonic time of the next wall second */
  static _Thread_local int64_t wall_minus_mono;
  static _Thread_local time_t cached_sec = -1;
  static _Thread_local char cached[64];
  if (mono_ns >= resync_at) {
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    uint64_t now = rm_clock_ns();
    wall_minus_mono = (int64_t)wall.tv_sec * 1000000000 + wall.tv_nsec - (int64_t)now;
    resync_at = now + (uint64_t)(1000000000 - wall.tv_nsec);
  }
  int64_t wall_ns = (int64_t)mono_ns + wall_minus_mono;
  time_t sec = (time_t)(wall_ns / 1000000000);
  if (sec != cached_sec) {
    struct tm tm;
    gmtime_r(&sec, &tm);
    snprintf(cached, sizeof cached, "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    cached_sec = sec;
  }
  memcpy(out, cached, 19);
  out[19] = '.';
  format_uint(out + 20, (unsigned long long)(wall_ns % 1000000000 / 1000), 6);
  out[26] = 'Z';
  out[27] = '\0';
}

void rm_log_emit_json(rm_log_level_t level, const char *event, json_t *fields) {
  char ts[TIMESTAMP_LEN + 1];
  timestamp_at(ts, rm_clock_ns());
  json_t *line =
      json_pack("{s:s, s:s, s:s}", "ts", ts, "level", rm_log_level_name(level), "event", event);
  if (line && fields)
    json_object_update(line, fields);
  json_decref(fields);
  if (line && current_request_id && !json_object_get(line, "request_id"))
    json_object_set_new(line, "request_id", json_string(current_request_id));
  char *text =
      line ? json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9)) : NULL;
  json_decref(line);
  if (!text) { /* out of memory or invalid UTF-8 in a field: still say something */
    fprintf(out(), "{\"level\":\"%s\",\"event\":\"%s\",\"log_error\":\"unencodable\"}\n",
            rm_log_level_name(level), event);
    return;
  }
  size_t len = strlen(text);
  text[len] = '\n'; /* json_dumps leaves room for its NUL: reuse it for the newline */
  fwrite(text, 1, len + 1, out());
  if (level >= RM_LOG_WARN)
    fflush(out());
  json_free_t jfree;
  json_get_alloc_funcs(NULL, &jfree);
  jfree(text);
}

void rm_log_emit(rm_log_level_t level, const char *event, const char *fmt, ...) {
  json_t *fields = NULL;
  if (fmt && *fmt) {
    va_list ap;
    va_start(ap, fmt);
    fields = json_vpack_ex(NULL, 0, fmt, ap);
    va_end(ap);
  }
  rm_log_emit_json(level, event, fields);
}

/* ---------------------------------------------------------------- line builder */

/* Each field is measured first, then written whole or left out: a line never ends cut in
 * the middle of a field. The closing "}\n" always has room. */
static int room(const rm_log_line_t *l, size_t n) { return n <= sizeof l->buf - 2 - l->len; }

/* Printable ASCII that JSON takes as it is (0x20-0x7f but '"' and '\\'), one bit per byte
 * value: a test per byte is most of a log line's cost. */
static const uint64_t plain_bits[4] = {0xfffffffb00000000ull, 0xffffffffefffffffull, 0, 0};
static int plain(unsigned char c) { return (int)(plain_bits[c >> 6] >> (c & 63)) & 1; }

/* Whether the 8 bytes at s are all plain, a word at a time: none below 0x20 or above 0x7f,
 * none '"' or '\\' (the classic has-zero-byte test on the word and on its XORs). */
static int plain8(const unsigned char *s) {
  const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
  uint64_t x;
  memcpy(&x, s, 8);
  uint64_t low = (x - 0x20 * ones) & ~x; /* high bit set where a byte is below 0x20 */
  uint64_t quote = x ^ (0x22 * ones), bslash = x ^ (0x5c * ones);
  uint64_t zq = (quote - ones) & ~quote, zb = (bslash - ones) & ~bslash;
  return ((x | low | zq | zb) & highs) == 0;
}

/* v as a JSON string, quotes included, written at out (or only measured when out is NULL);
 * its length. Invalid UTF-8 becomes U+FFFD. At most 6 * len + 2 bytes. */
static size_t escape(char *out, const char *v, size_t len) {
  static const char hex[] = "0123456789abcdef";
  const unsigned char *s = (const unsigned char *)v;
  size_t n = 0, i = 0;
#define EMIT(src, count)                                                                           \
  do {                                                                                             \
    if (out)                                                                                       \
      memcpy(out + n, (src), (count));                                                             \
    n += (count);                                                                                  \
  } while (0)
  EMIT("\"", 1);
  for (;;) {
    size_t start = i;
    while (i + 8 <= len && plain8(s + i))
      i += 8;
    while (i < len && plain(s[i]))
      i++;
    EMIT(v + start, i - start);
    if (i == len)
      break;
    unsigned char c = s[i];
    if (c >= 0x80) {
      size_t k = rm_utf8_len(s + i, len - i);
      if (k)
        EMIT(v + i, k);
      else
        EMIT("\\ufffd", 6);
      i += k ? k : 1;
    } else if (c == '"' || c == '\\') {
      char esc[2] = {'\\', (char)c};
      EMIT(esc, 2);
      i++;
    } else {
      char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
      EMIT(esc, 6);
      i++;
    }
  }
  EMIT("\"", 1);
#undef EMIT
  return n;
}

/* Writes ,"key": and returns where the value goes; the caller has checked the room. */
static char *field_start(rm_log_line_t *l, const char *key, size_t klen) {
  char *p = l->buf + l->len;
  p[0] = ',';
  p[1] = '"';
  memcpy(p + 2, key, klen);
  p[2 + klen] = '"';
  p[3 + klen] = ':';
  return p + 4 + klen;
}

/* A key and a ready value (a number, a literal). */
static void put_field(rm_log_line_t *l, const char *key, const char *value, size_t n) {
  size_t klen = strlen(key);
  if (!room(l, 4 + klen + n))
    return;
  char *p = field_start(l, key, klen);
  memcpy(p, value, n);
  l->len = (size_t)(p + n - l->buf);
}

void rm_log_line_begin(rm_log_line_t *l, rm_log_level_t level, const char *event) {
  rm_log_line_begin_at(l, level, event, rm_clock_ns());
}

void rm_log_line_begin_at(rm_log_line_t *l, rm_log_level_t level, const char *event,
                          uint64_t mono_ns) {
  const char *name = rm_log_level_name(level);
  size_t nlen = strlen(name), elen = strlen(event);
  char *p = l->buf;
  l->level = level;
  memcpy(p, "{\"ts\":\"", 7);
  timestamp_at(p + 7, mono_ns); /* writes its NUL, overwritten next */
  p += 7 + TIMESTAMP_LEN;
  memcpy(p, "\",\"level\":\"", 11);
  memcpy(p + 11, name, nlen); /* our own short names */
  p += 11 + nlen;
  memcpy(p, "\",\"event\":", 10);
  p += 10;
  l->len = (size_t)(p - l->buf);
  /* events are the server's own words; 64 of them, escaped, always fit after the header */
  if (elen > 64)
    event = "?", elen = 1;
  l->len += escape(p, event, elen);
}

void rm_log_line_strn(rm_log_line_t *l, const char *key, const char *value, size_t len) {
  size_t klen = strlen(key);
  /* the worst case of escaping fits: no need to measure */
  int fits = len < sizeof l->buf && room(l, 4 + klen + 6 * len + 2);
  if (!fits && !room(l, 4 + klen + escape(NULL, value, len)))
    return; /* left out whole rather than cut */
  char *p = field_start(l, key, klen);
  p += escape(p, value, len);
  l->len = (size_t)(p - l->buf);
}

void rm_log_line_str(rm_log_line_t *l, const char *key, const char *value) {
  rm_log_line_strn(l, key, value ? value : "", value ? strlen(value) : 0);
}

void rm_log_line_plain(rm_log_line_t *l, const char *key, const char *value) {
  size_t klen = strlen(key), n = strlen(value);
  if (!room(l, 4 + klen + n + 2))
    return;
  char *p = field_start(l, key, klen);
  *p++ = '"';
  memcpy(p, value, n);
  p[n] = '"';
  l->len = (size_t)(p + n + 1 - l->buf);
}

void rm_log_line_int(rm_log_line_t *l, const char *key, long long value) {
  char num[24];
  size_t n = 0;
  if (value < 0)
    num[n++] = '-';
  n += format_uint(num + n,
                   value < 0 ? 0ull - (unsigned long long)value : (unsigned long long)value, 1);
  put_field(l, key, num, n);
}

void rm_log_line_us(rm_log_line_t *l, const char *key, uint64_t ns) {
  char num[32];
  size_t n = format_uint(num, ns / 1000, 1);
  num[n++] = '.';
  n += format_uint(num + n, ns % 1000, 3);
  put_field(l, key, num, n);
}

void rm_log_line_bool(rm_log_line_t *l, const char *key, int value) {
  put_field(l, key, value ? "true" : "false", value ? 4 : 5);
}

void rm_log_line_end(rm_log_line_t *l) {
  memcpy(l->buf + l->len, "}\n", 2);
  l->len += 2;
  fwrite(l->buf, 1, l->len, out());
  if (l->level >= RM_LOG_WARN)
    fflush(out());
}

void rm_log_lifecycle(const char *event, const char *fmt, ...) {
  if (rm_log_threshold >= RM_LOG_OFF)
    return;
  json_t *fields = NULL;
  if (fmt && *fmt) {
    va_list ap;
    va_start(ap, fmt);
    fields = json_vpack_ex(NULL, 0, fmt, ap);
    va_end(ap);
  }
  rm_log_emit_json(RM_LOG_INFO, event, fields);
  fflush(out());
}

/* ---------------------------------------------------------------- gRPC core's messages */

static void on_grpc_log(gpr_log_func_args *a) {
  rm_log_level_t level = a->severity == GPR_LOG_SEVERITY_ERROR  ? RM_LOG_ERROR
                         : a->severity == GPR_LOG_SEVERITY_INFO ? RM_LOG_INFO
                                                                : RM_LOG_DEBUG;
  if (level < rm_log_threshold)
    return;
  const char *file = a->file ? a->file : "";
  const char *slash = strrchr(file, '/');
  rm_log_emit(level, "grpc_core", "{s:s, s:s, s:i}", "message", a->message ? a->message : "",
              "file", slash ? slash + 1 : file, "line", a->line);
}

void rm_log_route_grpc(void) { gpr_set_log_function(on_grpc_log); }

void rm_log_grpc_verbosity(void) {
  const char *env = getenv("GRPC_VERBOSITY");
  if (env && *env)
    return; /* the operator's choice */
  gpr_set_log_verbosity(rm_log_threshold == RM_LOG_DEBUG ? GPR_LOG_SEVERITY_DEBUG
                                                         : GPR_LOG_SEVERITY_ERROR);
}
