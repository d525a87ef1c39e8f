/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Small text helpers shared by the readers and writers: UTF-8 validation, the shortest
 * decimal form of a double that reads back exactly (without printf for common values:
 * formatting dominated prediction output), and joining names for error messages.
 */
#include "core/text.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double myr__now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int myr__utf8_valid(const unsigned char *s, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) { /* keys are nearly always ASCII */
    uint64_t w;
    memcpy(&w, s + i, 8);
    if (w & 0x8080808080808080ULL)
      break;
  }
  while (i < n) {
    unsigned char ch = s[i];
    if (ch < 0x80) {
      i++;
      continue;
    }
    size_t len;
    uint32_t cp;
    if (ch >= 0xc2 && ch <= 0xdf) {
      len = 2;
      cp = ch & 0x1f;
    } else if (ch >= 0xe0 && ch <= 0xef) {
      len = 3;
      cp = ch & 0x0f;
    } else if (ch >= 0xf0 && ch <= 0xf4) {
      len = 4;
      cp = ch & 0x07;
    } else {
      return 0;
    }
    if (n - i < len)
      return 0;
    for (size_t k = 1; k < len; k++) {
      if ((s[i + k] & 0xc0) != 0x80)
        return 0;
      cp = (cp << 6) | (s[i + k] & 0x3f);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
      return 0;
    i += len;
  }
  return 1;
}

void myr__join_names(char *out, size_t cap, const char *const *names, size_t n) {
  size_t pos = 0;
  out[0] = '\0';
  for (size_t i = 0; i < n && pos + 4 < cap; i++) {
    int w = snprintf(out + pos, cap - pos, "%s%s", i ? ", " : "", names[i]);
    if (w < 0 || (size_t)w >= cap - pos) {
      snprintf(out + (cap > 4 ? cap - 4 : 0), 4, "...");
      break;
    }
    pos += (size_t)w;
  }
}


#if defined(__SIZEOF_INT128__)
__extension__ typedef unsigned __int128 u128;

static const uint64_t POW10[20] = {1ULL,
                                   10ULL,
                                   100ULL,
                                   1000ULL,
                                   10000ULL,
                                   100000ULL,
                                   1000000ULL,
                                   10000000ULL,
                                   100000000ULL,
                                   1000000000ULL,
                                   10000000000ULL,
                                   100000000000ULL,
                                   1000000000000ULL,
                                   10000000000000ULL,
                                   100000000000000ULL,
                                   1000000000000000ULL,
                                   10000000000000000ULL,
                                   100000000000000000ULL,
                                   1000000000000000000ULL,
                                   10000000000000000000ULL};

static u128 pow10_u128(int k) {
  return k < 20 ? (u128)POW10[k] : (u128)POW10[19] * POW10[k - 19];
}

/* m = f * 10^k / 2^s rounded to nearest, ties to even (exact: f * 10^k < 2^123); returns
   whether the decimal m * 10^-k reads back as f * 2^-s, i.e. whether it is closer to it
   than half the spacing 2^-s of the doubles around it (ties: f even). */
static int nearest_decimal(uint64_t f, int s, int k, uint64_t *m_out) {
  u128 p = pow10_u128(k);
  u128 n = (u128)f * p;
  u128 q = n >> s, rem = n & (((u128)1 << s) - 1), half = (u128)1 << (s - 1), off = rem;
  if (rem > half || (rem == half && (q & 1))) {
    q++;
    off = ((u128)1 << s) - rem;
  }
  *m_out = (uint64_t)q;
  return 2 * off < p || (2 * off == p && !(f & 1));
}

/* Shortest of 15, 16 or 17 significant digits that reads back as v, for
   1e-4 <= |v| < 1e15, in fixed notation; 0 when v is outside that range. Same digits
   as the %.15g / %.16g / %.17g + strtod loop, without printf or strtod (formatting was
   most of predict's time). */
static size_t fmt_fast(char *out, double v) {
  double a = fabs(v);
  if (!(a >= 1e-4 && a < 1e15))
    return 0;
  uint64_t bits;
  memcpy(&bits, &a, sizeof bits);
  uint64_t f = (bits & ((1ULL << 52) - 1)) | (1ULL << 52);
  int s = 1075 - (int)(bits >> 52); /* a = f * 2^-s, s in [3, 66] */
  if (f == 1ULL << 52 || s < 3 || s > 70)
    return 0; /* a power of two has a narrower gap below: leave it to printf */
  int e10 = (int)floor(log10(a));
  uint64_t m = 0;
  for (int tries = 0;; tries++) { /* fix e10 so that the 17-digit m has 17 digits */
    if (tries == 3 || 16 - e10 < 0 || 16 - e10 > 20)
      return 0;
    nearest_decimal(f, s, 16 - e10, &m);
    if (m >= POW10[17])
      e10++;
    else if (m < POW10[16])
      e10--;
    else
      break;
  }
  int k = 16 - e10;
  for (int d = 15; d < 17; d++) {
    uint64_t md;
    if (d - 1 - e10 >= 0 && nearest_decimal(f, s, d - 1 - e10, &md)) {
      m = md;
      k = d - 1 - e10;
      break;
    }
  }
  char dig[24];
  int n = 0;
  do {
    dig[n++] = (char)('0' + m % 10);
    m /= 10;
  } while (m);
  /* dig holds the digits reversed; the value is digits * 10^-k. */
  int lead = 0;
  while (lead < k && dig[lead] == '0') /* trailing zeros of the fraction */
    lead++;
  size_t o = 0;
  if (v < 0)
    out[o++] = '-';
  if (n > k) {
    for (int i = n - 1; i >= k; i--)
      out[o++] = dig[i];
  } else {
    out[o++] = '0';
  }
  if (lead < k) {
    out[o++] = '.';
    for (int i = k - 1; i >= lead; i--)
      out[o++] = i < n ? dig[i] : '0';
  }
  return o;
}
#else
static size_t fmt_fast(char *out, double v) {
  (void)out;
  (void)v;
  return 0;
}
#endif

size_t myr__fmt_double(char *out, double v) {
  if (v == floor(v) && fabs(v) < 1e15) {
    long long n = (long long)v;
    char tmp[24];
    size_t k = 0, o = 0;
    unsigned long long u = n < 0 ? 0ULL - (unsigned long long)n : (unsigned long long)n;
    do {
      tmp[k++] = (char)('0' + u % 10);
      u /= 10;
    } while (u);
    if (n < 0)
      out[o++] = '-';
    while (k)
      out[o++] = tmp[--k];
    return o;
  }
  size_t o = fmt_fast(out, v);
  if (o)
    return o;
  int w = 0;
  for (int prec = 15; prec <= 17; prec++) {
    w = snprintf(out, 40, "%.*g", prec, v);
    if (strtod(out, NULL) == v)
      break;
  }
  return w > 0 ? (size_t)w : 0;
}

