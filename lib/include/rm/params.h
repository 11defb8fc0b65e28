/* params.h - node parameter schemas and their validation.
 *
 * Each node type declares its parameters in a table of rm_param_spec_t. rm_params_validate
 * checks a JSON object against that table (unknown key, wrong type, out of range, missing
 * required key are all RM_EPARAM naming the node and the key) and returns a new object
 * with every default filled in, so nodes read values without re-checking. */
#ifndef RM_PARAMS_H
#define RM_PARAMS_H

#include <jansson.h>
#include <stddef.h>

#include "rm/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum rm_param_type {
  RM_PARAM_NUMBER = 1, /* any JSON number */
  RM_PARAM_INTEGER,    /* JSON integer, or a real with an integral value */
  RM_PARAM_BOOLEAN,
  RM_PARAM_STRING,
  RM_PARAM_ENUM,        /* a string from enum_values */
  RM_PARAM_NUMBER_ARRAY /* array of numbers; min/max apply to every element */
} rm_param_type_t;

enum {
  RM_PARAM_REQUIRED = 1u << 0,
  RM_PARAM_HAS_MIN = 1u << 1,
  RM_PARAM_HAS_MAX = 1u << 2,
};

typedef struct rm_param_spec {
  const char *name;
  rm_param_type_t type;
  unsigned flags;
  double min, max;                /* inclusive, when the flags say so */
  const char *default_json;       /* JSON text; "null" = optional without default */
  const char *const *enum_values; /* NULL-terminated, RM_PARAM_ENUM only */
  const char *description;
} rm_param_spec_t;

/* Validates `params` (a JSON object, or NULL for {}) against specs. On success stores a
 * new object (defaults filled in, caller json_decref()s it) in *out and returns 0. On
 * failure returns RM_EPARAM (RM_ENOMEM on allocation failure) with err naming node_id and
 * the key; *out is untouched. */
int rm_params_validate(const rm_param_spec_t *specs, size_t n_specs, const json_t *params,
                       const char *node_id, json_t **out, rm_error_t *err);

/* Getters for a validated object: the value of a key the spec declares. */
double rm_params_number(const json_t *params, const char *key);
long long rm_params_integer(const json_t *params, const char *key);
int rm_params_boolean(const json_t *params, const char *key);
const char *rm_params_string(const json_t *params, const char *key); /* NULL if null */
int rm_params_is_null(const json_t *params, const char *key);

/* Name of a param type as published by ListNodeTypes ("number", ...). */
const char *rm_param_type_name(rm_param_type_t type);

#ifdef __cplusplus
}
#endif
#endif
