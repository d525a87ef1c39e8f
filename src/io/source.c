/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The engine's input (source.h): forwards to the CSV reader or to the Arrow import, the
 * only place that knows which one it is. An Arrow IPC path is opened with the IPC reader
 * and read through the same Arrow import as a caller's stream; its progress in bytes
 * comes from the reader. A regular file's format is told by its first bytes; a pipe's
 * (whose bytes can be read only once) by its name: .arrow, .arrows, .feather and .ipc
 * are Arrow IPC, anything else CSV.
 */
#include "io/source.h"

#include <string.h>
#include <sys/stat.h>

#include "core/alloc.h"
#include "core/text.h"
#include "io/csv.h"

struct myr__source {
  myr__csv *csv;               /* a CSV file, or */
  myr__arrow_source *arrow;    /* an Arrow stream */
  int ipc;                     /* arrow was opened by myr__ipc_open (byte progress) */
};

/* Whether path's name says Arrow IPC (used for pipes, whose first bytes can be read
   only once). */
static int arrow_name(const char *path) {
  static const char *const ext[] = {".arrow", ".arrows", ".feather", ".ipc"};
  const char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
  if (!dot || (slash && slash > dot))
    return 0;
  for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++)
    if (strcmp(dot, ext[i]) == 0)
      return 1;
  return 0;
}

int myr__source_open_path(const char *path, char delimiter, myr__source **out,
                          myr_error *err) {
  *out = NULL;
  int format = MYR__FMT_CSV;
  struct stat sb;
  if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode))
    format = arrow_name(path) ? MYR__FMT_ARROW_STREAM : MYR__FMT_CSV; /* a pipe */
  else
    MYR_RETURN_NOT_OK(myr__format_of_path(path, &format, err));
  myr__source *s = myr__calloc(1, sizeof *s);
  if (!s)
    return myr_error_set(err, MYR_ENOMEM, "out of memory opening %s", path);
  int rc;
  if (format == MYR__FMT_CSV) {
    myr__csv_options opt = {0};
    opt.delimiter = delimiter;
    rc = myr__csv_open(path, &opt, &s->csv, err);
  } else {
    struct ArrowArrayStream st;
    st.release = NULL;
    rc = myr__ipc_open(path, &st, err);
    if (rc == MYR_OK) {
      s->ipc = 1;
      rc = myr__arrow_source_open(&st, path, &s->arrow, err);
    }
  }
  if (rc != MYR_OK) {
    myr__free(s);
    return rc;
  }
  *out = s;
  return MYR_OK;
}

void myr__source_set_batch_rows(myr__source *s, size_t rows) {
  if (s->csv)
    myr__csv_set_batch_rows(s->csv, rows);
  else
    myr__arrow_source_set_window(s->arrow, rows);
}

int myr__source_open_stream(struct ArrowArrayStream *stream, const char *name,
                            myr__source **out, myr_error *err) {
  *out = NULL;
  myr__source *s = myr__calloc(1, sizeof *s);
  if (!s) {
    if (stream && stream->release) {
      stream->release(stream);
      stream->release = NULL;
    }
    return myr_error_set(err, MYR_ENOMEM, "out of memory opening %s",
                         name ? name : "an Arrow stream");
  }
  int rc = myr__arrow_source_open(stream, name, &s->arrow, err);
  if (rc != MYR_OK) {
    myr__free(s);
    return rc;
  }
  *out = s;
  return MYR_OK;
}

void myr__source_close(myr__source *s) {
  if (!s)
    return;
  myr__csv_close(s->csv);
  myr__arrow_source_close(s->arrow);
  myr__free(s);
}

const char *myr__source_name(const myr__source *s) {
  return s->csv ? myr__csv_name(s->csv) : myr__arrow_source_name(s->arrow);
}

int myr__source_is_text(const myr__source *s) { return s->csv != NULL; }

size_t myr__source_n_columns(const myr__source *s) {
  return s->csv ? myr__csv_n_columns(s->csv) : myr__arrow_source_n_columns(s->arrow);
}

const char *myr__source_column_name(const myr__source *s, size_t i) {
  return s->csv ? myr__csv_column_name(s->csv, i)
                : myr__arrow_source_column_name(s->arrow, i);
}

int myr__source_find(const myr__source *s, const char *name, size_t *index_out) {
  if (s->csv)
    return myr__csv_find(s->csv, name, index_out);
  size_t n = myr__arrow_source_n_columns(s->arrow);
  for (size_t i = 0; i < n; i++)
    if (strcmp(myr__arrow_source_column_name(s->arrow, i), name) == 0) {
      *index_out = i;
      return 1;
    }
  return 0;
}

void myr__source_list(const myr__source *s, char *out, size_t cap) {
  if (s->csv) {
    myr__csv_list(s->csv, out, cap);
    return;
  }
  const char *names[64] = {0};
  size_t n = myr__arrow_source_n_columns(s->arrow);
  size_t shown = n < 64 ? n : 64;
  for (size_t i = 0; i < shown; i++)
    names[i] = myr__arrow_source_column_name(s->arrow, i);
  myr__join_names(out, cap, names, shown);
  if (n > shown && cap > 4) {
    size_t len = strlen(out);
    if (len + 5 < cap)
      memcpy(out + len, ", ...", 6);
  }
}

int myr__source_select(myr__source *s, const unsigned char *want, myr_error *err) {
  return s->csv ? myr__csv_select(s->csv, want, err)
                : myr__arrow_source_select(s->arrow, want, err);
}

int myr__source_next(myr__source *s, const myr__batch **batch_out, myr_error *err) {
  return s->csv ? myr__csv_next(s->csv, batch_out, err)
                : myr__arrow_source_next(s->arrow, batch_out, err);
}

uint64_t myr__source_bytes_read(const myr__source *s) {
  if (s->csv)
    return myr__csv_bytes_read(s->csv);
  uint64_t done = 0, total = 0;
  if (s->ipc)
    myr__ipc_progress(myr__arrow_source_stream(s->arrow), &done, &total);
  return done;
}

uint64_t myr__source_bytes_total(const myr__source *s) {
  if (s->csv)
    return myr__csv_bytes_total(s->csv);
  uint64_t done = 0, total = 0;
  if (s->ipc)
    myr__ipc_progress(myr__arrow_source_stream(s->arrow), &done, &total);
  return total;
}

int myr__source_keep(myr__source *s, unsigned char *in_place, myr__kept **kept_out,
                     myr_error *err) {
  if (s->arrow)
    return myr__arrow_source_keep(s->arrow, in_place, kept_out, err);
  memset(in_place, 0, myr__csv_n_columns(s->csv));
  *kept_out = NULL;
  return MYR_OK;
}
