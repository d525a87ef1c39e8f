/* SPDX-License-Identifier: Apache-2.0 */
/*
 * State of one training run, shared by ingest.c (read, parse, group) and train.c (fit,
 * store, publish). One `run` lives on myr_train()'s stack for the duration of the call.
 */
#ifndef MYRIAD_ENGINE_TRAIN_INT_H
#define MYRIAD_ENGINE_TRAIN_INT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/arena.h"
#include "core/pool.h"
#include "core/text.h"
#include "engine/keys.h"
#include "engine/spill.h"
#include "io/source.h"
#include "myriad/train.h"

#define MYR__NO_GROUP UINT32_MAX /* a chunk row that was skipped */

/* The parsed rows of one slice of a batch, in input order, before grouping: the slice's
   own label and feature arrays, taken over by the merge (no copy), or for float64
   columns of an Arrow batch the batch's own buffers, kept alive by a reference. */
typedef struct myr__row_chunk {
  struct myr__row_chunk *next; /* next chunk in input order */
  size_t n;                    /* rows, skipped ones included */
  uint32_t *gid;               /* n group ids; MYR__NO_GROUP for a skipped row */
  double *y;                   /* n labels (garbage for skipped rows); NULL if ycol */
  double *x;                   /* n * p features, row-major; NULL if every fcol */
  const double *ycol;          /* labels in place, or NULL */
  const double **fcol;         /* p: feature f in place (fcol[f][i]) or NULL (in x);
                                  NULL when none is */
  myr__kept *kept;             /* reference keeping ycol and fcol valid, or NULL */
} myr__row_chunk;

/* Row i's p features, held as columns read in place (fcol[f], when set) or row-major in
   x (every feature, when fcol is NULL): a chunk's or a parse slice's layout. */
static inline void myr__row_features(const double *const *fcol, const double *x, size_t i,
                                     size_t p, double *out) {
  if (!fcol) {
    memcpy(out, x + i * p, p * sizeof *out);
    return;
  }
  for (size_t f = 0; f < p; f++)
    out[f] = fcol[f] ? fcol[f][i] : x[i * p + f];
}

/* RES_RESUMED: stored by an earlier attempt of a resumed run, not fitted again. */
/* uint64_t ascending, for qsort (grouping order, key hashes of a resumed run). */
static inline int myr__cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

enum { MYR__RES_OK = 0, MYR__RES_FAILED = 1, MYR__RES_ABORTED = 2, MYR__RES_RESUMED = 3 };
/* Metrics kept per model; NaN = not computed (written only when finite). */
enum {
  MYR__M_R2, MYR__M_RMSE, MYR__M_MAE,             /* regression, on held-out rows */
  MYR__M_TRAIN_R2, MYR__M_TRAIN_RMSE,             /* regression, on the fitted rows */
  MYR__M_ACCURACY, MYR__M_LOG_LOSS,               /* classification, held out */
  MYR__M_TRAIN_ACCURACY, MYR__M_TRAIN_LOG_LOSS,   /* classification, fitted rows */
  MYR__M_COUNT
};

/* One group's outcome, written by a worker, drained by the calling thread. */
typedef struct myr__result {
  unsigned char *blob; /* encoded model (RES_OK), owned until drained */
  char *message;       /* failure message (RES_FAILED), owned until drained */
  char *metrics;       /* metrics JSON kept for the results stream (RES_OK), owned */
  size_t blob_len;
  uint32_t n_train;    /* rows fitted */
  uint32_t n_hold;     /* rows held out */
  uint8_t status;      /* MYR__RES_* */
  uint8_t failure;     /* myr_group_failure when RES_FAILED */
  double metric[MYR__M_COUNT];
} myr__result;

typedef struct myr__worker {
  myr__arena arena; /* scratch for one group at a time */
} myr__worker;

typedef struct myr__parse_slice myr__parse_slice;

typedef struct run {
  const myr_train_options *opt;
  myr_train_summary *sum;
  const myr_model_family *family;
  void *params;           /* family params, params_size bytes */
  size_t need_rows;       /* fewest rows a group must have */
  uint64_t schema_hash;   /* of the feature names */
  myr__pool *pool;        /* workers for parsing and fitting */

  /* input */
  const char *input_name; /* opt->input, or a name for a stream (messages, spec) */
  struct ArrowArrayStream *stream; /* opt->stream moved here; NULL for a path */
  myr__source *src;
  size_t n_cols;          /* columns in the source */
  size_t *key_col;        /* n_keys source column indexes */
  size_t label_col;
  size_t *feat_col;       /* p source column indexes */
  const char **feat_name; /* p names (borrowed from the source) */
  size_t p;               /* features */
  myr__parse_slice *slices; /* per pool thread: parsed rows of the current batch */
  size_t n_slices;
  myr__kept *set_kept[2];   /* per slice set: its batch's in-place columns, or NULL */
  unsigned char *set_in_place[2]; /* per slice set: n_cols flags (myr__source_keep) */

  /* grouping */
  myr__keytab keys;
  myr__row_chunk *head, *tail; /* rows in input order */
  uint64_t n_used_rows;   /* rows of chunks that have a group */
  uint64_t *offset;       /* per group: its first entry in ref; n_groups + 1 entries */
  /* Rows are not copied: ref holds, in group order, (chunk index << 32 | row in chunk),
     chunks (parsed values or columns read in place) stay alive until the end, and each
     fit gathers its group's rows into its arena. */
  uint64_t *ref;
  myr__row_chunk **chunks; /* ref's chunk indexes, in input order */
  uint32_t *order;        /* groups, largest first */
  uint8_t *resumed;       /* per group, resume only: stored by an earlier attempt */

  /* memory limit: once the rows held would pass half of opt->memory_limit, ingest
     moves them (and every later row) to spill, by key hash, and training reads the
     partitions back a load at a time (each load's rows are then what the fields above
     describe) */
  myr__spill *spill;
  double *spill_x;        /* p: one row's features on their way to the spill */
  unsigned loads_total;   /* partition loads the spill is read back in */
  uint64_t groups_before; /* groups and rows of earlier loads (progress) */
  uint64_t rows_before;
  int resuming;     /* resume: stored holds what the earlier attempt stored */
  uint64_t *stored; /* sorted key hashes of those models */
  size_t n_stored, cap_stored;

  /* training */
  myr__worker *workers;
  myr__result *results;   /* per task */
  uint32_t *done_list;    /* completion order: task indexes */
  atomic_uchar *ready;    /* done_list[i] is valid */
  atomic_size_t done_tail;
  atomic_int abort;       /* stop fitting: tasks complete as RES_ABORTED */
} run;

extern const char *const myr__skip_names[MYR_SKIP__COUNT];

/* Call the progress callback at most every 100 ms (always when force is set). */
void myr__report(run *r, myr_progress *pr, double *last, double t0, int force);

/* Open the input, resolve columns, stream and parse every row into chunks. */
int myr__ingest(run *r, myr_error *err);
/* Counting-sort the chunks into per-group contiguous x/y; order groups largest first. */
int myr__group_rows(run *r, myr_error *err);
/* Free everything ingest and grouping allocated. */
void myr__ingest_free(run *r);
/* Bytes the rows in memory take, as far as the memory limit counts them. */
uint64_t myr__held_bytes(const run *r);
/* Drop the current load's rows, groups and key table (spill mode, between loads). */
void myr__load_free(run *r);
/* Read spill partitions [first, last) back as the current load's rows and keys. */
int myr__load_read(run *r, unsigned first, unsigned last, myr_error *err);

#endif /* MYRIAD_ENGINE_TRAIN_INT_H */
