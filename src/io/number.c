/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fast path (Clinger): mantissa m < 2^53 and |e| <= 22 give m * 10^e or m / 10^-e exactly
 * rounded. Longer mantissas, big exponents, hex and other forms fall back to strtod on a
 * NUL-terminated copy, whose grammar we first restrict to plain decimal so that strings
 * like "0x10" or "1e" are rejected the same way everywhere.
 */
#include "io/number.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

const double myr__pow10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

static int lower_eq(const char *s, size_t len, const char *word) {
  size_t n = strlen(word);
  if (len != n)
    return 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (c >= 'A' && c <= 'Z')
      c = (char)(c - 'A' + 'a');
    if (c != word[i])
      return 0;
  }
  return 1;
}

static void trim(const char **s, size_t *len) {
  const char *p = *s;
  size_t n = *len;
  while (n && (*p == ' ' || *p == '\t')) {
    p++;
    n--;
  }
  while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
    n--;
  *s = p;
  *len = n;
}

int myr__is_missing(const char *s, size_t len) {
  trim(&s, &len);
  return len == 0 || lower_eq(s, len, "na") || lower_eq(s, len, "nan") ||
         lower_eq(s, len, "null");
}

int myr__parse_double(const char *s, size_t len, double *out) {
  if (len && (s[0] == ' ' || s[0] == '\t' || s[len - 1] == ' ' || s[len - 1] == '\t'))
    trim(&s, &len);
  if (len == 0)
    return MYR__NUM_MISSING;
  const char *p = s, *end = s + len;
  int neg = 0;
  if (*p == '-' || *p == '+') {
    neg = *p == '-';
    p++;
  }
  uint64_t m;
  size_t n_int, n_frac;
  p = myr__scan_decimal(p, end, &m, &n_int, &n_frac);
  if (n_int + n_frac == 0) {
    /* Not a decimal: a missing token, infinity, or junk. */
    if (myr__is_missing(s, len))
      return MYR__NUM_MISSING;
    const char *w = s + (s[0] == '-' || s[0] == '+');
    size_t wn = (size_t)(end - w);
    if (lower_eq(w, wn, "inf") || lower_eq(w, wn, "infinity"))
      return MYR__NUM_INF;
    return MYR__NUM_BAD;
  }
  int exp10 = 0;
  if (p < end && (*p == 'e' || *p == 'E')) {
    p++;
    int eneg = 0;
    if (p < end && (*p == '-' || *p == '+')) {
      eneg = *p == '-';
      p++;
    }
    if (p >= end || (unsigned)(*p - '0') >= 10)
      return MYR__NUM_BAD;
    while (p < end && (unsigned)(*p - '0') < 10) {
      if (exp10 < 100000)
        exp10 = exp10 * 10 + (*p - '0');
      p++;
    }
    if (eneg)
      exp10 = -exp10;
  }
  if (p != end)
    return MYR__NUM_BAD;
  long e = (long)exp10 - (long)n_frac;
  if (n_int + n_frac <= 19 && m < (1ULL << 53) && e >= -22 && e <= 22) {
    double v = (double)m;
    v = e < 0 ? v / myr__pow10[-e] : v * myr__pow10[e];
    *out = neg ? -v : v;
    return MYR__NUM_OK;
  }
  /* Slow path: the text is a valid decimal by now; let strtod round it. */
  char tmp[512];
  if (len >= sizeof tmp)
    return MYR__NUM_BAD;
  memcpy(tmp, s, len);
  tmp[len] = '\0';
  double v = strtod(tmp, NULL);
  if (!isfinite(v))
    return MYR__NUM_INF;
  *out = v;
  return MYR__NUM_OK;
}
