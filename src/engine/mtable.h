/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Models tables: an Arrow stream of one row per key, as myr_train's `results` gives it
 * (and myriad.spark.train): the key columns, `model` (binary blob; null for a failed
 * group) and, when present, `n_rows`, `metrics`, `status`, `error` and `features`. Every
 * column not named like one of those is a key column. Read by predict (scoring from a
 * table) and by myr_store_import.
 */
#ifndef MYRIAD_ENGINE_MTABLE_H
#define MYRIAD_ENGINE_MTABLE_H

#include <stddef.h>
#include <stdint.h>

#include "myriad/arrow_abi.h"
#include "myriad/error.h"

/* One row; pointers valid during the callback. Optional columns that are absent or
   null are NULL (n_rows: -1). */
typedef struct myr__mrow {
  uint64_t row;             /* 1-based row of the table */
  const unsigned char *enc; /* key encoding (engine/keys.h) */
  size_t enc_len;
  const char *const *key; /* n_keys values, not NUL-terminated */
  const size_t *key_len;
  const unsigned char *blob; /* NULL: no model (a failed group) */
  size_t blob_len;
  const char *features, *metrics, *status, *error;
  size_t features_len, metrics_len, status_len, error_len;
  int64_t n_rows;
} myr__mrow;

typedef int (*myr__mrow_fn)(void *ud, const myr__mrow *row, myr_error *err);

/* Read the table `s` (moved in: released by the call), named `name` in messages. The
   key column names are set into *key_names (n_keys owned strings; free with
   myr__mtable_names_free) before the first callback. Rows whose key has a null, missing
   or invalid value are passed over (no input row can have that key); fn gets every
   other row in order and its first error stops the read. */
int myr__mtable_read(struct ArrowArrayStream *s, const char *name, char ***key_names,
                     size_t *n_keys, myr__mrow_fn fn, void *ud, myr_error *err);
void myr__mtable_names_free(char **names, size_t n);
/* Whether `name` is one of the table's non-key columns (model, n_rows ...). */
int myr__mtable_is_value_column(const char *name);

#endif /* MYRIAD_ENGINE_MTABLE_H */
