/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Arrow inside myriad: the IPC reader and writer (stream and file formats, written from
 * the Arrow specification), column builders that export results as C Data Interface
 * arrays, and the adapter that turns an ArrowArrayStream into myr__batch for the engine.
 *
 * Ownership follows the C Data Interface: whoever receives a struct with a non-NULL
 * release callback must call it exactly once; a released struct has release == NULL.
 */
#ifndef MYRIAD_IO_ARROW_H
#define MYRIAD_IO_ARROW_H

#include <stddef.h>
#include <stdint.h>

#include "io/batch.h"
#include "myriad/arrow_abi.h"
#include "myriad/error.h"

/* ------------------------------------------------------------------ IPC reader (ipc_read.c) */

/* What the first bytes of a file are: MYR__FMT_CSV (anything else), MYR__FMT_ARROW_FILE
   ("ARROW1\0\0" magic) or MYR__FMT_ARROW_STREAM (0xFFFFFFFF continuation marker, or a
   pre-1.0 stream's little-endian metadata length). */
enum myr__format { MYR__FMT_CSV = 0, MYR__FMT_ARROW_FILE = 1, MYR__FMT_ARROW_STREAM = 2 };
int myr__format_sniff(const uint8_t *head, size_t n); /* enum myr__format */
int myr__format_of_path(const char *path, int *format_out, myr_error *err);

/* Open an Arrow IPC file or stream (detected by magic bytes) as an ArrowArrayStream.
   Every offset, length and count is validated against the file size before use; a
   hostile file gets an error (get_next returns non-zero errno, get_last_error names the
   file, message and field), never a crash. Dictionary-encoded columns come out with
   ArrowArray.dictionary set; compressed bodies (LZ4_FRAME, ZSTD) are decompressed.
   Types the reader does not support are refused by get_schema/open with an error naming
   the column and the type. */
int myr__ipc_open(const char *path, struct ArrowArrayStream *out, myr_error *err);
/* The same over memory the caller keeps alive until the stream is released; name is used
   in messages. */
int myr__ipc_open_mem(const uint8_t *data, size_t len, const char *name,
                      struct ArrowArrayStream *out, myr_error *err);
/* Progress of a stream made by myr__ipc_open: bytes consumed so far and the file size. */
void myr__ipc_progress(struct ArrowArrayStream *s, uint64_t *done, uint64_t *total);

/* ------------------------------------------------------------------ IPC writer (ipc_write.c) */

enum myr__ipc_compression { MYR__IPC_NONE = 0, MYR__IPC_LZ4 = 1, MYR__IPC_ZSTD = 2 };

typedef struct myr__ipc_writer myr__ipc_writer;

/* Create path ("-" = stdout) and write the schema. file_format: 1 = IPC file (Feather
   v2, "ARROW1" magic and footer), 0 = IPC stream. The schema is borrowed. */
int myr__ipc_writer_open(const char *path, int file_format, int compression,
                         const struct ArrowSchema *schema, myr__ipc_writer **out,
                         myr_error *err);
/* Append one record batch (a struct array whose children match the schema); borrowed. */
int myr__ipc_writer_write(myr__ipc_writer *w, const struct ArrowArray *batch, myr_error *err);
/* Write the end-of-stream marker (and footer for files), close, free. NULL is a no-op. */
int myr__ipc_writer_close(myr__ipc_writer *w, myr_error *err);
/* Close and free without finishing (on an error path); removes nothing. */
void myr__ipc_writer_abort(myr__ipc_writer *w);
/* Write the end-of-stream marker (and footer for files) and flush, without freeing:
   afterwards only myr__ipc_writer_bytes, _close (which then only closes) and _abort. */
int myr__ipc_writer_finish(myr__ipc_writer *w, myr_error *err);
/* Bytes written to the output so far (after _finish: the whole file). */
uint64_t myr__ipc_writer_bytes(const myr__ipc_writer *w);

/* ------------------------------------------------------------------ builders (arrow_build.c) */

/* A record batch under construction: columns of a fixed schema, appended row by row or
   column by column, then exported as ArrowSchema + ArrowArray (struct of children) that
   own their memory and free it in their release callbacks. */
typedef struct myr__arrow_builder myr__arrow_builder;

enum myr__arrow_type {
  MYR__ARROW_UTF8 = 1,    /* "u" */
  MYR__ARROW_BINARY = 2,  /* "z" */
  MYR__ARROW_F64 = 3,     /* "g" */
  MYR__ARROW_I64 = 4,     /* "l" */
  MYR__ARROW_U64 = 5,     /* "L" */
  MYR__ARROW_BOOL = 6,    /* "b" */
  MYR__ARROW_I32 = 7,     /* "i" */
};

int myr__arrow_builder_new(size_t n_columns, const char *const *names, const int *types,
                           myr__arrow_builder **out, myr_error *err);
void myr__arrow_builder_free(myr__arrow_builder *b);
size_t myr__arrow_builder_rows(const myr__arrow_builder *b);
/* Append a value to column c (rows are complete when every column has one more value). */
int myr__arrow_append_null(myr__arrow_builder *b, size_t c);
int myr__arrow_append_bytes(myr__arrow_builder *b, size_t c, const void *p, size_t n);
int myr__arrow_append_f64(myr__arrow_builder *b, size_t c, double v);
int myr__arrow_append_i64(myr__arrow_builder *b, size_t c, int64_t v);
/* bool and u64/i32 go through append_i64 (value converted; bool: v != 0). */
/* Move the rows built so far into *schema_out (may be NULL when not wanted) and
   *array_out; the builder is empty afterwards and can be reused for the next batch. */
int myr__arrow_builder_finish(myr__arrow_builder *b, struct ArrowSchema *schema_out,
                              struct ArrowArray *array_out, myr_error *err);
/* The schema alone (for writers and for get_schema). */
int myr__arrow_builder_schema(const myr__arrow_builder *b, struct ArrowSchema *out,
                              myr_error *err);
/* Bytes column c's values take in the current batch (utf8/binary: the value bytes, which
   int32 offsets limit to 2^31 - 1 per batch: an append that would pass it returns
   MYR_EINVAL, so callers finish the batch before; others: length x width). 0 for a bad c. */
size_t myr__arrow_builder_data_bytes(const myr__arrow_builder *b, size_t c);
/* For a caller that writes each batch out at once (an IPC writer): the rows built so far
   as a struct array that borrows the builder's buffers (its release callbacks only mark
   it released), valid until the builder is next changed; then _clear empties the builder
   but keeps its memory, so a steady stream of batches allocates nothing. */
int myr__arrow_builder_view(myr__arrow_builder *b, struct ArrowArray *out, myr_error *err);
void myr__arrow_builder_clear(myr__arrow_builder *b);

/* An ArrowArrayStream over batches produced one after another: a schema plus a list of
   finished arrays, handed out by get_next in order, then end of stream. Takes ownership
   of schema and of every array appended. Used to export results and predictions. */
typedef struct myr__arrow_list myr__arrow_list;
int myr__arrow_list_new(struct ArrowSchema *schema, myr__arrow_list **out, myr_error *err);
int myr__arrow_list_push(myr__arrow_list *l, struct ArrowArray *array, myr_error *err);
/* Turn the list into a stream (the list is consumed). */
void myr__arrow_list_stream(myr__arrow_list *l, struct ArrowArrayStream *out);
void myr__arrow_list_free(myr__arrow_list *l);

/* ------------------------------------------------------------------ import (arrow_source.c) */

/* An engine source over an ArrowArrayStream: the same interface as myr__csv (see csv.h),
   handing out myr__batch views of each record batch. Numeric columns of float64 are used
   without copying; other numeric types, bool, date and timestamp are converted; utf8,
   large_utf8 and dictionary-encoded strings become text views; key columns of numbers
   and dates become the same text a CSV of the same data would hold, so that keys (and
   their seeds) are identical whatever the input format. */
typedef struct myr__arrow_source myr__arrow_source;

/* Takes ownership of *stream (moved: stream->release is set to NULL). */
int myr__arrow_source_open(struct ArrowArrayStream *stream, const char *name,
                           myr__arrow_source **out, myr_error *err);
void myr__arrow_source_close(myr__arrow_source *s);
/* Rows per window from now on: 1..65536; 0 = 65536. */
void myr__arrow_source_set_window(myr__arrow_source *s, size_t rows);

#endif /* MYRIAD_IO_ARROW_H */
