/* log.h - levelled, structured logging: one JSON object per line on stderr. */
#ifndef RM_SERVER_LOG_H
#define RM_SERVER_LOG_H

#include <jansson.h>

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
#define RM_LOG(level, event, ...)                                                        \
  do {                                                                                   \
    if ((level) >= rm_log_threshold)                                                     \
      rm_log_emit((level), (event), __VA_ARGS__);                                        \
  } while (0)

/* Writes {"ts", "level", "event", fields...} as one line. Any thread. */
void rm_log_emit(rm_log_level_t level, const char *event, const char *fmt, ...);
/* Same, with a ready object (stolen) for the fields; NULL = no fields. */
void rm_log_emit_json(rm_log_level_t level, const char *event, json_t *fields);

/* "debug" | "info" | "warn" | "error" | "off" -> level; -1 if unknown. */
int rm_log_level_parse(const char *name);
const char *rm_log_level_name(rm_log_level_t level);

#endif
