/* pool.h - the worker pool: threads that run jobs too slow for a polling thread. */
#ifndef RM_SERVER_POOL_H
#define RM_SERVER_POOL_H

#include <pthread.h>

typedef struct rm_pool_job rm_pool_job_t;

/* Caller-allocated (inside the server); every field is the pool's. */
typedef struct rm_pool {
  pthread_t *threads;
  int n_threads;
  rm_pool_job_t *head, *tail;
  size_t queued; /* jobs waiting for a worker, under mu */
  int busy;      /* workers running a job, under mu */
  int stopping;
  pthread_mutex_t mu;
  pthread_cond_t cv;
} rm_pool_t;

/* Prepares an empty pool with no threads. Cannot fail. */
void rm_pool_init(rm_pool_t *p);
/* Starts n threads. 0, or RM_ENOMEM when a thread or its memory cannot be had (the
 * threads already started keep running until rm_pool_stop). Main thread. */
int rm_pool_start(rm_pool_t *p, int n);
/* Queues fn(arg) for a worker. 0, or RM_EUNAVAILABLE when the pool is stopping or
 * RM_ENOMEM: then fn never runs. Any thread. */
int rm_pool_submit(rm_pool_t *p, void (*fn)(void *), void *arg);
/* The jobs waiting for a worker now, the workers running one, and the workers. Any thread. */
void rm_pool_load(rm_pool_t *p, size_t *queued, int *busy, int *threads);
/* Refuses new jobs, lets the queued ones run and joins the threads. Main thread. */
void rm_pool_stop(rm_pool_t *p);
/* Frees what init and start took; call after rm_pool_stop (or when never started). The
 * pool must have been initialised (p is not NULL). */
void rm_pool_destroy(rm_pool_t *p);

#endif
