/* params.c - validation of node parameters against a node type's schema. */
#include "rm/params.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

const char *rm_param_type_name(rm_param_type_t type) {
  switch (type) {
  case RM_PARAM_NUMBER: return "number";
  case RM_PARAM_INTEGER: return "integer";
  case RM_PARAM_BOOLEAN: return "boolean";
  case RM_PARAM_STRING: return "string";
  case RM_PARAM_ENUM: return "enum";
  case RM_PARAM_NUMBER_ARRAY: return "number_array";
  }
  return "unknown";
}

static const char *json_type_name(const json_t *v) {
  switch (json_typeof(v)) {
  case JSON_OBJECT: return "object";
  case JSON_ARRAY: return "array";
  case JSON_STRING: return "string";
  case JSON_INTEGER: return "integer";
  case JSON_REAL: return "number";
  case JSON_TRUE:
  case JSON_FALSE: return "boolean";
  case JSON_NULL: return "null";
  }
  return "unknown";
}

static const rm_param_spec_t *find_spec(const rm_param_spec_t *specs, size_t n, const char *key) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(specs[i].name, key) == 0)
      return &specs[i];
  return NULL;
}

/* Formats a range for messages: "[-120, 60]", "[0, inf)", "(-inf, 1]". */
static void range_text(const rm_param_spec_t *s, char *buf, size_t cap) {
  char lo[32] = "(-inf", hi[32] = "inf)";
  if (s->flags & RM_PARAM_HAS_MIN)
    snprintf(lo, sizeof lo, "[%.17g", s->min);
  if (s->flags & RM_PARAM_HAS_MAX)
    snprintf(hi, sizeof hi, "%.17g]", s->max);
  snprintf(buf, cap, "%s, %s", lo, hi);
}

static int check_range(const rm_param_spec_t *s, double v, const char *node_id, const char *what,
                       rm_error_t *err) {
  if (!isfinite(v) || ((s->flags & RM_PARAM_HAS_MIN) && v < s->min) ||
      ((s->flags & RM_PARAM_HAS_MAX) && v > s->max)) {
    char r[80];
    range_text(s, r, sizeof r);
    return rm_error_set(err, RM_EPARAM, node_id, s->name,
                        "node '%s' param '%s': %s%.17g is out of range %s", node_id, s->name, what,
                        v, r);
  }
  return 0;
}

static int check_value(const rm_param_spec_t *s, const json_t *v, const char *node_id,
                       rm_error_t *err) {
  /* "null" default marks an optional param: an explicit null means "not set". */
  if (json_is_null(v) && s->default_json && strcmp(s->default_json, "null") == 0)
    return 0;
  switch (s->type) {
  case RM_PARAM_NUMBER:
    if (!json_is_number(v))
      break;
    return check_range(s, json_number_value(v), node_id, "", err);
  case RM_PARAM_INTEGER: {
    if (!json_is_number(v))
      break;
    double d = json_number_value(v);
    if (json_is_real(v) && (d != floor(d) || fabs(d) > 9007199254740992.0))
      return rm_error_set(err, RM_EPARAM, node_id, s->name,
                          "node '%s' param '%s': expected integer, got %.17g", node_id, s->name, d);
    return check_range(s, d, node_id, "", err);
  }
  case RM_PARAM_BOOLEAN:
    if (json_is_boolean(v))
      return 0;
    break;
  case RM_PARAM_STRING:
    if (json_is_string(v))
      return 0;
    break;
  case RM_PARAM_ENUM: {
    if (!json_is_string(v))
      break;
    const char *str = json_string_value(v);
    char allowed[256] = "";
    size_t used = 0;
    for (const char *const *e = s->enum_values; e && *e; e++) {
      if (strcmp(*e, str) == 0)
        return 0;
      int w = snprintf(allowed + used, sizeof allowed - used, "%s%s", used ? ", " : "", *e);
      if (w > 0 && (size_t)w < sizeof allowed - used)
        used += (size_t)w;
    }
    return rm_error_set(err, RM_EPARAM, node_id, s->name,
                        "node '%s' param '%s': '%s' is not one of: %s", node_id, s->name, str,
                        allowed);
  }
  case RM_PARAM_NUMBER_ARRAY: {
    if (!json_is_array(v))
      break;
    size_t i;
    json_t *el;
    json_array_foreach(v, i, el) {
      if (!json_is_number(el))
        return rm_error_set(err, RM_EPARAM, node_id, s->name,
                            "node '%s' param '%s': element %zu: expected number, got %s", node_id,
                            s->name, i, json_type_name(el));
      char what[48];
      snprintf(what, sizeof what, "element %zu = ", i);
      int rc = check_range(s, json_number_value(el), node_id, what, err);
      if (rc)
        return rc;
    }
    return 0;
  }
  }
  return rm_error_set(err, RM_EPARAM, node_id, s->name, "node '%s' param '%s': expected %s, got %s",
                      node_id, s->name,
                      s->type == RM_PARAM_ENUM ? "string" : rm_param_type_name(s->type),
                      json_type_name(v));
}

int rm_params_validate(const rm_param_spec_t *specs, size_t n_specs, const json_t *params,
                       const char *node_id, json_t **out, rm_error_t *err) {
  if (params && !json_is_object(params))
    return rm_error_set(err, RM_EPARAM, node_id, "params",
                        "node '%s': params must be a JSON object, got %s", node_id,
                        json_type_name(params));
  const char *key;
  json_t *v;
  if (params) {
    json_object_foreach((json_t *)params, key, v) {
      const rm_param_spec_t *s = find_spec(specs, n_specs, key);
      if (!s)
        return rm_error_set(err, RM_EPARAM, node_id, key, "node '%s': unknown param '%s'", node_id,
                            key);
      int rc = check_value(s, v, node_id, err);
      if (rc)
        return rc;
    }
  }
  /* A type without params was given {} (anything else failed above): share the caller's
   * object, nothing needs filling in. */
  if (n_specs == 0 && params) {
    *out = json_incref((json_t *)params);
    return 0;
  }
  json_t *res = json_object();
  if (!res)
    return rm_error_set(err, RM_ENOMEM, node_id, NULL, "out of memory");
  for (size_t i = 0; i < n_specs; i++) {
    const rm_param_spec_t *s = &specs[i];
    json_t *given = params ? json_object_get(params, s->name) : NULL;
    json_t *val;
    if (given) {
      val = json_incref(given);
    } else if ((s->flags & RM_PARAM_REQUIRED) || !s->default_json) {
      json_decref(res);
      return rm_error_set(err, RM_EPARAM, node_id, s->name,
                          "node '%s': missing required param '%s'", node_id, s->name);
    } else {
      val = json_loads(s->default_json, JSON_DECODE_ANY, NULL);
      if (!val) {
        json_decref(res);
        return rm_error_set(err, RM_ENOMEM, node_id, s->name, "out of memory");
      }
    }
    if (json_object_set_new(res, s->name, val)) {
      json_decref(res);
      return rm_error_set(err, RM_ENOMEM, node_id, s->name, "out of memory");
    }
  }
  *out = res;
  return 0;
}

double rm_params_number(const json_t *params, const char *key) {
  return json_number_value(json_object_get(params, key));
}

long long rm_params_integer(const json_t *params, const char *key) {
  json_t *v = json_object_get(params, key);
  /* a JSON integer is exact; going through a double would round above 2^53 */
  if (json_is_integer(v))
    return json_integer_value(v);
  return (long long)json_number_value(v);
}

int rm_params_boolean(const json_t *params, const char *key) {
  return json_is_true(json_object_get(params, key));
}

const char *rm_params_string(const json_t *params, const char *key) {
  return json_string_value(json_object_get(params, key));
}

int rm_params_is_null(const json_t *params, const char *key) {
  json_t *v = json_object_get(params, key);
  return !v || json_is_null(v);
}
