/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Text to number for CSV cells. Decimal numbers with up to 19 significant digits and a
 * small exponent are converted exactly with one floating-point operation (both operands
 * are exact doubles, so the result is correctly rounded); everything else goes through
 * strtod. Missing-value tokens are recognized here so that every reader agrees on them.
 */
#ifndef MYRIAD_IO_NUMBER_H
#define MYRIAD_IO_NUMBER_H

#include <stddef.h>
#include <stdint.h>

enum myr__num {
  MYR__NUM_OK = 0,      /* finite number */
  MYR__NUM_MISSING = 1, /* empty, NA, NaN, null (any case), possibly space-padded */
  MYR__NUM_BAD = 2,     /* not a number */
  MYR__NUM_INF = 3,     /* inf, infinity, or out of double range */
};

/* Parse s[0..len) (not NUL-terminated). Leading and trailing spaces/tabs are ignored. */
int myr__parse_double(const char *s, size_t len, double *out);
/* Whether s[0..len) is a missing-value token (same rule as above). */
int myr__is_missing(const char *s, size_t len);

extern const double myr__pow10[23];

/* myr__is_missing with an inline quick reject: missing tokens are at most 4 characters
   unless padded with spaces or tabs. */
static inline int myr__is_missing_fast(const char *s, size_t len) {
  if (len > 4 && s[0] != ' ' && s[0] != '\t' && s[len - 1] != ' ' && s[len - 1] != '\t')
    return 0;
  return myr__is_missing(s, len);
}

/* Scan "ddd[.ddd]" from p: every digit is accumulated into *m (exact while there are at
   most 19 of them, leading zeros included), *n_int and *n_frac count them. Returns the
   position after the last digit. */
static inline const char *myr__scan_decimal(const char *p, const char *end, uint64_t *m,
                                            size_t *n_int, size_t *n_frac) {
  uint64_t v = 0;
  const char *d0 = p;
  while (p < end && (unsigned)(*p - '0') < 10)
    v = v * 10 + (uint64_t)(*p++ - '0');
  *n_int = (size_t)(p - d0);
  *n_frac = 0;
  if (p < end && *p == '.') {
    const char *f0 = ++p;
    while (p < end && (unsigned)(*p - '0') < 10)
      v = v * 10 + (uint64_t)(*p++ - '0');
    *n_frac = (size_t)(p - f0);
  }
  *m = v;
  return p;
}

/* Inline fast path for the common cell "[-]ddd[.ddd]" (at most 19 digits, no exponent,
   no padding); anything else goes to myr__parse_double. Same results either way. */
static inline int myr__parse_double_fast(const char *s, size_t len, double *out) {
  if (len == 0 || len > 20)
    return myr__parse_double(s, len, out);
  int neg = *s == '-';
  uint64_t m;
  size_t n_int, n_frac;
  const char *p = myr__scan_decimal(s + neg, s + len, &m, &n_int, &n_frac);
  if (p != s + len || n_int + n_frac == 0 || m >= (1ULL << 53) || n_frac > 22)
    return myr__parse_double(s, len, out);
  double v = (double)m;
  if (n_frac)
    v /= myr__pow10[n_frac];
  *out = neg ? -v : v;
  return 0; /* MYR__NUM_OK */
}

#endif /* MYRIAD_IO_NUMBER_H */
