/* status.h - the one place engine error codes become gRPC statuses. */
#ifndef RM_SERVER_STATUS_H
#define RM_SERVER_STATUS_H

#include <grpc/status.h>

#include "rm/error.h"

/* Failures only the transport produces. They continue rm_errcode_t's numbering, so one
 * int carries any failure of a call and one table (status.c) maps it to its status. */
typedef enum rm_status_errcode {
  RM_EUNAUTHENTICATED = -100, /* no bearer token, or one the server does not accept */
  RM_EUNAVAILABLE = -101,     /* the server is draining or stopping */
  RM_EUNIMPLEMENTED = -102,   /* no such method */
  RM_EUNKNOWNSERVICE = -103,  /* a health check names a service the server does not run */
  RM_EBADREQUEST = -104,      /* the request message is missing or does not parse */
} rm_status_errcode_t;

/* INVALID_ARGUMENT for manifest, params, input and node-data errors; NOT_FOUND for an unknown
 * node type; RESOURCE_EXHAUSTED for limits and memory; DEADLINE_EXCEEDED; CANCELLED;
 * INTERNAL for bugs (and unknown codes). */
grpc_status_code rm_status_from_error(int code);

#endif
