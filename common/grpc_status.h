/* grpc_status.h - the names of gRPC status codes, for the server's logs and the client's
 * messages (in rm_common; never exported by librmclient). */
#ifndef RM_GRPC_STATUS_H
#define RM_GRPC_STATUS_H

/* "OK", "CANCELLED", ... "UNAUTHENTICATED"; "UNKNOWN" for a code outside 0-16. */
const char *rm__grpc_status_name(int code);

#endif
