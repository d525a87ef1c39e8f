/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Streaming CSV reader (RFC 4180) producing myr__batch text columns.
 *
 * The file is read in chunks into one buffer that holds whole records only; records cut at
 * the end of a chunk are moved to the front and completed by the next read, so no byte of
 * the file is held twice. A record longer than the buffer grows it (up to max_record).
 * Quoted fields are unescaped in place; text views in a batch point into the buffer and
 * stay valid until the next myr__csv_next call.
 *
 * Per-row problems (wrong field count, bad quoting, NUL byte) do not stop the reader: the
 * row is returned with its skip reason. Only problems that make the rest of the file
 * unreadable (I/O error, a record over max_record) return an error.
 */
#ifndef MYRIAD_IO_CSV_H
#define MYRIAD_IO_CSV_H

#include <stddef.h>
#include <stdint.h>

#include "io/batch.h"
#include "myriad/error.h"

typedef struct myr__csv myr__csv;

typedef struct myr__csv_options {
  char delimiter;      /* ',', '\t' or ';'; 0 = detect from the header line */
  size_t chunk_size;   /* bytes read per read(); 0 = 1 MiB */
  size_t max_record;   /* longest record accepted; 0 = 256 MiB */
  size_t batch_rows;   /* most rows per batch; 0 = 65536 */
} myr__csv_options;

/* Open path and read its header. opt may be NULL. Free with myr__csv_close. */
int myr__csv_open(const char *path, const myr__csv_options *opt, myr__csv **out,
                  myr_error *err);
/* Same over a caller-owned memory buffer (borrowed until close); name is used in errors. */
int myr__csv_open_mem(const char *data, size_t len, const char *name,
                      const myr__csv_options *opt, myr__csv **out, myr_error *err);
void myr__csv_close(myr__csv *csv);
/* Rows per batch from now on: 1..the default (65536); 0 = the default. */
void myr__csv_set_batch_rows(myr__csv *csv, size_t rows);

size_t myr__csv_n_columns(const myr__csv *csv);
const char *myr__csv_column_name(const myr__csv *csv, size_t i); /* NUL-terminated */
/* Index of the column named name (the first, names being unique); 0 when absent. */
int myr__csv_find(const myr__csv *csv, const char *name, size_t *index_out);
/* The column names as "a, b, c" in out[0..cap), for error messages. */
void myr__csv_list(const myr__csv *csv, char *out, size_t cap);
char myr__csv_delimiter(const myr__csv *csv);
const char *myr__csv_name(const myr__csv *csv);
uint64_t myr__csv_bytes_read(const myr__csv *csv);  /* bytes consumed so far */
uint64_t myr__csv_bytes_total(const myr__csv *csv); /* file size, 0 if unknown */

/* Choose the columns to materialize (want[i] != 0); others come back MYR__COL_ABSENT.
   By default every column is materialized. */
int myr__csv_select(myr__csv *csv, const unsigned char *want, myr_error *err);

/* Next batch, or *batch_out = NULL at the end of the file. */
int myr__csv_next(myr__csv *csv, const myr__batch **batch_out, myr_error *err);

#endif /* MYRIAD_IO_CSV_H */
