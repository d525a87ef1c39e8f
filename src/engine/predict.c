/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Batch scoring: stream the input, score each row with its key's current model, write
 * one output row per input row, in input order.
 *
 * DESIGN. Each batch goes through four steps; 1 and 3 run in slices on the pool, 2 and 4
 * on the calling thread (the only one that touches the store and the output file):
 *   1. keys: per row, a CSV problem or a missing key becomes a miss; else the row's key
 *      is encoded (engine/keys.h) and hashed.
 *   2. models: each key is interned in a key table; a key seen for the first time costs
 *      one store lookup by the full key and one decode. Hits, misses (no model) and
 *      failures (model_error) are all cached for the whole run, so no key is looked up
 *      or decoded twice while it stays cached. Decoded models live in their own arena:
 *      when it holds more than opt->model_cache_bytes at the start of a batch, every model is
 *      forgotten and the arena reset (its memory is reused, not returned: no new pages
 *      to fault in), and a key seen again is looked up and decoded again.
 *   3. score: features are parsed with the columns of the model's run, the row is
 *      predicted, and its output line is formatted into the slice's buffer; per-reason
 *      counts and the first row of each reason are kept per slice.
 *   4. write: slice buffers are written in order and their counts merged, so the output
 *      and the summary do not depend on the thread count.
 * Runs: a model's run spec lists its feature names. Every published run is resolved
 * against the input header once, up front; a run whose features are not all in the
 * input makes its keys' rows model_error, and when no run at all can be used the command
 * fails before writing anything. The whole run reads one store snapshot
 * (myr_store_snapshot_begin): runs published meanwhile are not seen, so every key is
 * scored with the version that was current when predict started.
 * The spec JSON is parsed with plain jansson: its allocator is process-global, so routing
 * it through our hook would race other users; those few small allocations bypass
 * myr_set_allocator.
 * Models may instead come from a table (opt->models, e.g. myr_train's results): it is
 * read whole up front into a key table of blobs; its distinct feature lists play the
 * part of runs. The input is any io/source.h source. Predictions are formatted as CSV
 * lines in step 3 when a CSV is written, and appended to an Arrow builder in step 4
 * (in order, on the calling thread) when an Arrow file or stream is wanted.
 */
#include "myriad/predict.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/alloc.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/pool.h"
#include "core/text.h"
#include "engine/keys.h"
#include "engine/mtable.h"
#include "io/arrow.h"
#include "io/number.h"
#include "io/source.h"
#include "myriad/blob.h"
#include "myriad/store.h"
#include "store/blob.h"

#define DETAIL_MAX 160 /* sizeof first_missed_detail[0] */
#define OUT_BATCH_ROWS 65536 /* rows per Arrow output batch */

static const char *const miss_names[MYR_MISS__COUNT] = {"no_model",    "bad_row",
                                                        "missing_key", "missing_feature",
                                                        "non_numeric", "model_error"};

const char *myr_predict_miss_name(int reason) {
  return reason >= 0 && reason < MYR_MISS__COUNT ? miss_names[reason] : "unknown";
}

/* A published run: how to find its features in the input. */
typedef struct prun {
  int64_t run_id;       /* store run; models table: 0 */
  size_t p;             /* features */
  size_t *col;          /* p input column indexes */
  uint64_t schema_hash; /* myr_feature_schema_hash of its feature names */
  char *problem;        /* why its models cannot be used here; NULL when usable */
} prun;

enum { KEY_EVICTED = 0, KEY_OK = 1, KEY_NO_MODEL = 2, KEY_ERROR = 3 };

/* Decoded models kept by default (opt->model_cache_bytes), checked between batches (a
   batch's models stay). Small enough that the arena's memory is reused while it is still
   mapped and cached, rather than grown into fresh pages: a batch of PREDICT_BATCH_ROWS
   rows of distinct keys decodes at most that many models. */
#define MODEL_CACHE_BYTES ((size_t)8 << 20)
/* Input rows per batch: bounds the models one batch decodes (2,000 forests of 100 trees
   on 25 rows each scored 7% faster, those of 20 trees 14%, than with 65536-row
   batches). */
#define PREDICT_BATCH_ROWS 8192

/* What a key resolved to; one per key table entry, filled on the key's first row. */
typedef struct pkey {
  const myr_model_family *family;
  const void *model;     /* decoded, in the arena */
  uint32_t run;          /* index in pctx.runs of the run that trained it */
  const double *classes; /* classifiers: n_out class values (may be NULL) */
  uint8_t classify;      /* writes class probabilities (class_values or the task) */
  const char *message;   /* KEY_ERROR: why (arena, or the run's problem) */
  uint32_t n_out;        /* outputs per row */
  uint8_t state;         /* KEY_* */
} pkey;

/* Rows [lo, hi) of the current batch as one unit of parallel work; reused. */
typedef struct pslice {
  size_t lo, hi;     /* rows of the batch */
  size_t cap;        /* rows the arrays hold */
  uint8_t *status;   /* 0 = fine so far, else a myr_predict_miss + 1 */
  uint32_t *bad_col; /* input column at fault (missing key, bad feature ...) */
  uint64_t *hash;    /* key lookup hashes */
  size_t *key_off;   /* start of each row's key encoding in keys; rows + 1 entries */
  uint32_t *gid;     /* key table id per row with a usable key */
  uint8_t *key_ok;   /* per row: its key cells can be printed */
  myr__buf keys;     /* key encodings, back to back */
  double *x;         /* features, one row of max_p per slice row */
  double *pred;      /* outputs, one row of max_out per slice row */
  double *xt, *pt;   /* one run of rows repacked when a model has fewer columns */
  size_t x_cap, pred_cap; /* rows x and pred hold */
  myr__buf out;       /* formatted output lines */
  char pred_msg[128]; /* why the slice's first failed predict call failed */
  uint64_t predicted;
  uint64_t missed[MYR_MISS__COUNT];
  uint64_t first_row[MYR_MISS__COUNT];
  char detail[MYR_MISS__COUNT][DETAIL_MAX];
  int rc; /* MYR_OK or MYR_ENOMEM */
} pslice;

typedef struct pctx {
  const myr_predict_options *opt;
  myr_predict_summary *sum;
  myr_store *store;
  size_t n_keys;                /* store key columns */
  const char *const *key_names; /* the store's (valid until it is closed) or mkey_names */
  const char *in_name;          /* the input, for messages */
  const char *models_name;      /* the store path or "models table", for messages */
  myr__source *src;
  size_t n_cols;            /* input columns */
  size_t key_col[MYR__MAX_KEYS]; /* input column of each key */
  prun *runs;               /* published runs */
  size_t n_runs, runs_cap;
  unsigned char *want; /* input columns read (keys, usable runs' features) */
  size_t max_p;        /* most features of a usable run */
  size_t max_out;      /* most outputs of a loaded model */
  myr__keytab keys;    /* every key seen (since the last forget_keys) */
  uint64_t *seen;      /* memory limit: stable hashes of the keys forgotten, an open
                          addressing set (0 = empty slot), to count keys_seen */
  size_t seen_n, seen_cap;
  pkey *models;        /* per key table id */
  size_t models_cap;
  myr__arena arena;  /* messages of keys that failed */
  myr__arena marena; /* decoded models (MODEL_CACHE_BYTES) */
  myr__buf keyvals; /* NUL-terminated key values for one lookup */
  myr__pool *pool;
  pslice *slices;
  size_t n_slices;
  FILE *out;
  char *tmp_path; /* "<out>.tmp" while writing, NULL for stdout/direct */
  int out_format; /* MYR_PREDICT_OUT_* of opt->out resolved, 0 without a file */
  int want_csv;   /* step 3 formats CSV lines */

  /* Arrow output (an Arrow file and/or opt->predictions) */
  myr__arrow_builder *ab;  /* rows not yet in a batch */
  myr__arrow_list *alist;  /* batches for opt->predictions */
  myr__ipc_writer *w;      /* Arrow file output */
  myr__buf probs;          /* one row's probabilities text */

  struct ArrowArrayStream in; /* opt->stream, moved here (released when opened) */
  struct ArrowArrayStream mt; /* opt->models, moved here */

  /* models table (opt->models) */
  char **mkey_names;       /* n_keys owned names */
  myr__keytab mkeys;       /* keys of the rows with a model */
  uint64_t *mblob_off;     /* per mkeys id: offset of its blob in mblobs */
  size_t *mblob_len;
  uint32_t *mspec;         /* per mkeys id: index in mspecs */
  size_t mcap;             /* entries of mblob_off, mblob_len, mspec */
  myr__buf mblobs;         /* blobs back to back */
  struct mspec *mspecs;    /* distinct feature lists (become runs, same index) */
  size_t n_mspecs, mspecs_cap;
} pctx;

/* A feature list of the models table: given by its features column, or (without one)
   a blob header's feature count and schema hash to find among the input's columns. */
typedef struct mspec {
  char *features;       /* JSON array of names; NULL: inferred */
  uint32_t n_features;  /* inferred: from the blob header */
  uint64_t schema_hash; /* inferred: from the blob header */
} mspec;

/* "run 12" or "the models table", for messages. */
static const char *run_label(const pctx *c, const prun *r, char *buf, size_t cap) {
  if (c->opt->models)
    snprintf(buf, cap, "the models table");
  else
    snprintf(buf, cap, "run %lld", (long long)r->run_id);
  return buf;
}

/* ------------------------------------------------------------------ input columns */

static int resolve_keys(pctx *c, myr_error *err) {
  const char *missing[MYR__MAX_KEYS];
  size_t n_missing = 0;
  for (size_t k = 0; k < c->n_keys; k++)
    if (!myr__source_find(c->src, c->key_names[k], &c->key_col[k]))
      missing[n_missing++] = c->key_names[k];
  if (n_missing) {
    char miss[256], cols[512];
    myr__join_names(miss, sizeof miss, missing, n_missing);
    myr__source_list(c->src, cols, sizeof cols);
    return myr_error_set(
        err, MYR_ENOTFOUND, "%s: no key column%s %s of %s%s (input columns: %s)",
        c->in_name, n_missing > 1 ? "s" : "", miss, c->opt->models ? "" : "store ",
        c->models_name, cols);
  }
  static const char *const ours[] = {"row", "prediction", "probabilities", "reason"};
  for (size_t k = 0; k < c->n_keys; k++)
    for (size_t i = 0; i < sizeof ours / sizeof ours[0]; i++)
      if (strcmp(c->key_names[k], ours[i]) == 0)
        return myr_error_set(err, MYR_EUNSUPPORTED,
                             "%s: key column '%s' has the name of an output column",
                             c->models_name, ours[i]);
  return MYR_OK;
}

/* ------------------------------------------------------------------ runs */

typedef struct runs_load {
  pctx *c;
  myr_error *err;
} runs_load;

/* Resolve a run's features (a JSON array of names) against the input's columns. A list
   we cannot use is not an error of the command: the run's keys get model_error with
   run->problem. */
static int resolve_features(pctx *c, prun *r, json_t *feats, myr_error *err) {
  size_t p = feats && json_is_array(feats) ? json_array_size(feats) : 0;
  const char **names = NULL;
  char msg[512], label[64];
  int rc = MYR_OK;
  msg[0] = '\0';
  run_label(c, r, label, sizeof label);
  if (!feats || !json_is_array(feats) || p == 0) {
    snprintf(msg, sizeof msg, "%s: %s lists no features", label,
             c->opt->models ? "its features column" : "its spec");
    goto done;
  }
  names = myr__calloc(p, sizeof *names);
  r->col = myr__calloc(p, sizeof *r->col);
  if (!names || !r->col) {
    rc = myr_error_set(err, MYR_ENOMEM, "out of memory reading %s", label);
    goto done;
  }
  r->p = p;
  const char *missing[8];
  size_t n_missing = 0;
  for (size_t f = 0; f < p; f++) {
    names[f] = json_string_value(json_array_get(feats, f));
    if (!names[f]) {
      snprintf(msg, sizeof msg, "%s: a feature name is not a string", label);
      goto done;
    }
    if (!myr__source_find(c->src, names[f], &r->col[f])) {
      if (n_missing < sizeof missing / sizeof missing[0])
        missing[n_missing] = names[f];
      n_missing++;
    }
  }
  if (n_missing) {
    char miss[256];
    size_t shown = n_missing < 8 ? n_missing : 8;
    myr__join_names(miss, sizeof miss, missing, shown);
    snprintf(msg, sizeof msg, "%s needs feature column%s %s%s, not in %s", label,
             n_missing > 1 ? "s" : "", miss, n_missing > shown ? ", ..." : "", c->in_name);
    goto done;
  }
  r->schema_hash = myr_feature_schema_hash(names, p);
done:
  if (rc == MYR_OK && msg[0]) {
    r->problem = myr__strdup(msg);
    if (!r->problem)
      rc = myr_error_set(err, MYR_ENOMEM, "out of memory reading %s", label);
  }
  if (rc == MYR_OK && !r->problem && p > c->max_p)
    c->max_p = p;
  myr__free(names);
  return rc;
}

/* Resolve one store run's spec against the input's columns. */
static int resolve_run(pctx *c, prun *r, const char *spec_json, myr_error *err) {
  json_error_t jerr;
  json_t *root = json_loads(spec_json, 0, &jerr);
  int rc = resolve_features(c, r, root ? json_object_get(root, "features") : NULL, err);
  json_decref(root);
  return rc;
}

static int on_run(void *ud, const myr_run_record *rec) {
  runs_load *l = ud;
  pctx *c = l->c;
  if (strcmp(rec->status, "published") != 0)
    return 0;
  for (size_t i = 0; i < c->n_runs; i++)
    if (c->runs[i].run_id == rec->run_id)
      return 0; /* known already (re-reading after a publish) */
  if (c->n_runs == c->runs_cap) {
    size_t cap = c->runs_cap ? c->runs_cap * 2 : 8;
    prun *nr = myr__reallocarray(c->runs, cap, sizeof *nr);
    if (!nr)
      return myr_error_set(l->err, MYR_ENOMEM, "out of memory reading runs");
    c->runs = nr;
    c->runs_cap = cap;
  }
  prun *r = &c->runs[c->n_runs++];
  memset(r, 0, sizeof *r);
  r->run_id = rec->run_id;
  int rc = resolve_run(c, r, rec->spec_json, l->err);
  if (rc != MYR_OK)
    return rc;
  const myr_model_family *f = myr_registry_find(c->opt->registry, rec->family);
  /* Decided before the header is written, so by what the family can do: a family with
     class_values (forest) may have regression runs too, whose rows leave it empty. */
  if (f && (f->task == MYR_TASK_CLASSIFICATION || f->class_values) && !c->want)
    c->sum->has_probabilities = 1;
  return 0;
}

static int read_runs(pctx *c, myr_error *err) {
  runs_load l = {c, err};
  return myr_store_runs(c->store, on_run, &l, err);
}

/* Find, among the input's non-key columns in order (all of them, or all but one), the
   feature list whose schema hash the models of spec m carry. */
static int infer_features(pctx *c, prun *r, const mspec *m, myr_error *err) {
  size_t n = 0, p = m->n_features;
  const char **names = myr__calloc(c->n_cols + 1, sizeof *names);
  size_t *cols = myr__calloc(c->n_cols + 1, sizeof *cols);
  const char **cand = myr__calloc(c->n_cols + 1, sizeof *cand);
  size_t *ccol = myr__calloc(c->n_cols + 1, sizeof *ccol);
  int rc = MYR_OK, found = 0;
  if (!names || !cols || !cand || !ccol) {
    rc = myr_error_set(err, MYR_ENOMEM, "out of memory matching features");
    goto done;
  }
  for (size_t j = 0; j < c->n_cols; j++) {
    int key = 0;
    for (size_t k = 0; k < c->n_keys; k++)
      key |= c->key_col[k] == j;
    if (!key) {
      names[n] = myr__source_column_name(c->src, j);
      cols[n++] = j;
    }
  }
  /* drop = n: keep every column; else leave column `drop` out */
  for (size_t drop = n + 1; drop-- > 0 && !found && p > 0;) {
    if ((drop == n ? n : n - 1) != p)
      continue;
    size_t q = 0;
    for (size_t j = 0; j < n; j++)
      if (j != drop) {
        cand[q] = names[j];
        ccol[q++] = cols[j];
      }
    if (myr_feature_schema_hash(cand, q) == m->schema_hash)
      found = 1;
  }
  if (found) {
    r->col = myr__calloc(p, sizeof *r->col);
    if (!r->col) {
      rc = myr_error_set(err, MYR_ENOMEM, "out of memory matching features");
      goto done;
    }
    memcpy(r->col, ccol, p * sizeof *r->col);
    r->p = p;
    r->schema_hash = m->schema_hash;
    if (p > c->max_p)
      c->max_p = p;
  } else {
    char msg[512];
    snprintf(msg, sizeof msg,
             "the models table has no features column, and no %u of the %zu non-key "
             "columns of %s are the features of its models (schema hash %016llx)",
             m->n_features, n, c->in_name, (unsigned long long)m->schema_hash);
    if (!(r->problem = myr__strdup(msg)))
      rc = myr_error_set(err, MYR_ENOMEM, "out of memory matching features");
  }
done:
  myr__free(names);
  myr__free(cols);
  myr__free(cand);
  myr__free(ccol);
  return rc;
}

/* Models table: one run per distinct feature list (same index as c->mspecs). */
static int table_runs(pctx *c, myr_error *err) {
  if (c->n_mspecs == 0)
    return MYR_OK;
  c->runs = myr__calloc(c->n_mspecs, sizeof *c->runs);
  if (!c->runs)
    return myr_error_set(err, MYR_ENOMEM, "out of memory");
  c->runs_cap = c->n_mspecs;
  for (size_t i = 0; i < c->n_mspecs; i++) {
    prun *r = &c->runs[c->n_runs++];
    const mspec *m = &c->mspecs[i];
    if (!m->features) {
      MYR_RETURN_NOT_OK(infer_features(c, r, m, err));
      continue;
    }
    json_error_t jerr;
    json_t *feats = json_loads(m->features, JSON_DECODE_ANY, &jerr);
    int rc = resolve_features(c, r, feats, err);
    json_decref(feats);
    MYR_RETURN_NOT_OK(rc);
  }
  return MYR_OK;
}

static int load_runs(pctx *c, myr_error *err) {
  if (c->opt->models)
    MYR_RETURN_NOT_OK(table_runs(c, err));
  else
    MYR_RETURN_NOT_OK(read_runs(c, err));
  if (c->n_runs == 0)
    return c->opt->models
               ? myr_error_set(err, MYR_ENODATA, "the models table has no models")
               : myr_error_set(err, MYR_ENODATA, "store %s has no published run",
                               c->opt->store);
  for (size_t i = 0; i < c->n_runs; i++)
    if (!c->runs[i].problem)
      return MYR_OK;
  /* Nothing could be scored: say why for the newest run (runs come newest first). */
  return myr_error_set(err, MYR_ENOTFOUND, "no model in %s can score %s: %s",
                       c->models_name, c->in_name, c->runs[0].problem);
}

static int select_columns(pctx *c, myr_error *err) {
  unsigned char *want = myr__calloc(c->n_cols ? c->n_cols : 1, 1);
  if (!want)
    return myr_error_set(err, MYR_ENOMEM, "out of memory");
  for (size_t i = 0; i < c->n_runs; i++)
    if (!c->runs[i].problem)
      for (size_t f = 0; f < c->runs[i].p; f++)
        want[c->runs[i].col[f]] = MYR__WANT_VALUE;
  for (size_t k = 0; k < c->n_keys; k++)
    want[c->key_col[k]] = MYR__WANT_TEXT;
  c->want = want; /* from now on, runs are checked against it */
  return myr__source_select(c->src, want, err);
}

/* ------------------------------------------------------------------ models */

typedef struct lookup {
  pctx *c;
  pkey *k;
  const char *key_text; /* for messages */
  int found;
  int64_t unknown_run; /* the model's run is not in pctx.runs (a damaged store) */
  myr_error *err;
} lookup;

static const char *arena_str(myr__arena *a, const char *s) {
  size_t n = strlen(s) + 1;
  char *p = myr__arena_alloc(a, n, 1);
  if (p)
    memcpy(p, s, n);
  return p;
}

/* Mark the key failed with a message; MYR_OK, or MYR_ENOMEM keeping the message. */
static int key_failed(lookup *l, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static int key_failed(lookup *l, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  l->k->state = KEY_ERROR;
  l->k->message = arena_str(&l->c->arena, msg);
  if (!l->k->message)
    return myr_error_set(l->err, MYR_ENOMEM, "out of memory loading the model of key %s",
                         l->key_text);
  return MYR_OK;
}

static int use_blob(lookup *l, const prun *run, const unsigned char *blob, size_t len);

static int on_model(void *ud, const myr_model_record *rec) {
  lookup *l = ud;
  pctx *c = l->c;
  pkey *k = l->k;
  if (l->found++)
    return 0; /* a filter on every key column matches at most one current model */
  const prun *run = NULL;
  for (size_t i = 0; i < c->n_runs && !run; i++)
    if (c->runs[i].run_id == rec->run_id) {
      run = &c->runs[i];
      k->run = (uint32_t)i;
    }
  if (!run) {
    l->unknown_run = rec->run_id;
    return 0;
  }
  return use_blob(l, run, rec->blob, rec->blob_len);
}

/* Decode a key's blob, trained by run (an entry of c->runs, index l->k->run). */
static int use_blob(lookup *l, const prun *run, const unsigned char *blob, size_t len) {
  pctx *c = l->c;
  pkey *k = l->k;
  char label[64];
  run_label(c, run, label, sizeof label);
  if (run->problem) {
    k->state = KEY_ERROR;
    k->message = run->problem;
    return 0;
  }
  myr_scratch scratch = myr__arena_scratch(&c->marena);
  const myr_model_family *f = NULL;
  void *model = NULL;
  myr_blob_view view;
  myr_error e = {0};
  /* Families decode into scratch and keep no pointer into the blob, which lives only
     until this callback returns. */
  int rc = myr__blob_decode(c->opt->registry, blob, len, &scratch, &f, &model, &view, &e);
  if (rc == MYR_ENOMEM)
    return myr_error_set(l->err, MYR_ENOMEM, "out of memory decoding the model of key %s",
                         l->key_text);
  if (rc != MYR_OK)
    return key_failed(l, "%s: %s", label, e.message);
  if (view.n_features != run->p || view.schema_hash != run->schema_hash)
    return key_failed(l,
                      "%s: the model's feature schema (%u features, hash %016llx) "
                      "does not match its run's features (%zu, hash %016llx)",
                      label, view.n_features, (unsigned long long)view.schema_hash, run->p,
                      (unsigned long long)run->schema_hash);
  size_t n_out = f->n_outputs ? f->n_outputs(model) : 1;
  if (n_out == 0 || n_out > 1u << 20)
    return key_failed(l, "%s: the %s model has %zu outputs", label, f->name, n_out);
  k->family = f;
  k->model = model;
  k->n_out = (uint32_t)n_out;
  k->classes = f->class_values ? f->class_values(model) : NULL;
  k->classify = k->classes || f->task == MYR_TASK_CLASSIFICATION;
  k->state = KEY_OK;
  if (n_out > c->max_out)
    c->max_out = n_out;
  c->sum->models_loaded++;
  return 0;
}

/* Resolve key table entry gid (new): one store lookup by the full key, one decode. */
static int load_key(pctx *c, uint32_t gid, myr_error *err) {
  if (gid >= c->models_cap) {
    size_t cap = c->models_cap ? c->models_cap * 2 : 1024;
    pkey *m = myr__reallocarray(c->models, cap, sizeof *m);
    if (!m)
      return myr_error_set(err, MYR_ENOMEM, "out of memory caching %zu models",
                           c->keys.n);
    c->models = m;
    c->models_cap = cap;
  }
  pkey *k = &c->models[gid];
  memset(k, 0, sizeof *k);
  size_t len;
  const unsigned char *enc = myr__keytab_key(&c->keys, gid, &len);
  if (c->opt->models) { /* the models table, read up front */
    uint32_t mg;
    if (!myr__keytab_find(&c->mkeys, enc, len, c->keys.lhash[gid], &mg)) {
      k->state = KEY_NO_MODEL;
      return MYR_OK;
    }
    char key_text[200];
    myr__key_format(enc, len, c->n_keys, key_text, sizeof key_text);
    lookup l = {c, k, key_text, 1, 0, err};
    k->run = c->mspec[mg];
    return use_blob(&l, &c->runs[k->run],
                    (const unsigned char *)c->mblobs.data + c->mblob_off[mg],
                    c->mblob_len[mg]);
  }
  const char *v[MYR__MAX_KEYS], *vals[MYR__MAX_KEYS];
  size_t vl[MYR__MAX_KEYS];
  if (!myr__key_split(enc, len, c->n_keys, v, vl))
    return myr_error_set(err, MYR_EINTERNAL, "key encoding damaged for key %u", gid);
  myr__buf_reset(&c->keyvals);
  size_t off[MYR__MAX_KEYS];
  for (size_t i = 0; i < c->n_keys; i++) {
    off[i] = c->keyvals.len;
    myr__buf_append(&c->keyvals, v[i], vl[i]);
    myr__buf_append(&c->keyvals, "", 1); /* the NUL */
  }
  char key_text[200];
  myr__key_format(enc, len, c->n_keys, key_text, sizeof key_text);
  if (c->keyvals.failed)
    return myr_error_set(err, MYR_ENOMEM, "out of memory looking up key %s", key_text);
  for (size_t i = 0; i < c->n_keys; i++)
    vals[i] = c->keyvals.data + off[i];
  myr_model_query q;
  memset(&q, 0, sizeof q);
  q.key_names = c->key_names;
  q.key_values = vals;
  q.n_filter = c->n_keys;
  lookup l = {c, k, key_text, 0, 0, err};
  MYR_RETURN_NOT_OK(myr_store_models(c->store, &q, on_model, &l, err));
  if (l.unknown_run) /* cannot happen inside the snapshot unless the store is damaged */
    MYR_RETURN_NOT_OK(key_failed(&l,
                                 "its model comes from run %lld, which the store does not "
                                 "list as published",
                                 (long long)l.unknown_run));
  if (!l.found)
    k->state = KEY_NO_MODEL;
  return MYR_OK;
}

/* ------------------------------------------------------------------ models table */

/* Index of the feature list (features[0..flen), or a blob's n_features and hash when
   features is NULL) in c->mspecs, added when new. */
static int table_spec(pctx *c, const char *features, size_t flen, uint32_t nf,
                      uint64_t hash, uint32_t *idx_out, myr_error *err) {
  for (size_t i = c->n_mspecs; i-- > 0;) {
    const mspec *m = &c->mspecs[i];
    if (features ? m->features && strlen(m->features) == flen &&
                       memcmp(m->features, features, flen) == 0
                 : !m->features && m->n_features == nf && m->schema_hash == hash) {
      *idx_out = (uint32_t)i;
      return MYR_OK;
    }
  }
  if (c->n_mspecs == c->mspecs_cap) {
    size_t cap = c->mspecs_cap ? c->mspecs_cap * 2 : 4;
    mspec *m = myr__reallocarray(c->mspecs, cap, sizeof *m);
    if (!m)
      return myr_error_set(err, MYR_ENOMEM, "out of memory reading the models table");
    c->mspecs = m;
    c->mspecs_cap = cap;
  }
  mspec *m = &c->mspecs[c->n_mspecs];
  memset(m, 0, sizeof *m);
  if (features && !(m->features = myr__strndup(features, flen)))
    return myr_error_set(err, MYR_ENOMEM, "out of memory reading the models table");
  m->n_features = nf;
  m->schema_hash = hash;
  *idx_out = (uint32_t)c->n_mspecs++;
  return MYR_OK;
}

/* Keep one row of the models table: key encoding enc, blob, feature list. */
static int table_row(pctx *c, const unsigned char *enc, size_t elen, const unsigned char *blob,
                     size_t blen, const char *feats, size_t flen, myr_error *err) {
  myr_blob_view view;
  memset(&view, 0, sizeof view);
  if (myr_blob_parse(blob, blen, &view, NULL) == MYR_OK) {
    const myr_model_family *f = myr_registry_find(c->opt->registry, view.family);
    if (f && (f->task == MYR_TASK_CLASSIFICATION || f->class_values))
      c->sum->has_probabilities = 1;
  } /* else: the key gets model_error when it is used */
  uint32_t spec = 0, mg = 0;
  MYR_RETURN_NOT_OK(table_spec(c, feats, flen, view.n_features, view.schema_hash, &spec,
                               err));
  MYR_RETURN_NOT_OK(
      myr__keytab_intern(&c->mkeys, enc, elen, myr__key_lookup_hash(enc, elen), &mg, err));
  if (mg >= c->mcap) {
    size_t cap = c->mcap ? c->mcap * 2 : 1024;
    uint64_t *o = myr__reallocarray(c->mblob_off, cap, sizeof *o);
    if (o)
      c->mblob_off = o;
    size_t *l = myr__reallocarray(c->mblob_len, cap, sizeof *l);
    if (l)
      c->mblob_len = l;
    uint32_t *sp = myr__reallocarray(c->mspec, cap, sizeof *sp);
    if (sp)
      c->mspec = sp;
    if (!o || !l || !sp)
      return myr_error_set(err, MYR_ENOMEM, "out of memory reading the models table");
    c->mcap = cap;
  }
  c->mblob_off[mg] = c->mblobs.len; /* a repeated key: the last row wins */
  c->mblob_len[mg] = blen;
  c->mspec[mg] = spec;
  myr__buf_append(&c->mblobs, blob, blen);
  if (c->mblobs.failed)
    return myr_error_set(err, MYR_ENOMEM, "out of memory reading the models table");
  return MYR_OK;
}

static int table_row_cb(void *ud, const myr__mrow *r, myr_error *err) {
  if (!r->blob) /* a failed group: no model */
    return MYR_OK;
  return table_row(ud, r->enc, r->enc_len, r->blob, r->blob_len, r->features,
                   r->features_len, err);
}

/* Read the whole models table (opt->models): key names, then every row with a model. */
static int read_models(pctx *c, myr_error *err) {
  int rc = myr__mtable_read(&c->mt, "the models table", &c->mkey_names, &c->n_keys,
                            table_row_cb, c, err);
  c->key_names = (const char *const *)c->mkey_names;
  return rc;
}

static void table_free(pctx *c) {
  myr__mtable_names_free(c->mkey_names, c->n_keys);
  myr__keytab_free(&c->mkeys);
  myr__free(c->mblob_off);
  myr__free(c->mblob_len);
  myr__free(c->mspec);
  myr__buf_free(&c->mblobs);
  for (size_t i = 0; i < c->n_mspecs; i++)
    myr__free(c->mspecs[i].features);
  myr__free(c->mspecs);
}

/* ------------------------------------------------------------------ step 1: keys */

static int slice_reserve(pslice *s, size_t rows) {
  if (rows <= s->cap)
    return 1;
  uint8_t *st = myr__realloc(s->status, rows);
  if (st)
    s->status = st;
  uint32_t *bc = myr__reallocarray(s->bad_col, rows, sizeof *bc);
  if (bc)
    s->bad_col = bc;
  uint64_t *h = myr__reallocarray(s->hash, rows, sizeof *h);
  if (h)
    s->hash = h;
  size_t *ko = myr__reallocarray(s->key_off, rows + 1, sizeof *ko);
  if (ko)
    s->key_off = ko;
  uint32_t *g = myr__reallocarray(s->gid, rows, sizeof *g);
  if (g)
    s->gid = g;
  uint8_t *ok = myr__realloc(s->key_ok, rows);
  if (ok)
    s->key_ok = ok;
  if (!st || !bc || !h || !ko || !g || !ok)
    return 0;
  s->cap = rows;
  return 1;
}

#define RUN_MAX 256 /* rows of one key predicted in one call */

static int slice_reserve_row(pslice *s, size_t rows, size_t p, size_t n_out) {
  if (!p)
    p = 1;
  if (!n_out)
    n_out = 1;
  if (rows > s->x_cap) {
    double *x = myr__reallocarray(s->x, rows * p, sizeof *x);
    if (!x)
      return 0;
    s->x = x;
    double *o = myr__reallocarray(s->pred, rows * n_out, sizeof *o);
    if (!o)
      return 0;
    s->pred = o;
    s->x_cap = rows;
  }
  if (!s->xt) {
    s->xt = myr__reallocarray(NULL, (size_t)RUN_MAX * p, sizeof *s->xt);
    s->pt = myr__reallocarray(NULL, (size_t)RUN_MAX * n_out, sizeof *s->pt);
    if (!s->xt || !s->pt)
      return 0;
  }
  return 1;
}

static void slice_free(pslice *s) {
  myr__free(s->status);
  myr__free(s->bad_col);
  myr__free(s->hash);
  myr__free(s->key_off);
  myr__free(s->gid);
  myr__free(s->x);
  myr__free(s->pred);
  myr__free(s->xt);
  myr__free(s->pt);
  myr__free(s->key_ok);
  myr__buf_free(&s->keys);
  myr__buf_free(&s->out);
}

/* The text of cell (column col, row i), or NULL when there is none. */
static const char *cell_text(const myr__column *col, size_t i, size_t *len) {
  if (col->kind != MYR__COL_TEXT || !myr__batch_valid(col->validity, i))
    return NULL;
  *len = col->text_len[i];
  return col->text + col->text_off[i];
}

static void parse_keys(const pctx *c, const myr__batch *b, pslice *s) {
  myr__buf_reset(&s->keys);
  for (size_t i = s->lo; i < s->hi; i++) {
    size_t j = i - s->lo;
    s->key_off[j] = s->keys.len;
    s->status[j] = 0;
    s->bad_col[j] = 0;
    if (b->skip && b->skip[i]) {
      s->status[j] = MYR_MISS_BAD_ROW + 1;
      continue;
    }
    for (size_t k = 0; k < c->n_keys && !s->status[j]; k++) {
      const myr__column *col = &b->columns[c->key_col[k]];
      char num[32];
      const char *t = NULL;
      size_t tl = 0;
      if (col->kind == MYR__COL_I64 && myr__batch_valid(col->validity, i)) {
        int w = snprintf(num, sizeof num, "%lld", (long long)col->i64[i]);
        t = num;
        tl = (size_t)w;
      } else if ((t = cell_text(col, i, &tl)) == NULL || myr__is_missing_fast(t, tl)) {
        s->status[j] = MYR_MISS_MISSING_KEY + 1;
      } else if (!myr__utf8_valid((const unsigned char *)t, tl)) {
        s->status[j] = MYR_MISS_BAD_ROW + 1;
      }
      if (s->status[j]) {
        s->bad_col[j] = (uint32_t)c->key_col[k];
        break;
      }
      unsigned char *at = (unsigned char *)myr__buf_extend(&s->keys, 4 + tl);
      if (!at)
        break; /* s->keys.failed is reported below */
      at[0] = (unsigned char)tl;
      at[1] = (unsigned char)(tl >> 8);
      at[2] = (unsigned char)(tl >> 16);
      at[3] = (unsigned char)(tl >> 24);
      memcpy(at + 4, t, tl);
    }
    if (s->status[j]) {
      s->keys.len = s->key_off[j]; /* drop a partial key */
      continue;
    }
    const unsigned char *enc = (const unsigned char *)s->keys.data + s->key_off[j];
    s->hash[j] = myr__key_lookup_hash(enc, s->keys.len - s->key_off[j]);
  }
  s->key_off[s->hi - s->lo] = s->keys.len;
  s->rc = s->keys.failed ? MYR_ENOMEM : MYR_OK;
}

/* ------------------------------------------------------------------ step 3: score */

static void put_u64(myr__buf *b, uint64_t v) {
  char tmp[24];
  size_t k = sizeof tmp;
  do {
    tmp[--k] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  myr__buf_append(b, tmp + k, sizeof tmp - k);
}

/* One CSV field, quoted when it holds the delimiter, a quote or a line break. */
static void put_field(myr__buf *b, const char *t, size_t n) {
  size_t i = 0;
  while (i < n && t[i] != ',' && t[i] != '"' && t[i] != '\n' && t[i] != '\r')
    i++;
  if (i == n) {
    myr__buf_append(b, t, n);
    return;
  }
  myr__buf_append(b, "\"", 1);
  size_t from = 0;
  for (i = 0; i < n; i++)
    if (t[i] == '"') {
      myr__buf_append(b, t + from, i + 1 - from); /* through the quote, then again */
      from = i;
    }
  myr__buf_append(b, t + from, n - from);
  myr__buf_append(b, "\"", 1);
}

/* The key fields of row i: the cell text when the row's fields could be split and the
   text is valid UTF-8 (checked: known to be), else empty. */
static void put_keys(const pctx *c, const myr__batch *b, size_t i, int checked,
                     myr__buf *out) {
  uint8_t skip = b->skip ? b->skip[i] : 0;
  uint32_t n_fields =
      skip == MYR_SKIP_FIELD_COUNT + 1 && b->skip_arg ? b->skip_arg[i] : 0;
  for (size_t k = 0; k < c->n_keys; k++) {
    const myr__column *col = &b->columns[c->key_col[k]];
    size_t tl = 0;
    const char *t = NULL;
    if (!skip || c->key_col[k] < n_fields) {
      t = cell_text(col, i, &tl);
      if (t && (checked || myr__utf8_valid((const unsigned char *)t, tl))) {
        put_field(out, t, tl);
      } else if (col->kind == MYR__COL_I64 && myr__batch_valid(col->validity, i)) {
        char num[32];
        int w = snprintf(num, sizeof num, "%lld", (long long)col->i64[i]);
        myr__buf_append(out, num, (size_t)w);
      }
    }
    myr__buf_append(out, ",", 1);
  }
}

static void key_text(const pslice *s, size_t j, size_t n_keys, char *out, size_t cap) {
  const unsigned char *enc = (const unsigned char *)s->keys.data + s->key_off[j];
  myr__key_format(enc, s->key_off[j + 1] - s->key_off[j], n_keys, out, cap);
}

/* Why row i missed, for the summary (built only for the first row of each reason). */
static void describe_miss(const pctx *c, const myr__batch *b, const pslice *s, size_t i,
                          int reason, char *out, size_t cap) {
  size_t j = i - s->lo;
  /* "line N" in a text input, else "row N" */
  const char *at = b->line ? "line" : "row";
  unsigned long long line = b->line ? b->line[i] : b->first_row + i + 1;
  const char *colname = myr__source_column_name(c->src, s->bad_col[j]);
  char key[128];
  switch (reason) {
  case MYR_MISS_BAD_ROW: {
    uint8_t skip = b->skip ? b->skip[i] : 0;
    uint32_t arg = b->skip_arg ? b->skip_arg[i] : 0;
    if (skip == MYR_SKIP_FIELD_COUNT + 1)
      snprintf(out, cap, "%s %llu: expected %zu fields, got %u", at, line, c->n_cols, arg);
    else if (skip && arg >= 1 && arg <= c->n_cols)
      snprintf(out, cap, "%s %llu: %s in column %s", at, line,
               myr_skip_reason_name(skip - 1), myr__source_column_name(c->src, arg - 1));
    else if (skip)
      snprintf(out, cap, "%s %llu: %s", at, line, myr_skip_reason_name(skip - 1));
    else
      snprintf(out, cap, "%s %llu: key column %s is not valid UTF-8", at, line, colname);
    return;
  }
  case MYR_MISS_MISSING_KEY:
    snprintf(out, cap, "%s %llu: key column %s is empty or NA", at, line, colname);
    return;
  case MYR_MISS_NO_MODEL:
    key_text(s, j, c->n_keys, key, sizeof key);
    snprintf(out, cap, "key %s", key);
    return;
  case MYR_MISS_MISSING_FEATURE:
    key_text(s, j, c->n_keys, key, sizeof key);
    snprintf(out, cap, "key %s: feature %s is empty or NA", key, colname);
    return;
  case MYR_MISS_NON_NUMERIC: {
    size_t tl = 0;
    const myr__column *col = &b->columns[s->bad_col[j]];
    const char *t = cell_text(col, i, &tl);
    char num[40];
    if (!t && col->kind == MYR__COL_F64) {
      tl = (size_t)snprintf(num, sizeof num, "%g", col->f64[i]);
      t = num;
    }
    key_text(s, j, c->n_keys, key, sizeof key);
    snprintf(out, cap, "key %s: feature %s is '%.*s'%s", key, colname,
             (int)(t ? (tl > 40 ? 40 : tl) : 0), t ? t : "", t && tl > 40 ? "..." : "");
    return;
  }
  case MYR_MISS_MODEL_ERROR: {
    const pkey *k = &c->models[s->gid[j]];
    key_text(s, j, c->n_keys, key, sizeof key);
    snprintf(out, cap, "key %s: %s", key, k->message ? k->message : s->pred_msg);
    return;
  }
  default: out[0] = '\0';
  }
}

/* Features of row i for run r into x; 0, or a miss reason + 1 with *bad the column. */
static int parse_features(const myr__batch *b, size_t i, const prun *r, double *x,
                          uint32_t *bad) {
  for (size_t f = 0; f < r->p; f++) {
    const myr__column *col = &b->columns[r->col[f]];
    int k;
    if (!myr__batch_valid(col->validity, i)) {
      k = MYR__NUM_MISSING;
    } else if (col->kind == MYR__COL_TEXT) {
      k = myr__parse_double_fast(col->text + col->text_off[i], col->text_len[i], &x[f]);
    } else if (col->kind == MYR__COL_F64) {
      x[f] = col->f64[i];
      k = isnan(x[f]) ? MYR__NUM_MISSING : isfinite(x[f]) ? MYR__NUM_OK : MYR__NUM_INF;
    } else if (col->kind == MYR__COL_I64) {
      x[f] = (double)col->i64[i];
      k = MYR__NUM_OK;
    } else {
      k = MYR__NUM_BAD;
    }
    if (k != MYR__NUM_OK) {
      *bad = (uint32_t)r->col[f];
      return (k == MYR__NUM_MISSING ? MYR_MISS_MISSING_FEATURE : MYR_MISS_NON_NUMERIC) +
             1;
    }
  }
  return 0;
}

/* Predict rows [j0, j1) of the slice, all of key k and all with parsed features, in
   one call (a forest predicts several rows per pass over each tree). Rows whose output
   is not finite, or all of them when the call fails, become model_error. */
static void predict_run(const pctx *c, const pkey *k, pslice *s, size_t j0, size_t j1) {
  const size_t p = c->runs[k->run].p, mp = c->max_p ? c->max_p : 1;
  const size_t n_out = k->n_out, mo = c->max_out ? c->max_out : 1, n = j1 - j0;
  const double *x = s->x + j0 * mp;
  if (p != mp) { /* repack rows to this model's width */
    for (size_t r = 0; r < n; r++)
      memcpy(s->xt + r * p, s->x + (j0 + r) * mp, p * sizeof *s->xt);
    x = s->xt;
  }
  double *out = n_out == mo ? s->pred + j0 * mo : s->pt;
  myr_error e;
  e.code = MYR_OK;
  e.message[0] = '\0';
  if (k->family->predict(k->model, x, n, p, out, &e) != MYR_OK) {
    if (!s->pred_msg[0])
      snprintf(s->pred_msg, sizeof s->pred_msg, "predict failed: %s",
               e.message[0] ? e.message : myr_status_name(e.code));
    for (size_t j = j0; j < j1; j++)
      s->status[j] = MYR_MISS_MODEL_ERROR + 1;
    return;
  }
  if (out == s->pt)
    for (size_t r = 0; r < n; r++)
      memcpy(s->pred + (j0 + r) * mo, s->pt + r * n_out, n_out * sizeof *s->pt);
  for (size_t j = j0; j < j1; j++)
    for (size_t o = 0; o < n_out; o++)
      if (!isfinite(s->pred[j * mo + o])) {
        if (!s->pred_msg[0])
          snprintf(s->pred_msg, sizeof s->pred_msg,
                   "the model predicted a non-finite value");
        s->status[j] = MYR_MISS_MODEL_ERROR + 1;
        break;
      }
}

static void put_prediction(const pkey *k, const double *pred, int probs, myr__buf *out) {
  char num[40];
  if (k->classify) {
    size_t best = 0;
    for (size_t o = 1; o < k->n_out; o++)
      if (pred[o] > pred[best])
        best = o;
    double cls = k->classes ? k->classes[best] : (double)best;
    myr__buf_append(out, num, myr__fmt_double(num, cls));
    myr__buf_append(out, ",", 1);
    /* Without a probabilities column (no classifier run when the header was written)
       a classifier gets its class only. */
    for (size_t o = 0; o < k->n_out && probs; o++) {
      if (o)
        myr__buf_append(out, ";", 1);
      double co = k->classes ? k->classes[o] : (double)o;
      myr__buf_append(out, num, myr__fmt_double(num, co));
      myr__buf_append(out, ":", 1);
      myr__buf_append(out, num, myr__fmt_double(num, pred[o]));
    }
    myr__buf_append(out, probs ? ",\n" : "\n", probs ? 2 : 1);
    return;
  }
  myr__buf_append(out, num, myr__fmt_double(num, pred[0]));
  myr__buf_append(out, probs ? ",,\n" : ",\n", probs ? 3 : 2);
}

static void score_slice(const pctx *c, const myr__batch *b, pslice *s) {
  const int probs = c->sum->has_probabilities;
  const size_t mp = c->max_p ? c->max_p : 1, mo = c->max_out ? c->max_out : 1;
  const size_t n = s->hi - s->lo;
  myr__buf *out = &s->out;
  myr__buf_reset(out);
  s->predicted = 0;
  s->pred_msg[0] = '\0';
  for (int r = 0; r < MYR_MISS__COUNT; r++) {
    s->missed[r] = 0;
    s->first_row[r] = 0;
  }
  if (!slice_reserve_row(s, n, mp, mo)) {
    s->rc = MYR_ENOMEM;
    return;
  }
  /* 1. Each row's model and features. key_ok[j] remembers whether the key cells may be
        printed, since status[j] is about to become the row's miss reason. */
  uint8_t *key_ok = s->key_ok;
  for (size_t j = 0; j < n; j++) {
    size_t i = s->lo + j;
    int st = s->status[j];
    key_ok[j] = st == 0; /* its key cells are valid UTF-8 */
    if (!key_ok[j])
      continue;
    const pkey *k = &c->models[s->gid[j]];
    if (k->state == KEY_NO_MODEL)
      st = MYR_MISS_NO_MODEL + 1;
    else if (k->state != KEY_OK)
      st = MYR_MISS_MODEL_ERROR + 1;
    else
      st = parse_features(b, i, &c->runs[k->run], s->x + j * mp, &s->bad_col[j]);
    s->status[j] = (uint8_t)st;
  }
  /* 2. Consecutive rows of one key are predicted together. */
  for (size_t j = 0; j < n;) {
    if (s->status[j]) {
      j++;
      continue;
    }
    size_t j1 = j + 1;
    while (j1 < n && j1 - j < RUN_MAX && !s->status[j1] && s->gid[j1] == s->gid[j])
      j1++;
    predict_run(c, &c->models[s->gid[j]], s, j, j1);
    j = j1;
  }
  /* 3. Output lines in input order (counts only, without a CSV output). */
  const int csv = c->want_csv;
  for (size_t j = 0; j < n; j++) {
    size_t i = s->lo + j;
    uint64_t row = b->first_row + i + 1;
    int st = s->status[j];
    if (csv) {
      put_keys(c, b, i, key_ok[j], out);
      put_u64(out, row);
    }
    if (!st) {
      if (csv) {
        myr__buf_append(out, ",", 1);
        put_prediction(&c->models[s->gid[j]], s->pred + j * mo, probs, out);
      }
      s->predicted++;
      continue;
    }
    int reason = st - 1;
    if (csv) {
      myr__buf_append(out, probs ? ",,," : ",,", probs ? 3 : 2);
      myr__buf_puts(out, miss_names[reason]);
      myr__buf_append(out, "\n", 1);
    }
    if (!s->missed[reason]++) {
      s->first_row[reason] = row;
      describe_miss(c, b, s, i, reason, s->detail[reason], sizeof s->detail[reason]);
    }
  }
  s->rc = out->failed ? MYR_ENOMEM : MYR_OK;
}

/* ------------------------------------------------------------------ batches */

typedef struct batch_job {
  const pctx *c;
  const myr__batch *b;
  pslice *slices;
  int score; /* 0: step 1, 1: step 3 */
} batch_job;

static int batch_task(void *ctx, size_t task, unsigned worker) {
  batch_job *job = ctx;
  (void)worker;
  if (job->score)
    score_slice(job->c, job->b, &job->slices[task]);
  else
    parse_keys(job->c, job->b, &job->slices[task]);
  return MYR_OK;
}

static void run_step(pctx *c, const myr__batch *b, size_t n_slices, int score) {
  if (n_slices == 1) {
    if (score)
      score_slice(c, b, &c->slices[0]);
    else
      parse_keys(c, b, &c->slices[0]);
    return;
  }
  batch_job job = {c, b, c->slices, score};
  myr__pool_run(c->pool, n_slices, batch_task, &job);
}

static int append_arrow(pctx *c, const myr__batch *b, const pslice *s, myr_error *err);

/* Put h (not 0) into the open addressing set t of cap slots (a power of two, never
   full); 1 when it was not there. */
static int set_put(uint64_t *t, size_t cap, uint64_t h) {
  size_t j = (size_t)h & (cap - 1);
  while (t[j] && t[j] != h)
    j = (j + 1) & (cap - 1);
  if (t[j])
    return 0;
  t[j] = h;
  return 1;
}

/* Add the stable hashes of the key table's keys to c->seen (hash 0 is stored as 1). */
static int remember_keys(pctx *c, myr_error *err) {
  if (2 * (c->seen_n + c->keys.n) > c->seen_cap) {
    size_t cap = c->seen_cap ? c->seen_cap : 1024;
    while (cap < 2 * (c->seen_n + c->keys.n))
      cap *= 2;
    uint64_t *t = myr__calloc(cap, sizeof *t);
    if (!t)
      return myr_error_set(err, MYR_ENOMEM, "out of memory counting keys");
    for (size_t i = 0; i < c->seen_cap; i++)
      if (c->seen[i])
        set_put(t, cap, c->seen[i]);
    myr__free(c->seen);
    c->seen = t;
    c->seen_cap = cap;
  }
  for (size_t g = 0; g < c->keys.n; g++)
    c->seen_n +=
        (size_t)set_put(c->seen, c->seen_cap, c->keys.hash[g] ? c->keys.hash[g] : 1);
  return MYR_OK;
}

/* Memory limit: forget every key and model (between batches), keeping only the keys'
   hashes to count keys_seen. */
static int forget_keys(pctx *c, myr_error *err) {
  MYR_RETURN_NOT_OK(remember_keys(c, err));
  myr__keytab_free(&c->keys);
  myr__keytab_init(&c->keys);
  myr__arena_reset(&c->marena);
  myr__arena_reset(&c->arena);
  return MYR_OK;
}

static size_t keys_bytes(const pctx *c) {
  const myr__keytab *k = &c->keys;
  return k->bytes_cap + k->n_alloc * (3 * 8 + 8 + 4) + k->cap * 4 +
         c->models_cap * sizeof *c->models + c->seen_cap * 8;
}

static int process_batch(pctx *c, const myr__batch *b, myr_error *err) {
  size_t n_slices = b->n_rows >= 4096 ? c->n_slices : 1;
  size_t per = (b->n_rows + n_slices - 1) / n_slices;
  for (size_t t = 0; t < n_slices; t++) {
    pslice *s = &c->slices[t];
    s->lo = t * per < b->n_rows ? t * per : b->n_rows;
    s->hi = s->lo + per < b->n_rows ? s->lo + per : b->n_rows;
    if (!slice_reserve(s, s->hi - s->lo + 1))
      return myr_error_set(err, MYR_ENOMEM, "out of memory parsing rows");
  }
  /* 1. keys */
  run_step(c, b, n_slices, 0);
  /* 2. models, in row order on this thread (the store is single-threaded) */
  const uint64_t limit = c->opt->memory_limit;
  size_t cache = c->opt->model_cache_bytes ? c->opt->model_cache_bytes : MODEL_CACHE_BYTES;
  if (limit && !c->opt->model_cache_bytes && cache > limit / 4)
    cache = (size_t)(limit / 4);
  if (limit && keys_bytes(c) > limit / 4)
    MYR_RETURN_NOT_OK(forget_keys(c, err));
  if (c->marena.live > cache) {
    for (size_t g = 0; g < c->keys.n; g++)
      if (c->models[g].state == KEY_OK)
        c->models[g].state = KEY_EVICTED;
    myr__arena_reset(&c->marena);
  }
  for (size_t t = 0; t < n_slices; t++) {
    pslice *s = &c->slices[t];
    if (s->rc != MYR_OK)
      return myr_error_set(err, s->rc, "out of memory encoding keys");
    for (size_t j = 0; j < s->hi - s->lo; j++) {
      if (s->status[j])
        continue;
      const unsigned char *enc = (const unsigned char *)s->keys.data + s->key_off[j];
      size_t known = c->keys.n;
      MYR_RETURN_NOT_OK(myr__keytab_intern(
          &c->keys, enc, s->key_off[j + 1] - s->key_off[j], s->hash[j], &s->gid[j], err));
      if (c->keys.n > known || c->models[s->gid[j]].state == KEY_EVICTED)
        MYR_RETURN_NOT_OK(load_key(c, s->gid[j], err));
    }
  }
  /* 3. score and format */
  run_step(c, b, n_slices, 1);
  /* 4. write and count, in order */
  myr_predict_summary *sum = c->sum;
  for (size_t t = 0; t < n_slices; t++) {
    pslice *s = &c->slices[t];
    if (s->rc != MYR_OK)
      return myr_error_set(err, s->rc, "out of memory formatting predictions");
    if (c->want_csv && s->out.len && fwrite(s->out.data, 1, s->out.len, c->out) != s->out.len)
      return myr_error_set(err, MYR_EIO, "cannot write %s: %s", c->opt->out,
                           strerror(errno));
    if (c->ab)
      MYR_RETURN_NOT_OK(append_arrow(c, b, s, err));
    sum->rows_total += s->hi - s->lo;
    sum->rows_predicted += s->predicted;
    for (int r = 0; r < MYR_MISS__COUNT; r++) {
      if (!s->missed[r])
        continue;
      sum->missed[r] += s->missed[r];
      sum->rows_missed += s->missed[r];
      if (!sum->first_missed_row[r]) {
        sum->first_missed_row[r] = s->first_row[r];
        memcpy(sum->first_missed_detail[r], s->detail[r], sizeof s->detail[r]);
      }
    }
  }
  sum->keys_seen = c->keys.n;
  return MYR_OK;
}

/* keys_seen once every batch is done: the key table's, plus the keys forgotten. */
static int count_keys_seen(pctx *c, myr_error *err) {
  if (!c->seen_cap)
    return MYR_OK;
  MYR_RETURN_NOT_OK(remember_keys(c, err));
  c->sum->keys_seen = c->seen_n;
  return MYR_OK;
}

/* ------------------------------------------------------------------ output */

/* The file format of opt->out (MYR_PREDICT_OUT_*). */
static int out_format_of(const char *out, int format) {
  if (format != MYR_PREDICT_OUT_AUTO)
    return format;
  const char *dot = strrchr(out, '.'), *slash = strrchr(out, '/');
  if (dot && (!slash || dot > slash)) {
    if (!strcmp(dot, ".arrow") || !strcmp(dot, ".feather") || !strcmp(dot, ".ipc"))
      return MYR_PREDICT_OUT_ARROW_FILE;
    if (!strcmp(dot, ".arrows"))
      return MYR_PREDICT_OUT_ARROW_STREAM;
  }
  return MYR_PREDICT_OUT_CSV;
}

/* The Arrow builder (and the list for opt->predictions) of the output columns. */
static int setup_arrow(pctx *c, myr_error *err) {
  const char *names[MYR__MAX_KEYS + 4];
  int types[MYR__MAX_KEYS + 4];
  size_t n = 0;
  for (size_t k = 0; k < c->n_keys; k++) {
    names[n] = c->key_names[k];
    types[n++] = MYR__ARROW_UTF8;
  }
  names[n] = "row";
  types[n++] = MYR__ARROW_I64;
  names[n] = "prediction";
  types[n++] = MYR__ARROW_F64;
  if (c->sum->has_probabilities) {
    names[n] = "probabilities";
    types[n++] = MYR__ARROW_UTF8;
  }
  names[n] = "reason";
  types[n++] = MYR__ARROW_UTF8;
  MYR_RETURN_NOT_OK(myr__arrow_builder_new(n, names, types, &c->ab, err));
  if (!c->opt->predictions)
    return MYR_OK;
  struct ArrowSchema schema;
  schema.release = NULL;
  int rc = myr__arrow_builder_schema(c->ab, &schema, err);
  if (rc == MYR_OK)
    rc = myr__arrow_list_new(&schema, &c->alist, err);
  if (schema.release)
    schema.release(&schema);
  return rc;
}

/* Move the rows built so far into a batch for the file and/or the stream. */
static int flush_arrow(pctx *c, myr_error *err) {
  struct ArrowArray a;
  a.release = NULL;
  MYR_RETURN_NOT_OK(myr__arrow_builder_finish(c->ab, NULL, &a, err));
  int rc = MYR_OK;
  if (c->w)
    rc = myr__ipc_writer_write(c->w, &a, err);
  if (rc == MYR_OK && c->alist)
    return myr__arrow_list_push(c->alist, &a, err);
  if (a.release)
    a.release(&a);
  return rc;
}

/* Step 4 for Arrow outputs: the rows of slice s, in order. */
static int append_arrow(pctx *c, const myr__batch *b, const pslice *s, myr_error *err) {
  const size_t nk = c->n_keys, mo = c->max_out ? c->max_out : 1;
  const int probs = c->sum->has_probabilities;
  const size_t c_row = nk, c_pred = nk + 1, c_prob = nk + 2, c_reason = nk + 2 + !!probs;
  myr__arrow_builder *ab = c->ab;
  char num[40];
  for (size_t j = 0; j < s->hi - s->lo; j++) {
    size_t i = s->lo + j;
    int st = s->status[j], a = MYR_OK;
    uint8_t skip = b->skip ? b->skip[i] : 0;
    uint32_t n_fields = skip == MYR_SKIP_FIELD_COUNT + 1 && b->skip_arg ? b->skip_arg[i] : 0;
    for (size_t k = 0; k < nk && a == MYR_OK; k++) {
      size_t tl = 0;
      const char *t = NULL;
      if (!skip || c->key_col[k] < n_fields) /* as put_keys */
        t = cell_text(&b->columns[c->key_col[k]], i, &tl);
      if (t && !s->key_ok[j] && !myr__utf8_valid((const unsigned char *)t, tl))
        t = NULL;
      a = t ? myr__arrow_append_bytes(ab, k, t, tl) : myr__arrow_append_null(ab, k);
    }
    if (a == MYR_OK)
      a = myr__arrow_append_i64(ab, c_row, (int64_t)(b->first_row + i + 1));
    if (a == MYR_OK && !st) {
      const pkey *k = &c->models[s->gid[j]];
      const double *pred = s->pred + j * mo;
      if (k->classify) {
        size_t best = 0;
        for (size_t o = 1; o < k->n_out; o++)
          if (pred[o] > pred[best])
            best = o;
        a = myr__arrow_append_f64(ab, c_pred, k->classes ? k->classes[best] : (double)best);
        if (a == MYR_OK && probs) {
          myr__buf_reset(&c->probs);
          for (size_t o = 0; o < k->n_out; o++) {
            if (o)
              myr__buf_append(&c->probs, ";", 1);
            double co = k->classes ? k->classes[o] : (double)o;
            myr__buf_append(&c->probs, num, myr__fmt_double(num, co));
            myr__buf_append(&c->probs, ":", 1);
            myr__buf_append(&c->probs, num, myr__fmt_double(num, pred[o]));
          }
          a = c->probs.failed ? MYR_ENOMEM
                              : myr__arrow_append_bytes(ab, c_prob, c->probs.data, c->probs.len);
        }
      } else {
        a = myr__arrow_append_f64(ab, c_pred, pred[0]);
        if (a == MYR_OK && probs)
          a = myr__arrow_append_null(ab, c_prob);
      }
      if (a == MYR_OK)
        a = myr__arrow_append_null(ab, c_reason);
    } else if (a == MYR_OK) {
      a = myr__arrow_append_null(ab, c_pred);
      if (a == MYR_OK && probs)
        a = myr__arrow_append_null(ab, c_prob);
      if (a == MYR_OK)
        a = myr__arrow_append_bytes(ab, c_reason, miss_names[st - 1],
                                    strlen(miss_names[st - 1]));
    }
    if (a != MYR_OK)
      return myr_error_set(err, a, "%s building the predictions of row %llu",
                           a == MYR_ENOMEM ? "out of memory" : "a value too large",
                           (unsigned long long)(b->first_row + i + 1));
    if (myr__arrow_builder_rows(ab) >= OUT_BATCH_ROWS)
      MYR_RETURN_NOT_OK(flush_arrow(c, err));
  }
  return MYR_OK;
}

static int open_output(pctx *c, myr_error *err) {
  const char *path = c->opt->out, *target = path;
  if (strcmp(path, "-") != 0) {
    struct stat st;
    if (!(stat(path, &st) == 0 && !S_ISREG(st.st_mode))) { /* else a device or pipe: */
      size_t n = strlen(path);                              /* written directly */
      c->tmp_path = myr__malloc(n + 5);
      if (!c->tmp_path)
        return myr_error_set(err, MYR_ENOMEM, "out of memory");
      memcpy(c->tmp_path, path, n);
      memcpy(c->tmp_path + n, ".tmp", 5);
      target = c->tmp_path;
    }
  }
  if (c->out_format != MYR_PREDICT_OUT_CSV) {
    struct ArrowSchema schema;
    schema.release = NULL;
    int rc = myr__arrow_builder_schema(c->ab, &schema, err);
    if (rc == MYR_OK)
      rc = myr__ipc_writer_open(target, c->out_format == MYR_PREDICT_OUT_ARROW_FILE,
                                MYR__IPC_NONE, &schema, &c->w, err);
    if (schema.release)
      schema.release(&schema);
    return rc;
  }
  c->out = strcmp(target, "-") == 0 ? stdout : fopen(target, "wb");
  if (!c->out)
    return myr_error_set(err, MYR_EIO, "cannot create %s: %s", target, strerror(errno));
  return MYR_OK;
}

/* Flush and close; on success move the temporary file into place. */
static int close_output(pctx *c, int ok, myr_error *err) {
  int rc = MYR_OK;
  if (c->w) {
    if (ok)
      rc = myr__ipc_writer_close(c->w, err);
    else
      myr__ipc_writer_abort(c->w);
    c->w = NULL;
  } else if (c->out == stdout) {
    if (fflush(stdout) != 0 && ok)
      rc = myr_error_set(err, MYR_EIO, "cannot write to stdout: %s", strerror(errno));
  } else if (c->out && fclose(c->out) != 0 && ok) {
    rc = myr_error_set(err, MYR_EIO, "cannot write %s: %s", c->opt->out, strerror(errno));
  }
  c->out = NULL;
  if (c->tmp_path) {
    if (ok && rc == MYR_OK && rename(c->tmp_path, c->opt->out) != 0)
      rc = myr_error_set(err, MYR_EIO, "cannot rename %s to %s: %s", c->tmp_path,
                         c->opt->out, strerror(errno));
    if (!ok || rc != MYR_OK)
      remove(c->tmp_path);
  }
  return rc;
}

static int write_header(pctx *c, myr_error *err) {
  myr__buf h;
  myr__buf_init(&h);
  for (size_t k = 0; k < c->n_keys; k++) {
    put_field(&h, c->key_names[k], strlen(c->key_names[k]));
    myr__buf_append(&h, ",", 1);
  }
  myr__buf_puts(&h, c->sum->has_probabilities ? "row,prediction,probabilities,reason\n"
                                              : "row,prediction,reason\n");
  int rc = MYR_OK;
  if (h.failed)
    rc = myr_error_set(err, MYR_ENOMEM, "out of memory");
  else if (fwrite(h.data, 1, h.len, c->out) != h.len)
    rc = myr_error_set(err, MYR_EIO, "cannot write %s: %s", c->opt->out, strerror(errno));
  myr__buf_free(&h);
  return rc;
}

/* ------------------------------------------------------------------ the run */

static int validate(const myr_predict_options *o, const struct ArrowArrayStream *in,
                    const struct ArrowArrayStream *mt, myr_error *err) {
  if (!o)
    return myr_error_set(err, MYR_EINVAL, "no options given");
  if (o->stream && !in)
    return myr_error_set(err, MYR_EINVAL, "the input Arrow stream is already released");
  if (!o->stream && (!o->input || !*o->input))
    return myr_error_set(err, MYR_EINVAL, "no input file given");
  if (o->models && !mt)
    return myr_error_set(err, MYR_EINVAL, "the models Arrow stream is already released");
  if (o->models && o->store)
    return myr_error_set(err, MYR_EINVAL, "give a store or a models table, not both");
  if (!o->models && (!o->store || !*o->store))
    return myr_error_set(err, MYR_EINVAL, "no store given (--store)");
  if (!o->predictions && (!o->out || !*o->out))
    return myr_error_set(err, MYR_EINVAL, "no output given (--out)");
  if (o->out && !*o->out)
    return myr_error_set(err, MYR_EINVAL, "the output path is empty");
  if (o->memory_limit && o->predictions)
    return myr_error_set(
        err, MYR_EUNSUPPORTED,
        "a memory limit cannot bound the predictions stream, which holds "
        "every row: write them to a file (out)");
  if (o->out_format < MYR_PREDICT_OUT_AUTO || o->out_format > MYR_PREDICT_OUT_ARROW_STREAM)
    return myr_error_set(err, MYR_EINVAL, "unknown output format %d", o->out_format);
  if (o->delimiter && o->delimiter != ',' && o->delimiter != '\t' && o->delimiter != ';')
    return myr_error_set(err, MYR_EINVAL, "delimiter must be ',', tab or ';'");
  if (o->out && o->input && !o->stream && strcmp(o->out, "-") != 0 &&
      strcmp(o->out, o->input) == 0)
    return myr_error_set(err, MYR_EINVAL, "the output %s is the input", o->out);
  return MYR_OK;
}

static void report(const pctx *c, double t0, double *last, int force) {
  if (!c->opt->progress)
    return;
  double t = myr__now();
  if (!force && t - *last < 0.1)
    return;
  *last = t;
  myr_progress pr;
  memset(&pr, 0, sizeof pr);
  pr.phase = 1;
  pr.bytes_done = myr__source_bytes_read(c->src);
  pr.bytes_total = myr__source_bytes_total(c->src);
  pr.rows_done = c->sum->rows_total;
  pr.seconds = t - t0;
  c->opt->progress(c->opt->progress_ud, &pr);
}

static int open_models(pctx *c, myr_error *err) {
  const myr_predict_options *o = c->opt;
  if (o->models)
    return read_models(c, err);
  myr_store_info info;
  MYR_RETURN_NOT_OK(myr_store_open(o->store, MYR_STORE_READONLY, &c->store, err));
  /* One snapshot for the whole run: every key is scored with the same published
     version, and the many key lookups skip SQLite's per-query locking. */
  MYR_RETURN_NOT_OK(myr_store_snapshot_begin(c->store, err));
  MYR_RETURN_NOT_OK(myr_store_get_info(c->store, &info, err));
  if (info.n_keys == 0 || info.latest_run == 0)
    return myr_error_set(err, MYR_ENODATA, "store %s has no published models", o->store);
  if (info.n_keys > MYR__MAX_KEYS)
    return myr_error_set(err, MYR_EUNSUPPORTED,
                         "store %s has %zu key columns; at most %d", o->store,
                         info.n_keys, MYR__MAX_KEYS);
  c->n_keys = info.n_keys;
  c->key_names = info.key_names;
  return MYR_OK;
}

static int predict_all(pctx *c, myr_error *err) {
  const myr_predict_options *o = c->opt;
  MYR_RETURN_NOT_OK(open_models(c, err));
  if (o->stream)
    MYR_RETURN_NOT_OK(myr__source_open_stream(&c->in, c->in_name, &c->src, err));
  else
    MYR_RETURN_NOT_OK(myr__source_open_path(o->input, o->delimiter, &c->src, err));
  myr__source_set_batch_rows(c->src, PREDICT_BATCH_ROWS);
  c->n_cols = myr__source_n_columns(c->src);
  MYR_RETURN_NOT_OK(resolve_keys(c, err));
  MYR_RETURN_NOT_OK(load_runs(c, err));
  MYR_RETURN_NOT_OK(select_columns(c, err));

  MYR_RETURN_NOT_OK(myr__pool_create(o->n_threads, &c->pool, err));
  c->sum->n_threads = myr__pool_size(c->pool);
  c->n_slices = myr__pool_size(c->pool);
  c->slices = myr__calloc(c->n_slices, sizeof *c->slices);
  if (!c->slices)
    return myr_error_set(err, MYR_ENOMEM, "out of memory");

  if (o->predictions || (c->out_format && c->out_format != MYR_PREDICT_OUT_CSV))
    MYR_RETURN_NOT_OK(setup_arrow(c, err));
  if (c->out_format)
    MYR_RETURN_NOT_OK(open_output(c, err));
  if (c->want_csv)
    MYR_RETURN_NOT_OK(write_header(c, err));
  double t0 = myr__now(), last = 0;
  for (;;) {
    const myr__batch *b = NULL;
    MYR_RETURN_NOT_OK(myr__source_next(c->src, &b, err));
    if (!b)
      break;
    MYR_RETURN_NOT_OK(process_batch(c, b, err));
    if (o->cancel && *o->cancel)
      return myr_error_set(err, MYR_ECANCELED, "canceled after %llu rows of %s",
                           (unsigned long long)c->sum->rows_total, c->in_name);
    report(c, t0, &last, 0);
  }
  if (c->ab && myr__arrow_builder_rows(c->ab) > 0)
    MYR_RETURN_NOT_OK(flush_arrow(c, err));
  MYR_RETURN_NOT_OK(count_keys_seen(c, err));
  report(c, t0, &last, 1);
  return MYR_OK;
}

/* Move *from (when live) into *to; from's release becomes NULL. */
static void take_stream(struct ArrowArrayStream *from, struct ArrowArrayStream *to) {
  to->release = NULL;
  if (from && from->release) {
    *to = *from;
    from->release = NULL;
  }
}

int myr_predict(const myr_predict_options *opt, myr_predict_summary *summary_out,
                myr_error *err) {
  myr_predict_summary local = {0};
  myr_predict_summary *s = summary_out ? summary_out : &local;
  memset(s, 0, sizeof *s);
  double t_start = myr__now();

  pctx c;
  memset(&c, 0, sizeof c);
  /* The input and models streams are ours from here on, whatever happens. */
  take_stream(opt ? opt->stream : NULL, &c.in);
  take_stream(opt ? opt->models : NULL, &c.mt);
  int rc = validate(opt, c.in.release ? &c.in : NULL, c.mt.release ? &c.mt : NULL, err);
  if (rc != MYR_OK) {
    if (c.in.release)
      c.in.release(&c.in);
    if (c.mt.release)
      c.mt.release(&c.mt);
    return rc;
  }
  c.opt = opt;
  c.sum = s;
  c.in_name = opt->input && *opt->input ? opt->input : "<arrow stream>";
  c.models_name = opt->models ? "the models table" : opt->store;
  c.out_format = opt->out ? out_format_of(opt->out, opt->out_format) : 0;
  c.want_csv = c.out_format == MYR_PREDICT_OUT_CSV;
  myr__keytab_init(&c.keys);
  myr__keytab_init(&c.mkeys);
  myr__arena_init(&c.arena, 64 * 1024);
  myr__arena_init(&c.marena, 256 * 1024);
  myr__buf_init(&c.keyvals);
  myr__buf_init(&c.probs);
  myr__buf_init(&c.mblobs);

  rc = predict_all(&c, err);
  int rc_close = close_output(&c, rc == MYR_OK, err);
  if (rc == MYR_OK)
    rc = rc_close;
  if (rc == MYR_OK && opt->predictions) {
    myr__arrow_list_stream(c.alist, opt->predictions); /* consumes the list */
    c.alist = NULL;
  }

  myr__pool_destroy(c.pool);
  if (c.slices)
    for (size_t t = 0; t < c.n_slices; t++)
      slice_free(&c.slices[t]);
  myr__free(c.slices);
  for (size_t i = 0; i < c.n_runs; i++) {
    myr__free(c.runs[i].col);
    myr__free(c.runs[i].problem);
  }
  myr__free(c.runs);
  myr__free(c.want);
  myr__free(c.models);
  myr__free(c.tmp_path);
  myr__keytab_free(&c.keys);
  myr__free(c.seen);
  myr__arena_free(&c.arena);
  myr__arena_free(&c.marena);
  myr__buf_free(&c.keyvals);
  myr__buf_free(&c.probs);
  myr__arrow_builder_free(c.ab);
  myr__arrow_list_free(c.alist);
  myr__source_close(c.src);
  table_free(&c);
  if (c.in.release)
    c.in.release(&c.in);
  if (c.mt.release)
    c.mt.release(&c.mt);
  myr_store_close(c.store); /* after every use of c.key_names */
  s->seconds_total = myr__now() - t_start;
  return rc;
}

/* ------------------------------------------------------------------ summary */

int myr_predict_summary_json(const myr_predict_summary *s, myr_write_fn write, void *ud,
                             myr_error *err) {
  myr__buf b;
  myr__buf_init(&b);
  myr__buf_printf(&b,
                  "{\"rows_total\":%llu,\"rows_predicted\":%llu,\"rows_missed\":%llu,"
                  "\"missed\":{",
                  (unsigned long long)s->rows_total,
                  (unsigned long long)s->rows_predicted,
                  (unsigned long long)s->rows_missed);
  int first = 1;
  for (int r = 0; r < MYR_MISS__COUNT; r++) {
    if (!s->missed[r])
      continue;
    myr__buf_printf(&b, "%s\"%s\":{\"rows\":%llu,\"first_row\":%llu,\"detail\":",
                    first ? "" : ",", miss_names[r], (unsigned long long)s->missed[r],
                    (unsigned long long)s->first_missed_row[r]);
    const char *d = s->first_missed_detail[r];
    myr__buf_json_str(&b, d, strnlen(d, sizeof s->first_missed_detail[r]));
    myr__buf_puts(&b, "}");
    first = 0;
  }
  myr__buf_printf(&b,
                  "},\"keys_seen\":%llu,\"models_loaded\":%llu,\"probabilities\":%s,"
                  "\"threads\":%u,\"seconds_total\":%.6f}",
                  (unsigned long long)s->keys_seen, (unsigned long long)s->models_loaded,
                  s->has_probabilities ? "true" : "false", s->n_threads,
                  s->seconds_total);
  int rc = b.failed ? myr_error_set(err, MYR_ENOMEM, "out of memory")
                    : write(ud, b.data, b.len);
  myr__buf_free(&b);
  return rc;
}
