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
 * Thread safety: myr_train() may run in several threads at once on different stores.
 */
#ifndef MYRIAD_TRAIN_H
#define MYRIAD_TRAIN_H

#include <stddef.h>
#include <stdint.h>

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
} myr_progress;

typedef void (*myr_progress_fn)(void *ud, const myr_progress *progress);

/** What to train. Zero-initialize, then set at least input, keys and label. */
typedef struct myr_train_options {
  const char *input;                /* path of the input (CSV) */
  char delimiter;                   /* ',', '\t', ';' or 0 to detect */
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
