/* manifest.c - the wire PipelineManifest as the engine's manifest. */
#include "rm/wire.h"

int rm_wire_manifest_from_proto(const Remotemedia__V1__PipelineManifest *msg, rm_manifest_t **out,
                                rm_error_t *err) {
  if (!msg)
    return rm_error_set(err, RM_EMANIFEST, NULL, "manifest", "request has no manifest");
  rm_manifest_t *m = rm_manifest_new(msg->name);
  if (!m)
    return rm_error_set(err, RM_ENOMEM, NULL, NULL, "out of memory");
  int rc = 0;
  for (size_t i = 0; i < msg->n_nodes && !rc; i++) {
    const Remotemedia__V1__NodeManifest *n = msg->nodes[i];
    rc = rm_manifest_add_node_text(m, n->id, n->node_type, n->params, err);
  }
  for (size_t i = 0; i < msg->n_connections && !rc; i++) {
    const Remotemedia__V1__Connection *c = msg->connections[i];
    if (rm_manifest_add_connection(m, c->from, c->from_port, c->to, c->to_port))
      rc = rm_error_set(err, RM_ENOMEM, NULL, NULL, "out of memory");
  }
  if (rc) {
    rm_manifest_free(m);
    return rc;
  }
  *out = m;
  return 0;
}
