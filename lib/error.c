/* error.c - error names and the error detail record. */
#include "rm/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *rm_strerror(int code) {
  switch (code) {
  case RM_OK: return "ok";
  case RM_EMANIFEST: return "invalid_manifest";
  case RM_EPARAM: return "invalid_params";
  case RM_EINPUT: return "invalid_input";
  case RM_ENOTYPE: return "unknown_node_type";
  case RM_ENODE: return "node_failed";
  case RM_ELIMIT: return "limit_exceeded";
  case RM_ENOMEM: return "out_of_memory";
  case RM_ETIMEDOUT: return "deadline_exceeded";
  case RM_ECANCELED: return "cancelled";
  case RM_EINTERNAL: return "internal";
  case RM_EIO: return "io_error";
  default: return "unknown_error";
  }
}

void rm_error_clear(rm_error_t *err) {
  if (!err)
    return;
  err->code = 0;
  err->node_id[0] = '\0';
  err->field[0] = '\0';
  err->message[0] = '\0';
  err->retry_later = 0;
}

/* Error text echoes client-supplied names; keep it printable ASCII so it is always valid
 * in a gRPC status message, a JSON log line and a terminal. */
static void sanitise(char *s) {
  for (; *s; s++)
    if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
      *s = '?';
}

static void copy_trunc(char *dst, size_t cap, const char *src) {
  size_t n = src ? strlen(src) : 0;
  if (n >= cap)
    n = cap - 1;
  if (n)
    memcpy(dst, src, n);
  dst[n] = '\0';
  sanitise(dst);
}

int rm_error_set(rm_error_t *err, int code, const char *node_id, const char *field, const char *fmt,
                 ...) {
  if (!err)
    return code;
  err->code = code;
  err->retry_later = 0;
  copy_trunc(err->node_id, sizeof err->node_id, node_id);
  copy_trunc(err->field, sizeof err->field, field);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->message, sizeof err->message, fmt, ap);
  va_end(ap);
  sanitise(err->message);
  return code;
}
