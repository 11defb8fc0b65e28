/* strings.c - checks a message's string fields on the wire (rm_wire_check_strings):
 * protobuf-c keeps no length for a string, so one holding a NUL byte would be read as the part
 * before it, and it does not check UTF-8, which proto3 strings must be. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "rm/utf8.h"
#include "remotemedia/v1/pipeline_service.pb-c.h"
#include "rm/wire_proto.h"
#include "wire_int.h"

#define PATH_MAX_FIELDS 8 /* levels named in the error's field path; deeper ones are "..." */
/* Levels looked into: params given as a google.protobuf.Struct nest (the engine refuses more
 * than 64 levels of them); what lies deeper is not read. */
#define CHECK_MAX_DEPTH 100

/* The node a string belongs to: an input's (the key of the request's inputs entry) or a
 * manifest node's (its id). */
typedef enum { OF_NONE, OF_INPUT, OF_NODE } owner_t;

typedef struct walk {
  const char *prefix; /* NULL, or the field the message came in */
  const char *path[PATH_MAX_FIELDS];
  owner_t owner;
  const uint8_t *node; /* its id, when owner is not OF_NONE */
  size_t node_len;
  unsigned rel; /* the path below the owner starts at this level */
  rm_error_t *err;
} walk_t;

/* Whether a message of type d can hold a string field, looking depth levels down (message
 * types that hold only numbers and bytes, such as AudioBuffer, are skipped unread). */
static int holds_strings(const ProtobufCMessageDescriptor *d, unsigned depth) {
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    if (f->type == PROTOBUF_C_TYPE_STRING ||
        (f->type == PROTOBUF_C_TYPE_MESSAGE &&
         (depth == 0 || holds_strings(f->descriptor, depth - 1))))
      return 1;
  }
  return 0;
}

/* What the walk does with each field of a message type, worked out once per type: every
 * request is checked, so the walk costs a table look-up per field. */
enum { A_SKIP = 0, A_STRING = 1, A_MESSAGE = 2 };
#define PLAN_NUMBERS 32 /* field numbers with an entry; higher ones are looked up each time */
#define MAX_PLANS 64    /* message types with a plan; more (never: the protos have fewer) are too */
typedef struct plan {
  const ProtobufCMessageDescriptor *desc;
  unsigned char action[PLAN_NUMBERS];
  const ProtobufCFieldDescriptor *field[PLAN_NUMBERS];
} plan_t;
static plan_t plans[MAX_PLANS];
static atomic_uint n_plans; /* plans[0..n) are filled, published with release */
static pthread_mutex_t plans_mu = PTHREAD_MUTEX_INITIALIZER;

static unsigned char action_of(const ProtobufCFieldDescriptor *f) {
  if (f->type == PROTOBUF_C_TYPE_STRING)
    return A_STRING;
  return f->type == PROTOBUF_C_TYPE_MESSAGE && holds_strings(f->descriptor, 2) ? A_MESSAGE : A_SKIP;
}

static const plan_t *find_plan(const ProtobufCMessageDescriptor *d, unsigned n) {
  for (unsigned i = 0; i < n; i++)
    if (plans[i].desc == d)
      return &plans[i];
  return NULL;
}

/* d's plan, or NULL when the table is full. Any thread. */
static const plan_t *plan_of(const ProtobufCMessageDescriptor *d) {
  const plan_t *p = find_plan(d, atomic_load_explicit(&n_plans, memory_order_acquire));
  if (p)
    return p;
  pthread_mutex_lock(&plans_mu);
  unsigned n = atomic_load_explicit(&n_plans, memory_order_relaxed);
  if (!(p = find_plan(d, n)) && n < MAX_PLANS) {
    plan_t *q = &plans[n];
    q->desc = d;
    memset(q->action, A_SKIP, sizeof q->action);
    memset(q->field, 0, sizeof q->field);
    for (unsigned i = 0; i < d->n_fields; i++)
      if (d->fields[i].id < PLAN_NUMBERS) {
        q->action[d->fields[i].id] = action_of(&d->fields[i]);
        q->field[d->fields[i].id] = &d->fields[i];
      }
    atomic_store_explicit(&n_plans, n + 1, memory_order_release);
    p = q;
  }
  pthread_mutex_unlock(&plans_mu);
  return p;
}

/* Writes path[from..depth] (after the prefix when from is 0) joined by dots. */
static void join_path(const walk_t *w, unsigned from, unsigned depth, char *out, size_t cap) {
  size_t at = w->prefix && from == 0 ? (size_t)snprintf(out, cap, "%s.", w->prefix) : 0;
  out[at < cap ? at : 0] = '\0';
  for (unsigned i = from; i <= depth && i < PATH_MAX_FIELDS && at < cap; i++)
    at += (size_t)snprintf(out + at, cap - at, "%s%s", i > from ? "." : "", w->path[i]);
  if (depth >= PATH_MAX_FIELDS && at < cap)
    snprintf(out + at, cap - at, ".etc");
}

/* The error, as the engine's errors about inputs, params and manifests are shaped: an input's
 * string names its node and the field within the DataBuffer (RM_EINPUT), a manifest node's
 * its id and the field (params: RM_EPARAM, others RM_EMANIFEST); any other string its path
 * (RM_EMANIFEST within a manifest, else RM_EINPUT). */
static int refuse(walk_t *w, unsigned depth, const char *why, size_t at_byte) {
  char node[RM_ERROR_NODE_MAX] = "", field[RM_ERROR_FIELD_MAX];
  owner_t owner = w->owner;
  if (owner != OF_NONE && w->node_len < sizeof node && rm_utf8_valid(w->node, w->node_len) &&
      !memchr(w->node, 0, w->node_len))
    memcpy(node, w->node, w->node_len);
  else
    owner = OF_NONE;
  join_path(w, owner == OF_NONE ? 0 : w->rel, depth, field, sizeof field);
  int in_manifest = strcmp(w->prefix ? w->prefix : w->path[0], "manifest") == 0;
  int code = owner == OF_INPUT                                  ? RM_EINPUT
             : owner == OF_NODE && strcmp(field, "params") == 0 ? RM_EPARAM
             : owner == OF_NODE || in_manifest                  ? RM_EMANIFEST
                                                                : RM_EINPUT;
  return rm_error_set(w->err, code, node[0] ? node : NULL, field,
                      "%s%s%sstring field '%s' %s at byte %zu: strings must be UTF-8 without NUL "
                      "bytes (send such data as binary)",
                      owner == OF_INPUT  ? "input for node '"
                      : owner == OF_NODE ? "node '"
                                         : "",
                      node, node[0] ? "': " : "", field, why, at_byte);
}

/* The offset of the first byte of s[0..n) that does not start a well-formed UTF-8 sequence. */
static size_t first_bad_utf8(const uint8_t *s, size_t n) {
  size_t i = 0, k;
  while (i < n && (k = rm_utf8_len(s + i, n - i)) != 0)
    i += k;
  return i;
}

/* The field a string or message field of d numbered `number` is, or NULL for any other. */
static const ProtobufCFieldDescriptor *field_to_check(const ProtobufCMessageDescriptor *d,
                                                      const plan_t *plan, uint32_t number) {
  if (plan && number < PLAN_NUMBERS)
    return plan->action[number] == A_SKIP ? NULL : plan->field[number];
  const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(d, number);
  return f && action_of(f) != A_SKIP ? f : NULL;
}

static void owned(walk_t *w, owner_t owner, const uint8_t *id, size_t len, unsigned rel) {
  w->owner = owner, w->node = id, w->node_len = len, w->rel = rel;
}

/* An inputs entry's key or a node's id (field 1) owns the strings of its message. Serializers
 * write it first, but protobuf allows any order (the last one counts, as protobuf-c keeps it),
 * so it is found before the walk: a value written before its key is still named by it. */
static void own_by_id(const uint8_t *msg, size_t len, owner_t owner, unsigned rel, walk_t *w) {
  size_t at = 0, value, n;
  uint32_t tag;
  while (at < len && !rm__wire_next_field(msg, len, &at, &tag, &value, &n))
    if (tag == (1u << 3 | RM_WIRE_DELIMITED))
      owned(w, owner, msg + value, n, rel);
}

static int check(const ProtobufCMessageDescriptor *d, const uint8_t *msg, size_t len,
                 unsigned depth, walk_t *w) {
  const plan_t *plan = plan_of(d);
  if (d == &remotemedia__v1__execute_request__inputs_entry__descriptor)
    own_by_id(msg, len, OF_INPUT, depth + 1, w); /* below: value.<field> */
  else if (d == &remotemedia__v1__node_manifest__descriptor)
    own_by_id(msg, len, OF_NODE, depth, w);
  size_t at = 0;
  while (at < len) {
    uint32_t tag;
    size_t value, n;
    /* protobuf-c unpacked these bytes, so they are well-formed; what is not ends the walk */
    if (rm__wire_next_field(msg, len, &at, &tag, &value, &n))
      return 0;
    if ((tag & 7) != RM_WIRE_DELIMITED)
      continue;
    const uint8_t *s = msg + value;
    const ProtobufCFieldDescriptor *f = field_to_check(d, plan, tag >> 3);
    if (!f)
      continue;
    if (depth < PATH_MAX_FIELDS)
      w->path[depth] = f->name;
    if (f->type == PROTOBUF_C_TYPE_STRING) {
      const uint8_t *nul = memchr(s, 0, n);
      if (nul)
        return refuse(w, depth, "holds a NUL byte", (size_t)(nul - s));
      if (!rm_utf8_valid(s, n))
        return refuse(w, depth, "is not valid UTF-8", first_bad_utf8(s, n));
    } else if (depth < CHECK_MAX_DEPTH) { /* a message that may hold strings */
      owner_t owner = w->owner;           /* an owner found inside is the sub-message's alone */
      const uint8_t *node = w->node;
      size_t node_len = w->node_len;
      unsigned rel = w->rel;
      int rc = check(f->descriptor, s, n, depth + 1, w);
      if (rc)
        return rc;
      owned(w, owner, node, node_len, rel);
    }
  }
  return 0;
}

int rm_wire_check_strings(const ProtobufCMessageDescriptor *desc, const uint8_t *msg, size_t len,
                          const char *prefix, rm_error_t *err) {
  walk_t w = {.prefix = prefix, .err = err};
  return check(desc, msg, len, 0, &w);
}
