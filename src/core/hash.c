/* SPDX-License-Identifier: Apache-2.0 */
/*
 * myr__hash64: 8-byte little-endian words folded with multiply-xorshift rounds, the tail
 * padded with its length, finished by the splitmix64 mixer. Quality is ample for hash
 * tables and sharding; it is not a cryptographic hash.
 */
#include "core/hash.h"

#include <math.h>

static inline uint64_t load_le64(const unsigned char *p) {
  return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 |
         (uint64_t)p[3] << 24 | (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 |
         (uint64_t)p[6] << 48 | (uint64_t)p[7] << 56;
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t myr__hash64(const void *data, size_t len, uint64_t seed) {
  const unsigned char *p = data;
  const uint64_t k1 = 0x9e3779b97f4a7c15ULL, k2 = 0xc2b2ae3d27d4eb4fULL;
  uint64_t h = seed ^ (len * k1);
  while (len >= 8) {
    uint64_t w = load_le64(p) * k2;
    h ^= rotl(w, 31) * k1;
    h = rotl(h, 27) * 5 + 0x52dce729;
    p += 8;
    len -= 8;
  }
  uint64_t tail = 0;
  for (size_t i = 0; i < len; i++)
    tail |= (uint64_t)p[i] << (8 * i);
  tail |= (uint64_t)(len + 1) << 56;
  h ^= rotl(tail * k2, 33) * k1;
  return myr__mix64(h);
}

void myr__rng_seed(myr__rng *r, uint64_t seed) {
  for (int i = 0; i < 4; i++) {
    seed += 0x9e3779b97f4a7c15ULL;
    r->s[i] = myr__mix64(seed);
  }
}

uint64_t myr__rng_below(myr__rng *r, uint64_t n) {
  /* Rejection sampling over the largest multiple of n. */
  uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t x;
  do {
    x = myr__rng_next(r);
  } while (x >= limit);
  return x % n;
}

double myr__rng_double(myr__rng *r) {
  return (double)(myr__rng_next(r) >> 11) * 0x1.0p-53;
}

double myr__rng_normal(myr__rng *r) {
  double u1 = myr__rng_double(r), u2 = myr__rng_double(r);
  if (u1 < 1e-300)
    u1 = 1e-300;
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}
