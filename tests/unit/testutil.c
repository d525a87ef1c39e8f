/* SPDX-License-Identifier: Apache-2.0 */
#include "testutil.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "myriad/alloc.h"

static atomic_long g_count, g_fail_at, g_live;
static atomic_int g_sticky, g_failed;

static void *tu_alloc(void *ud, void *ptr, size_t new_size) {
  (void)ud;
  if (new_size == 0) {
    if (ptr)
      atomic_fetch_sub(&g_live, 1);
    free(ptr);
    return NULL;
  }
  long n = atomic_fetch_add(&g_count, 1) + 1;
  long at = atomic_load(&g_fail_at);
  if (at > 0 && (n == at || (atomic_load(&g_sticky) && n > at))) {
    atomic_store(&g_failed, 1);
    return NULL;
  }
  void *p = realloc(ptr, new_size);
  if (p && !ptr)
    atomic_fetch_add(&g_live, 1);
  return p;
}

void tu_alloc_install(void) { myr_set_allocator(tu_alloc, NULL); }

void tu_alloc_fail_at(long n, int sticky) {
  atomic_store(&g_count, 0);
  atomic_store(&g_failed, 0);
  atomic_store(&g_sticky, sticky);
  atomic_store(&g_fail_at, n);
}

long tu_alloc_count(void) { return atomic_load(&g_count); }
int tu_alloc_failed(void) { return atomic_load(&g_failed); }
long tu_alloc_live(void) { return atomic_load(&g_live); }

const char *tu_tmpdir(void) {
  static char dir[256];
  if (!dir[0]) {
    const char *base = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/myriad-test-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(dir)) {
      perror("mkdtemp");
      exit(2);
    }
  }
  return dir;
}

void tu_path(char *out, size_t cap, const char *name) {
  snprintf(out, cap, "%s/%s", tu_tmpdir(), name);
}

void tu_write_file(char *out, size_t cap, const char *name, const void *data, size_t len) {
  tu_path(out, cap, name);
  FILE *f = fopen(out, "wb");
  if (!f || (len && fwrite(data, 1, len, f) != len)) {
    perror(out);
    exit(2);
  }
  fclose(f);
}
