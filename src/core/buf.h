/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Growable byte buffer for building text (JSON, messages). Appends never fail loudly:
 * the first failed allocation sets `failed`, later appends do nothing, and the owner
 * checks `failed` once at the end. data is always NUL-terminated when len > 0.
 */
#ifndef MYRIAD_CORE_BUF_H
#define MYRIAD_CORE_BUF_H

#include <stddef.h>

typedef struct myr__buf {
  char *data;   /* NUL-terminated contents, NULL while empty */
  size_t len;   /* bytes used, excluding the NUL */
  size_t cap;   /* bytes allocated */
  int failed;   /* an allocation failed; contents are incomplete */
} myr__buf;

void myr__buf_init(myr__buf *b);
void myr__buf_free(myr__buf *b);
void myr__buf_reset(myr__buf *b); /* len = 0, keeps memory */
void myr__buf_append(myr__buf *b, const void *data, size_t len);
void myr__buf_puts(myr__buf *b, const char *s);
void myr__buf_printf(myr__buf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Append s[0..len) as a JSON string literal, quotes included. */
void myr__buf_json_str(myr__buf *b, const char *s, size_t len);
/* Append a finite double as a JSON number (shortest round-trip form), or null. */
void myr__buf_json_num(myr__buf *b, double v);
/* Grow len by n bytes and return where they go (uninitialized, and the fast path does
   not rewrite the terminating NUL: for binary contents); NULL and failed set
   when out of memory. The slow path allocates; the fast path is a bounds check. */
char *myr__buf_extend_slow(myr__buf *b, size_t n);
static inline char *myr__buf_extend(myr__buf *b, size_t n) {
  if (!b->failed && b->len + n + 1 <= b->cap) {
    char *at = b->data + b->len;
    b->len += n;
    return at;
  }
  return myr__buf_extend_slow(b, n);
}
/* Append a finite double with 12 significant digits (JSON syntax, trailing zeros
   dropped), without printf: fast enough to write metrics for a million models. Reads
   back within a relative 5e-12 of v; non-finite values are written as null. */
void myr__buf_num12(myr__buf *b, double v);
/* Contents as a C string ("" when empty). */
const char *myr__buf_str(const myr__buf *b);

#endif /* MYRIAD_CORE_BUF_H */
