/* SPDX-License-Identifier: Apache-2.0 */
/* Shared helpers for the unit tests: a fault-injecting allocator and temp paths. */
#ifndef MYRIAD_TESTUTIL_H
#define MYRIAD_TESTUTIL_H

#include <stddef.h>

/* Route myriad's allocations through a counting allocator; the nth allocation from now
   (1-based) fails, and so does every later one when sticky is set. n = 0 never fails. */
void tu_alloc_install(void);
void tu_alloc_fail_at(long n, int sticky);
long tu_alloc_count(void);      /* allocations seen since tu_alloc_fail_at */
int tu_alloc_failed(void);      /* whether an injected failure happened */
long tu_alloc_live(void);       /* blocks allocated and not freed */

/* A fresh temporary directory for this test process (created once), and a path in it. */
const char *tu_tmpdir(void);
void tu_path(char *out, size_t cap, const char *name);
/* Write bytes to a file in the temp dir; returns its path in out. */
void tu_write_file(char *out, size_t cap, const char *name, const void *data, size_t len);

#endif
