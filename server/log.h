/* log.h - levelled, structured logging: one JSON object per line on stderr (or stdout,
 * --log-stream), gRPC core's own messages included. */
#ifndef RM_SERVER_LOG_H
#define RM_SERVER_LOG_H

#include <jansson.h>
#include <stdint.h>

typedef enum rm_log_level {
  RM_LOG_DEBUG = 0,
  RM_LOG_INFO = 1,
  RM_LOG_WARN = 2,
  RM_LOG_ERROR = 3,
  RM_LOG_OFF = 4,
} rm_log_level_t;

extern rm_log_level_t rm_log_threshold;

/* RM_LOG(level, "event", "{s:s, s:I}", "key", value, ...): the fields are a json_pack
 * format and its arguments; nothing is formatted when the level is filtered out. */
#define RM_LOG(level, event, ...)                                                                  \
  do {                                                                                             \
    if ((level) >= rm_log_threshold)                                                               \
      rm_log_emit((level), (event), __VA_ARGS__);                                                  \
  } while (0)

/* Writes {"ts", "level", "event", fields...} as one line. Any thread. */
void rm_log_emit(rm_log_level_t level, const char *event, const char *fmt, ...);
/* Same, with a ready object (stolen) for the fields; NULL = no fields. */
void rm_log_emit_json(rm_log_level_t level, const char *event, json_t *fields);

/* A line built field by field in a fixed buffer, for the per-call lines: no allocation, no
 * JSON library on the hot path. Strings are escaped (invalid UTF-8 becomes U+FFFD); a field
 * that does not fit is left out whole; the line goes out with one fwrite(). */
typedef struct rm_log_line {
  char buf[2048];
  size_t len;
  rm_log_level_t level;
} rm_log_line_t;

void rm_log_line_begin(rm_log_line_t *l, rm_log_level_t level, const char *event);
/* The same, stamped with the wall-clock time of mono_ns (an rm_clock_ns() reading the
 * caller already has, e.g. a call's end). */
void rm_log_line_begin_at(rm_log_line_t *l, rm_log_level_t level, const char *event,
                          uint64_t mono_ns);
void rm_log_line_str(rm_log_line_t *l, const char *key, const char *value);
void rm_log_line_strn(rm_log_line_t *l, const char *key, const char *value, size_t len);
/* A string the program itself owns (a method path of the table, a status name) that is
 * printable ASCII without '"' or '\\': written without escaping. Never for client data. */
void rm_log_line_plain(rm_log_line_t *l, const char *key, const char *value);
void rm_log_line_int(rm_log_line_t *l, const char *key, long long value);
/* A duration in microseconds from nanoseconds, exactly: 1234567 ns is 1234.567. */
void rm_log_line_us(rm_log_line_t *l, const char *key, uint64_t ns);
void rm_log_line_bool(rm_log_line_t *l, const char *key, int value);
void rm_log_line_end(rm_log_line_t *l);

/* "stderr" (the default) or "stdout": where every line goes. 0, or -1 for another name.
 * Main thread, before rm_log_start_buffering and any other thread. */
int rm_log_set_stream(const char *name);

/* The request id added to every line rm_log_emit(_json) writes on this thread (NULL =
 * none; not copied: it must live until replaced). Returns the previous one, to restore. */
const char *rm_log_set_request_id(const char *id);

/* A lifecycle event (listening, draining, stopping, stopped) at info, written whatever the
 * level (unless off) and flushed at once: scripts and tests wait for these lines. */
void rm_log_lifecycle(const char *event, const char *fmt, ...);

/* Routes gRPC core's messages (gpr_log) into this log as "grpc_core" events with their
 * severity, message, file and line. Call before grpc_init. rm_log_grpc_verbosity then (after
 * grpc_init, which reads GRPC_VERBOSITY) makes the core print errors only, or debug too at
 * --log-level debug, unless GRPC_VERBOSITY says otherwise. Main thread. */
void rm_log_route_grpc(void);
void rm_log_grpc_verbosity(void);

/* Makes stderr block-buffered and starts a thread that flushes it every 100 ms, so the
 * per-call lines cost no system call each; lines at warn and above are flushed at once.
 * rm_log_stop flushes and stops the thread. Call both from the main thread. */
int rm_log_start_buffering(void);
void rm_log_stop(void);

/* "debug" | "info" | "warn" | "error" | "off" -> level; -1 if unknown. */
int rm_log_level_parse(const char *name);
const char *rm_log_level_name(rm_log_level_t level);

#endif
