/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A fixed pool of worker threads running one job at a time: n_tasks calls of fn, pulled
 * in index order from a shared atomic cursor (so tasks sorted largest-first are started
 * largest-first). The caller starts a job, may do its own work meanwhile (the training
 * loop writes finished models to the store), then waits.
 */
#ifndef MYRIAD_CORE_POOL_H
#define MYRIAD_CORE_POOL_H

#include <stddef.h>

#include "myriad/error.h"

typedef struct myr__pool myr__pool;

/* Task function: worker is in [0, n_threads). A non-OK return stops the job (no new
   tasks start) and is returned by myr__pool_wait. */
typedef int (*myr__task_fn)(void *ctx, size_t task, unsigned worker);

/* n_threads 0 means one per online CPU. */
int myr__pool_create(unsigned n_threads, myr__pool **out, myr_error *err);
void myr__pool_destroy(myr__pool *pool); /* waits for a running job; accepts NULL */
unsigned myr__pool_size(const myr__pool *pool);
unsigned myr__cpu_count(void);

/* Start a job; returns at once. Only one job runs at a time. */
void myr__pool_start(myr__pool *pool, size_t n_tasks, myr__task_fn fn, void *ctx);
/* Wait for the job; returns the first failure status, or MYR_OK. */
int myr__pool_wait(myr__pool *pool);
/* Convenience: start + wait. */
int myr__pool_run(myr__pool *pool, size_t n_tasks, myr__task_fn fn, void *ctx);

#endif /* MYRIAD_CORE_POOL_H */
