/* warm_call.h - the server's own first call, made before it reports SERVING. */
#ifndef RM_SERVER_WARM_CALL_H
#define RM_SERVER_WARM_CALL_H

#include "server.h"

/* With --warm-call (off by default): one ExecutePipeline call (a PassThrough of 64 KiB of audio,
 * less where the limits allow less) from this process to its own listening address (a wildcard host
 * as 127.0.0.1, the bound port; no proxy), so that a client's first call finds the code and data of
 * the transport and the call path in memory. The call is neither counted, logged as a call, nor
 * cached (rm_server_set_own_call, rm_call_own); its outcome is logged as "warm_call". Skipped with
 * TLS (the server holds no client identity); with tokens, it sends one of the accepted ones. Blocks
 * until the call ends (at most 10 s). Main thread, after rm_server_start, before the server reports
 * SERVING. */
void rm_warm_call(rm_server_t *s);

#endif
