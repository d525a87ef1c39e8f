/* SPDX-License-Identifier: Apache-2.0 */
/**
 * @file store.h
 * @brief The model store: one SQLite database (WAL mode) with runs, models and errors.
 *
 * A store holds the models of one key space: the key column names are fixed by the first
 * run and later runs must use the same ones. Each run inserts its models and errors while
 * it trains, invisible to readers; myr_store_run_publish() makes all of them current in one
 * transaction, so readers see either the previous version of every key or the new one.
 * See docs/internals/store.md for the schema.
 *
 * Thread safety: a myr_store handle is used by one thread at a time. Several processes may
 * open the same file; SQLite serializes writers and WAL lets readers run alongside.
 */
#ifndef MYRIAD_STORE_H
#define MYRIAD_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "myriad/error.h"
#include "myriad/export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct myr_store myr_store;

/** Open flags. */
#define MYR_STORE_READONLY 1u /**< open an existing store for reading only */

/** @brief Open (creating when needed and not read-only) the store at path. */
MYR_API int myr_store_open(const char *path, unsigned flags, myr_store **out,
                           myr_error *err);
/** @brief Close a store; accepts NULL. An unpublished run stays unpublished. */
MYR_API void myr_store_close(myr_store *store);

/** What a run trains; borrowed for the call. */
typedef struct myr_run_spec {
  const char *const *key_names; /* key column names, in order */
  size_t n_keys;
  const char *family;           /* model family name */
  const char *spec_json;        /* the whole spec as a JSON object, stored verbatim */
  uint64_t seed;                /* run seed */
} myr_run_spec;

/**
 * @brief Start a run (status "running"). The first run of a store fixes its key names;
 * a later run with other key names fails with MYR_EINVAL naming both sets.
 */
MYR_API int myr_store_run_begin(myr_store *store, const myr_run_spec *spec,
                                int64_t *run_id_out, myr_error *err);

/**
 * @brief Take up again the latest run with the same family, seed and spec_json, when it
 * was never published (its process was killed, or it failed): it becomes "running" on
 * this handle with the models it stored kept and its failed groups dropped (to be tried
 * again). *run_id_out is that run, or 0 when there is none; then *published_out is the
 * run with that spec that is already published, or 0. Only one process may resume a run.
 */
MYR_API int myr_store_run_resume(myr_store *store, const myr_run_spec *spec,
                                 int64_t *run_id_out, int64_t *published_out,
                                 myr_error *err);

typedef int (*myr_key_hash_cb)(void *ud, uint64_t key_hash);
/** @brief Call cb with the key hash of each model stored for run_id (in no order); a
 *  non-zero cb return stops and is returned. */
MYR_API int myr_store_run_keys(myr_store *store, int64_t run_id, myr_key_hash_cb cb,
                               void *ud, myr_error *err);

/** One trained model; borrowed for the call. */
typedef struct myr_model_row {
  uint64_t key_hash;              /* stable 64-bit hash of the key tuple */
  const char *const *key_values;  /* n_keys UTF-8 values (not NUL-terminated) */
  const size_t *key_lens;         /* their byte lengths */
  uint64_t n_rows;                /* rows the model was fitted on */
  uint64_t n_holdout;             /* rows held out for metrics */
  const char *metrics_json;       /* JSON object, e.g. {"r2":0.93,"rmse":0.4} */
  const unsigned char *blob;      /* encoded model (docs/internals/model-format.md) */
  size_t blob_len;
} myr_model_row;

/** One group that failed; borrowed for the call. */
typedef struct myr_error_row {
  uint64_t key_hash;
  const char *const *key_values;
  const size_t *key_lens;
  uint64_t n_rows;                /* rows the group had */
  const char *reason;             /* stable name, e.g. "too_few_rows" */
  const char *message;            /* human message */
} myr_error_row;

/** @brief Add a model to an unpublished run. Rows are committed in batches. */
MYR_API int myr_store_put_model(myr_store *store, int64_t run_id, const myr_model_row *row,
                                myr_error *err);
/** @brief Add a failed group to an unpublished run. */
MYR_API int myr_store_put_error(myr_store *store, int64_t run_id, const myr_error_row *row,
                                myr_error *err);

/**
 * @brief Publish a run in one transaction: each of its models becomes the current
 * version of its key (version = previous + 1); status becomes "published" and the
 * summary (a JSON object with counts and timings) is stored with it.
 */
MYR_API int myr_store_run_publish(myr_store *store, int64_t run_id,
                                  const char *summary_json, myr_error *err);
/** @brief Mark an unpublished run "failed" with a message; its rows stay invisible. */
MYR_API int myr_store_run_fail(myr_store *store, int64_t run_id, const char *message,
                               myr_error *err);

/** A current model as read back; pointers live until the callback returns. */
typedef struct myr_model_record {
  int64_t run_id;
  int64_t version;                /* 1 for a key's first model, +1 per published run */
  uint64_t key_hash;
  size_t n_keys;
  const char *const *key_names;
  const char *const *key_values;  /* NUL-terminated */
  const char *family;
  uint64_t n_rows;
  uint64_t n_holdout;
  const char *metrics_json;
  const unsigned char *blob;
  size_t blob_len;
  const char *published_at;       /* ISO 8601 UTC */
} myr_model_record;

/** Which current models to read. Zero-initialize. */
typedef struct myr_model_query {
  const char *const *key_names;   /* filter: these key columns ... */
  const char *const *key_values;  /* ... equal these values (subset of keys allowed) */
  size_t n_filter;
  const char *worst_metric;       /* order by this metric, worst first (r2: lowest; */
                                  /* rmse, mae: highest); NULL = key order */
  size_t limit;                   /* 0 = no limit */
} myr_model_query;

typedef int (*myr_model_cb)(void *ud, const myr_model_record *record);

/** @brief Call cb for each current model matching q; a non-zero cb return stops and is
 *  returned. A filter naming a column that is not a key fails with MYR_EINVAL. */
MYR_API int myr_store_models(myr_store *store, const myr_model_query *q, myr_model_cb cb,
                             void *ud, myr_error *err);

/**
 * @brief Read from one snapshot until myr_store_snapshot_end(): every query sees the
 * same published version, even while another process publishes, and repeated lookups
 * skip per-query locking. Only on a handle with no run in progress.
 */
MYR_API int myr_store_snapshot_begin(myr_store *store, myr_error *err);
/** @brief End the snapshot (no-op without one; also done by myr_store_close). */
MYR_API void myr_store_snapshot_end(myr_store *store);

/** Store-wide facts. */
typedef struct myr_store_info {
  size_t n_keys;                  /* key columns (0 before the first run) */
  const char *const *key_names;   /* valid until the store is closed */
  uint64_t n_models;              /* current models */
  uint64_t n_errors;              /* failed groups of the latest published run */
  int64_t latest_run;             /* latest published run id, 0 when none */
  uint64_t file_bytes;            /* database size on disk */
} myr_store_info;

MYR_API int myr_store_get_info(myr_store *store, myr_store_info *out, myr_error *err);

/**
 * @brief Commit the rows put so far (they stay unpublished). Puts commit on their own
 * every 20,000 rows or second; call this when a run pauses so that other writers are not
 * kept waiting and an interrupted run keeps its rows.
 */
MYR_API int myr_store_flush(myr_store *store, myr_error *err);

/** A failed group as read back; pointers live until the callback returns. */
typedef struct myr_error_record {
  int64_t run_id;
  uint64_t key_hash;
  size_t n_keys;
  const char *const *key_names;
  const char *const *key_values;  /* NUL-terminated */
  uint64_t n_rows;                /* rows the group had */
  const char *reason;             /* stable name, e.g. "too_few_rows" */
  const char *message;            /* human message ("" when none) */
} myr_error_record;

typedef int (*myr_error_cb)(void *ud, const myr_error_record *record);

/** @brief Call cb for each failed group of run_id (0 = the latest published run; none
 *  when nothing was published), in the order they were stored, at most limit (0 = all).
 *  A non-zero cb return stops and is returned. An unknown run_id fails with
 *  MYR_ENOTFOUND. */
MYR_API int myr_store_errors(myr_store *store, int64_t run_id, size_t limit,
                             myr_error_cb cb, void *ud, myr_error *err);

/** A run as read back; pointers live until the callback returns, never NULL. */
typedef struct myr_run_record {
  int64_t run_id;
  const char *status;             /* "running", "published" or "failed" */
  const char *family;
  uint64_t seed;
  const char *spec_json;          /* as given to myr_store_run_begin ("{}" when none) */
  const char *summary_json;       /* as given to myr_store_run_publish ("{}" when none) */
  const char *message;            /* why it failed ("" when none) */
  const char *started_at;         /* ISO 8601 UTC */
  const char *published_at;       /* ISO 8601 UTC, "" until published */
  uint64_t n_models;              /* counted when the run ended; 0 while running */
  uint64_t n_errors;
} myr_run_record;

typedef int (*myr_run_cb)(void *ud, const myr_run_record *record);

/** @brief Call cb for each run, newest first; a non-zero cb return stops and is
 *  returned. */
MYR_API int myr_store_runs(myr_store *store, myr_run_cb cb, void *ud, myr_error *err);

/** What to import with myr_store_import. Zero-initialize. */
typedef struct myr_import_options {
  const char *store; /* store path (created if missing) */
  /* A models table, as myr_train's `results` or myriad.spark.train return it: key
     columns, `model` (binary blob; null for a failed group), and `features` (JSON array
     of feature names, required for rows with a model), `n_rows`, `metrics`, `status`,
     `error` when present. Moved in: released by the call, even on error. */
  struct ArrowArrayStream *models;
  const char *source; /* names the models' origin in the run's spec
                         (e.g. "spark"); NULL = "import" */
  uint64_t seed;      /* the seed they were trained with (spec only) */
} myr_import_options;

/** What myr_store_import did. */
typedef struct myr_import_summary {
  int64_t run_id;  /* the published run (0 when nothing was published) */
  uint64_t models; /* models stored */
  uint64_t errors; /* failed groups stored as errors */
  char family[64]; /* the models' family */
} myr_import_summary;

/**
 * @brief Store a models table as one new published run, as if myr_train had trained it
 * here: every model becomes its key's current version, failed groups become the run's
 * errors. The table must hold one family and one feature list, and every blob must be
 * valid and match that feature list; the first row that does not fails the import,
 * naming its row and key, and nothing is published.
 */
MYR_API int myr_store_import(const myr_import_options *opt, myr_import_summary *summary,
                             myr_error *err);

#ifdef __cplusplus
}
#endif
#endif /* MYRIAD_STORE_H */
