/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internal allocation entry points. Everything libmyriad allocates goes through these,
 * and they go through the hook installed with myr_set_allocator(), so a test can fail
 * the Nth allocation and check that every path cleans up.
 */
#ifndef MYRIAD_CORE_ALLOC_H
#define MYRIAD_CORE_ALLOC_H

#include <stddef.h>

#include "myriad/alloc.h"

void *myr__malloc(size_t size);                /* NULL on failure or size 0 */
void *myr__calloc(size_t n, size_t size);      /* zeroed; NULL on failure or overflow */
void *myr__realloc(void *ptr, size_t size);    /* NULL on failure, ptr left intact */
void *myr__reallocarray(void *ptr, size_t n, size_t size); /* overflow-checked */
void myr__free(void *ptr);                     /* accepts NULL */
char *myr__strdup(const char *s);              /* NULL on failure */
char *myr__strndup(const char *s, size_t n);   /* NUL-terminated copy of n bytes */

#endif /* MYRIAD_CORE_ALLOC_H */
