/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Key interning: linear probing over a power-of-two slot array kept at most half full.
 * Invariant: key_off[n] == bytes_len, and slots holds exactly the gids 0..n-1.
 */
#include "engine/keys.h"

#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/hash.h"

void myr__keytab_init(myr__keytab *kt) { memset(kt, 0, sizeof *kt); }

void myr__keytab_free(myr__keytab *kt) {
  myr__free(kt->slots);
  myr__free(kt->hash);
  myr__free(kt->lhash);
  myr__free(kt->key_off);
  myr__free(kt->count);
  myr__free(kt->bytes);
  myr__keytab_init(kt);
}

uint64_t myr__key_hash(const unsigned char *enc, size_t len) {
  return myr__hash64(enc, len, MYR__KEY_HASH_SEED);
}

/* Eight bytes at a time, multiply and fold; the finalizer spreads every input bit into
   the low bits that index the slots. */
uint64_t myr__key_lookup_hash(const unsigned char *enc, size_t len) {
  uint64_t h = (uint64_t)len * 0x9e3779b97f4a7c15ULL, w;
  size_t i = 0;
  for (; i + 8 <= len; i += 8) {
    memcpy(&w, enc + i, 8);
    h = (h ^ w) * 0xff51afd7ed558ccdULL;
    h ^= h >> 32;
  }
  if (i < len) {
    w = 0;
    memcpy(&w, enc + i, len - i);
    h = (h ^ w) * 0xff51afd7ed558ccdULL;
    h ^= h >> 32;
  }
  return myr__mix64(h);
}

static int grow_slots(myr__keytab *kt) {
  size_t cap = kt->cap ? kt->cap * 2 : 1024;
  uint32_t *slots = myr__calloc(cap, sizeof *slots);
  if (!slots)
    return 0;
  for (size_t g = 0; g < kt->n; g++) {
    size_t i = (size_t)kt->lhash[g] & (cap - 1);
    while (slots[i])
      i = (i + 1) & (cap - 1);
    slots[i] = (uint32_t)g + 1;
  }
  myr__free(kt->slots);
  kt->slots = slots;
  kt->cap = cap;
  return 1;
}

static int grow_entries(myr__keytab *kt) {
  size_t n = kt->n_alloc ? kt->n_alloc * 2 : 1024;
  uint64_t *h = myr__reallocarray(kt->hash, n, sizeof *h);
  if (!h)
    return 0;
  kt->hash = h;
  uint64_t *lh = myr__reallocarray(kt->lhash, n, sizeof *lh);
  if (!lh)
    return 0;
  kt->lhash = lh;
  uint32_t *c = myr__reallocarray(kt->count, n, sizeof *c);
  if (!c)
    return 0;
  kt->count = c;
  uint64_t *o = myr__reallocarray(kt->key_off, n + 1, sizeof *o);
  if (!o)
    return 0;
  kt->key_off = o;
  if (kt->n_alloc == 0)
    kt->key_off[0] = 0;
  kt->n_alloc = n;
  return 1;
}

int myr__keytab_find(const myr__keytab *kt, const unsigned char *enc, size_t len,
                     uint64_t hash, uint32_t *gid_out) {
  if (!kt->cap)
    return 0;
  size_t i = (size_t)hash & (kt->cap - 1);
  uint32_t s;
  while ((s = kt->slots[i]) != 0) {
    uint32_t g = s - 1;
    if (kt->lhash[g] == hash && kt->key_off[g + 1] - kt->key_off[g] == len &&
        memcmp(kt->bytes + kt->key_off[g], enc, len) == 0) {
      *gid_out = g;
      return 1;
    }
    i = (i + 1) & (kt->cap - 1);
  }
  return 0;
}

int myr__keytab_intern(myr__keytab *kt, const unsigned char *enc, size_t len,
                       uint64_t hash, uint32_t *gid_out, myr_error *err) {
  if (kt->cap) {
    size_t i = (size_t)hash & (kt->cap - 1);
    uint32_t s;
    while ((s = kt->slots[i]) != 0) {
      uint32_t g = s - 1;
      if (kt->lhash[g] == hash && kt->key_off[g + 1] - kt->key_off[g] == len &&
          memcmp(kt->bytes + kt->key_off[g], enc, len) == 0) {
        kt->count[g]++;
        *gid_out = g;
        return MYR_OK;
      }
      i = (i + 1) & (kt->cap - 1);
    }
  }
  if (kt->n >= UINT32_MAX - 1)
    return myr_error_set(err, MYR_EINVAL, "more than %u distinct keys", UINT32_MAX - 2);
  if ((kt->n + 1) * 2 > kt->cap && !grow_slots(kt))
    goto oom;
  if (kt->n == kt->n_alloc && !grow_entries(kt))
    goto oom;
  if (kt->bytes_len + len > kt->bytes_cap) {
    size_t cap = kt->bytes_cap ? kt->bytes_cap : 65536;
    while (cap < kt->bytes_len + len)
      cap *= 2;
    unsigned char *b = myr__realloc(kt->bytes, cap);
    if (!b)
      goto oom;
    kt->bytes = b;
    kt->bytes_cap = cap;
  }
  uint32_t g = (uint32_t)kt->n;
  memcpy(kt->bytes + kt->bytes_len, enc, len);
  kt->bytes_len += len;
  kt->hash[g] = myr__key_hash(enc, len);
  kt->lhash[g] = hash;
  kt->count[g] = 1;
  kt->key_off[g + 1] = kt->bytes_len;
  size_t i = (size_t)hash & (kt->cap - 1);
  while (kt->slots[i])
    i = (i + 1) & (kt->cap - 1);
  kt->slots[i] = g + 1;
  kt->n++;
  *gid_out = g;
  return MYR_OK;
oom:
  return myr_error_set(err, MYR_ENOMEM, "out of memory grouping keys (%zu distinct so far)",
                       kt->n);
}

int myr__key_split(const unsigned char *enc, size_t len, size_t n_keys,
                   const char **values, size_t *lens) {
  size_t pos = 0;
  for (size_t k = 0; k < n_keys; k++) {
    if (len - pos < 4)
      return 0;
    uint32_t n = (uint32_t)enc[pos] | (uint32_t)enc[pos + 1] << 8 |
                 (uint32_t)enc[pos + 2] << 16 | (uint32_t)enc[pos + 3] << 24;
    pos += 4;
    if (n > len - pos)
      return 0;
    values[k] = (const char *)enc + pos;
    lens[k] = n;
    pos += n;
  }
  return pos == len;
}

void myr__key_format(const unsigned char *enc, size_t len, size_t n_keys, char *out,
                     size_t cap) {
  const char *v[MYR__MAX_KEYS];
  size_t l[MYR__MAX_KEYS];
  if (cap == 0)
    return;
  out[0] = '\0';
  if (n_keys > MYR__MAX_KEYS || !myr__key_split(enc, len, n_keys, v, l))
    return;
  size_t pos = 0;
  for (size_t k = 0; k < n_keys && pos + 1 < cap; k++) {
    int w = snprintf(out + pos, cap - pos, "%s%.*s", k ? "|" : "", (int)l[k], v[k]);
    if (w < 0)
      break;
    pos += (size_t)w;
  }
}
