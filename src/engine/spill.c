/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Spill file: see spill.h. A block on disk is the LZ4 block compression of
 *   u64 hash[n] | u32 key_end[n] | key bytes | shuffled f64 y[n] | shuffled f64 x[n * p]
 * and its place, sizes and row count live in the partition's in-memory index.
 */
#include "engine/spill.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lz4.h>

#include "core/alloc.h"

#define MIN_BLOCK_ROWS 64
#define MAX_BLOCK_ROWS 8192
#define KEY_BYTES_GUESS 32 /* per row, to size the staging before keys are seen */

typedef struct block_ref {
  uint64_t off;  /* in the file */
  uint32_t clen; /* compressed bytes */
  uint32_t n;    /* rows */
  uint32_t klen; /* key bytes */
} block_ref;

typedef struct part {
  /* staging: at most s->block_rows rows, allocated on the first add */
  uint64_t *hash;
  uint32_t *key_end;
  unsigned char *keys;
  size_t keys_len, keys_cap;
  double *y, *x;
  size_t n;
  /* written */
  block_ref *blocks;
  size_t n_blocks, cap_blocks;
  uint64_t rows, bytes;
} part;

struct myr__spill {
  int fd;
  char dir[512]; /* for messages */
  unsigned n_parts;
  size_t p;
  size_t block_rows; /* rows staged per partition before a block is written */
  part *parts;
  uint64_t file_len; /* bytes written */
  uint64_t rows;
  /* scratch shared by writes and reads: the raw block and its compressed form */
  unsigned char *raw, *comp;
  size_t raw_cap, comp_cap;
  double *y, *x; /* unshuffled doubles of a block read back */
  size_t yx_cap; /* rows y and x hold */
};

static int io_fail(const myr__spill *s, const char *what, myr_error *err) {
  return myr_error_set(err, MYR_EIO, "spill file in %s: %s: %s", s->dir, what,
                       strerror(errno));
}

static int open_tmp(myr__spill *s, myr_error *err) {
#ifdef O_TMPFILE
  s->fd = open(s->dir, O_TMPFILE | O_RDWR | O_EXCL | O_CLOEXEC, 0600);
  if (s->fd >= 0)
    return MYR_OK;
#endif
  char path[600];
  snprintf(path, sizeof path, "%s/myriad-spill-XXXXXX", s->dir);
  s->fd = mkstemp(path);
  if (s->fd < 0)
    return io_fail(s, "cannot create it", err);
  unlink(path); /* nothing is left behind, whatever happens to the run */
  return MYR_OK;
}

int myr__spill_open(const char *dir, unsigned n_parts, size_t p, size_t stage_bytes,
                    myr__spill **out, myr_error *err) {
  *out = NULL;
  if (n_parts == 0 || n_parts > MYR__SPILL_MAX_PARTS)
    return myr_error_set(err, MYR_EINTERNAL, "%u spill partitions", n_parts);
  if (!dir || !*dir)
    dir = getenv("TMPDIR");
  if (!dir || !*dir)
    dir = "/tmp";
  myr__spill *s = myr__calloc(1, sizeof *s);
  if (!s)
    return myr_error_set(err, MYR_ENOMEM, "out of memory");
  s->fd = -1;
  snprintf(s->dir, sizeof s->dir, "%s", dir);
  s->n_parts = n_parts;
  s->p = p;
  size_t row_bytes = 8 + 4 + KEY_BYTES_GUESS + 8 * (p + 1);
  size_t rows = stage_bytes / n_parts / row_bytes;
  s->block_rows = rows < MIN_BLOCK_ROWS   ? MIN_BLOCK_ROWS
                  : rows > MAX_BLOCK_ROWS ? MAX_BLOCK_ROWS
                                          : rows;
  s->parts = myr__calloc(n_parts, sizeof *s->parts);
  if (!s->parts) {
    myr__free(s);
    return myr_error_set(err, MYR_ENOMEM, "out of memory");
  }
  int rc = open_tmp(s, err);
  if (rc != MYR_OK) {
    myr__spill_close(s);
    return rc;
  }
  *out = s;
  return MYR_OK;
}

static void stage_free(part *t) {
  myr__free(t->hash);
  myr__free(t->key_end);
  myr__free(t->keys);
  myr__free(t->y);
  myr__free(t->x);
  t->hash = NULL;
  t->key_end = NULL;
  t->keys = NULL;
  t->y = t->x = NULL;
  t->keys_len = t->keys_cap = 0;
}

void myr__spill_close(myr__spill *s) {
  if (!s)
    return;
  if (s->fd >= 0)
    close(s->fd);
  for (unsigned i = 0; s->parts && i < s->n_parts; i++) {
    stage_free(&s->parts[i]);
    myr__free(s->parts[i].blocks);
  }
  myr__free(s->parts);
  myr__free(s->raw);
  myr__free(s->comp);
  myr__free(s->y);
  myr__free(s->x);
  myr__free(s);
}

unsigned myr__spill_part(const myr__spill *s, uint64_t hash) {
  /* The high half: the key table's slots use the low bits of the same hash. */
  return (unsigned)(((hash >> 32) * s->n_parts) >> 32);
}

static int grow(void **p, size_t *cap, size_t need, myr_error *err) {
  if (need <= *cap)
    return MYR_OK;
  size_t c = *cap ? *cap : 4096;
  while (c < need)
    c *= 2;
  void *q = myr__realloc(*p, c);
  if (!q)
    return myr_error_set(err, MYR_ENOMEM, "out of memory spilling rows");
  *p = q;
  *cap = c;
  return MYR_OK;
}

/* Byte k of value i goes to out[k * n + i]: like bytes of like values sit together. */
static void shuffle8(const double *in, size_t n, unsigned char *out) {
  const unsigned char *b = (const unsigned char *)in;
  for (size_t i = 0; i < n; i++)
    for (size_t k = 0; k < 8; k++)
      out[k * n + i] = b[i * 8 + k];
}

static void unshuffle8(const unsigned char *in, size_t n, double *out) {
  unsigned char *b = (unsigned char *)out;
  for (size_t k = 0; k < 8; k++)
    for (size_t i = 0; i < n; i++)
      b[i * 8 + k] = in[k * n + i];
}

static int write_block(myr__spill *s, part *t, myr_error *err) {
  size_t n = t->n, p = s->p;
  if (n == 0)
    return MYR_OK;
  size_t raw_len = n * 8 + n * 4 + t->keys_len + n * 8 * (p + 1);
  if (raw_len > (size_t)LZ4_MAX_INPUT_SIZE)
    return myr_error_set(err, MYR_EINTERNAL, "spill block of %zu bytes", raw_len);
  MYR_RETURN_NOT_OK(grow((void **)&s->raw, &s->raw_cap, raw_len, err));
  size_t bound = (size_t)LZ4_compressBound((int)raw_len);
  MYR_RETURN_NOT_OK(grow((void **)&s->comp, &s->comp_cap, bound, err));
  unsigned char *at = s->raw;
  memcpy(at, t->hash, n * 8);
  at += n * 8;
  memcpy(at, t->key_end, n * 4);
  at += n * 4;
  memcpy(at, t->keys, t->keys_len);
  at += t->keys_len;
  shuffle8(t->y, n, at);
  at += n * 8;
  shuffle8(t->x, n * p, at);
  int clen = LZ4_compress_default((const char *)s->raw, (char *)s->comp, (int)raw_len,
                                  (int)bound);
  if (clen <= 0)
    return myr_error_set(err, MYR_EINTERNAL, "LZ4 failed on a spill block");
  if (t->n_blocks == t->cap_blocks) {
    size_t cap = t->cap_blocks ? 2 * t->cap_blocks : 16;
    block_ref *b = myr__reallocarray(t->blocks, cap, sizeof *b);
    if (!b)
      return myr_error_set(err, MYR_ENOMEM, "out of memory spilling rows");
    t->blocks = b;
    t->cap_blocks = cap;
  }
  for (size_t done = 0; done < (size_t)clen;) {
    ssize_t w =
        pwrite(s->fd, s->comp + done, (size_t)clen - done, (off_t)(s->file_len + done));
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0) {
      if (w == 0)
        errno = ENOSPC;
      return io_fail(s, "writing", err);
    }
    done += (size_t)w;
  }
  t->blocks[t->n_blocks++] =
      (block_ref){s->file_len, (uint32_t)clen, (uint32_t)n, (uint32_t)t->keys_len};
  s->file_len += (uint64_t)clen;
  t->rows += n;
  t->bytes += raw_len;
  t->n = 0;
  t->keys_len = 0;
  return MYR_OK;
}

int myr__spill_add(myr__spill *s, uint64_t hash, const unsigned char *key, size_t key_len,
                   double y, const double *x, myr_error *err) {
  part *t = &s->parts[myr__spill_part(s, hash)];
  size_t p = s->p, b = s->block_rows;
  if (!t->hash) {
    t->hash = myr__reallocarray(NULL, b, sizeof *t->hash);
    t->key_end = myr__reallocarray(NULL, b, sizeof *t->key_end);
    t->y = myr__reallocarray(NULL, b, sizeof *t->y);
    t->x = myr__reallocarray(NULL, b, (p ? p : 1) * sizeof *t->x);
    if (!t->hash || !t->key_end || !t->y || !t->x) {
      stage_free(t);
      return myr_error_set(err, MYR_ENOMEM, "out of memory spilling rows");
    }
  }
  if (key_len > UINT32_MAX - t->keys_len)
    return myr_error_set(err, MYR_EINTERNAL, "spill block keys overflow");
  MYR_RETURN_NOT_OK(grow((void **)&t->keys, &t->keys_cap, t->keys_len + key_len, err));
  memcpy(t->keys + t->keys_len, key, key_len);
  t->keys_len += key_len;
  t->hash[t->n] = hash;
  t->key_end[t->n] = (uint32_t)t->keys_len;
  t->y[t->n] = y;
  memcpy(t->x + t->n * p, x, p * sizeof *x);
  t->n++;
  s->rows++;
  /* a block's keys stay well inside 32 bits: write early when keys are long */
  if (t->n == b || t->keys_len > ((size_t)1 << 28))
    return write_block(s, t, err);
  return MYR_OK;
}

int myr__spill_finish(myr__spill *s, myr_error *err) {
  for (unsigned i = 0; i < s->n_parts; i++) {
    MYR_RETURN_NOT_OK(write_block(s, &s->parts[i], err));
    stage_free(&s->parts[i]);
  }
  return MYR_OK;
}

unsigned myr__spill_parts(const myr__spill *s) {
  return s->n_parts;
}
uint64_t myr__spill_part_rows(const myr__spill *s, unsigned i) {
  return s->parts[i].rows;
}
uint64_t myr__spill_part_bytes(const myr__spill *s, unsigned i) {
  return s->parts[i].bytes;
}
uint64_t myr__spill_file_bytes(const myr__spill *s) {
  return s->file_len;
}
uint64_t myr__spill_rows_total(const myr__spill *s) {
  return s->rows;
}

int myr__spill_read(myr__spill *s, unsigned i, myr__spill_fn fn, void *ud,
                    myr_error *err) {
  const part *t = &s->parts[i];
  const size_t p = s->p;
  for (size_t k = 0; k < t->n_blocks; k++) {
    const block_ref *b = &t->blocks[k];
    size_t n = b->n;
    size_t raw_len = n * 8 + n * 4 + b->klen + n * 8 * (p + 1);
    MYR_RETURN_NOT_OK(grow((void **)&s->raw, &s->raw_cap, raw_len, err));
    MYR_RETURN_NOT_OK(grow((void **)&s->comp, &s->comp_cap, b->clen, err));
    if (n > s->yx_cap) {
      myr__free(s->y);
      myr__free(s->x);
      s->y = myr__reallocarray(NULL, n, sizeof *s->y);
      s->x = myr__reallocarray(NULL, n, (p ? p : 1) * sizeof *s->x);
      s->yx_cap = s->y && s->x ? n : 0;
      if (!s->yx_cap)
        return myr_error_set(err, MYR_ENOMEM, "out of memory reading spilled rows");
    }
    for (size_t done = 0; done < b->clen;) {
      ssize_t r = pread(s->fd, s->comp + done, b->clen - done, (off_t)(b->off + done));
      if (r < 0 && errno == EINTR)
        continue;
      if (r <= 0) {
        if (r == 0)
          errno = EIO;
        return io_fail(s, "reading", err);
      }
      done += (size_t)r;
    }
    int got = LZ4_decompress_safe((const char *)s->comp, (char *)s->raw, (int)b->clen,
                                  (int)raw_len);
    if (got < 0 || (size_t)got != raw_len)
      return myr_error_set(err, MYR_ECORRUPT,
                           "spill file in %s: block %zu of partition %u "
                           "does not decompress (was the file changed?)",
                           s->dir, k, i);
    const unsigned char *at = s->raw;
    myr__spill_rows rows;
    rows.n = n;
    rows.hash = (const uint64_t *)(const void *)at;
    at += n * 8;
    rows.key_end = (const uint32_t *)(const void *)at;
    at += n * 4;
    rows.keys = at;
    at += b->klen;
    unshuffle8(at, n, s->y);
    at += n * 8;
    unshuffle8(at, n * p, s->x);
    rows.y = s->y;
    rows.x = s->x;
    for (size_t j = 0; j < n; j++)
      if (rows.key_end[j] > b->klen || (j && rows.key_end[j] < rows.key_end[j - 1]))
        return myr_error_set(err, MYR_ECORRUPT,
                             "spill file in %s: block %zu of "
                             "partition %u has bad key offsets",
                             s->dir, k, i);
    MYR_RETURN_NOT_OK(fn(ud, &rows, err));
  }
  return MYR_OK;
}
