/* SPDX-License-Identifier: Apache-2.0 */
/**
 * @file predict.h
 * @brief Batch scoring: one prediction per input row with the current model of its key.
 *
 * myr_predict() streams the input, finds each row's key, loads that key's current model
 * from the store once (decoded models are cached per key, never decoded per row), and
 * writes one output row per input row, in input order: the key columns, the 1-based input
 * row number, the prediction (class probabilities too for classifiers) and a reason when
 * there is no prediction. Every input row appears in the output exactly once.
 *
 * The input is a CSV file, an Arrow IPC file or stream (detected by its first bytes), or
 * an ArrowArrayStream; models come from a store or from a table of models (the results
 * stream of myr_train); predictions go to a CSV or Arrow IPC file, to an
 * ArrowArrayStream, or both.
 *
 * Thread safety: myr_predict() may run in several threads at once on different outputs.
 */
#ifndef MYRIAD_PREDICT_H
#define MYRIAD_PREDICT_H

#include <stddef.h>
#include <stdint.h>

#include "myriad/arrow_abi.h"
#include "myriad/error.h"
#include "myriad/export.h"
#include "myriad/model.h"
#include "myriad/train.h" /* myr_progress */

#ifdef __cplusplus
extern "C" {
#endif

/** Why a row got no prediction. Values are stable; new ones are appended. */
typedef enum myr_predict_miss {
  MYR_MISS_NO_MODEL = 0,        /**< the key has no current model in the store */
  MYR_MISS_BAD_ROW = 1,         /**< the row could not be read (ragged, bad quoting ...) */
  MYR_MISS_MISSING_KEY = 2,     /**< a key column is empty or NA */
  MYR_MISS_MISSING_FEATURE = 3, /**< a feature the model needs is empty or NA */
  MYR_MISS_NON_NUMERIC = 4,     /**< a feature is not a finite number */
  MYR_MISS_MODEL_ERROR = 5,     /**< the key's model could not be decoded or applied */
  MYR_MISS__COUNT = 6
} myr_predict_miss;

/** @brief Stable snake_case name of a miss reason ("no_model"). */
MYR_API const char *myr_predict_miss_name(int reason);

/** Format of the output file (myr_predict_options.out_format). */
typedef enum myr_predict_format {
  MYR_PREDICT_OUT_AUTO = 0,         /**< by the extension of out: .arrow, .feather and
                                         .ipc are an Arrow IPC file, .arrows an Arrow IPC
                                         stream, anything else (and "-") CSV */
  MYR_PREDICT_OUT_CSV = 1,          /**< CSV, RFC 4180 */
  MYR_PREDICT_OUT_ARROW_FILE = 2,   /**< Arrow IPC file format (Feather v2) */
  MYR_PREDICT_OUT_ARROW_STREAM = 3, /**< Arrow IPC stream format */
} myr_predict_format;

/** What to score. Zero-initialize, then set input (or stream), store (or models) and
    out (or predictions). */
typedef struct myr_predict_options {
  const char *input;            /* input path: CSV, or Arrow IPC file/stream (detected by
                                   its first bytes), with the key columns and the models'
                                   features */
  char delimiter;               /* CSV: ',', '\t', ';' or 0 to detect */
  const char *store;            /* store written by myr_train */
  const char *out;              /* output path ("-" = stdout); see out_format */
  const myr_registry *registry; /* NULL = built-in families only */
  unsigned n_threads;           /* 0 = one per core */
  const volatile int *cancel;   /* optional: becomes non-zero to stop */
  myr_progress_fn progress;     /* optional, about every 100 ms: phase 1, bytes_done, */
  void *progress_ud;            /*   bytes_total, rows_done (rows written), seconds */
  /* Arrow input: rows as a C stream of record batches instead of the file `input` (which
     then only names them in messages and may be NULL). Moved into myr_predict, which
     releases it even on error (release is NULL on return). Types as myr_train's. */
  struct ArrowArrayStream *stream;
  /* Optional output, instead of or besides `out`: on success *predictions receives a
     stream (the caller releases it) of one row per input row, in input order, in
     batches of at most 65536 rows: the key columns (utf8, named as the models' keys;
     null where the row's key cell is missing or unreadable), `row` (int64, 1-based input
     row), `prediction` (float64; null when the row has no prediction), `probabilities`
     (utf8 "class:p;class:p", only when a CSV output would have that column; null for
     rows without class probabilities) and `reason` (utf8 myr_predict_miss_name(); null
     when predicted). On failure *predictions is not touched. */
  struct ArrowArrayStream *predictions;
  /* Models from a table instead of a store: a stream of the key columns (matched to the
     input's by name) and a binary `model` column of blobs, such as myr_train's results
     stream. Its other columns named as the results' (n_rows, metrics, status, error,
     features) are not keys; `features`, when present, names each model's feature columns
     (a JSON array), else they are found among the input's columns by the models' feature
     schema hash. Rows with a null model are ignored; when a key appears twice, its last
     row wins. Moved into myr_predict like `stream`. */
  struct ArrowArrayStream *models;
  int out_format;               /* enum myr_predict_format of `out` */
  size_t model_cache_bytes;     /* decoded models kept from one batch to the next; past it
                                   they are decoded again when their key returns;
                                   0 = 8 MiB */
  /* Bytes of memory the run may hold besides per-batch buffers; 0 = no limit. The
     decoded-model cache is then at most a quarter of it (when model_cache_bytes is 0),
     and when the table of keys seen (about 100 bytes a key) passes another quarter at
     the start of a batch, it is forgotten, so that keys seen again are looked up again
     (keys_seen stays exact: 16 bytes a key are kept to count them). Not with
     `predictions`, which holds every output row until the call returns. */
  uint64_t memory_limit;
} myr_predict_options;

/** What happened. */
typedef struct myr_predict_summary {
  uint64_t rows_total;                /* input data rows = output rows */
  uint64_t rows_predicted;
  uint64_t rows_missed;               /* rows_total - rows_predicted */
  uint64_t missed[MYR_MISS__COUNT];   /* rows_missed by reason */
  uint64_t first_missed_row[MYR_MISS__COUNT]; /* 1-based input row, 0 when none */
  char first_missed_detail[MYR_MISS__COUNT][160]; /* what was wrong with that row */
  uint64_t keys_seen;                 /* distinct keys in the input */
  uint64_t models_loaded;             /* models read and decoded (again for a key seen
                                         after its model left the cache) */
  int has_probabilities;              /* the output has the probabilities column */
  unsigned n_threads;                 /* threads used */
  double seconds_total;
} myr_predict_summary;

/**
 * @brief Score every row of opt->input; see the file comment for the output layout.
 *
 * Output CSV (always ',' separated, RFC 4180 quoting; an Arrow output has the same
 * columns, typed as described for `predictions`): the store's key columns, `row`,
 * `prediction`, then `probabilities` when a published run of the store used a family
 * that can classify (a classification task, or class_values(), as forest; with
 * `models`: when a model of the table is of such a family):
 * "class:p;class:p", classes ascending, empty for rows of regression models,
 * then `reason` (empty, or myr_predict_miss_name()). A path output is written to
 * "<out>.tmp" and renamed on success, so a failed run leaves no partial file.
 * @param[out] summary_out counts (always written when not NULL, as far as it got).
 * @return MYR_OK when every row was written (rows without a prediction included), else
 *         an error: bad options, unreadable input, store or models table, missing key
 *         columns, no run whose features are all in the input, out of memory, write
 *         failure, cancel.
 */
MYR_API int myr_predict(const myr_predict_options *opt, myr_predict_summary *summary_out,
                        myr_error *err);

/** @brief Write a summary as one JSON object (counts, miss reasons with their first row
 *  and detail, timing) through write(). */
MYR_API int myr_predict_summary_json(const myr_predict_summary *summary,
                                     myr_write_fn write, void *ud, myr_error *err);

#ifdef __cplusplus
}
#endif
#endif /* MYRIAD_PREDICT_H */
