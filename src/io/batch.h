/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A record batch in Arrow-like columnar layout: what every source (CSV today, Arrow C
 * stream and IPC next) hands to the engine. Columns the engine did not ask for are
 * MYR__COL_ABSENT. A batch and everything it points to is borrowed: it stays valid until
 * the next call to the source that produced it.
 *
 * Rows a source could not split into fields (ragged, bad quoting, NUL byte) still appear,
 * with skip[i] != 0, so that the engine counts every input row exactly once.
 */
#ifndef MYRIAD_IO_BATCH_H
#define MYRIAD_IO_BATCH_H

#include <stddef.h>
#include <stdint.h>

enum myr__col_kind {
  MYR__COL_ABSENT = 0, /* not materialized */
  MYR__COL_TEXT = 1,   /* text views: text + text_off[i], text_len[i] bytes, not NUL-ended */
  MYR__COL_F64 = 2,    /* f64[i] */
  MYR__COL_I64 = 3,    /* i64[i] */
};

typedef struct myr__column {
  int kind;                 /* enum myr__col_kind */
  const uint8_t *validity;  /* Arrow bitmap (bit set = valid), NULL = all valid */
  const double *f64;        /* MYR__COL_F64 values */
  const int64_t *i64;       /* MYR__COL_I64 values */
  const char *text;         /* MYR__COL_TEXT: base the offsets point into */
  const uint32_t *text_off; /* MYR__COL_TEXT: byte offset of row i's value from text */
  const uint32_t *text_len; /* MYR__COL_TEXT: byte length of row i's value */
} myr__column;

typedef struct myr__batch {
  size_t n_rows;            /* rows in this batch, skipped ones included */
  uint64_t first_row;       /* 0-based index of row 0 among all data rows of the source */
  const uint64_t *line;     /* 1-based source line where row i starts; NULL if not text */
  const uint8_t *skip;      /* 0 = row usable, else a myr_skip_reason + 1; NULL = all 0 */
  const uint32_t *skip_arg; /* per skipped row: field count (ragged) or 1-based column */
  size_t n_columns;         /* columns of the source's schema */
  const myr__column *columns; /* n_columns entries */
} myr__batch;

/* Bit i of an Arrow validity bitmap; a NULL bitmap means every value is valid. */
static inline int myr__batch_valid(const uint8_t *validity, size_t i) {
  return validity == NULL || ((validity[i >> 3] >> (i & 7)) & 1);
}

#endif /* MYRIAD_IO_BATCH_H */
