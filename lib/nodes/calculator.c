/* calculator.c - Calculator: evaluates {"operation", "operands"} JSON requests. */
#include <math.h>
#include <string.h>

#include "rm/alloc.h"
#include "rm/node.h"

static const rm_port_spec_t inputs[] = {
    {"in", RM_KIND_JSON, 0,
     "{\"operation\": add|subtract|multiply|divide|power|modulo|min|max|mean, "
     "\"operands\": [numbers]}"}};
static const rm_port_spec_t outputs[] = {
    {"out", RM_KIND_JSON, 0, "{\"operation\", \"operands\", \"result\"}"}};

typedef struct op {
  const char *name;
  size_t min_operands, max_operands; /* 0 = no maximum */
} op_t;

static const op_t ops[] = {
    {"add", 1, 0},    {"subtract", 2, 0}, {"multiply", 1, 0}, {"divide", 2, 0}, {"power", 2, 2},
    {"modulo", 2, 2}, {"min", 1, 0},      {"max", 1, 0},      {"mean", 1, 0},
};

static int create(const json_t *p, void **state, rm_error_t *err) {
  (void)p, (void)err;
  *state = NULL;
  return 0;
}

static int fail(rm_node_ctx_t *ctx, const char *field, const char *msg) {
  return rm_node_fail(ctx, RM_ENODE, field, "%s", msg);
}

static int evaluate(const char *op, const double *x, size_t n, double *out, rm_node_ctx_t *ctx) {
  double r = x[0];
  if (!strcmp(op, "add") || !strcmp(op, "mean")) {
    for (size_t i = 1; i < n; i++)
      r += x[i];
    if (!strcmp(op, "mean"))
      r /= (double)n;
  } else if (!strcmp(op, "subtract")) {
    for (size_t i = 1; i < n; i++)
      r -= x[i];
  } else if (!strcmp(op, "multiply")) {
    for (size_t i = 1; i < n; i++)
      r *= x[i];
  } else if (!strcmp(op, "divide")) {
    for (size_t i = 1; i < n; i++) {
      if (x[i] == 0.0)
        return rm_node_fail(ctx, RM_ENODE, "operands", "division by zero (operands[%zu] is 0)", i);
      r /= x[i];
    }
  } else if (!strcmp(op, "modulo")) {
    if (x[1] == 0.0)
      return rm_node_fail(ctx, RM_ENODE, "operands", "modulo by zero (operands[1] is 0)");
    r = fmod(x[0], x[1]);
  } else if (!strcmp(op, "power")) {
    r = pow(x[0], x[1]);
  } else if (!strcmp(op, "min")) {
    for (size_t i = 1; i < n; i++)
      r = x[i] < r ? x[i] : r;
  } else { /* max */
    for (size_t i = 1; i < n; i++)
      r = x[i] > r ? x[i] : r;
  }
  if (!isfinite(r))
    return fail(ctx, "operands", "the result is not a finite number");
  *out = r;
  return 0;
}

/* rm_node_check as rm_json_loadb_stoppable's stop(). */
static int check(void *ctx) { return rm_node_check(ctx); }

static int process(void *state, rm_node_ctx_t *ctx) {
  (void)state;
  const rm_buffer_t *in = rm_node_input(ctx, 0);
  json_error_t je = {0}; /* jansson may leave it unwritten when an allocation fails */
  unsigned long failures = rm_alloc_failures();
  int stopped = 0; /* a long text is parsed with deadline checks */
  json_t *req = rm_json_loadb_stoppable((const char *)in->data, in->size, JSON_REJECT_DUPLICATES,
                                        &je, check, ctx, &stopped);
  if (stopped)
    return stopped;
  if (!req) {
    /* jansson reports a failed allocation as a syntax error: ask the allocator */
    if (rm_alloc_failures() != failures || json_error_code(&je) == json_error_out_of_memory)
      return rm_node_fail(ctx, RM_ENOMEM, NULL, "out of memory");
    return rm_node_fail(ctx, RM_ENODE, "in", "input is not valid JSON: %s", je.text);
  }
  int rc = 0;
  json_t *opv = json_object_get(req, "operation"), *args = json_object_get(req, "operands");
  const op_t *op = NULL;
  for (size_t i = 0; json_is_string(opv) && i < sizeof ops / sizeof ops[0]; i++)
    if (!strcmp(ops[i].name, json_string_value(opv)))
      op = &ops[i];
  size_t n = json_array_size(args);
  double vals[64] = {0};
  if (!json_is_object(req)) {
    rc = fail(ctx, "in", "input must be a JSON object {\"operation\", \"operands\"}");
  } else if (json_object_size(req) != 2 || !opv || !args) {
    rc = fail(ctx, "in", "input must have exactly the keys \"operation\" and \"operands\"");
  } else if (!op) {
    rc = fail(ctx, "operation",
              "\"operation\" must be one of add, subtract, multiply, divide, power, modulo, "
              "min, max, mean");
  } else if (!json_is_array(args)) {
    rc = fail(ctx, "operands", "\"operands\" must be an array of numbers");
  } else if (n < op->min_operands || (op->max_operands && n > op->max_operands)) {
    rc = rm_node_fail(ctx, RM_ENODE, "operands", "%s takes %s%zu operand%s, got %zu", op->name,
                      op->max_operands ? "" : "at least ", op->min_operands,
                      op->min_operands == 1 ? "" : "s", n);
  } else if (n > sizeof vals / sizeof vals[0]) {
    rc = rm_node_fail(ctx, RM_ENODE, "operands", "%s takes at most %zu operands, got %zu", op->name,
                      sizeof vals / sizeof vals[0], n);
  } else {
    for (size_t i = 0; i < n && !rc; i++) {
      json_t *v = json_array_get(args, i);
      if (!json_is_number(v))
        rc = rm_node_fail(ctx, RM_ENODE, "operands", "operands[%zu] is not a number", i);
      else
        vals[i] = json_number_value(v);
    }
  }
  double result = 0;
  if (!rc)
    rc = evaluate(op->name, vals, n, &result, ctx);
  if (!rc) {
    if (json_object_set_new(req, "result", json_real(result))) {
      rc = rm_node_fail(ctx, RM_ENOMEM, NULL, "out of memory");
    } else {
      char *text = json_dumps(req, JSON_COMPACT | JSON_PRESERVE_ORDER);
      if (!text)
        rc = rm_node_fail(ctx, RM_ENOMEM, NULL, "out of memory");
      else
        rc = rm_node_emit(
            ctx, 0, rm_buffer_new_text(rm_node_account(ctx), RM_KIND_JSON, text, strlen(text)));
      json_free_t jfree;
      json_get_alloc_funcs(NULL, &jfree);
      jfree(text);
    }
  }
  json_decref(req);
  return rc;
}

const rm_node_type_t rm__node_type_calculator = {
    .name = "Calculator",
    .description = "Evaluates an arithmetic request given as JSON, an object with exactly the "
                   "keys \"operation\" (add, subtract, multiply, divide, power, modulo, min, "
                   "max or mean) and \"operands\" (an array of up to 64 numbers: power and "
                   "modulo take 2, subtract and divide at least 2, the others at least 1), "
                   "e.g. {\"operation\": \"divide\", \"operands\": [10, 4]}; emits the "
                   "object with \"result\" added. Division by zero is a node error.",
    .inputs = inputs,
    .n_inputs = 1,
    .outputs = outputs,
    .n_outputs = 1,
    .flags = RM_NODE_REUSABLE,
    .create = create,
    .process = process,
};
