/* log.c - JSON-lines logging on stderr. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

rm_log_level_t rm_log_threshold = RM_LOG_INFO;

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

void rm_log_emit_json(rm_log_level_t level, const char *event, json_t *fields) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  struct tm tm;
  gmtime_r(&tv.tv_sec, &tm);
  char ts[80];
  snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long)tv.tv_usec);
  json_t *line = json_pack("{s:s, s:s, s:s}", "ts", ts, "level", rm_log_level_name(level),
                           "event", event);
  if (line && fields)
    json_object_update(line, fields);
  json_decref(fields);
  char *text = line ? json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9)) : NULL;
  json_decref(line);
  if (!text) { /* out of memory or invalid UTF-8 in a field: still say something */
    fprintf(stderr, "{\"level\":\"%s\",\"event\":\"%s\",\"log_error\":\"unencodable\"}\n",
            rm_log_level_name(level), event);
    return;
  }
  size_t len = strlen(text);
  text[len] = '\n'; /* json_dumps leaves room for its NUL: reuse it for the newline */
  fwrite(text, 1, len + 1, stderr);
  free(text);
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
