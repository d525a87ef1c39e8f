/* SPDX-License-Identifier: Apache-2.0 */
/* Growable text buffer; see buf.h for the sticky-failure rule. */
#include "core/buf.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"

void myr__buf_init(myr__buf *b) {
  b->data = NULL;
  b->len = b->cap = 0;
  b->failed = 0;
}

void myr__buf_free(myr__buf *b) {
  myr__free(b->data);
  myr__buf_init(b);
}

void myr__buf_reset(myr__buf *b) {
  b->len = 0;
  b->failed = 0;
  if (b->data)
    b->data[0] = '\0';
}

static int reserve(myr__buf *b, size_t extra) {
  if (b->failed)
    return 0;
  if (b->len + extra + 1 <= b->cap)
    return 1;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < b->len + extra + 1) {
    if (cap > ((size_t)-1) / 2) {
      b->failed = 1;
      return 0;
    }
    cap *= 2;
  }
  char *p = myr__realloc(b->data, cap);
  if (!p) {
    b->failed = 1;
    return 0;
  }
  b->data = p;
  b->cap = cap;
  return 1;
}

void myr__buf_append(myr__buf *b, const void *data, size_t len) {
  if (!reserve(b, len))
    return;
  if (len)
    memcpy(b->data + b->len, data, len);
  b->len += len;
  b->data[b->len] = '\0';
}

char *myr__buf_extend_slow(myr__buf *b, size_t n) {
  if (!reserve(b, n))
    return NULL;
  char *at = b->data + b->len;
  b->len += n;
  b->data[b->len] = '\0';
  return at;
}

void myr__buf_puts(myr__buf *b, const char *s) { myr__buf_append(b, s, strlen(s)); }

void myr__buf_printf(myr__buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char small[256];
  int n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n < 0) {
    b->failed = 1;
    return;
  }
  if ((size_t)n < sizeof small) {
    myr__buf_append(b, small, (size_t)n);
    return;
  }
  if (!reserve(b, (size_t)n))
    return;
  va_start(ap, fmt);
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

void myr__buf_json_str(myr__buf *b, const char *s, size_t len) {
  static const char hex[] = "0123456789abcdef";
  myr__buf_append(b, "\"", 1);
  size_t start = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c != '"' && c != '\\')
      continue;
    myr__buf_append(b, s + start, i - start);
    start = i + 1;
    char esc[7] = {'\\', 0, 0, 0, 0, 0, 0};
    size_t n = 2;
    switch (c) {
    case '"': esc[1] = '"'; break;
    case '\\': esc[1] = '\\'; break;
    case '\n': esc[1] = 'n'; break;
    case '\r': esc[1] = 'r'; break;
    case '\t': esc[1] = 't'; break;
    default:
      esc[1] = 'u';
      esc[2] = '0';
      esc[3] = '0';
      esc[4] = hex[c >> 4];
      esc[5] = hex[c & 15];
      n = 6;
    }
    myr__buf_append(b, esc, n);
  }
  myr__buf_append(b, s + start, len - start);
  myr__buf_append(b, "\"", 1);
}

void myr__buf_json_num(myr__buf *b, double v) {
  if (!isfinite(v)) {
    myr__buf_puts(b, "null");
    return;
  }
  char tmp[40];
  /* Shortest of %.15g..%.17g that reads back to the same double. */
  for (int prec = 15; prec <= 17; prec++) {
    snprintf(tmp, sizeof tmp, "%.*g", prec, v);
    if (strtod(tmp, NULL) == v)
      break;
  }
  myr__buf_puts(b, tmp);
}

const char *myr__buf_str(const myr__buf *b) { return b->data ? b->data : ""; }
