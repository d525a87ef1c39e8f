/* SPDX-License-Identifier: Apache-2.0 */
/**
 * @file train.h
 * @brief Train one model per key: read, group, fit on a thread pool, store.
 *
 * myr_train() is the whole split-apply-combine: it streams the input, groups rows by the
 * exact tuple of key columns, fits every group's model on a pool of threads (largest
 * groups first), and writes models and per-group errors to the store, published in one
 * transaction at the end. A group that fails becomes an error record; the run goes on.
 * Every input row is either used or counted as skipped with a reason.
 *
 * The input is a CSV file, an Arrow IPC file or stream (told apart by their first bytes),
 * or an ArrowArrayStream from any Arrow producer (pyarrow, pandas, polars ...). Results
 * can also come back as an ArrowArrayStream, with or without a store.
 *
 * Thread safety: myr_train() may run in several threads at once on different stores.
 */
#ifndef MYRIAD_TRAIN_H
#define MYRIAD_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "myriad/arrow_abi.h"
#include "myriad/error.h"
#include "myriad/export.h"
#include "myriad/model.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Why an input row was not used. Values are stable; new ones are appended. */
typedef enum myr_skip_reason {
  MYR_SKIP_FIELD_COUNT = 0,     /**< the row has more or fewer fields than the header */
  MYR_SKIP_BAD_QUOTING = 1,     /**< a quote where RFC 4180 forbids one, or unterminated */
  MYR_SKIP_NUL_BYTE = 2,        /**< a NUL byte inside a field */
  MYR_SKIP_BLANK_LINE = 3,      /**< an empty line */
  MYR_SKIP_MISSING_KEY = 4,     /**< a key column is empty or NA */
  MYR_SKIP_INVALID_KEY = 5,     /**< a key is not valid UTF-8 */
  MYR_SKIP_MISSING_LABEL = 6,   /**< the label is empty, NA, NaN or null */
  MYR_SKIP_MISSING_FEATURE = 7, /**< a feature is empty, NA, NaN or null */
  MYR_SKIP_NON_NUMERIC = 8,     /**< a feature or the label is not a number */
  MYR_SKIP_NON_FINITE = 9,      /**< a feature or the label is infinite */
  MYR_SKIP_GROUP_FAILED = 10,   /**< the row's group failed to train (see group failures) */
  MYR_SKIP__COUNT = 11
} myr_skip_reason;

/** Why a group produced no model. Values are stable; new ones are appended. */
typedef enum myr_group_failure {
  MYR_FAIL_TOO_FEW_ROWS = 0, /**< fewer rows than --min-rows or the family needs */
  MYR_FAIL_MODEL = 1,        /**< the family could not fit (singular system ...) */
  MYR_FAIL_NO_MEMORY = 2,    /**< an allocation failed while fitting this group */
  MYR_FAIL__COUNT = 3
} myr_group_failure;

/** @brief Stable snake_case name of a skip reason ("missing_label"). */
MYR_API const char *myr_skip_reason_name(int reason);
/** @brief Stable snake_case name of a group failure ("too_few_rows"). */
MYR_API const char *myr_group_failure_name(int failure);

/** First row skipped for a reason, to show the user where to look. */
typedef struct myr_skip_example {
  uint64_t row;      /* 1-based data row (header excluded); 0 when none */
  uint64_t line;     /* 1-based line in the file; 0 when not line-based */
  char column[64];   /* column name, empty when the whole row is at fault */
  char detail[160];  /* e.g. "expected 11 fields, got 10", "value 'abc'" */
} myr_skip_example;

/** Progress, reported from the thread that called myr_train(). */
typedef struct myr_progress {
  int phase;              /* 1 = reading and grouping, 2 = training, 3 = publishing */
  uint64_t bytes_done;    /* phase 1: input bytes consumed */
  uint64_t bytes_total;   /* phase 1: input size, 0 if unknown */
  uint64_t rows_done;     /* phase 1: rows read; phase 2: rows in finished groups */
  uint64_t groups_done;   /* phase 2: groups finished (trained or failed) */
  uint64_t groups_total;  /* phase 2: groups in the run */
  double seconds;         /* since the phase began */
  unsigned loads_done;    /* phase 2 with a memory limit that spilled: partition loads */
  unsigned loads_total;   /*   trained, and in all (0 when the rows fit in memory) */
} myr_progress;

typedef void (*myr_progress_fn)(void *ud, const myr_progress *progress);

/** What to train. Zero-initialize, then set at least input (or stream), keys and label. */
typedef struct myr_train_options {
  const char *input;                /* path of the input: CSV, or Arrow IPC file/stream
                                       (detected by its first bytes, not its name) */
  char delimiter;                   /* CSV: ',', '\t', ';' or 0 to detect */
  const char *const *keys;          /* key column names (>= 1) */
  size_t n_keys;
  const char *const *features;      /* feature column names; NULL = every numeric */
  size_t n_features;                /*   column that is neither key nor label */
  const char *label;                /* label column name */
  const char *model;                /* family name; NULL = "linear" */
  const char *params;               /* "k=v,k=v" family parameters; NULL = defaults */
  const myr_registry *registry;     /* NULL = built-in families only */
  unsigned n_threads;               /* worker threads; 0 = one per core */
  uint64_t seed;                    /* run seed; per-key seeds derive from it */
  size_t min_rows;                  /* groups with fewer rows fail; 0 = family minimum */
  double holdout;                   /* fraction of each group held out for metrics */
  const char *store;                /* SQLite store path; NULL = do not store */
  myr_progress_fn progress;         /* optional, called about every 100 ms */
  void *progress_ud;
  const volatile int *cancel;       /* optional: becomes non-zero to stop the run */
  /* Arrow input: the rows as a C stream of record batches, read instead of the file
     `input` (which then only names the data in messages and may be NULL). Moved into
     myr_train: it is released by the call, even when the call fails (its release is NULL
     on return). Columns of integers, float32/64, bool, utf8, large_utf8, binary, string
     views, dictionary-encoded strings, date32/64 and timestamps can be read; a key of
     numbers, bools, dates or timestamps is the text a CSV of the same data would hold
     (integers in decimal, floats in their shortest round-trip form, "true"/"false",
     YYYY-MM-DD, "YYYY-MM-DD HH:MM:SS[.fff|.ffffff|.fffffffff][Z]"), so keys, seeds and
     models do not depend on the format. Nulls are skipped as empty CSV cells are.
     float64 columns are used in place, not copied: a record batch with such a column
     is released once its rows are grouped (before fitting), not as soon as it is read.
     get_schema, get_next and the release callbacks are called from the calling thread
     only; the batches' buffers are read by the worker threads. */
  struct ArrowArrayStream *stream;
  /* Optional output: when not NULL, on success *results receives a stream (the caller
     releases it) of one row per group, groups in order of their key's first row in the
     input: the key columns (utf8, named as the input's), `model` (binary: the model blob
     as the store holds it; null for a failed group), `n_rows` (int64: rows of the group),
     `metrics` (utf8 JSON as stored; null for a failed group), `status` (utf8: "trained",
     or the myr_group_failure_name()), `error` (utf8 message; null when trained) and
     `features` (utf8: the feature names as a JSON array, for myr_predict's `models`).
     Batches hold at most 65536 rows. Works with or without a store. On failure *results
     is not touched. Key columns named like one of those columns are refused. */
  struct ArrowArrayStream *results;
  /* With a store: complete the latest run of the same spec (input, keys, features,
     label, model, params, seed, min_rows, holdout) that never published, typically
     because its process was killed: keys whose models it stored are not trained again,
     the others are, and the run is published as it would have been. Without such a run
     this trains a new one, unless the latest run of that spec is published (then nothing
     is trained: see already_published). Not with `results`. */
  int resume;
  /* Bytes of memory the run's rows may take; 0 = no limit. When the rows read so far
     would pass about half of it, every usable row (those already read, then the rest)
     is hash-partitioned by key into a compressed temporary file, and partitions are
     read back and trained a few at a time, each load within about half the limit: the
     models are the same as without a limit (groups keep their rows in input order).
     Peak memory is then about the limit plus a fixed overhead (threads' fitting
     scratch, the store's page cache, a few MiB of staging). Not with `results`. */
  uint64_t memory_limit;
  /* Directory of that temporary file; NULL = $TMPDIR, else /tmp. The file is unlinked
     as soon as it is created, so nothing is left behind, even by a killed run. */
  const char *spill_dir;
} myr_train_options;

/** What happened. Filled even when myr_train fails part-way (as far as it got). */
typedef struct myr_train_summary {
  int64_t run_id;                         /* store run id, 0 without a store */
  char family[MYR_FAMILY_NAME_MAX + 1];   /* family trained */
  size_t n_features;                      /* features used */
  uint64_t rows_total;                    /* data rows read (header excluded) */
  uint64_t rows_used;                     /* rows in trained groups (holdout included) */
  uint64_t rows_skipped;                  /* rows_total - rows_used */
  uint64_t skipped[MYR_SKIP__COUNT];      /* rows_skipped by reason */
  myr_skip_example skip_example[MYR_SKIP__COUNT];
  uint64_t groups_total;
  uint64_t groups_trained;
  uint64_t groups_failed;
  uint64_t failed[MYR_FAIL__COUNT];       /* groups_failed by reason */
  char failed_example[MYR_FAIL__COUNT][256]; /* first failing key and message */
  double seconds_read;                    /* reading and parsing */
  double seconds_group;                   /* grouping rows by key (counting sort) */
  double seconds_train;                   /* fitting and storing */
  double seconds_publish;                 /* the publishing transaction */
  double seconds_total;                   /* wall time of the whole run */
  unsigned n_threads;                     /* threads used */
  uint64_t groups_resumed; /* resume: groups_trained whose models an earlier attempt
                              of the run stored (not trained again) */
  int already_published;   /* resume: the run of this spec is published (run_id);
                              nothing was trained */
  uint64_t spill_rows;     /* memory_limit: rows written to the temporary file (0: the
                              run fitted in memory) */
  uint64_t spill_bytes;    /* their compressed size */
  unsigned spill_parts;    /* hash partitions */
  unsigned spill_loads;    /* partition sets read back and trained one after another */
  uint64_t store_bytes;    /* after publishing: the store's size (all versions kept) */
  uint64_t store_models;   /*   and its current models */
} myr_train_summary;

/**
 * @brief Run a training job.
 * @param[in] opt what to train; borrowed for the call.
 * @param[out] summary_out counts and timings (always written when not NULL).
 * @return MYR_OK when the run completed (even if some groups failed), else an error:
 *         bad options, unreadable input, no usable rows, store failure, cancel.
 */
MYR_API int myr_train(const myr_train_options *opt, myr_train_summary *summary_out,
                      myr_error *err);

/**
 * @brief Write a summary as one JSON object (counts, skip reasons with their first row,
 * failures with their first key, timings) through write().
 */
MYR_API int myr_train_summary_json(const myr_train_summary *summary, myr_write_fn write,
                                   void *ud, myr_error *err);

#ifdef __cplusplus
}
#endif
#endif /* MYRIAD_TRAIN_H */
