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
 *      or decoded twice. Decoded models live in one arena freed at the end.
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
#include "io/csv.h"
#include "io/number.h"
#include "myriad/blob.h"
#include "myriad/store.h"
#include "store/blob.h"

#define MAX_KEYS 16    /* as myr_train */
#define DETAIL_MAX 160 /* sizeof first_missed_detail[0] */

static const char *const miss_names[MYR_MISS__COUNT] = {"no_model",    "bad_row",
                                                        "missing_key", "missing_feature",
                                                        "non_numeric", "model_error"};

const char *myr_predict_miss_name(int reason) {
  return reason >= 0 && reason < MYR_MISS__COUNT ? miss_names[reason] : "unknown";
}

/* A published run: how to find its features in the input. */
typedef struct prun {
  int64_t run_id;
  size_t p;             /* features */
  size_t *col;          /* p input column indexes */
  uint64_t schema_hash; /* myr_feature_schema_hash of its feature names */
  char *problem;        /* why its models cannot be used here; NULL when usable */
} prun;

enum { KEY_OK = 1, KEY_NO_MODEL = 2, KEY_ERROR = 3 };

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
  uint64_t *hash;    /* key hashes */
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
  const char *const *key_names; /* the store's, valid until it is closed */
  myr__csv *csv;
  size_t n_cols;            /* input columns */
  size_t key_col[MAX_KEYS]; /* input column of each key */
  prun *runs;               /* published runs */
  size_t n_runs, runs_cap;
  unsigned char *want; /* input columns read (keys, usable runs' features) */
  size_t max_p;        /* most features of a usable run */
  size_t max_out;      /* most outputs of a loaded model */
  myr__keytab keys;    /* every key seen */
  pkey *models;        /* per key table id */
  size_t models_cap;
  myr__arena arena; /* decoded models and their messages */
  myr__buf keyvals; /* NUL-terminated key values for one lookup */
  myr__pool *pool;
  pslice *slices;
  size_t n_slices;
  FILE *out;
  char *tmp_path; /* "<out>.tmp" while writing, NULL for stdout/direct */
} pctx;

/* ------------------------------------------------------------------ input columns */

static int resolve_keys(pctx *c, myr_error *err) {
  const char *missing[MAX_KEYS];
  size_t n_missing = 0;
  for (size_t k = 0; k < c->n_keys; k++)
    if (!myr__csv_find(c->csv, c->key_names[k], &c->key_col[k]))
      missing[n_missing++] = c->key_names[k];
  if (n_missing) {
    char miss[256], cols[512];
    myr__join_names(miss, sizeof miss, missing, n_missing);
    myr__csv_list(c->csv, cols, sizeof cols);
    return myr_error_set(
        err, MYR_ENOTFOUND, "%s: no key column%s %s of store %s (input columns: %s)",
        c->opt->input, n_missing > 1 ? "s" : "", miss, c->opt->store, cols);
  }
  static const char *const ours[] = {"row", "prediction", "probabilities", "reason"};
  for (size_t k = 0; k < c->n_keys; k++)
    for (size_t i = 0; i < sizeof ours / sizeof ours[0]; i++)
      if (strcmp(c->key_names[k], ours[i]) == 0)
        return myr_error_set(err, MYR_EUNSUPPORTED,
                             "store %s: key column '%s' has the name of an output column",
                             c->opt->store, ours[i]);
  return MYR_OK;
}

/* ------------------------------------------------------------------ runs */

typedef struct runs_load {
  pctx *c;
  myr_error *err;
} runs_load;

/* Resolve one run's spec against the input header. A spec we cannot use is not an error
   of the command: the run's keys get model_error with run->problem. */
static int resolve_run(pctx *c, prun *r, const char *spec_json, myr_error *err) {
  json_error_t jerr;
  json_t *root = json_loads(spec_json, 0, &jerr);
  json_t *feats = root ? json_object_get(root, "features") : NULL;
  size_t p = feats && json_is_array(feats) ? json_array_size(feats) : 0;
  const char **names = NULL;
  char msg[512];
  int rc = MYR_OK;
  msg[0] = '\0';
  if (!feats || !json_is_array(feats) || p == 0) {
    snprintf(msg, sizeof msg, "run %lld: its spec lists no features",
             (long long)r->run_id);
    goto done;
  }
  names = myr__calloc(p, sizeof *names);
  r->col = myr__calloc(p, sizeof *r->col);
  if (!names || !r->col) {
    rc = myr_error_set(err, MYR_ENOMEM, "out of memory reading run %lld",
                       (long long)r->run_id);
    goto done;
  }
  r->p = p;
  const char *missing[8];
  size_t n_missing = 0;
  for (size_t f = 0; f < p; f++) {
    names[f] = json_string_value(json_array_get(feats, f));
    if (!names[f]) {
      snprintf(msg, sizeof msg, "run %lld: its spec has a feature that is not a string",
               (long long)r->run_id);
      goto done;
    }
    if (!myr__csv_find(c->csv, names[f], &r->col[f])) {
      if (n_missing < sizeof missing / sizeof missing[0])
        missing[n_missing] = names[f];
      n_missing++;
    }
  }
  if (n_missing) {
    char miss[256];
    size_t shown = n_missing < 8 ? n_missing : 8;
    myr__join_names(miss, sizeof miss, missing, shown);
    snprintf(msg, sizeof msg, "run %lld needs feature column%s %s%s, not in %s",
             (long long)r->run_id, n_missing > 1 ? "s" : "", miss,
             n_missing > shown ? ", ..." : "", c->opt->input);
    goto done;
  }
  r->schema_hash = myr_feature_schema_hash(names, p);
done:
  if (rc == MYR_OK && msg[0]) {
    r->problem = myr__strdup(msg);
    if (!r->problem)
      rc = myr_error_set(err, MYR_ENOMEM, "out of memory reading run %lld",
                         (long long)r->run_id);
  }
  if (rc == MYR_OK && !r->problem && p > c->max_p)
    c->max_p = p;
  myr__free(names);
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

static int load_runs(pctx *c, myr_error *err) {
  MYR_RETURN_NOT_OK(read_runs(c, err));
  if (c->n_runs == 0)
    return myr_error_set(err, MYR_ENODATA, "store %s has no published run",
                         c->opt->store);
  for (size_t i = 0; i < c->n_runs; i++)
    if (!c->runs[i].problem)
      return MYR_OK;
  /* Nothing could be scored: say why for the newest run (runs come newest first). */
  return myr_error_set(err, MYR_ENOTFOUND, "no model in %s can score %s: %s",
                       c->opt->store, c->opt->input, c->runs[0].problem);
}

static int select_columns(pctx *c, myr_error *err) {
  unsigned char *want = myr__calloc(c->n_cols, 1);
  if (!want)
    return myr_error_set(err, MYR_ENOMEM, "out of memory");
  for (size_t k = 0; k < c->n_keys; k++)
    want[c->key_col[k]] = 1;
  for (size_t i = 0; i < c->n_runs; i++)
    if (!c->runs[i].problem)
      for (size_t f = 0; f < c->runs[i].p; f++)
        want[c->runs[i].col[f]] = 1;
  c->want = want; /* from now on, runs are checked against it */
  return myr__csv_select(c->csv, want, err);
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
  if (run->problem) {
    k->state = KEY_ERROR;
    k->message = run->problem;
    return 0;
  }
  myr_scratch scratch = myr__arena_scratch(&c->arena);
  const myr_model_family *f = NULL;
  void *model = NULL;
  myr_blob_view view;
  myr_error e = {0};
  /* Families decode into scratch and keep no pointer into the blob, which lives only
     until this callback returns. */
  int rc = myr__blob_decode(c->opt->registry, rec->blob, rec->blob_len, &scratch, &f,
                            &model, &view, &e);
  if (rc == MYR_ENOMEM)
    return myr_error_set(l->err, MYR_ENOMEM, "out of memory decoding the model of key %s",
                         l->key_text);
  if (rc != MYR_OK)
    return key_failed(l, "run %lld: %s", (long long)rec->run_id, e.message);
  if (view.n_features != run->p || view.schema_hash != run->schema_hash)
    return key_failed(l,
                      "run %lld: the model's feature schema (%u features, hash %016llx) "
                      "does not match its run's features (%zu, hash %016llx)",
                      (long long)rec->run_id, view.n_features,
                      (unsigned long long)view.schema_hash, run->p,
                      (unsigned long long)run->schema_hash);
  size_t n_out = f->n_outputs ? f->n_outputs(model) : 1;
  if (n_out == 0 || n_out > 1u << 20)
    return key_failed(l, "run %lld: the %s model has %zu outputs", (long long)rec->run_id,
                      f->name, n_out);
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
  const char *v[MAX_KEYS], *vals[MAX_KEYS];
  size_t vl[MAX_KEYS];
  if (!myr__key_split(enc, len, c->n_keys, v, vl))
    return myr_error_set(err, MYR_EINTERNAL, "key encoding damaged for key %u", gid);
  myr__buf_reset(&c->keyvals);
  size_t off[MAX_KEYS];
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
    s->hash[j] = myr__key_hash(enc, s->keys.len - s->key_off[j]);
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
  uint64_t line = b->line ? b->line[i] : 0;
  const char *colname = myr__csv_column_name(c->csv, s->bad_col[j]);
  char key[128];
  switch (reason) {
  case MYR_MISS_BAD_ROW: {
    uint8_t skip = b->skip ? b->skip[i] : 0;
    uint32_t arg = b->skip_arg ? b->skip_arg[i] : 0;
    if (skip == MYR_SKIP_FIELD_COUNT + 1)
      snprintf(out, cap, "line %llu: expected %zu fields, got %u",
               (unsigned long long)line, c->n_cols, arg);
    else if (skip && arg >= 1 && arg <= c->n_cols)
      snprintf(out, cap, "line %llu: %s in column %s", (unsigned long long)line,
               myr_skip_reason_name(skip - 1), myr__csv_column_name(c->csv, arg - 1));
    else if (skip)
      snprintf(out, cap, "line %llu: %s", (unsigned long long)line,
               myr_skip_reason_name(skip - 1));
    else
      snprintf(out, cap, "line %llu: key column %s is not valid UTF-8",
               (unsigned long long)line, colname);
    return;
  }
  case MYR_MISS_MISSING_KEY:
    snprintf(out, cap, "line %llu: key column %s is empty or NA",
             (unsigned long long)line, colname);
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
    const char *t = cell_text(&b->columns[s->bad_col[j]], i, &tl);
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
  /* 3. Output lines in input order. */
  for (size_t j = 0; j < n; j++) {
    size_t i = s->lo + j;
    uint64_t row = b->first_row + i + 1;
    int st = s->status[j];
    put_keys(c, b, i, key_ok[j], out);
    put_u64(out, row);
    if (!st) {
      myr__buf_append(out, ",", 1);
      put_prediction(&c->models[s->gid[j]], s->pred + j * mo, probs, out);
      s->predicted++;
      continue;
    }
    int reason = st - 1;
    myr__buf_append(out, probs ? ",,," : ",,", probs ? 3 : 2);
    myr__buf_puts(out, miss_names[reason]);
    myr__buf_append(out, "\n", 1);
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
      if (c->keys.n > known)
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
    if (s->out.len && fwrite(s->out.data, 1, s->out.len, c->out) != s->out.len)
      return myr_error_set(err, MYR_EIO, "cannot write %s: %s", c->opt->out,
                           strerror(errno));
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

/* ------------------------------------------------------------------ output */

static int open_output(pctx *c, myr_error *err) {
  const char *path = c->opt->out;
  if (strcmp(path, "-") == 0) {
    c->out = stdout;
    return MYR_OK;
  }
  struct stat st;
  if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
    c->out = fopen(path, "wb"); /* a device or pipe: write it directly */
  } else {
    size_t n = strlen(path);
    c->tmp_path = myr__malloc(n + 5);
    if (!c->tmp_path)
      return myr_error_set(err, MYR_ENOMEM, "out of memory");
    memcpy(c->tmp_path, path, n);
    memcpy(c->tmp_path + n, ".tmp", 5);
    c->out = fopen(c->tmp_path, "wb");
  }
  if (!c->out)
    return myr_error_set(err, MYR_EIO, "cannot create %s: %s",
                         c->tmp_path ? c->tmp_path : path, strerror(errno));
  return MYR_OK;
}

/* Flush and close; on success move the temporary file into place. */
static int close_output(pctx *c, int ok, myr_error *err) {
  int rc = MYR_OK;
  if (!c->out)
    return MYR_OK;
  if (c->out == stdout) {
    if (fflush(stdout) != 0 && ok)
      rc = myr_error_set(err, MYR_EIO, "cannot write to stdout: %s", strerror(errno));
  } else if (fclose(c->out) != 0 && ok) {
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

static int validate(const myr_predict_options *o, myr_error *err) {
  if (!o || !o->input || !*o->input)
    return myr_error_set(err, MYR_EINVAL, "no input file given");
  if (!o->store || !*o->store)
    return myr_error_set(err, MYR_EINVAL, "no store given (--store)");
  if (!o->out || !*o->out)
    return myr_error_set(err, MYR_EINVAL, "no output given (--out)");
  if (o->delimiter && o->delimiter != ',' && o->delimiter != '\t' && o->delimiter != ';')
    return myr_error_set(err, MYR_EINVAL, "delimiter must be ',', tab or ';'");
  if (strcmp(o->out, "-") != 0 && strcmp(o->out, o->input) == 0)
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
  pr.bytes_done = myr__csv_bytes_read(c->csv);
  pr.bytes_total = myr__csv_bytes_total(c->csv);
  pr.rows_done = c->sum->rows_total;
  pr.seconds = t - t0;
  c->opt->progress(c->opt->progress_ud, &pr);
}

static int predict_all(pctx *c, myr_error *err) {
  const myr_predict_options *o = c->opt;
  myr_store_info info;
  MYR_RETURN_NOT_OK(myr_store_open(o->store, MYR_STORE_READONLY, &c->store, err));
  /* One snapshot for the whole run: every key is scored with the same published
     version, and the many key lookups skip SQLite's per-query locking. */
  MYR_RETURN_NOT_OK(myr_store_snapshot_begin(c->store, err));
  MYR_RETURN_NOT_OK(myr_store_get_info(c->store, &info, err));
  if (info.n_keys == 0 || info.latest_run == 0)
    return myr_error_set(err, MYR_ENODATA, "store %s has no published models", o->store);
  if (info.n_keys > MAX_KEYS)
    return myr_error_set(err, MYR_EUNSUPPORTED,
                         "store %s has %zu key columns; at most %d", o->store,
                         info.n_keys, MAX_KEYS);
  c->n_keys = info.n_keys;
  c->key_names = info.key_names;

  myr__csv_options copt;
  memset(&copt, 0, sizeof copt);
  copt.delimiter = o->delimiter;
  MYR_RETURN_NOT_OK(myr__csv_open(o->input, &copt, &c->csv, err));
  c->n_cols = myr__csv_n_columns(c->csv);
  MYR_RETURN_NOT_OK(resolve_keys(c, err));
  MYR_RETURN_NOT_OK(load_runs(c, err));
  MYR_RETURN_NOT_OK(select_columns(c, err));

  MYR_RETURN_NOT_OK(myr__pool_create(o->n_threads, &c->pool, err));
  c->sum->n_threads = myr__pool_size(c->pool);
  c->n_slices = myr__pool_size(c->pool);
  c->slices = myr__calloc(c->n_slices, sizeof *c->slices);
  if (!c->slices)
    return myr_error_set(err, MYR_ENOMEM, "out of memory");

  MYR_RETURN_NOT_OK(open_output(c, err));
  MYR_RETURN_NOT_OK(write_header(c, err));
  double t0 = myr__now(), last = 0;
  for (;;) {
    const myr__batch *b = NULL;
    MYR_RETURN_NOT_OK(myr__csv_next(c->csv, &b, err));
    if (!b)
      break;
    MYR_RETURN_NOT_OK(process_batch(c, b, err));
    if (o->cancel && *o->cancel)
      return myr_error_set(err, MYR_ECANCELED, "canceled after %llu rows of %s",
                           (unsigned long long)c->sum->rows_total, o->input);
    report(c, t0, &last, 0);
  }
  report(c, t0, &last, 1);
  return MYR_OK;
}

int myr_predict(const myr_predict_options *opt, myr_predict_summary *summary_out,
                myr_error *err) {
  myr_predict_summary local = {0};
  myr_predict_summary *s = summary_out ? summary_out : &local;
  memset(s, 0, sizeof *s);
  double t_start = myr__now();
  MYR_RETURN_NOT_OK(validate(opt, err));

  pctx c;
  memset(&c, 0, sizeof c);
  c.opt = opt;
  c.sum = s;
  myr__keytab_init(&c.keys);
  myr__arena_init(&c.arena, 256 * 1024);
  myr__buf_init(&c.keyvals);

  int rc = predict_all(&c, err);
  int rc_close = close_output(&c, rc == MYR_OK, err);
  if (rc == MYR_OK)
    rc = rc_close;

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
  myr__arena_free(&c.arena);
  myr__buf_free(&c.keyvals);
  myr__csv_close(c.csv);
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
