/* pool.c - the worker pool: a job queue and the threads that run it. */
#include "pool.h"

#include "rm/alloc.h"
#include "rm/error.h"
#include "status.h"

struct rm_pool_job {
  void (*fn)(void *);
  void *arg;
  rm_pool_job_t *next;
};

void rm_pool_init(rm_pool_t *p) {
  *p = (rm_pool_t){0};
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->cv, NULL);
}

static void *worker_main(void *arg) {
  rm_pool_t *p = arg;
  int ran = 0; /* a job since the lock was last held: no longer busy, counted under it */
  for (;;) {
    pthread_mutex_lock(&p->mu);
    p->busy -= ran;
    ran = 0;
    while (!p->head && !p->stopping)
      pthread_cond_wait(&p->cv, &p->mu);
    rm_pool_job_t *j = p->head;
    if (!j) { /* stopping and nothing left */
      pthread_mutex_unlock(&p->mu);
      return NULL;
    }
    p->head = j->next;
    if (!p->head)
      p->tail = NULL;
    p->queued--;
    p->busy++;
    ran = 1;
    pthread_mutex_unlock(&p->mu);
    j->fn(j->arg);
    rm_free(j);
  }
}

int rm_pool_start(rm_pool_t *p, int n) {
  p->threads = rm_calloc((size_t)n, sizeof *p->threads);
  if (!p->threads)
    return RM_ENOMEM;
  for (int i = 0; i < n; i++) {
    if (pthread_create(&p->threads[i], NULL, worker_main, p))
      return RM_ENOMEM;
    pthread_mutex_lock(&p->mu); /* rm_pool_load may read it */
    p->n_threads++;
    pthread_mutex_unlock(&p->mu);
  }
  return 0;
}

int rm_pool_submit(rm_pool_t *p, void (*fn)(void *), void *arg) {
  rm_pool_job_t *j = rm_malloc(sizeof *j);
  if (!j)
    return RM_ENOMEM;
  *j = (rm_pool_job_t){fn, arg, NULL};
  pthread_mutex_lock(&p->mu);
  if (p->stopping) {
    pthread_mutex_unlock(&p->mu);
    rm_free(j);
    return RM_EUNAVAILABLE;
  }
  if (p->tail)
    p->tail->next = j;
  else
    p->head = j;
  p->tail = j;
  p->queued++;
  pthread_cond_signal(&p->cv);
  pthread_mutex_unlock(&p->mu);
  return 0;
}

void rm_pool_load(rm_pool_t *p, size_t *queued, int *busy, int *threads) {
  pthread_mutex_lock(&p->mu);
  *queued = p->queued;
  *busy = p->busy;
  *threads = p->n_threads;
  pthread_mutex_unlock(&p->mu);
}

void rm_pool_stop(rm_pool_t *p) {
  pthread_mutex_lock(&p->mu);
  p->stopping = 1;
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
  for (int i = 0; i < p->n_threads; i++)
    pthread_join(p->threads[i], NULL);
  p->n_threads = 0;
}

void rm_pool_destroy(rm_pool_t *p) {
  rm_free(p->threads);
  p->threads = NULL;
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->cv);
}
