/* SPDX-License-Identifier: Apache-2.0 */
/**
 * @file alloc.h
 * @brief The one allocator hook every allocation of libmyriad goes through.
 *
 * Like Lua's lua_Alloc, a single function serves allocate, resize and free, so a user
 * (or a test injecting faults) can route all of myriad's memory through their own code.
 * SQLite keeps its own allocator.
 *
 * Thread safety: myr_set_allocator() must be called before any other myriad call and never
 * while another thread is inside myriad. The hook itself is called from many threads.
 */
#ifndef MYRIAD_ALLOC_H
#define MYRIAD_ALLOC_H

#include <stddef.h>

#include "myriad/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Allocator hook. new_size == 0 frees ptr (ptr may be NULL) and returns NULL; ptr == NULL
 * allocates new_size bytes; otherwise resizes. Returns NULL on failure, leaving ptr intact.
 * Blocks must be aligned for any C object (like malloc).
 */
typedef void *(*myr_alloc_fn)(void *ud, void *ptr, size_t new_size);

/** @brief Install fn/ud as the allocator; fn == NULL restores the C library's. */
MYR_API void myr_set_allocator(myr_alloc_fn fn, void *ud);

#ifdef __cplusplus
}
#endif
#endif /* MYRIAD_ALLOC_H */
