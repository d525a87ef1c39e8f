/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Workers sleep on `wake` until a new job generation appears, then claim task indexes
 * with an atomic fetch-add until the cursor passes n_tasks or a task fails. The last
 * worker to leave a job signals `done`. Invariant: `active` counts workers inside the
 * current job; the job is over when the cursor is exhausted and active == 0.
 */
#include "core/pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "core/alloc.h"

struct myr__pool {
  pthread_mutex_t mu;
  pthread_cond_t wake;     /* a job was started, or shutdown */
  pthread_cond_t done;     /* the last worker left the job */
  pthread_t *threads;      /* n_threads handles */
  unsigned n_threads;
  unsigned n_started;      /* threads actually created */
  unsigned long generation;/* bumped per job */
  int shutdown;
  /* the current job */
  myr__task_fn fn;
  void *ctx;
  size_t n_tasks;
  atomic_size_t cursor;    /* next task index to claim */
  atomic_int status;       /* first failure, MYR_OK otherwise */
  unsigned active;         /* workers inside the job (under mu) */
  int running;             /* a job was started and not yet waited for */
};

typedef struct worker_arg {
  myr__pool *pool;
  unsigned index;
} worker_arg;

unsigned myr__cpu_count(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (unsigned)n : 1u;
}

static void run_tasks(myr__pool *p, unsigned worker) {
  for (;;) {
    if (atomic_load_explicit(&p->status, memory_order_relaxed) != MYR_OK)
      break;
    size_t t = atomic_fetch_add_explicit(&p->cursor, 1, memory_order_relaxed);
    if (t >= p->n_tasks)
      break;
    int rc = p->fn(p->ctx, t, worker);
    if (rc != MYR_OK) {
      int expected = MYR_OK;
      atomic_compare_exchange_strong(&p->status, &expected, rc);
    }
  }
}

static void *worker_main(void *argp) {
  worker_arg *arg = argp;
  myr__pool *p = arg->pool;
  unsigned index = arg->index;
  unsigned long seen = 0;
  myr__free(arg);
  pthread_mutex_lock(&p->mu);
  for (;;) {
    while (!p->shutdown && p->generation == seen)
      pthread_cond_wait(&p->wake, &p->mu);
    if (p->shutdown)
      break;
    seen = p->generation;
    pthread_mutex_unlock(&p->mu);
    run_tasks(p, index);
    pthread_mutex_lock(&p->mu);
    if (--p->active == 0)
      pthread_cond_broadcast(&p->done);
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

int myr__pool_create(unsigned n_threads, myr__pool **out, myr_error *err) {
  *out = NULL;
  if (n_threads == 0)
    n_threads = myr__cpu_count();
  if (n_threads > 1024)
    return myr_error_set(err, MYR_EINVAL, "thread count %u is over the limit of 1024",
                         n_threads);
  myr__pool *p = myr__calloc(1, sizeof *p);
  if (!p)
    return myr_error_set(err, MYR_ENOMEM, "out of memory creating the thread pool");
  p->threads = myr__calloc(n_threads, sizeof *p->threads);
  if (!p->threads) {
    myr__free(p);
    return myr_error_set(err, MYR_ENOMEM, "out of memory creating the thread pool");
  }
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->wake, NULL);
  pthread_cond_init(&p->done, NULL);
  p->n_threads = n_threads;
  atomic_init(&p->cursor, 0);
  atomic_init(&p->status, MYR_OK);
  for (unsigned i = 0; i < n_threads; i++) {
    worker_arg *arg = myr__malloc(sizeof *arg);
    if (!arg) {
      myr__pool_destroy(p);
      return myr_error_set(err, MYR_ENOMEM, "out of memory starting worker threads");
    }
    arg->pool = p;
    arg->index = i;
    if (pthread_create(&p->threads[i], NULL, worker_main, arg) != 0) {
      myr__free(arg);
      myr__pool_destroy(p);
      return myr_error_set(err, MYR_EINTERNAL, "cannot start worker thread %u of %u", i + 1,
                           n_threads);
    }
    p->n_started++;
  }
  *out = p;
  return MYR_OK;
}

unsigned myr__pool_size(const myr__pool *pool) { return pool->n_threads; }

void myr__pool_start(myr__pool *p, size_t n_tasks, myr__task_fn fn, void *ctx) {
  pthread_mutex_lock(&p->mu);
  p->fn = fn;
  p->ctx = ctx;
  p->n_tasks = n_tasks;
  atomic_store(&p->cursor, 0);
  atomic_store(&p->status, MYR_OK);
  p->active = p->n_started;
  p->running = 1;
  p->generation++;
  pthread_cond_broadcast(&p->wake);
  pthread_mutex_unlock(&p->mu);
}

int myr__pool_wait(myr__pool *p) {
  pthread_mutex_lock(&p->mu);
  while (p->running && p->active > 0)
    pthread_cond_wait(&p->done, &p->mu);
  p->running = 0;
  pthread_mutex_unlock(&p->mu);
  return atomic_load(&p->status);
}

int myr__pool_run(myr__pool *p, size_t n_tasks, myr__task_fn fn, void *ctx) {
  myr__pool_start(p, n_tasks, fn, ctx);
  return myr__pool_wait(p);
}

void myr__pool_destroy(myr__pool *p) {
  if (!p)
    return;
  if (p->running)
    myr__pool_wait(p);
  pthread_mutex_lock(&p->mu);
  p->shutdown = 1;
  pthread_cond_broadcast(&p->wake);
  pthread_mutex_unlock(&p->mu);
  for (unsigned i = 0; i < p->n_started; i++)
    pthread_join(p->threads[i], NULL);
  pthread_cond_destroy(&p->done);
  pthread_cond_destroy(&p->wake);
  pthread_mutex_destroy(&p->mu);
  myr__free(p->threads);
  myr__free(p);
}
