/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The allocator hook. The default goes to the C library. The hook pointer is written
 * only by myr_set_allocator(), which the caller must run before any other myriad call,
 * so reads need no synchronization.
 */
#include "core/alloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void *libc_alloc(void *ud, void *ptr, size_t new_size) {
  (void)ud;
  if (new_size == 0) {
    free(ptr);
    return NULL;
  }
  return realloc(ptr, new_size);
}

static myr_alloc_fn g_alloc = libc_alloc;
static void *g_alloc_ud = NULL;

void myr_set_allocator(myr_alloc_fn fn, void *ud) {
  g_alloc = fn ? fn : libc_alloc;
  g_alloc_ud = fn ? ud : NULL;
}

void *myr__malloc(size_t size) {
  if (size == 0)
    return NULL;
  return g_alloc(g_alloc_ud, NULL, size);
}

void *myr__calloc(size_t n, size_t size) {
  if (n == 0 || size == 0 || n > SIZE_MAX / size)
    return NULL;
  void *p = g_alloc(g_alloc_ud, NULL, n * size);
  if (p)
    memset(p, 0, n * size);
  return p;
}

void *myr__realloc(void *ptr, size_t size) {
  if (size == 0)
    return NULL;
  return g_alloc(g_alloc_ud, ptr, size);
}

void *myr__reallocarray(void *ptr, size_t n, size_t size) {
  if (n == 0 || size == 0 || n > SIZE_MAX / size)
    return NULL;
  return g_alloc(g_alloc_ud, ptr, n * size);
}

void myr__free(void *ptr) {
  if (ptr)
    g_alloc(g_alloc_ud, ptr, 0);
}

char *myr__strndup(const char *s, size_t n) {
  char *p = myr__malloc(n + 1);
  if (p) {
    memcpy(p, s, n);
    p[n] = '\0';
  }
  return p;
}

char *myr__strdup(const char *s) { return myr__strndup(s, strlen(s)); }
