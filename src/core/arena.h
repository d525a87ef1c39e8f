/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Bump-pointer arena: per-thread scratch memory for one model at a time. Allocation is a
 * pointer increment; myr__arena_reset() frees everything at once but keeps the largest
 * block, so after the first few models a worker allocates nothing from the system.
 */
#ifndef MYRIAD_CORE_ARENA_H
#define MYRIAD_CORE_ARENA_H

#include <stddef.h>

#include "myriad/model.h"

typedef struct myr__arena_block myr__arena_block;

typedef struct myr__arena {
  myr__arena_block *head; /* current block; older blocks follow via next */
  size_t used;            /* bytes used in head */
  size_t min_block;       /* smallest block to request from the allocator */
  size_t peak;            /* most bytes ever handed out between two resets */
  size_t live;            /* bytes handed out since the last reset */
} myr__arena;

void myr__arena_init(myr__arena *a, size_t min_block);
/* NULL when out of memory; align must be a power of two. */
void *myr__arena_alloc(myr__arena *a, size_t size, size_t align);
/* Forget every allocation; keeps one block sized for the peak seen so far. */
void myr__arena_reset(myr__arena *a);
void myr__arena_free(myr__arena *a);
/* A myr_scratch handing out memory from a. */
myr_scratch myr__arena_scratch(myr__arena *a);

#endif /* MYRIAD_CORE_ARENA_H */
