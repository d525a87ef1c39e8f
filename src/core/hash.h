/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Stable hashing and seeded random numbers. Everything here is specified bit for bit and
 * must never change: key hashes are stored in model stores and shard data across machines,
 * and per-key seeds make models reproducible across engines and releases.
 */
#ifndef MYRIAD_CORE_HASH_H
#define MYRIAD_CORE_HASH_H

#include <stddef.h>
#include <stdint.h>

/* splitmix64 finalizer: a bijective 64-bit mix. */
static inline uint64_t myr__mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/* Hash of len bytes, independent of host endianness and alignment. */
uint64_t myr__hash64(const void *data, size_t len, uint64_t seed);

/* Per-key seed: a model's randomness depends only on the run seed and its key. */
static inline uint64_t myr__key_seed(uint64_t run_seed, uint64_t key_hash) {
  return myr__mix64(run_seed ^ myr__mix64(key_hash ^ 0x6d797269616421ULL));
}

/* xoshiro256** generator seeded through splitmix64. */
typedef struct myr__rng {
  uint64_t s[4];
} myr__rng;

void myr__rng_seed(myr__rng *r, uint64_t seed);

/* Next 64 random bits. Inline: a forest makes hundreds of draws per tree. */
static inline uint64_t myr__rng_next(myr__rng *r) {
  uint64_t *s = r->s;
  uint64_t x = s[1] * 5;
  uint64_t result = (x << 7 | x >> 57) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = s[3] << 45 | s[3] >> 19;
  return result;
}
/* Uniform integer in [0, n), n >= 1, without modulo bias. */
uint64_t myr__rng_below(myr__rng *r, uint64_t n);
/* Uniform double in [0, 1) with 53 random bits. */
double myr__rng_double(myr__rng *r);
/* Standard normal deviate (Box-Muller; one draw per call, deterministic). */
double myr__rng_normal(myr__rng *r);

#endif /* MYRIAD_CORE_HASH_H */
