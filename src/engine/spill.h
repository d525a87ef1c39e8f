/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Spill: the usable rows of a training run that would not fit in its memory limit,
 * hash-partitioned by key into one temporary file so that partitions can be read back
 * and trained one after another.
 *
 * A row is (key encoding, its lookup hash, label, p features). Rows are staged per
 * partition and written as blocks (the rows staged per partition are sized so that all
partitions together stage about stage_bytes): the block's columns
 * back to back (hashes, key end offsets, key bytes, labels, features), the doubles
 * byte-shuffled (byte 0 of every value, then byte 1, ...: exponent bytes line up) and
 * the whole compressed with LZ4. The block index stays in memory. Every partition keeps
 * its rows in the order they were added, so a group read back has its rows in input
 * order, as a run without a limit sees them.
 *
 * The file is unlinked as soon as it is created (O_TMPFILE where the system has it):
 * a run that is killed leaves nothing behind, and closing the spill frees the space.
 */
#ifndef MYRIAD_ENGINE_SPILL_H
#define MYRIAD_ENGINE_SPILL_H

#include <stddef.h>
#include <stdint.h>

#include "myriad/error.h"

#define MYR__SPILL_MAX_PARTS 1024u

typedef struct myr__spill myr__spill;

/* A block read back: n rows, views valid until the next read on the spill. */
typedef struct myr__spill_rows {
  size_t n;
  const uint64_t *hash;      /* n lookup hashes */
  const uint32_t *key_end;   /* n: end of row i's key in keys (start: key_end[i - 1]) */
  const unsigned char *keys; /* key encodings, back to back */
  const double *y;           /* n labels */
  const double *x;           /* n * p features, row-major */
} myr__spill_rows;

/* Create a spill of n_parts (1..MYR__SPILL_MAX_PARTS) partitions of rows with p
   features, in directory dir (NULL or "": $TMPDIR, else /tmp), staging about
   stage_bytes of rows in memory before they are written. */
int myr__spill_open(const char *dir, unsigned n_parts, size_t p, size_t stage_bytes,
                    myr__spill **out, myr_error *err);
/* Remove the file and free everything; NULL is a no-op. */
void myr__spill_close(myr__spill *s);

/* The partition a row of this lookup hash goes to. */
unsigned myr__spill_part(const myr__spill *s, uint64_t hash);
/* Add one row (x: p values) to its partition; may write a block. */
int myr__spill_add(myr__spill *s, uint64_t hash, const unsigned char *key, size_t key_len,
                   double y, const double *x, myr_error *err);
/* Write every staged row; call once, after the last add and before reading. */
int myr__spill_finish(myr__spill *s, myr_error *err);

unsigned myr__spill_parts(const myr__spill *s);
uint64_t myr__spill_part_rows(const myr__spill *s, unsigned part);
/* Bytes of part's rows once read back (keys, labels and features uncompressed). */
uint64_t myr__spill_part_bytes(const myr__spill *s, unsigned part);
uint64_t myr__spill_file_bytes(const myr__spill *s); /* compressed, written so far */
uint64_t myr__spill_rows_total(const myr__spill *s);

/* Call fn for every block of part in the order written; stops at fn's first error. */
typedef int (*myr__spill_fn)(void *ud, const myr__spill_rows *rows, myr_error *err);
int myr__spill_read(myr__spill *s, unsigned part, myr__spill_fn fn, void *ud,
                    myr_error *err);

#endif /* MYRIAD_ENGINE_SPILL_H */
