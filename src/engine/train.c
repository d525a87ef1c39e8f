/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The training run: ingest -> group -> fit -> store -> publish.
 *
 * 1-2. Ingest and grouping (ingest.c) leave every group's rows contiguous.
 * 3. Groups are ordered largest first and fitted by the pool; each worker owns an arena
 *    reset after every group. A finished group is published to a completion list
 *    (slot claimed with fetch-add, then a release flag) that the calling thread drains in
 *    order, writing models and errors to the store while the workers keep fitting.
 * 4. The run is published in one store transaction.
 * Every task completes, even after an abort (store failure, cancel), so the drain loop
 * always terminates.
 */
#include "myriad/train.h"

#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/hash.h"
#include "core/pool.h"
#include "core/text.h"
#include "engine/train_int.h"
#include "io/arrow.h"
#include "myriad/blob.h"
#include "myriad/store.h"
#include "store/blob.h"

const char *const myr__skip_names[MYR_SKIP__COUNT] = {
    "field_count", "bad_quoting",   "nul_byte",        "blank_line",
    "missing_key", "invalid_key",   "missing_label",   "missing_feature",
    "non_numeric", "non_finite",    "group_failed"};

static const char *const failure_names[MYR_FAIL__COUNT] = {"too_few_rows", "model_error",
                                                           "out_of_memory"};

const char *myr_skip_reason_name(int r) {
  return r >= 0 && r < MYR_SKIP__COUNT ? myr__skip_names[r] : "unknown";
}

const char *myr_group_failure_name(int f) {
  return f >= 0 && f < MYR_FAIL__COUNT ? failure_names[f] : "unknown";
}

void myr__report(run *r, myr_progress *pr, double *last, double t0, int force) {
  if (!r->opt->progress)
    return;
  double t = myr__now();
  if (!force && t - *last < 0.1)
    return;
  *last = t;
  pr->seconds = t - t0;
  r->opt->progress(r->opt->progress_ud, pr);
}

/* ------------------------------------------------------------------ fitting */

static void regression_metrics(const double *y, const double *pred, size_t n, double *r2,
                               double *rmse, double *mae) {
  double mean = 0, ss_tot = 0, ss_res = 0, abs_sum = 0;
  for (size_t i = 0; i < n; i++)
    mean += y[i];
  mean /= (double)n;
  for (size_t i = 0; i < n; i++) {
    double d = y[i] - pred[i], t = y[i] - mean;
    ss_res += d * d;
    ss_tot += t * t;
    abs_sum += fabs(d);
  }
  /* As scikit-learn's r2_score: a constant target scores 1 if predicted exactly, else 0. */
  if (ss_tot > 0)
    *r2 = 1.0 - ss_res / ss_tot;
  else
    *r2 = ss_res == 0 ? 1.0 : 0.0;
  *rmse = sqrt(ss_res / (double)n);
  *mae = abs_sum / (double)n;
}

/* Accuracy and log-loss of per-class probabilities (rows of n_out) against labels y. */
static void classification_metrics(const double *y, const double *prob, size_t n,
                                   size_t n_out, const double *classes, double *accuracy,
                                   double *log_loss) {
  const double eps = 2.220446049250313e-16; /* float64 machine epsilon, as scikit-learn */
  size_t right = 0;
  double loss = 0;
  for (size_t i = 0; i < n; i++) {
    const double *p = prob + i * n_out;
    size_t best = 0;
    double py = 0;
    for (size_t c = 0; c < n_out; c++) {
      if (p[c] > p[best])
        best = c;
      if (classes[c] == y[i])
        py = p[c];
    }
    right += classes[best] == y[i];
    py = py < eps ? eps : py > 1 - eps ? 1 - eps : py;
    loss -= log(py);
  }
  *accuracy = (double)right / (double)n;
  *log_loss = loss / (double)n;
}

/* Predict d's rows and write its metrics: held-out ones when held is set, else the
   train_* ones. */
static int score(const myr_model_family *f, const void *model, const double *classes,
                 size_t n_out, const myr_dataset *d, double *pred, double *metric,
                 int held, myr_error *err) {
  int rc = f->predict(model, d->x, d->n_rows, d->n_features, pred, err);
  if (rc != MYR_OK)
    return rc;
  if (classes) {
    classification_metrics(d->y, pred, d->n_rows, n_out, classes,
                           &metric[held ? MYR__M_ACCURACY : MYR__M_TRAIN_ACCURACY],
                           &metric[held ? MYR__M_LOG_LOSS : MYR__M_TRAIN_LOG_LOSS]);
  } else if (held) {
    regression_metrics(d->y, pred, d->n_rows, &metric[MYR__M_R2], &metric[MYR__M_RMSE],
                       &metric[MYR__M_MAE]);
  } else {
    double mae;
    regression_metrics(d->y, pred, d->n_rows, &metric[MYR__M_TRAIN_R2],
                       &metric[MYR__M_TRAIN_RMSE], &mae);
  }
  return MYR_OK;
}

static void set_failure(myr__result *res, int failure, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static void set_failure(myr__result *res, int failure, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  res->status = MYR__RES_FAILED;
  res->failure = (uint8_t)failure;
  res->message = myr__strdup(msg); /* NULL on OOM: the drain uses the reason name */
}

static void fit_group(run *r, uint32_t g, myr__worker *w, myr__result *res) {
  const myr_model_family *f = r->family;
  const size_t p = r->p;
  const size_t n = r->keys.count[g];
  myr__arena *a = &w->arena;
  myr_scratch scratch = myr__arena_scratch(a);
  myr_error err = {0};

  if (n < r->need_rows) {
    set_failure(res, MYR_FAIL_TOO_FEW_ROWS, "%zu rows, needs at least %zu", n, r->need_rows);
    return;
  }
  /* Gather the group's rows (into memory the arena reuses). */
  double *xg = myr__arena_alloc(a, n * p * sizeof *xg, sizeof *xg);
  double *yg = myr__arena_alloc(a, n * sizeof *yg, sizeof *yg);
  if (!xg || !yg) {
    set_failure(res, MYR_FAIL_NO_MEMORY, "out of memory gathering %zu rows", n);
    return;
  }
  const uint64_t *ref = r->ref + r->offset[g];
  for (size_t i = 0; i < n; i++) {
    const myr__row_chunk *c = r->chunks[ref[i] >> 32];
    size_t j = (uint32_t)ref[i];
    double *to = xg + i * p;
    yg[i] = c->ycol ? c->ycol[j] : c->y[j];
    myr__row_features(c->fcol, c->x, j, p, to);
  }
  const double *x = xg, *y = yg;
  uint64_t seed = myr__key_seed(r->opt->seed, r->keys.hash[g]);
  size_t n_hold = 0;
  if (r->opt->holdout > 0) {
    n_hold = (size_t)ceil(r->opt->holdout * (double)n);
    if (n - n_hold < r->need_rows)
      n_hold = n - r->need_rows;
  }
  myr_dataset train = {n, p, x, y};
  const double *xh = NULL, *yh = NULL;
  if (n_hold > 0) {
    /* Hold out n_hold rows drawn with the key's own seed; both parts keep input order. */
    uint32_t *idx = myr__arena_alloc(a, n * sizeof *idx, sizeof *idx);
    unsigned char *held = myr__arena_alloc(a, n, 1);
    double *xt = myr__arena_alloc(a, (n - n_hold) * p * sizeof *xt, sizeof *xt);
    double *yt = myr__arena_alloc(a, (n - n_hold) * sizeof *yt, sizeof *yt);
    double *xhh = myr__arena_alloc(a, n_hold * p * sizeof *xhh, sizeof *xhh);
    double *yhh = myr__arena_alloc(a, n_hold * sizeof *yhh, sizeof *yhh);
    if (!idx || !held || !xt || !yt || !xhh || !yhh) {
      set_failure(res, MYR_FAIL_NO_MEMORY, "out of memory splitting %zu rows", n);
      return;
    }
    myr__rng rng;
    myr__rng_seed(&rng, seed ^ 0x686f6c646f7574ULL);
    for (size_t i = 0; i < n; i++) {
      idx[i] = (uint32_t)i;
      held[i] = 0;
    }
    for (size_t i = 0; i < n_hold; i++) {
      size_t j = i + (size_t)myr__rng_below(&rng, n - i);
      uint32_t t = idx[i];
      idx[i] = idx[j];
      idx[j] = t;
      held[idx[i]] = 1;
    }
    size_t it = 0, ih = 0;
    for (size_t i = 0; i < n; i++) {
      if (held[i]) {
        memcpy(xhh + ih * p, x + i * p, p * sizeof *x);
        yhh[ih++] = y[i];
      } else {
        memcpy(xt + it * p, x + i * p, p * sizeof *x);
        yt[it++] = y[i];
      }
    }
    train.n_rows = n - n_hold;
    train.x = xt;
    train.y = yt;
    xh = xhh;
    yh = yhh;
  }
  void *model = NULL;
  int rc = f->fit(r->params, &train, seed, &scratch, &model, &err);
  if (rc != MYR_OK) {
    set_failure(res, rc == MYR_ENOMEM ? MYR_FAIL_NO_MEMORY : MYR_FAIL_MODEL, "%s",
                err.message[0] ? err.message : myr_status_name(rc));
    return;
  }
  size_t n_pred = train.n_rows > n_hold ? train.n_rows : n_hold;
  size_t n_out = f->n_outputs ? f->n_outputs(model) : 1;
  const double *classes = f->class_values ? f->class_values(model) : NULL;
  double *pred = n_out && n_pred <= SIZE_MAX / sizeof *pred / n_out
                     ? myr__arena_alloc(a, n_pred * n_out * sizeof *pred, sizeof *pred)
                     : NULL;
  if (!pred) {
    set_failure(res, MYR_FAIL_NO_MEMORY, "out of memory scoring %zu rows", n_pred);
    return;
  }
  for (int m = 0; m < MYR__M_COUNT; m++)
    res->metric[m] = NAN;
  if (f->task == MYR_TASK_REGRESSION || classes) {
    rc = score(f, model, classes, n_out, &train, pred, &res->metric[0], 0, &err);
    if (rc == MYR_OK && n_hold > 0) {
      myr_dataset held = {n_hold, p, xh, yh};
      rc = score(f, model, classes, n_out, &held, pred, &res->metric[0], 1, &err);
    }
    if (rc != MYR_OK) {
      set_failure(res, MYR_FAIL_MODEL, "scoring failed: %s", err.message);
      return;
    }
  }
  rc = myr__blob_encode(f, model, p, r->schema_hash, &res->blob, &res->blob_len, &err);
  if (rc != MYR_OK) {
    set_failure(res, rc == MYR_ENOMEM ? MYR_FAIL_NO_MEMORY : MYR_FAIL_MODEL, "%s",
                err.message);
    return;
  }
  res->status = MYR__RES_OK;
  res->n_train = (uint32_t)train.n_rows;
  res->n_hold = (uint32_t)n_hold;
}

static int fit_task(void *ctx, size_t task, unsigned wi) {
  run *r = ctx;
  myr__result *res = &r->results[task];
  uint32_t g = r->order[task];
  if (atomic_load_explicit(&r->abort, memory_order_relaxed) ||
      (r->opt->cancel && *r->opt->cancel)) {
    res->status = MYR__RES_ABORTED;
  } else if (r->resumed && r->resumed[g]) {
    res->status = MYR__RES_RESUMED;
  } else {
    fit_group(r, g, &r->workers[wi], res);
    myr__arena_reset(&r->workers[wi].arena);
  }
  size_t slot = atomic_fetch_add_explicit(&r->done_tail, 1, memory_order_relaxed);
  r->done_list[slot] = (uint32_t)task;
  atomic_store_explicit(&r->ready[slot], 1, memory_order_release);
  return MYR_OK;
}

/* ------------------------------------------------------------------ storing */

static void metrics_json(myr__buf *b, const myr__result *res) {
  static const char *const names[MYR__M_COUNT] = {
      "r2",       "rmse",     "mae",           "train_r2",      "train_rmse",
      "accuracy", "log_loss", "train_accuracy", "train_log_loss"};
  myr__buf_reset(b);
  myr__buf_puts(b, "{");
  int first = 1;
  for (int m = 0; m < MYR__M_COUNT; m++) {
    if (isnan(res->metric[m]))
      continue;
    /* 12 significant digits without printf: formatting showed up in profiles. */
    if (!first)
      myr__buf_append(b, ",", 1);
    myr__buf_append(b, "\"", 1);
    myr__buf_puts(b, names[m]);
    myr__buf_append(b, "\":", 2);
    myr__buf_num12(b, res->metric[m]);
    first = 0;
  }
  myr__buf_puts(b, "}");
}

/* Write one finished group to the store and the summary; frees its buffers. */
static int drain_one(run *r, myr_store *store, int64_t run_id, size_t task, myr__buf *mj,
                     myr_error *err) {
  myr__result *res = &r->results[task];
  uint32_t g = r->order[task];
  myr_train_summary *s = r->sum;
  size_t klen;
  const unsigned char *enc = myr__keytab_key(&r->keys, g, &klen);
  const char *kv[64];
  size_t kl[64];
  int rc = MYR_OK;
  size_t n_keys = r->opt->n_keys;
  if (!myr__key_split(enc, klen, n_keys, kv, kl)) {
    rc = myr_error_set(err, MYR_EINTERNAL, "key encoding damaged for group %u", g);
    goto done;
  }
  if (res->status == MYR__RES_RESUMED) {
    s->groups_trained++;
    s->groups_resumed++;
    s->rows_used += r->keys.count[g];
  } else if (res->status == MYR__RES_OK) {
    s->groups_trained++;
    s->rows_used += r->keys.count[g];
    if (store || r->opt->results) {
      metrics_json(mj, res);
      if (mj->failed) {
        rc = myr_error_set(err, MYR_ENOMEM, "out of memory formatting metrics");
        goto done;
      }
    }
    if (r->opt->results && !(res->metrics = myr__strdup(myr__buf_str(mj)))) {
      rc = myr_error_set(err, MYR_ENOMEM, "out of memory keeping results");
      goto done;
    }
    if (store) {
      myr_model_row row = {r->keys.hash[g], kv, kl, res->n_train, res->n_hold,
                           myr__buf_str(mj), res->blob, res->blob_len};
      rc = myr_store_put_model(store, run_id, &row, err);
    }
  } else if (res->status == MYR__RES_FAILED) {
    s->groups_failed++;
    s->failed[res->failure]++;
    s->skipped[MYR_SKIP_GROUP_FAILED] += r->keys.count[g];
    const char *msg = res->message ? res->message : myr_group_failure_name(res->failure);
    if (!s->failed_example[res->failure][0]) {
      char key[160];
      myr__key_format(enc, klen, n_keys, key, sizeof key);
      snprintf(s->failed_example[res->failure], sizeof s->failed_example[0], "key %s: %s",
               key, msg);
      myr_skip_example *ex = &s->skip_example[MYR_SKIP_GROUP_FAILED];
      if (!ex->row)
        snprintf(ex->detail, sizeof ex->detail, "key %s: %s", key, msg);
    }
    if (store) {
      myr_error_row row = {r->keys.hash[g], kv, kl, r->keys.count[g],
                           myr_group_failure_name(res->failure), msg};
      rc = myr_store_put_error(store, run_id, &row, err);
    }
  }
done:
  if (rc != MYR_OK || !r->opt->results) { /* else kept for build_results */
    myr__free(res->blob);
    myr__free(res->message);
    myr__free(res->metrics);
    res->blob = NULL;
    res->message = NULL;
    res->metrics = NULL;
  }
  return rc;
}

static int train_groups(run *r, myr_store *store, int64_t run_id, myr_error *err) {
  size_t n_tasks = r->keys.n;
  unsigned n_threads = myr__pool_size(r->pool);
  r->results = myr__calloc(n_tasks, sizeof *r->results);
  r->done_list = myr__calloc(n_tasks, sizeof *r->done_list);
  r->ready = myr__calloc(n_tasks, sizeof *r->ready);
  if (!r->workers && (r->workers = myr__calloc(n_threads, sizeof *r->workers)) != NULL)
    for (unsigned i = 0; i < n_threads; i++)
      myr__arena_init(&r->workers[i].arena, 64 * 1024);
  if (!r->results || !r->done_list || !r->ready || !r->workers)
    return myr_error_set(err, MYR_ENOMEM, "out of memory preparing %zu groups", n_tasks);
  atomic_init(&r->done_tail, 0);
  atomic_init(&r->abort, 0);

  myr__buf mj;
  myr__buf_init(&mj);
  myr_progress pr = {0};
  pr.phase = 2;
  pr.groups_total = r->groups_before + n_tasks;
  pr.loads_done = r->sum->spill_loads ? r->sum->spill_loads - 1 : 0;
  pr.loads_total = r->loads_total;
  double t0 = myr__now(), last = 0;
  int rc = MYR_OK;
  /* With one thread the calling thread fits and stores each group in turn, so that
     --threads 1 uses one core; otherwise the pool fits while this thread stores. */
  const int inline_fit = n_threads == 1;
  if (!inline_fit)
    myr__pool_start(r->pool, n_tasks, fit_task, r);
  size_t next = 0, fitted = 0;
  uint64_t rows_done = 0; /* rows of the groups drained so far */
  while (next < n_tasks) {
    if (inline_fit && fitted == next)
      fit_task(r, fitted++, 0);
    if (atomic_load_explicit(&r->ready[next], memory_order_acquire)) {
      size_t task = r->done_list[next++];
      rows_done += r->keys.count[r->order[task]];
      if (rc == MYR_OK) {
        rc = drain_one(r, store, run_id, task, &mj, err);
        if (rc != MYR_OK)
          atomic_store(&r->abort, 1);
      } else {
        myr__free(r->results[task].blob);
        myr__free(r->results[task].message);
        r->results[task].blob = NULL;
        r->results[task].message = NULL;
      }
      if ((next & 255) != 0)
        continue;
    } else {
      struct timespec ts = {0, 1000000}; /* 1 ms: fewer wake-ups taking a core */
      nanosleep(&ts, NULL);
    }
    if (rc == MYR_OK && r->opt->cancel && *r->opt->cancel) {
      rc = myr_error_set(err, MYR_ECANCELED, "canceled after %zu of %zu groups", next,
                         n_tasks);
      atomic_store(&r->abort, 1);
    }
    pr.groups_done = r->groups_before + next;
    pr.rows_done = r->rows_before + rows_done;
    myr__report(r, &pr, &last, t0, 0);
  }
  if (!inline_fit)
    myr__pool_wait(r->pool);
  /* A cancel seen only by the workers (tasks completed as aborted) still fails the run. */
  if (rc == MYR_OK && r->opt->cancel && *r->opt->cancel)
    rc = myr_error_set(err, MYR_ECANCELED, "canceled after %zu of %zu groups", next,
                       n_tasks);
  pr.groups_done = r->groups_before + next;
  pr.rows_done = r->rows_before + rows_done;
  myr__report(r, &pr, &last, t0, 1);
  myr__buf_free(&mj);
  r->groups_before += n_tasks;
  r->rows_before += rows_done;
  return rc;
}

/* ------------------------------------------------------------------ results */

#define RESULT_BATCH_ROWS 65536
#define RESULT_BATCH_BYTES ((size_t)1 << 30) /* model bytes per batch (int32 offsets) */

static const char *const result_columns[] = {"model", "n_rows",  "metrics", "status",
                                             "error", "features"};
enum { RC_MODEL, RC_N_ROWS, RC_METRICS, RC_STATUS, RC_ERROR, RC_FEATURES, RC__COUNT };

static int results_flush(myr__arrow_builder *b, myr__arrow_list *l, myr_error *err) {
  struct ArrowArray a;
  a.release = NULL;
  MYR_RETURN_NOT_OK(myr__arrow_builder_finish(b, NULL, &a, err));
  return myr__arrow_list_push(l, &a, err);
}

static int append_text(myr__arrow_builder *b, size_t c, const char *t) {
  return t ? myr__arrow_append_bytes(b, c, t, strlen(t)) : myr__arrow_append_null(b, c);
}

/* The results stream (train.h): one row per group in group id order, i.e. in order of
   each key's first row. Frees each group's kept blob, metrics and message as it goes. */
static int build_results(run *r, struct ArrowArrayStream *out, myr_error *err) {
  const size_t nk = r->opt->n_keys, ncol = nk + RC__COUNT, n_groups = r->keys.n;
  const char *names[16 + RC__COUNT];
  int types[16 + RC__COUNT];
  for (size_t k = 0; k < nk; k++) {
    names[k] = r->opt->keys[k];
    types[k] = MYR__ARROW_UTF8;
  }
  static const int rtypes[RC__COUNT] = {MYR__ARROW_BINARY, MYR__ARROW_I64, MYR__ARROW_UTF8,
                                        MYR__ARROW_UTF8,   MYR__ARROW_UTF8, MYR__ARROW_UTF8};
  for (size_t c = 0; c < RC__COUNT; c++) {
    names[nk + c] = result_columns[c];
    types[nk + c] = rtypes[c];
  }
  myr__arrow_builder *b = NULL;
  myr__arrow_list *l = NULL;
  uint32_t *task_of = NULL;
  myr__buf feats;
  myr__buf_init(&feats);
  struct ArrowSchema schema;
  schema.release = NULL;
  int rc = myr__arrow_builder_new(ncol, names, types, &b, err);
  if (rc == MYR_OK)
    rc = myr__arrow_builder_schema(b, &schema, err);
  if (rc == MYR_OK)
    rc = myr__arrow_list_new(&schema, &l, err);
  if (rc != MYR_OK)
    goto done;
  task_of = myr__calloc(n_groups ? n_groups : 1, sizeof *task_of);
  myr__buf_puts(&feats, "[");
  for (size_t f = 0; f < r->p; f++) {
    if (f)
      myr__buf_puts(&feats, ",");
    myr__buf_json_str(&feats, r->feat_name[f], strlen(r->feat_name[f]));
  }
  myr__buf_puts(&feats, "]");
  if (!task_of || feats.failed) {
    rc = myr_error_set(err, MYR_ENOMEM, "out of memory building results");
    goto done;
  }
  for (size_t t = 0; t < n_groups; t++)
    task_of[r->order[t]] = (uint32_t)t;
  for (size_t g = 0; g < n_groups && rc == MYR_OK; g++) {
    myr__result *res = &r->results[task_of[g]];
    size_t klen;
    const unsigned char *enc = myr__keytab_key(&r->keys, (uint32_t)g, &klen);
    const char *kv[16];
    size_t kl[16];
    if (!myr__key_split(enc, klen, nk, kv, kl)) {
      rc = myr_error_set(err, MYR_EINTERNAL, "key encoding damaged for group %zu", g);
      break;
    }
    size_t rows = myr__arrow_builder_rows(b);
    if (rows > 0 && (rows >= RESULT_BATCH_ROWS ||
                     myr__arrow_builder_data_bytes(b, nk + RC_MODEL) + res->blob_len >
                         RESULT_BATCH_BYTES)) {
      if ((rc = results_flush(b, l, err)) != MYR_OK)
        break;
    }
    int ok = res->status == MYR__RES_OK;
    int a = MYR_OK;
    for (size_t k = 0; k < nk && a == MYR_OK; k++)
      a = myr__arrow_append_bytes(b, k, kv[k], kl[k]);
    if (a == MYR_OK)
      a = ok ? myr__arrow_append_bytes(b, nk + RC_MODEL, res->blob, res->blob_len)
             : myr__arrow_append_null(b, nk + RC_MODEL);
    if (a == MYR_OK)
      a = myr__arrow_append_i64(b, nk + RC_N_ROWS, (int64_t)r->keys.count[g]);
    if (a == MYR_OK)
      a = append_text(b, nk + RC_METRICS, ok ? (res->metrics ? res->metrics : "{}") : NULL);
    if (a == MYR_OK)
      a = append_text(b, nk + RC_STATUS, ok ? "trained" : myr_group_failure_name(res->failure));
    if (a == MYR_OK)
      a = append_text(b, nk + RC_ERROR,
                      ok ? NULL : res->message ? res->message
                                               : myr_group_failure_name(res->failure));
    if (a == MYR_OK)
      a = myr__arrow_append_bytes(b, nk + RC_FEATURES, feats.data, feats.len);
    if (a != MYR_OK)
      rc = myr_error_set(err, a, "%s building the results of %zu groups",
                         a == MYR_ENOMEM ? "out of memory" : "a value too large", n_groups);
    myr__free(res->blob);
    myr__free(res->message);
    myr__free(res->metrics);
    res->blob = NULL;
    res->message = NULL;
    res->metrics = NULL;
  }
  if (rc == MYR_OK && myr__arrow_builder_rows(b) > 0)
    rc = results_flush(b, l, err);
  if (rc == MYR_OK) {
    myr__arrow_list_stream(l, out);
    l = NULL;
  }
done:
  if (schema.release)
    schema.release(&schema);
  myr__arrow_list_free(l);
  myr__arrow_builder_free(b);
  myr__free(task_of);
  myr__buf_free(&feats);
  return rc;
}

/* ------------------------------------------------------------------ the run */

static int parse_params(run *r, myr_error *err) {
  const myr_model_family *f = r->family;
  r->params = myr__calloc(1, f->params_size ? f->params_size : 1);
  if (!r->params)
    return myr_error_set(err, MYR_ENOMEM, "out of memory");
  f->params_init(r->params);
  const char *s = r->opt->params;
  if (!s)
    return MYR_OK;
  char *copy = myr__strdup(s);
  if (!copy)
    return myr_error_set(err, MYR_ENOMEM, "out of memory");
  int rc = MYR_OK;
  char *save = NULL;
  for (char *item = strtok_r(copy, ",", &save); item && rc == MYR_OK;
       item = strtok_r(NULL, ",", &save)) {
    while (*item == ' ')
      item++;
    if (!*item)
      continue;
    char *eq = strchr(item, '=');
    if (!eq || eq == item) {
      rc = myr_error_set(err, MYR_EINVAL, "parameter '%s' is not of the form key=value", item);
      break;
    }
    *eq = '\0';
    char *v = eq + 1;
    for (char *e = eq - 1; e > item && *e == ' '; e--)
      *e = '\0';
    while (*v == ' ')
      v++;
    for (size_t n = strlen(v); n > 0 && v[n - 1] == ' '; n--)
      v[n - 1] = '\0';
    rc = f->params_set(r->params, item, v, err);
  }
  myr__free(copy);
  return rc;
}

/* Key hashes of the models an interrupted attempt of a run stored, sorted. */
static int add_hash(void *ud, uint64_t key_hash) {
  run *r = ud;
  if (r->n_stored == r->cap_stored) {
    size_t cap = r->cap_stored ? 2 * r->cap_stored : 1024;
    uint64_t *h = myr__reallocarray(r->stored, cap, sizeof *h);
    if (!h)
      return MYR_ENOMEM;
    r->stored = h;
    r->cap_stored = cap;
  }
  r->stored[r->n_stored++] = key_hash;
  return MYR_OK;
}

static int read_stored(run *r, myr_store *store, int64_t run_id, myr_error *err) {
  int rc = myr_store_run_keys(store, run_id, add_hash, r, err);
  if (rc == MYR_ENOMEM)
    rc = myr_error_set(err, MYR_ENOMEM, "out of memory reading run %lld's keys",
                       (long long)run_id);
  if (rc == MYR_OK && r->n_stored)
    qsort(r->stored, r->n_stored, sizeof *r->stored, myr__cmp_u64);
  r->resuming = rc == MYR_OK;
  return rc;
}

/* Flag the groups whose models an earlier attempt stored (r->resumed). */
static int mark_resumed(run *r, myr_error *err) {
  if (!(r->resumed = myr__calloc(r->keys.n ? r->keys.n : 1, 1)))
    return myr_error_set(err, MYR_ENOMEM, "out of memory resuming a run");
  for (size_t g = 0; g < r->keys.n && r->n_stored; g++)
    r->resumed[g] = bsearch(&r->keys.hash[g], r->stored, r->n_stored, sizeof *r->stored,
                            myr__cmp_u64) != NULL;
  return MYR_OK;
}

/* Free what training the current groups allocated (results, completion list). */
static void train_state_free(run *r, size_t n_groups) {
  if (r->results)
    for (size_t i = 0; i < n_groups; i++) {
      myr__free(r->results[i].blob);
      myr__free(r->results[i].message);
      myr__free(r->results[i].metrics);
    }
  myr__free(r->results);
  myr__free(r->done_list);
  myr__free((void *)r->ready);
  myr__free(r->resumed);
  r->results = NULL;
  r->done_list = NULL;
  r->ready = NULL;
  r->resumed = NULL;
}

/* Group the rows in memory, then fit and store their groups. */
static int train_load(run *r, myr_store *store, int64_t run_id, myr_error *err) {
  double t = myr__now();
  MYR_RETURN_NOT_OK(myr__group_rows(r, err));
  if (r->resuming)
    MYR_RETURN_NOT_OK(mark_resumed(r, err));
  r->sum->seconds_group += myr__now() - t;
  t = myr__now();
  int rc = train_groups(r, store, run_id, err);
  r->sum->seconds_train += myr__now() - t;
  return rc;
}

/* Bytes partition i takes as a load: its rows as read back, plus group ids and
   grouping references. */
static uint64_t part_load_bytes(const myr__spill *sp, unsigned i) {
  return myr__spill_part_bytes(sp, i) + 12 * myr__spill_part_rows(sp, i);
}

/* The end of the load that starts at partition first: as many whole partitions as fit
   in budget, at least one. */
static unsigned load_end(const myr__spill *sp, unsigned first, uint64_t budget) {
  const unsigned n_parts = myr__spill_parts(sp);
  unsigned last = first + 1;
  uint64_t bytes = part_load_bytes(sp, first);
  while (last < n_parts && bytes + part_load_bytes(sp, last) <= budget)
    bytes += part_load_bytes(sp, last++);
  return last;
}

/* Spill mode: read the partitions back a load at a time, each load as many whole
   partitions as fit in half the memory limit, and train them. */
static int train_spilled(run *r, myr_store *store, int64_t run_id, myr_error *err) {
  const myr__spill *sp = r->spill;
  const unsigned n_parts = myr__spill_parts(sp);
  const uint64_t budget = r->opt->memory_limit / 2;
  myr_train_summary *s = r->sum;
  r->loads_total = 0;
  for (unsigned i = 0; i < n_parts; i = load_end(sp, i, budget))
    r->loads_total++;
  int rc = MYR_OK;
  for (unsigned first = 0; first < n_parts && rc == MYR_OK;) {
    unsigned last = load_end(sp, first, budget);
    double t = myr__now();
    s->spill_loads++;
    rc = myr__load_read(r, first, last, err);
    s->seconds_read += myr__now() - t;
    size_t n_groups = r->keys.n;
    s->groups_total += n_groups;
    if (rc == MYR_OK && n_groups)
      rc = train_load(r, store, run_id, err);
    train_state_free(r, n_groups);
    myr__load_free(r);
    first = last;
  }
  return rc;
}

static void spec_json(run *r, myr__buf *b, const char *params) {
  const myr_train_options *o = r->opt;
  myr__buf_puts(b, "{\"input\":");
  myr__buf_json_str(b, r->input_name, strlen(r->input_name));
  myr__buf_puts(b, ",\"keys\":[");
  for (size_t k = 0; k < o->n_keys; k++) {
    if (k)
      myr__buf_puts(b, ",");
    myr__buf_json_str(b, o->keys[k], strlen(o->keys[k]));
  }
  myr__buf_puts(b, "],\"features\":[");
  for (size_t f = 0; f < r->p; f++) {
    if (f)
      myr__buf_puts(b, ",");
    myr__buf_json_str(b, r->feat_name[f], strlen(r->feat_name[f]));
  }
  myr__buf_puts(b, "],\"label\":");
  myr__buf_json_str(b, o->label, strlen(o->label));
  myr__buf_printf(b, ",\"model\":\"%s\",\"params\":", r->family->name);
  myr__buf_json_str(b, params, strlen(params));
  myr__buf_printf(b, ",\"seed\":%llu,\"min_rows\":%zu,\"holdout\":",
                  (unsigned long long)o->seed, r->need_rows);
  myr__buf_json_num(b, o->holdout);
  myr__buf_printf(b, ",\"schema_hash\":\"%016llx\"}", (unsigned long long)r->schema_hash);
}

static void summary_json(const myr_train_summary *s, myr__buf *b) {
  myr__buf_printf(
      b,
      "{\"run_id\":%lld,\"family\":\"%s\",\"n_features\":%zu,\"threads\":%u,"
      "\"rows_total\":%llu,\"rows_used\":%llu,\"rows_skipped\":%llu,"
      "\"groups_total\":%llu,\"groups_trained\":%llu,\"groups_failed\":%llu,"
      "\"groups_resumed\":%llu,%s\"skipped\":{",
      (long long)s->run_id, s->family, s->n_features, s->n_threads,
      (unsigned long long)s->rows_total, (unsigned long long)s->rows_used,
      (unsigned long long)s->rows_skipped, (unsigned long long)s->groups_total,
      (unsigned long long)s->groups_trained, (unsigned long long)s->groups_failed,
      (unsigned long long)s->groups_resumed,
      s->already_published ? "\"already_published\":true," : "");
  int first = 1;
  for (int i = 0; i < MYR_SKIP__COUNT; i++) {
    if (!s->skipped[i])
      continue;
    const myr_skip_example *ex = &s->skip_example[i];
    myr__buf_printf(b, "%s\"%s\":{\"rows\":%llu,\"first_row\":%llu,\"first_line\":%llu,"
                    "\"column\":",
                    first ? "" : ",", myr__skip_names[i], (unsigned long long)s->skipped[i],
                    (unsigned long long)ex->row, (unsigned long long)ex->line);
    myr__buf_json_str(b, ex->column, strlen(ex->column));
    myr__buf_puts(b, ",\"detail\":");
    myr__buf_json_str(b, ex->detail, strlen(ex->detail));
    myr__buf_puts(b, "}");
    first = 0;
  }
  myr__buf_puts(b, "},\"failed\":{");
  first = 1;
  for (int i = 0; i < MYR_FAIL__COUNT; i++) {
    if (!s->failed[i])
      continue;
    myr__buf_printf(b, "%s\"%s\":{\"groups\":%llu,\"first\":", first ? "" : ",",
                    failure_names[i], (unsigned long long)s->failed[i]);
    myr__buf_json_str(b, s->failed_example[i], strlen(s->failed_example[i]));
    myr__buf_puts(b, "}");
    first = 0;
  }
  myr__buf_puts(b, "}");
  if (s->spill_rows)
    myr__buf_printf(b,
                    ",\"spill\":{\"rows\":%llu,\"bytes\":%llu,\"partitions\":%u,"
                    "\"loads\":%u}",
                    (unsigned long long)s->spill_rows, (unsigned long long)s->spill_bytes,
                    s->spill_parts, s->spill_loads);
  if (s->store_models)
    myr__buf_printf(b, ",\"store\":{\"bytes\":%llu,\"models\":%llu}",
                    (unsigned long long)s->store_bytes,
                    (unsigned long long)s->store_models);
  myr__buf_printf(b,
                  ",\"seconds_read\":%.6f,\"seconds_group\":%.6f,\"seconds_train\":%.6f,"
                  "\"seconds_publish\":%.6f,"
                  "\"seconds_total\":%.6f}",
                  s->seconds_read, s->seconds_group, s->seconds_train, s->seconds_publish,
                  s->seconds_total);
}

int myr_train_summary_json(const myr_train_summary *s, myr_write_fn write, void *ud,
                           myr_error *err) {
  myr__buf b;
  myr__buf_init(&b);
  summary_json(s, &b);
  int rc = b.failed ? myr_error_set(err, MYR_ENOMEM, "out of memory") : write(ud, b.data, b.len);
  myr__buf_free(&b);
  return rc;
}

static int validate(const myr_train_options *o, const struct ArrowArrayStream *in,
                    myr_error *err) {
  if (!o)
    return myr_error_set(err, MYR_EINVAL, "no options given");
  if (o->stream && !in)
    return myr_error_set(err, MYR_EINVAL, "the input Arrow stream is already released");
  if (!o->stream && (!o->input || !*o->input))
    return myr_error_set(err, MYR_EINVAL, "no input file given");
  if (!o->keys || o->n_keys == 0)
    return myr_error_set(err, MYR_EINVAL, "no key columns given (--keys)");
  if (o->n_keys > MYR__MAX_KEYS)
    return myr_error_set(err, MYR_EINVAL, "%zu key columns; at most %d are supported",
                         o->n_keys, MYR__MAX_KEYS);
  if (!o->label || !*o->label)
    return myr_error_set(err, MYR_EINVAL, "no label column given (--label)");
  if (o->resume && (!o->store || !*o->store))
    return myr_error_set(err, MYR_EINVAL, "resuming a run needs a store (--store)");
  if (o->resume && o->results)
    return myr_error_set(
        err, MYR_EUNSUPPORTED,
        "resuming a run cannot return results: read them from the store");
  if (o->memory_limit && o->results)
    return myr_error_set(
        err, MYR_EUNSUPPORTED,
        "a run with a memory limit cannot return results: read them from the store");
  if (!(o->holdout >= 0 && o->holdout < 1))
    return myr_error_set(err, MYR_EINVAL, "holdout must be in [0, 1), got %g", o->holdout);
  if (o->delimiter && o->delimiter != ',' && o->delimiter != '\t' && o->delimiter != ';')
    return myr_error_set(err, MYR_EINVAL, "delimiter must be ',', tab or ';'");
  for (size_t k = 0; k < o->n_keys && o->results; k++)
    for (size_t c = 0; c < RC__COUNT; c++)
      if (o->keys[k] && strcmp(o->keys[k], result_columns[c]) == 0)
        return myr_error_set(err, MYR_EUNSUPPORTED,
                             "key column '%s' has the name of a results column",
                             result_columns[c]);
  return MYR_OK;
}

int myr_train(const myr_train_options *opt, myr_train_summary *summary_out, myr_error *err) {
  myr_train_summary local = {0};
  myr_train_summary *s = summary_out ? summary_out : &local;
  memset(s, 0, sizeof *s);
  double t_start = myr__now();
  /* The input stream is ours from here on, whatever happens. */
  struct ArrowArrayStream in, results;
  in.release = NULL;
  results.release = NULL;
  if (opt && opt->stream && opt->stream->release) {
    in = *opt->stream;
    opt->stream->release = NULL;
  }
  int vrc = validate(opt, in.release ? &in : NULL, err);
  if (vrc != MYR_OK) {
    if (in.release)
      in.release(&in);
    return vrc;
  }

  run r;
  memset(&r, 0, sizeof r);
  r.opt = opt;
  r.sum = s;
  r.stream = in.release ? &in : NULL;
  r.input_name = opt->input && *opt->input ? opt->input : "<arrow stream>";
  myr__keytab_init(&r.keys);
  myr_store *store = NULL;
  int64_t run_id = 0;
  myr__buf spec, sj;
  myr__buf_init(&spec);
  myr__buf_init(&sj);
  int rc = MYR_OK;

  const char *model = opt->model ? opt->model : "linear";
  r.family = myr_registry_find(opt->registry, model);
  if (!r.family) {
    char names[256] = "";
    size_t pos = 0;
    for (size_t i = 0; i < myr_registry_count(opt->registry) && pos < sizeof names; i++) {
      int w = snprintf(names + pos, sizeof names - pos, "%s%s", i ? ", " : "",
                       myr_registry_at(opt->registry, i)->name);
      if (w < 0)
        break;
      pos += (size_t)w;
    }
    rc = myr_error_set(err, MYR_ENOTFOUND, "unknown model family '%s' (available: %s)", model,
                       names);
    goto done;
  }
  snprintf(s->family, sizeof s->family, "%s", r.family->name);
  if ((rc = parse_params(&r, err)) != MYR_OK)
    goto done;

  if ((rc = myr__pool_create(opt->n_threads, &r.pool, err)) != MYR_OK)
    goto done;
  s->n_threads = myr__pool_size(r.pool);
  /* Open the store first so that a bad path fails before a long read. */
  if (opt->store && (rc = myr_store_open(opt->store, 0, &store, err)) != MYR_OK)
    goto done;

  /* 1. read (and spill, over the memory limit) */
  if ((rc = myr__ingest(&r, err)) != MYR_OK)
    goto done;
  if (r.spill) {
    if ((rc = myr__spill_finish(r.spill, err)) != MYR_OK)
      goto done;
    s->spill_rows = myr__spill_rows_total(r.spill);
    s->spill_bytes = myr__spill_file_bytes(r.spill);
    s->spill_parts = myr__spill_parts(r.spill);
  }
  size_t fam_min = r.family->min_rows ? r.family->min_rows(r.params, r.p) : 1;
  r.need_rows = opt->min_rows > fam_min ? opt->min_rows : fam_min;
  if (r.need_rows == 0)
    r.need_rows = 1;
  s->groups_total = r.spill ? 0 : r.keys.n; /* spilled: counted load by load */
  if (s->rows_total == 0) {
    rc = myr_error_set(err, MYR_ENODATA, "%s: no data rows", r.input_name);
    goto done;
  }
  if (r.n_used_rows == 0) {
    rc = myr_error_set(err, MYR_ENODATA,
                       "%s: no usable rows: all %llu rows were skipped (see the summary)",
                       r.input_name, (unsigned long long)s->rows_total);
    goto done;
  }
  s->seconds_read = myr__now() - t_start;

  /* 2. group, fit and store */
  char params[512];
  r.family->params_format(r.params, params, sizeof params);
  spec_json(&r, &spec, params);
  if (spec.failed) {
    rc = myr_error_set(err, MYR_ENOMEM, "out of memory");
    goto done;
  }
  if (store) {
    myr_run_spec rs = {opt->keys, opt->n_keys, r.family->name, myr__buf_str(&spec), opt->seed};
    int64_t published = 0;
    if (opt->resume) {
      if ((rc = myr_store_run_resume(store, &rs, &run_id, &published, err)) != MYR_OK)
        goto done;
      if (published) {
        s->run_id = published;
        s->already_published = 1;
        goto done;
      }
      if (run_id && (rc = read_stored(&r, store, run_id, err)) != MYR_OK)
        goto done;
    }
    if (!run_id && (rc = myr_store_run_begin(store, &rs, &run_id, err)) != MYR_OK)
      goto done;
    s->run_id = run_id;
  }
  rc = r.spill ? train_spilled(&r, store, run_id, err)
               : train_load(&r, store, run_id, err);
  s->rows_skipped = s->rows_total - s->rows_used;
  if (rc != MYR_OK)
    goto done;
  if (opt->results && (rc = build_results(&r, &results, err)) != MYR_OK)
    goto done;

  /* 3. publish */
  if (store) {
    double t_pub = myr__now();
    if (opt->progress) {
      myr_progress pr = {0};
      pr.phase = 3;
      pr.groups_done = pr.groups_total = s->groups_total;
      opt->progress(opt->progress_ud, &pr);
    }
    summary_json(s, &sj);
    if (sj.failed) {
      rc = myr_error_set(err, MYR_ENOMEM, "out of memory");
      goto done;
    }
    rc = myr_store_run_publish(store, run_id, myr__buf_str(&sj), err);
    s->seconds_publish = myr__now() - t_pub;
    myr_store_info info;
    myr_error ignored = {0}; /* the run is published: a failure here only loses figures */
    if (rc == MYR_OK && myr_store_get_info(store, &info, &ignored) == MYR_OK) {
      s->store_bytes = info.file_bytes;
      s->store_models = info.n_models;
    }
  }

  if (rc == MYR_OK && opt->results) {
    *opt->results = results; /* moved to the caller */
    results.release = NULL;
  }

done:
  if (results.release)
    results.release(&results);
  if (rc != MYR_OK && store && run_id) {
    myr_error ignored = {0};
    myr_store_run_fail(store, run_id, err ? err->message : myr_status_name(rc), &ignored);
  }
  s->rows_skipped = s->rows_total - s->rows_used;
  myr_store_close(store);
  myr__pool_destroy(r.pool);
  if (r.workers)
    for (unsigned i = 0; i < s->n_threads; i++)
      myr__arena_free(&r.workers[i].arena);
  train_state_free(&r, r.keys.n);
  myr__free(r.workers);
  myr__free(r.stored);
  myr__ingest_free(&r); /* releases the input stream through the source */
  if (in.release)        /* never opened (an error before reading) */
    in.release(&in);
  myr__free(r.params);
  myr__buf_free(&spec);
  myr__buf_free(&sj);
  s->seconds_total = myr__now() - t_start;
  return rc;
}
