/* SPDX-License-Identifier: Apache-2.0 */
/* Growable text buffer; see buf.h for the sticky-failure rule. */
#include "core/buf.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/text.h"

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
  myr__buf_append(b, tmp, myr__fmt_double(tmp, v));
}

void myr__buf_num12(myr__buf *b, double v) {
  if (!isfinite(v)) {
    myr__buf_puts(b, "null");
    return;
  }
  char out[40];
  size_t o = 0;
  if (v < 0) {
    out[o++] = '-';
    v = -v;
  }
  if (v == 0 || v < 1e-200 || v > 1e200) { /* extremes: leave them to printf */
    if (v == 0) {
      out[o++] = '0';
      myr__buf_append(b, out, o);
    } else {
      myr__buf_printf(b, "%s%.12g", o ? "-" : "", v);
    }
    return;
  }
  /* v = n * 10^(e - 11) with n a 12-digit integer. */
  int e = (int)floor(log10(v));
  double scaled = v * pow(10.0, 11 - e);
  long long n = llround(scaled);
  if (n >= 1000000000000LL) { /* log10 rounded down a power of ten: renormalize */
    e++;
    n = llround(v * pow(10.0, 11 - e));
  } else if (n < 100000000000LL) {
    e--;
    n = llround(v * pow(10.0, 11 - e));
  }
  char dig[12];
  for (int i = 11; i >= 0; i--) {
    dig[i] = (char)('0' + n % 10);
    n /= 10;
  }
  int nd = 12;
  while (nd > 1 && dig[nd - 1] == '0')
    nd--;
  if (e >= 0 && e < 12) { /* plain: ddd.ddd */
    for (int i = 0; i <= e; i++)
      out[o++] = i < nd ? dig[i] : '0';
    if (nd > e + 1) {
      out[o++] = '.';
      for (int i = e + 1; i < nd; i++)
        out[o++] = dig[i];
    }
  } else if (e < 0 && e >= -5) { /* plain: 0.000ddd */
    out[o++] = '0';
    out[o++] = '.';
    for (int i = -1; i > e; i--)
      out[o++] = '0';
    for (int i = 0; i < nd; i++)
      out[o++] = dig[i];
  } else { /* d.ddde+XX */
    out[o++] = dig[0];
    if (nd > 1) {
      out[o++] = '.';
      for (int i = 1; i < nd; i++)
        out[o++] = dig[i];
    }
    out[o++] = 'e';
    out[o++] = e < 0 ? '-' : '+';
    int ae = e < 0 ? -e : e;
    if (ae >= 100)
      out[o++] = (char)('0' + ae / 100);
    if (ae >= 10)
      out[o++] = (char)('0' + ae / 10 % 10);
    out[o++] = (char)('0' + ae % 10);
  }
  myr__buf_append(b, out, o);
}

const char *myr__buf_str(const myr__buf *b) { return b->data ? b->data : ""; }
