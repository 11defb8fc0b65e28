/* metrics_seed.c - the one writer of the seed's metrics JSON object. */
#include "rm/metrics_seed.h"

/* Sets obj[key] = v (stolen), remembering a failure in *ok. Keys are our literals, so the
 * UTF-8 check json_object_set_new would repeat for every key of every export is skipped;
 * json_pack's format parsing is skipped too (together they were most of the build). */
static void put(json_t *obj, const char *key, json_t *v, int *ok) {
  if (json_object_set_new_nocheck(obj, key, v))
    *ok = 0;
}

static int put_node(json_t *nodes, const rm_metrics_seed_node_t *f) {
  int ok = 1;
  json_t *o = json_object();
  if (!o || json_array_append_new(nodes, o))
    return 0;
  put(o, "node_id", json_string(f->node_id ? f->node_id : ""), &ok);
  put(o, "execution_count", json_integer((json_int_t)f->execution_count), &ok);
  put(o, "success_count", json_integer((json_int_t)f->success_count), &ok);
  put(o, "error_count", json_integer((json_int_t)f->error_count), &ok);
  put(o, "success_rate", json_real(f->success_rate), &ok);
  put(o, "total_duration_us", json_real(f->total_us), &ok);
  put(o, "avg_duration_us", json_real(f->avg_us), &ok);
  put(o, "min_duration_us", json_real(f->min_us), &ok);
  put(o, "max_duration_us", json_real(f->max_us), &ok);
  return ok;
}

json_t *rm_metrics_seed_json(const rm_metrics_seed_t *pf, size_t n,
                             void (*node_at)(const void *src, size_t i,
                                             rm_metrics_seed_node_t *out),
                             const void *src, json_t **overhead) {
  int ok = 1;
  json_t *root = json_object(), *nodes = json_array(), *ov = json_real(0.0);
  if (!root || !nodes || !ov) {
    json_decref(root);
    json_decref(nodes);
    json_decref(ov);
    return NULL;
  }
  put(root, "pipeline_id", json_string(pf->pipeline_id ? pf->pipeline_id : ""), &ok);
  put(root, "total_executions", json_integer((json_int_t)pf->total_executions), &ok);
  put(root, "total_duration_us", json_real(pf->total_us), &ok);
  put(root, "total_duration_ms", json_real(pf->total_ms), &ok);
  put(root, "peak_memory_bytes", json_integer((json_int_t)pf->peak_memory_bytes), &ok);
  put(root, "peak_memory_mb", json_real(pf->peak_mb), &ok);
  put(root, "metrics_overhead_us", ov, &ok);
  put(root, "node_metrics", nodes, &ok);
  for (size_t i = 0; ok && i < n; i++) {
    rm_metrics_seed_node_t f;
    node_at(src, i, &f);
    ok = put_node(nodes, &f);
  }
  if (!ok) {
    json_decref(root);
    return NULL;
  }
  *overhead = ov;
  return root;
}
