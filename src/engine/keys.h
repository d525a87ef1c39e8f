/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Key encoding and interning. A key is the tuple of a row's key column values, encoded
 * canonically as, per column, a u32 little-endian byte length followed by the UTF-8 bytes
 * (integers are written in decimal first, so 42 from Arrow and "42" from CSV are the same
 * key). Equal tuples get equal encodings, so grouping compares encodings byte for byte.
 * The stable key hash is myr__hash64 of the encoding, computed once per distinct key; rows
 * are looked up by a cheaper hash that is never stored (myr__key_lookup_hash). Group ids
 * are dense, in order of first appearance, which makes every later step deterministic.
 */
#ifndef MYRIAD_ENGINE_KEYS_H
#define MYRIAD_ENGINE_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include "myriad/error.h"

#define MYR__KEY_HASH_SEED 0x6d79726b6579ULL
#define MYR__MAX_KEYS 16 /* key columns a run may have (myr_train checks) */

typedef struct myr__keytab {
  uint32_t *slots;      /* open addressing, gid + 1, 0 = empty; cap slots (power of 2) */
  size_t cap;           /* slots */
  size_t n;             /* distinct keys (= next gid) */
  size_t n_alloc;       /* entries allocated in hash/key_off/count */
  uint64_t *hash;       /* per gid: stable key hash (myr__key_hash) */
  uint64_t *lhash;      /* per gid: the hash it was interned with (lookup only) */
  uint64_t *key_off;    /* per gid: offset of its encoding in bytes; n + 1 entries */
  uint32_t *count;      /* per gid: rows seen */
  unsigned char *bytes; /* concatenated encodings */
  size_t bytes_len;
  size_t bytes_cap;
} myr__keytab;

void myr__keytab_init(myr__keytab *kt);
void myr__keytab_free(myr__keytab *kt);

/* Key hash of an encoding: stable (stored, seeds models). */
uint64_t myr__key_hash(const unsigned char *enc, size_t len);
/* A cheaper hash of an encoding to find it in a table; not stable across releases. */
uint64_t myr__key_lookup_hash(const unsigned char *enc, size_t len);
/* Find enc or add it as a new group; *gid_out is its id. hash is enc's hash by one
   function for every call on kt (myr__key_lookup_hash); a new group's stable hash is
   computed here. */
int myr__keytab_intern(myr__keytab *kt, const unsigned char *enc, size_t len,
                       uint64_t hash, uint32_t *gid_out, myr_error *err);
/* Find enc (hash as for intern) without adding it (counts unchanged); 1 and *gid_out
   when present, else 0. */
int myr__keytab_find(const myr__keytab *kt, const unsigned char *enc, size_t len,
                     uint64_t hash, uint32_t *gid_out);
/* The encoding of group gid. */
static inline const unsigned char *myr__keytab_key(const myr__keytab *kt, uint32_t gid,
                                                   size_t *len_out) {
  *len_out = (size_t)(kt->key_off[gid + 1] - kt->key_off[gid]);
  return kt->bytes + kt->key_off[gid];
}

/* Split an encoding into n_keys value views; 0 when it is not well-formed. */
int myr__key_split(const unsigned char *enc, size_t len, size_t n_keys,
                   const char **values, size_t *lens);
/* Append a readable form "v1|v2" (for messages) to out[0..cap), NUL-terminated. */
void myr__key_format(const unsigned char *enc, size_t len, size_t n_keys, char *out,
                     size_t cap);

#endif /* MYRIAD_ENGINE_KEYS_H */
