/* SPDX-License-Identifier: Apache-2.0 */
/*
 * An engine input, whatever its format: a CSV file, an Arrow IPC file or stream (told
 * apart by their first bytes, not by the extension), or an ArrowArrayStream handed over
 * by a caller. Training and prediction read every input through this interface and never
 * look at the format: they get myr__batch views (io/batch.h) of at most 65536 rows.
 *
 * Columns are chosen with myr__source_select(): a column is read as values (numbers for
 * features and labels), as text (keys: numbers, dates, bools of an Arrow input become the
 * text a CSV of the same data holds, so that a key and its seed do not depend on the
 * format), probed (values when the type allows, else left absent), or not at all. A CSV
 * source reads every selected column as text in every mode.
 */
#ifndef MYRIAD_IO_SOURCE_H
#define MYRIAD_IO_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "io/arrow.h"
#include "io/batch.h"
#include "myriad/arrow_abi.h"
#include "myriad/error.h"

/* What myr__source_select() asks of a column. */
enum myr__want {
  MYR__WANT_NONE = 0,  /* not read: MYR__COL_ABSENT */
  MYR__WANT_VALUE = 1, /* a number (F64, I64) or text to parse; an Arrow type that is
                          neither fails the select, naming the column and type */
  MYR__WANT_TEXT = 2,  /* text exactly as a CSV of the same data would hold (keys) */
  MYR__WANT_PROBE = 3, /* as VALUE, but a type that cannot be read stays absent */
};

typedef struct myr__source myr__source;

/* Open path: CSV, or Arrow IPC file/stream when its first bytes say so (a pipe: when
   its name ends in .arrow, .arrows, .feather or .ipc). delimiter as myr__csv_options
   (0 = detect); ignored for Arrow. Free with myr__source_close. */
int myr__source_open_path(const char *path, char delimiter, myr__source **out,
                          myr_error *err);
/* Read an ArrowArrayStream; takes ownership of *stream (moved, even on error: its
   release is NULL afterwards). name is used in messages. */
int myr__source_open_stream(struct ArrowArrayStream *stream, const char *name,
                            myr__source **out, myr_error *err);
void myr__source_close(myr__source *s); /* NULL is a no-op */
/* Most rows per batch from now on (batches are never larger than 65536 rows); 0 = the
   default, 65536. */
void myr__source_set_batch_rows(myr__source *s, size_t rows);

const char *myr__source_name(const myr__source *s);
/* Whether rows come from lines of text (batches have line numbers). */
int myr__source_is_text(const myr__source *s);
size_t myr__source_n_columns(const myr__source *s);
const char *myr__source_column_name(const myr__source *s, size_t i); /* NUL-terminated */
/* Index of the first column named name; 0 when absent. */
int myr__source_find(const myr__source *s, const char *name, size_t *index_out);
/* The column names as "a, b, c" in out[0..cap), for error messages. */
void myr__source_list(const myr__source *s, char *out, size_t cap);
/* Choose how each column is read (want[i]: enum myr__want; NULL = every column probed,
   the state after open). Applies from the next batch on. */
int myr__source_select(myr__source *s, const unsigned char *want, myr_error *err);
/* Next batch, or *batch_out = NULL at the end. The batch is valid until the next call. */
int myr__source_next(myr__source *s, const myr__batch **batch_out, myr_error *err);
uint64_t myr__source_bytes_read(const myr__source *s);  /* input bytes consumed, 0 if n/a */
uint64_t myr__source_bytes_total(const myr__source *s); /* input size, 0 if unknown */

/* Zero-copy for the engine: the float64 columns of an Arrow batch point into the
   producer's buffers. myr__source_keep() sets in_place[j] (n_columns entries) for the
   current batch's columns whose f64 values are such buffers, and returns a handle that
   keeps them valid after later calls (even after the source is closed) until every
   reference is released. A source with no such columns (CSV) sets every in_place[j] to
   0 and *kept_out to NULL. Handles are not thread-safe: take and drop references on one
   thread. */
typedef struct myr__kept myr__kept;
int myr__source_keep(myr__source *s, unsigned char *in_place, myr__kept **kept_out,
                     myr_error *err);
void myr__kept_ref(myr__kept *k);     /* one more reference */
void myr__kept_release(myr__kept *k); /* drop one; NULL is a no-op */

/* ------------------------------------------------------------------ arrow_source.c */

/* The rest of myr__arrow_source (opened and closed as declared in io/arrow.h), with the
   meanings above. */
const char *myr__arrow_source_name(const myr__arrow_source *s);
size_t myr__arrow_source_n_columns(const myr__arrow_source *s);
const char *myr__arrow_source_column_name(const myr__arrow_source *s, size_t i);
/* The Arrow format string of column i ("u", "tsu:UTC", dictionary: of the indices). */
const char *myr__arrow_source_column_format(const myr__arrow_source *s, size_t i);
int myr__arrow_source_select(myr__arrow_source *s, const unsigned char *want,
                             myr_error *err);
int myr__arrow_source_next(myr__arrow_source *s, const myr__batch **batch_out,
                           myr_error *err);
/* The stream the source owns (for myr__ipc_progress on streams it made). */
struct ArrowArrayStream *myr__arrow_source_stream(myr__arrow_source *s);
/* myr__source_keep for an Arrow source. */
int myr__arrow_source_keep(myr__arrow_source *s, unsigned char *in_place,
                           myr__kept **kept_out, myr_error *err);

#endif /* MYRIAD_IO_SOURCE_H */
