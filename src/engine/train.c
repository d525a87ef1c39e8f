/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The training run: ingest -> group -> fit -> store -> publish.
 *
 * 1. Ingest streams batches from the source. Each row is either rejected with a counted
 *    reason or has its key interned (dense group id) and its label and features appended
 *    to a list of fixed-size row chunks.
 * 2. Grouping is a stable counting sort: per-group offsets from the key table's counts,
 *    then each chunk is scattered into one contiguous row-major matrix and freed at once,
 *    so the rows are held about once, not twice.
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
#include "engine/keys.h"
#include "io/csv.h"
#include "io/number.h"
#include "myriad/blob.h"
#include "myriad/store.h"
#include "store/blob.h"

#define CHUNK_ROWS 65536

static const char *const skip_names[MYR_SKIP__COUNT] = {
    "field_count",     "bad_quoting",  "nul_byte",    "blank_line",
    "missing_key",     "invalid_key",  "missing_label", "missing_feature",
    "non_numeric",     "non_finite",   "group_failed"};

static const char *const failure_names[MYR_FAIL__COUNT] = {"too_few_rows", "model_error",
                                                           "out_of_memory"};

const char *myr_skip_reason_name(int r) {
  return r >= 0 && r < MYR_SKIP__COUNT ? skip_names[r] : "unknown";
}

const char *myr_group_failure_name(int f) {
  return f >= 0 && f < MYR_FAIL__COUNT ? failure_names[f] : "unknown";
}

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ------------------------------------------------------------------ row chunks */

typedef struct row_chunk {
  struct row_chunk *next; /* next chunk in input order */
  size_t n;               /* rows used */
  uint32_t *gid;          /* CHUNK_ROWS group ids */
  double *y;              /* CHUNK_ROWS labels */
  double *x;              /* CHUNK_ROWS * p features */
} row_chunk;

static row_chunk *chunk_new(size_t p) {
  size_t bytes = sizeof(row_chunk) + CHUNK_ROWS * (sizeof(uint32_t) + sizeof(double) * (1 + p));
  row_chunk *c = myr__malloc(bytes);
  if (!c)
    return NULL;
  c->next = NULL;
  c->n = 0;
  c->y = (double *)(void *)(c + 1);
  c->x = c->y + CHUNK_ROWS;
  c->gid = (uint32_t *)(void *)(c->x + (size_t)CHUNK_ROWS * p);
  return c;
}

/* ------------------------------------------------------------------ run state */

enum { RES_OK = 0, RES_FAILED = 1, RES_ABORTED = 2 };
enum { M_R2, M_RMSE, M_MAE, M_TRAIN_R2, M_TRAIN_RMSE, M__COUNT };

typedef struct result {
  unsigned char *blob; /* encoded model (RES_OK), owned until drained */
  char *message;       /* failure message (RES_FAILED), owned until drained */
  size_t blob_len;
  uint32_t n_train;    /* rows fitted */
  uint32_t n_hold;     /* rows held out */
  uint8_t status;      /* RES_* */
  uint8_t failure;     /* myr_group_failure when RES_FAILED */
  double metric[M__COUNT];
} result;

typedef struct worker {
  myr__arena arena; /* scratch for one group at a time */
} worker;

typedef struct run {
  const myr_train_options *opt;
  myr_train_summary *sum;
  const myr_model_family *family;
  void *params;           /* family params, params_size bytes */
  size_t need_rows;       /* fewest rows a group must have */
  uint64_t schema_hash;   /* of the feature names */

  /* input */
  myr__csv *csv;
  size_t n_cols;          /* columns in the source */
  size_t *key_col;        /* n_keys source column indexes */
  size_t label_col;
  size_t *feat_col;       /* p source column indexes */
  const char **feat_name; /* p names (borrowed from the source or options) */
  size_t p;               /* features */

  /* grouping */
  myr__keytab keys;
  row_chunk *head, *tail; /* rows in input order */
  uint64_t n_used_rows;   /* rows appended to chunks */
  uint64_t *offset;       /* per group: first row in x/y; n_groups + 1 entries */
  double *x;              /* grouped rows, row-major */
  double *y;
  uint32_t *order;        /* groups, largest first */

  /* training */
  myr__pool *pool;
  worker *workers;
  result *results;        /* per task */
  uint32_t *done_list;    /* completion order: task indexes */
  atomic_uchar *ready;    /* done_list[i] is valid */
  atomic_size_t done_tail;
  atomic_int abort;       /* stop fitting: tasks complete as RES_ABORTED */
  atomic_uint_least64_t rows_done;
} run;

/* ------------------------------------------------------------------ helpers */

static void note_skip(run *r, int reason, uint64_t row, uint64_t line, const char *column,
                      const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 6, 7)))
#endif
    ;

static void note_skip(run *r, int reason, uint64_t row, uint64_t line, const char *column,
                      const char *fmt, ...) {
  myr_train_summary *s = r->sum;
  s->skipped[reason]++;
  myr_skip_example *ex = &s->skip_example[reason];
  if (ex->row)
    return;
  ex->row = row;
  ex->line = line;
  snprintf(ex->column, sizeof ex->column, "%s", column ? column : "");
  if (fmt) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ex->detail, sizeof ex->detail, fmt, ap);
    va_end(ap);
  }
}

static int find_column(run *r, const char *name, size_t *out) {
  for (size_t i = 0; i < r->n_cols; i++)
    if (strcmp(myr__csv_column_name(r->csv, i), name) == 0) {
      *out = i;
      return 1;
    }
  return 0;
}

static void list_columns(run *r, char *out, size_t cap) {
  size_t pos = 0;
  out[0] = '\0';
  for (size_t i = 0; i < r->n_cols && pos + 4 < cap; i++) {
    int w = snprintf(out + pos, cap - pos, "%s%s", i ? ", " : "",
                     myr__csv_column_name(r->csv, i));
    if (w < 0 || (size_t)w >= cap - pos) {
      snprintf(out + (cap > 4 ? cap - 4 : 0), 4, "...");
      break;
    }
    pos += (size_t)w;
  }
}

/* Valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
static int utf8_valid(const unsigned char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned char c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t len;
    uint32_t cp;
    if (c >= 0xc2 && c <= 0xdf) {
      len = 2;
      cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
      cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
      cp = c & 0x07;
    } else {
      return 0;
    }
    if (n - i < len)
      return 0;
    for (size_t k = 1; k < len; k++) {
      if ((s[i + k] & 0xc0) != 0x80)
        return 0;
      cp = (cp << 6) | (s[i + k] & 0x3f);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
      return 0;
    i += len;
  }
  return 1;
}

/* A cell as a number: MYR__NUM_* */
static int cell_number(const myr__column *c, size_t i, double *out, const char **text,
                       size_t *text_len) {
  *text = "";
  *text_len = 0;
  if (!myr__batch_valid(c->validity, i))
    return MYR__NUM_MISSING;
  switch (c->kind) {
  case MYR__COL_F64:
    *out = c->f64[i];
    if (isnan(*out))
      return MYR__NUM_MISSING;
    return isfinite(*out) ? MYR__NUM_OK : MYR__NUM_INF;
  case MYR__COL_I64:
    *out = (double)c->i64[i];
    return MYR__NUM_OK;
  case MYR__COL_TEXT:
    *text = c->text + c->text_off[i];
    *text_len = c->text_len[i];
    return myr__parse_double(*text, *text_len, out);
  default:
    return MYR__NUM_BAD;
  }
}

static void show_value(char *out, size_t cap, const char *t, size_t n) {
  size_t shown = n > 40 ? 40 : n;
  snprintf(out, cap, "value '%.*s'%s", (int)shown, t, n > shown ? "..." : "");
}

/* ------------------------------------------------------------------ ingest */

static int choose_features(run *r, const myr__batch *first, myr_error *err) {
  const myr_train_options *o = r->opt;
  size_t p = 0;
  if (o->features && o->n_features) {
    r->feat_col = myr__calloc(o->n_features, sizeof *r->feat_col);
    r->feat_name = myr__calloc(o->n_features, sizeof *r->feat_name);
    if (!r->feat_col || !r->feat_name)
      return myr_error_set(err, MYR_ENOMEM, "out of memory");
    for (size_t f = 0; f < o->n_features; f++) {
      size_t c;
      if (!find_column(r, o->features[f], &c)) {
        char cols[512];
        list_columns(r, cols, sizeof cols);
        return myr_error_set(err, MYR_ENOTFOUND,
                             "%s: no feature column '%s' (columns: %s)", o->input,
                             o->features[f], cols);
      }
      if (c == r->label_col)
        return myr_error_set(err, MYR_EINVAL, "column '%s' is both the label and a feature",
                             o->features[f]);
      for (size_t k = 0; k < o->n_keys; k++)
        if (r->key_col[k] == c)
          return myr_error_set(err, MYR_EINVAL, "column '%s' is both a key and a feature",
                               o->features[f]);
      for (size_t g = 0; g < p; g++)
        if (r->feat_col[g] == c)
          return myr_error_set(err, MYR_EINVAL, "feature '%s' is listed twice",
                               o->features[f]);
      r->feat_col[p] = c;
      r->feat_name[p] = myr__csv_column_name(r->csv, c);
      p++;
    }
  } else {
    /* Every column that is not a key or the label and whose non-missing values in the
       first batch are mostly numbers: a few stray values then become non_numeric skips
       instead of silently dropping the whole feature. */
    r->feat_col = myr__calloc(r->n_cols, sizeof *r->feat_col);
    r->feat_name = myr__calloc(r->n_cols, sizeof *r->feat_name);
    if (!r->feat_col || !r->feat_name)
      return myr_error_set(err, MYR_ENOMEM, "out of memory");
    for (size_t c = 0; c < r->n_cols; c++) {
      int skip = c == r->label_col;
      for (size_t k = 0; k < o->n_keys; k++)
        skip |= r->key_col[k] == c;
      if (skip || !first)
        continue;
      const myr__column *col = &first->columns[c];
      size_t numbers = 0, bad = 0;
      for (size_t i = 0; i < first->n_rows; i++) {
        if (first->skip && first->skip[i])
          continue;
        double v;
        const char *t;
        size_t tl;
        int k = cell_number(col, i, &v, &t, &tl);
        if (k == MYR__NUM_OK || k == MYR__NUM_INF)
          numbers++;
        else if (k == MYR__NUM_BAD)
          bad++;
      }
      if (numbers > bad) {
        r->feat_col[p] = c;
        r->feat_name[p] = myr__csv_column_name(r->csv, c);
        p++;
      }
    }
    if (p == 0)
      return myr_error_set(err, MYR_EINVAL,
                           "%s: no numeric feature columns besides the keys and the label; "
                           "name them with --features",
                           o->input);
  }
  r->p = p;
  r->sum->n_features = p;
  r->schema_hash = myr_feature_schema_hash(r->feat_name, p);
  /* From now on read only the columns we use. */
  unsigned char *want = myr__calloc(r->n_cols, 1);
  if (!want)
    return myr_error_set(err, MYR_ENOMEM, "out of memory");
  for (size_t k = 0; k < o->n_keys; k++)
    want[r->key_col[k]] = 1;
  want[r->label_col] = 1;
  for (size_t f = 0; f < p; f++)
    want[r->feat_col[f]] = 1;
  int rc = myr__csv_select(r->csv, want, err);
  myr__free(want);
  return rc;
}

static int ingest_batch(run *r, const myr__batch *b, myr__buf *keybuf, double *xrow,
                        myr_error *err) {
  const myr_train_options *o = r->opt;
  myr_train_summary *s = r->sum;
  for (size_t i = 0; i < b->n_rows; i++) {
    uint64_t row = b->first_row + i + 1;
    uint64_t line = b->line ? b->line[i] : 0;
    s->rows_total++;
    if (b->skip && b->skip[i]) {
      int reason = b->skip[i] - 1;
      uint32_t arg = b->skip_arg ? b->skip_arg[i] : 0;
      const char *col = NULL;
      if (reason != MYR_SKIP_FIELD_COUNT && arg >= 1 && arg <= r->n_cols)
        col = myr__csv_column_name(r->csv, arg - 1);
      if (reason == MYR_SKIP_FIELD_COUNT)
        note_skip(r, reason, row, line, NULL, "expected %zu fields, got %u", r->n_cols, arg);
      else
        note_skip(r, reason, row, line, col, NULL);
      continue;
    }
    /* keys */
    myr__buf_reset(keybuf);
    int bad = 0;
    for (size_t k = 0; k < o->n_keys && !bad; k++) {
      const myr__column *c = &b->columns[r->key_col[k]];
      const char *name = o->keys[k];
      char num[32];
      const char *t = NULL;
      size_t tl = 0;
      if (!myr__batch_valid(c->validity, i)) {
        bad = 1;
      } else if (c->kind == MYR__COL_TEXT) {
        t = c->text + c->text_off[i];
        tl = c->text_len[i];
        if (myr__is_missing(t, tl))
          bad = 1;
      } else if (c->kind == MYR__COL_I64) {
        int w = snprintf(num, sizeof num, "%lld", (long long)c->i64[i]);
        t = num;
        tl = (size_t)w;
      } else {
        return myr_error_set(err, MYR_EUNSUPPORTED, "key column '%s' has an unsupported type",
                             name);
      }
      if (bad) {
        note_skip(r, MYR_SKIP_MISSING_KEY, row, line, name, NULL);
        break;
      }
      if (!utf8_valid((const unsigned char *)t, tl)) {
        note_skip(r, MYR_SKIP_INVALID_KEY, row, line, name, "key is not valid UTF-8");
        bad = 1;
        break;
      }
      unsigned char len4[4] = {(unsigned char)tl, (unsigned char)(tl >> 8),
                               (unsigned char)(tl >> 16), (unsigned char)(tl >> 24)};
      myr__buf_append(keybuf, len4, 4);
      myr__buf_append(keybuf, t, tl);
    }
    if (bad)
      continue;
    if (keybuf->failed)
      return myr_error_set(err, MYR_ENOMEM, "out of memory encoding keys");
    /* label */
    double yv;
    const char *t;
    size_t tl;
    char detail[80];
    int k = cell_number(&b->columns[r->label_col], i, &yv, &t, &tl);
    if (k != MYR__NUM_OK) {
      show_value(detail, sizeof detail, t, tl);
      int reason = k == MYR__NUM_MISSING ? MYR_SKIP_MISSING_LABEL
                   : k == MYR__NUM_INF   ? MYR_SKIP_NON_FINITE
                                         : MYR_SKIP_NON_NUMERIC;
      note_skip(r, reason, row, line, o->label, "%s", reason == MYR_SKIP_MISSING_LABEL ? "" : detail);
      continue;
    }
    /* features */
    for (size_t f = 0; f < r->p; f++) {
      k = cell_number(&b->columns[r->feat_col[f]], i, &xrow[f], &t, &tl);
      if (k != MYR__NUM_OK) {
        show_value(detail, sizeof detail, t, tl);
        int reason = k == MYR__NUM_MISSING ? MYR_SKIP_MISSING_FEATURE
                     : k == MYR__NUM_INF   ? MYR_SKIP_NON_FINITE
                                           : MYR_SKIP_NON_NUMERIC;
        note_skip(r, reason, row, line, r->feat_name[f], "%s",
                  reason == MYR_SKIP_MISSING_FEATURE ? "" : detail);
        bad = 1;
        break;
      }
    }
    if (bad)
      continue;
    uint32_t gid;
    const unsigned char *enc = (const unsigned char *)keybuf->data;
    MYR_RETURN_NOT_OK(myr__keytab_intern(&r->keys, enc, keybuf->len,
                                         myr__key_hash(enc, keybuf->len), &gid, err));
    if (!r->tail || r->tail->n == CHUNK_ROWS) {
      row_chunk *c = chunk_new(r->p);
      if (!c)
        return myr_error_set(err, MYR_ENOMEM, "out of memory holding %llu rows",
                             (unsigned long long)r->n_used_rows);
      if (r->tail)
        r->tail->next = c;
      else
        r->head = c;
      r->tail = c;
    }
    row_chunk *c = r->tail;
    c->gid[c->n] = gid;
    c->y[c->n] = yv;
    memcpy(c->x + c->n * r->p, xrow, r->p * sizeof(double));
    c->n++;
    r->n_used_rows++;
  }
  return MYR_OK;
}

static void report(run *r, myr_progress *pr, double *last, double t0, int force) {
  if (!r->opt->progress)
    return;
  double t = now_seconds();
  if (!force && t - *last < 0.1)
    return;
  *last = t;
  pr->seconds = t - t0;
  r->opt->progress(r->opt->progress_ud, pr);
}

static int ingest(run *r, myr_error *err) {
  const myr_train_options *o = r->opt;
  myr__csv_options copt = {0};
  copt.delimiter = o->delimiter;
  MYR_RETURN_NOT_OK(myr__csv_open(o->input, &copt, &r->csv, err));
  r->n_cols = myr__csv_n_columns(r->csv);
  r->key_col = myr__calloc(o->n_keys, sizeof *r->key_col);
  if (!r->key_col)
    return myr_error_set(err, MYR_ENOMEM, "out of memory");
  char cols[512];
  for (size_t k = 0; k < o->n_keys; k++) {
    if (!find_column(r, o->keys[k], &r->key_col[k])) {
      list_columns(r, cols, sizeof cols);
      return myr_error_set(err, MYR_ENOTFOUND, "%s: no key column '%s' (columns: %s)",
                           o->input, o->keys[k], cols);
    }
    for (size_t j = 0; j < k; j++)
      if (r->key_col[j] == r->key_col[k])
        return myr_error_set(err, MYR_EINVAL, "key column '%s' is listed twice", o->keys[k]);
  }
  if (!find_column(r, o->label, &r->label_col)) {
    list_columns(r, cols, sizeof cols);
    return myr_error_set(err, MYR_ENOTFOUND, "%s: no label column '%s' (columns: %s)",
                         o->input, o->label, cols);
  }
  for (size_t k = 0; k < o->n_keys; k++)
    if (r->key_col[k] == r->label_col)
      return myr_error_set(err, MYR_EINVAL, "column '%s' is both a key and the label",
                           o->label);

  const myr__batch *b = NULL;
  MYR_RETURN_NOT_OK(myr__csv_next(r->csv, &b, err));
  if (!b)
    return myr_error_set(err, MYR_ENODATA, "%s: no data rows after the header", o->input);
  MYR_RETURN_NOT_OK(choose_features(r, b, err));

  myr__buf keybuf;
  myr__buf_init(&keybuf);
  double *xrow = myr__calloc(r->p, sizeof *xrow);
  int rc = xrow ? MYR_OK : myr_error_set(err, MYR_ENOMEM, "out of memory");
  myr_progress pr = {0};
  pr.phase = 1;
  pr.bytes_total = myr__csv_bytes_total(r->csv);
  double t0 = now_seconds(), last = 0;
  while (rc == MYR_OK && b) {
    rc = ingest_batch(r, b, &keybuf, xrow, err);
    if (rc != MYR_OK)
      break;
    if (o->cancel && *o->cancel) {
      rc = myr_error_set(err, MYR_ECANCELED, "canceled while reading %s", o->input);
      break;
    }
    pr.bytes_done = myr__csv_bytes_read(r->csv);
    pr.rows_done = r->sum->rows_total;
    report(r, &pr, &last, t0, 0);
    rc = myr__csv_next(r->csv, &b, err);
  }
  if (rc == MYR_OK) {
    pr.bytes_done = myr__csv_bytes_read(r->csv);
    report(r, &pr, &last, t0, 1);
  }
  myr__free(xrow);
  myr__buf_free(&keybuf);
  return rc;
}

/* ------------------------------------------------------------------ grouping */

/* Largest group first, ties by first appearance: sort (count, gid) packed in a u64. */
static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static int group_rows(run *r, myr_error *err) {
  size_t g_n = r->keys.n, p = r->p;
  r->offset = myr__calloc(g_n + 1, sizeof *r->offset);
  r->order = myr__calloc(g_n, sizeof *r->order);
  uint64_t *fill = myr__calloc(g_n, sizeof *fill);
  r->x = myr__reallocarray(NULL, r->n_used_rows * p, sizeof *r->x);
  r->y = myr__reallocarray(NULL, r->n_used_rows, sizeof *r->y);
  if (!r->offset || !r->order || !fill || !r->x || !r->y) {
    myr__free(fill);
    return myr_error_set(err, MYR_ENOMEM, "out of memory grouping %llu rows into %zu groups",
                         (unsigned long long)r->n_used_rows, g_n);
  }
  for (size_t g = 0; g < g_n; g++) {
    r->offset[g + 1] = r->offset[g] + r->keys.count[g];
    fill[g] = r->offset[g];
  }
  while (r->head) {
    row_chunk *c = r->head;
    for (size_t i = 0; i < c->n; i++) {
      uint64_t dst = fill[c->gid[i]]++;
      r->y[dst] = c->y[i];
      memcpy(r->x + dst * p, c->x + i * p, p * sizeof(double));
    }
    r->head = c->next;
    myr__free(c);
  }
  r->tail = NULL;
  myr__free(fill);
  uint64_t *packed = myr__calloc(g_n, sizeof *packed);
  if (!packed)
    return myr_error_set(err, MYR_ENOMEM, "out of memory ordering %zu groups", g_n);
  for (size_t g = 0; g < g_n; g++)
    packed[g] = (uint64_t)(UINT32_MAX - r->keys.count[g]) << 32 | g;
  qsort(packed, g_n, sizeof *packed, cmp_u64);
  for (size_t g = 0; g < g_n; g++)
    r->order[g] = (uint32_t)packed[g];
  myr__free(packed);
  return MYR_OK;
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

static void set_failure(result *res, int failure, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static void set_failure(result *res, int failure, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  res->status = RES_FAILED;
  res->failure = (uint8_t)failure;
  res->message = myr__strdup(msg); /* NULL on OOM: the drain uses the reason name */
}

static void fit_group(run *r, uint32_t g, worker *w, result *res) {
  const myr_model_family *f = r->family;
  const size_t p = r->p;
  const size_t n = r->keys.count[g];
  const double *x = r->x + r->offset[g] * p;
  const double *y = r->y + r->offset[g];
  myr__arena *a = &w->arena;
  myr_scratch scratch = myr__arena_scratch(a);
  myr_error err = {0};

  if (n < r->need_rows) {
    set_failure(res, MYR_FAIL_TOO_FEW_ROWS, "%zu rows, needs at least %zu", n, r->need_rows);
    return;
  }
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
  double *pred = myr__arena_alloc(a, n_pred * sizeof *pred, sizeof *pred);
  if (!pred) {
    set_failure(res, MYR_FAIL_NO_MEMORY, "out of memory scoring %zu rows", n_pred);
    return;
  }
  for (int m = 0; m < M__COUNT; m++)
    res->metric[m] = NAN;
  if (f->task == MYR_TASK_REGRESSION) {
    double mae;
    rc = f->predict(model, train.x, train.n_rows, p, pred, &err);
    if (rc == MYR_OK)
      regression_metrics(train.y, pred, train.n_rows, &res->metric[M_TRAIN_R2],
                         &res->metric[M_TRAIN_RMSE], &mae);
    if (rc == MYR_OK && n_hold > 0) {
      rc = f->predict(model, xh, n_hold, p, pred, &err);
      if (rc == MYR_OK)
        regression_metrics(yh, pred, n_hold, &res->metric[M_R2], &res->metric[M_RMSE],
                           &res->metric[M_MAE]);
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
  res->status = RES_OK;
  res->n_train = (uint32_t)train.n_rows;
  res->n_hold = (uint32_t)n_hold;
}

static int fit_task(void *ctx, size_t task, unsigned wi) {
  run *r = ctx;
  result *res = &r->results[task];
  uint32_t g = r->order[task];
  if (atomic_load_explicit(&r->abort, memory_order_relaxed) ||
      (r->opt->cancel && *r->opt->cancel)) {
    res->status = RES_ABORTED;
  } else {
    fit_group(r, g, &r->workers[wi], res);
    myr__arena_reset(&r->workers[wi].arena);
  }
  atomic_fetch_add_explicit(&r->rows_done, r->keys.count[g], memory_order_relaxed);
  size_t slot = atomic_fetch_add_explicit(&r->done_tail, 1, memory_order_relaxed);
  r->done_list[slot] = (uint32_t)task;
  atomic_store_explicit(&r->ready[slot], 1, memory_order_release);
  return MYR_OK;
}

/* ------------------------------------------------------------------ storing */

static void metrics_json(myr__buf *b, const result *res) {
  static const char *const names[M__COUNT] = {"r2", "rmse", "mae", "train_r2", "train_rmse"};
  myr__buf_reset(b);
  myr__buf_puts(b, "{");
  int first = 1;
  for (int m = 0; m < M__COUNT; m++) {
    if (isnan(res->metric[m]))
      continue;
    myr__buf_printf(b, "%s\"%s\":", first ? "" : ",", names[m]);
    myr__buf_json_num(b, res->metric[m]);
    first = 0;
  }
  myr__buf_puts(b, "}");
}

/* Write one finished group to the store and the summary; frees its buffers. */
static int drain_one(run *r, myr_store *store, int64_t run_id, size_t task, myr__buf *mj,
                     myr_error *err) {
  result *res = &r->results[task];
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
  if (res->status == RES_OK) {
    s->groups_trained++;
    s->rows_used += r->keys.count[g];
    if (store) {
      metrics_json(mj, res);
      if (mj->failed) {
        rc = myr_error_set(err, MYR_ENOMEM, "out of memory formatting metrics");
        goto done;
      }
      myr_model_row row = {r->keys.hash[g], kv, kl, res->n_train, res->n_hold,
                           myr__buf_str(mj), res->blob, res->blob_len};
      rc = myr_store_put_model(store, run_id, &row, err);
    }
  } else if (res->status == RES_FAILED) {
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
  myr__free(res->blob);
  myr__free(res->message);
  res->blob = NULL;
  res->message = NULL;
  return rc;
}

static int train_groups(run *r, myr_store *store, int64_t run_id, myr_error *err) {
  size_t n_tasks = r->keys.n;
  unsigned n_threads = myr__pool_size(r->pool);
  r->results = myr__calloc(n_tasks, sizeof *r->results);
  r->done_list = myr__calloc(n_tasks, sizeof *r->done_list);
  r->ready = myr__calloc(n_tasks, sizeof *r->ready);
  r->workers = myr__calloc(n_threads, sizeof *r->workers);
  if (!r->results || !r->done_list || !r->ready || !r->workers)
    return myr_error_set(err, MYR_ENOMEM, "out of memory preparing %zu groups", n_tasks);
  for (unsigned i = 0; i < n_threads; i++)
    myr__arena_init(&r->workers[i].arena, 64 * 1024);
  atomic_init(&r->done_tail, 0);
  atomic_init(&r->abort, 0);
  atomic_init(&r->rows_done, 0);

  myr__buf mj;
  myr__buf_init(&mj);
  myr_progress pr = {0};
  pr.phase = 2;
  pr.groups_total = n_tasks;
  double t0 = now_seconds(), last = 0;
  int rc = MYR_OK;
  myr__pool_start(r->pool, n_tasks, fit_task, r);
  size_t next = 0;
  while (next < n_tasks) {
    if (atomic_load_explicit(&r->ready[next], memory_order_acquire)) {
      size_t task = r->done_list[next++];
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
      struct timespec ts = {0, 200000};
      nanosleep(&ts, NULL);
    }
    if (rc == MYR_OK && r->opt->cancel && *r->opt->cancel) {
      rc = myr_error_set(err, MYR_ECANCELED, "canceled after %zu of %zu groups", next,
                         n_tasks);
      atomic_store(&r->abort, 1);
    }
    pr.groups_done = next;
    pr.rows_done = atomic_load_explicit(&r->rows_done, memory_order_relaxed);
    report(r, &pr, &last, t0, 0);
  }
  myr__pool_wait(r->pool);
  pr.groups_done = next;
  report(r, &pr, &last, t0, 1);
  myr__buf_free(&mj);
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

static void spec_json(run *r, myr__buf *b, const char *params) {
  const myr_train_options *o = r->opt;
  myr__buf_puts(b, "{\"input\":");
  myr__buf_json_str(b, o->input, strlen(o->input));
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
  myr__buf_printf(b,
                  "{\"run_id\":%lld,\"family\":\"%s\",\"n_features\":%zu,\"threads\":%u,"
                  "\"rows_total\":%llu,\"rows_used\":%llu,\"rows_skipped\":%llu,"
                  "\"groups_total\":%llu,\"groups_trained\":%llu,\"groups_failed\":%llu,"
                  "\"skipped\":{",
                  (long long)s->run_id, s->family, s->n_features, s->n_threads,
                  (unsigned long long)s->rows_total, (unsigned long long)s->rows_used,
                  (unsigned long long)s->rows_skipped, (unsigned long long)s->groups_total,
                  (unsigned long long)s->groups_trained, (unsigned long long)s->groups_failed);
  int first = 1;
  for (int i = 0; i < MYR_SKIP__COUNT; i++) {
    if (!s->skipped[i])
      continue;
    const myr_skip_example *ex = &s->skip_example[i];
    myr__buf_printf(b, "%s\"%s\":{\"rows\":%llu,\"first_row\":%llu,\"first_line\":%llu,"
                    "\"column\":",
                    first ? "" : ",", skip_names[i], (unsigned long long)s->skipped[i],
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
  myr__buf_printf(b,
                  "},\"seconds_read\":%.6f,\"seconds_train\":%.6f,\"seconds_publish\":%.6f,"
                  "\"seconds_total\":%.6f}",
                  s->seconds_read, s->seconds_train, s->seconds_publish, s->seconds_total);
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

static int validate(const myr_train_options *o, myr_error *err) {
  if (!o || !o->input || !*o->input)
    return myr_error_set(err, MYR_EINVAL, "no input file given");
  if (!o->keys || o->n_keys == 0)
    return myr_error_set(err, MYR_EINVAL, "no key columns given (--keys)");
  if (o->n_keys > 16)
    return myr_error_set(err, MYR_EINVAL, "%zu key columns; at most 16 are supported",
                         o->n_keys);
  if (!o->label || !*o->label)
    return myr_error_set(err, MYR_EINVAL, "no label column given (--label)");
  if (!(o->holdout >= 0 && o->holdout < 1))
    return myr_error_set(err, MYR_EINVAL, "holdout must be in [0, 1), got %g", o->holdout);
  if (o->delimiter && o->delimiter != ',' && o->delimiter != '\t' && o->delimiter != ';')
    return myr_error_set(err, MYR_EINVAL, "delimiter must be ',', tab or ';'");
  return MYR_OK;
}

int myr_train(const myr_train_options *opt, myr_train_summary *summary_out, myr_error *err) {
  myr_train_summary local;
  myr_train_summary *s = summary_out ? summary_out : &local;
  memset(s, 0, sizeof *s);
  double t_start = now_seconds();
  MYR_RETURN_NOT_OK(validate(opt, err));

  run r;
  memset(&r, 0, sizeof r);
  r.opt = opt;
  r.sum = s;
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

  /* 1. read and group */
  if ((rc = ingest(&r, err)) != MYR_OK)
    goto done;
  size_t fam_min = r.family->min_rows ? r.family->min_rows(r.params, r.p) : 1;
  r.need_rows = opt->min_rows > fam_min ? opt->min_rows : fam_min;
  if (r.need_rows == 0)
    r.need_rows = 1;
  s->groups_total = r.keys.n;
  if (s->rows_total == 0) {
    rc = myr_error_set(err, MYR_ENODATA, "%s: no data rows after the header", opt->input);
    goto done;
  }
  if (r.keys.n == 0) {
    rc = myr_error_set(err, MYR_ENODATA,
                       "%s: no usable rows: all %llu rows were skipped (see the summary)",
                       opt->input, (unsigned long long)s->rows_total);
    goto done;
  }
  if ((rc = group_rows(&r, err)) != MYR_OK)
    goto done;
  s->seconds_read = now_seconds() - t_start;

  /* 2. fit and store */
  double t_train = now_seconds();
  if ((rc = myr__pool_create(opt->n_threads, &r.pool, err)) != MYR_OK)
    goto done;
  s->n_threads = myr__pool_size(r.pool);
  char params[512];
  r.family->params_format(r.params, params, sizeof params);
  spec_json(&r, &spec, params);
  if (spec.failed) {
    rc = myr_error_set(err, MYR_ENOMEM, "out of memory");
    goto done;
  }
  if (opt->store) {
    if ((rc = myr_store_open(opt->store, 0, &store, err)) != MYR_OK)
      goto done;
    myr_run_spec rs = {opt->keys, opt->n_keys, r.family->name, myr__buf_str(&spec), opt->seed};
    if ((rc = myr_store_run_begin(store, &rs, &run_id, err)) != MYR_OK)
      goto done;
    s->run_id = run_id;
  }
  rc = train_groups(&r, store, run_id, err);
  s->rows_skipped = s->rows_total - s->rows_used;
  s->seconds_train = now_seconds() - t_train;
  if (rc != MYR_OK)
    goto done;

  /* 3. publish */
  if (store) {
    double t_pub = now_seconds();
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
    s->seconds_publish = now_seconds() - t_pub;
  }

done:
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
  if (r.results)
    for (size_t i = 0; i < r.keys.n; i++) {
      myr__free(r.results[i].blob);
      myr__free(r.results[i].message);
    }
  myr__free(r.workers);
  myr__free(r.results);
  myr__free(r.done_list);
  myr__free((void *)r.ready);
  while (r.head) {
    row_chunk *c = r.head;
    r.head = c->next;
    myr__free(c);
  }
  myr__free(r.offset);
  myr__free(r.order);
  myr__free(r.x);
  myr__free(r.y);
  myr__keytab_free(&r.keys);
  myr__free(r.key_col);
  myr__free(r.feat_col);
  myr__free(r.feat_name);
  myr__free(r.params);
  myr__csv_close(r.csv);
  myr__buf_free(&spec);
  myr__buf_free(&sj);
  s->seconds_total = now_seconds() - t_start;
  return rc;
}
