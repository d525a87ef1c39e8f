/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Ingest: stream batches from the source, turn every row into (key, label, features) or
 * a counted skip reason, and group the kept rows by key.
 *
 * Each batch is parsed in slices on the pool (numbers, key encodings and their hashes,
 * per-row status) and then merged in input order by the calling thread, which interns
 * keys and appends rows to fixed-size chunks. Merging in order keeps group ids, skip
 * examples and therefore every model independent of the thread count.
 * Grouping is a stable counting sort: per-group offsets from the key table's counts,
 * then each chunk is scattered into one contiguous row-major matrix and freed at once,
 * so the rows are held about once, not twice.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/text.h"
#include "engine/train_int.h"
#include "io/number.h"
#include "myriad/blob.h"

/* A cell as a number: MYR__NUM_* */
static inline int cell_number(const myr__column *c, size_t i, double *out, const char **text,
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
    return myr__parse_double_fast(*text, *text_len, out);
  default:
    return MYR__NUM_BAD;
  }
}

static void show_value(char *out, size_t cap, const char *t, size_t n) {
  size_t shown = n > 40 ? 40 : n;
  snprintf(out, cap, "value '%.*s'%s", (int)shown, t, n > shown ? "..." : "");
}

static myr__row_chunk *chunk_new(size_t p) {
  size_t bytes = sizeof(myr__row_chunk) +
                 MYR__CHUNK_ROWS * (sizeof(uint32_t) + sizeof(double) * (1 + p));
  myr__row_chunk *c = myr__malloc(bytes);
  if (!c)
    return NULL;
  c->next = NULL;
  c->n = 0;
  c->y = (double *)(void *)(c + 1);
  c->x = c->y + MYR__CHUNK_ROWS;
  c->gid = (uint32_t *)(void *)(c->x + (size_t)MYR__CHUNK_ROWS * p);
  return c;
}

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
      if (!myr__csv_find(r->csv, o->features[f], &c)) {
        char cols[512];
        myr__csv_list(r->csv, cols, sizeof cols);
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

/* ------------------------------------------------------------------ parsing */

/* Parsed rows [lo, hi) of the current batch; arrays are indexed from lo. Reused. */
struct myr__parse_slice {
  size_t lo, hi;       /* rows of the batch */
  size_t cap;          /* rows the arrays hold */
  uint8_t *status;     /* 0 = usable, else a myr_skip_reason + 1 */
  uint32_t *bad_col;   /* source column at fault (skips found here) */
  double *y;           /* labels */
  double *x;           /* features, row-major */
  uint64_t *hash;      /* key hashes */
  size_t *key_off;     /* start of each row's key encoding in keys */
  myr__buf keys;       /* key encodings, back to back */
  int rc;              /* MYR_OK, or a failure of this slice */
  /* First skipped row of each reason in this slice, described while the batch's text
     is still valid, so that merging can run after the reader moved on. */
  myr_skip_example ex[MYR_SKIP__COUNT]; /* ex[r].row == 0: none */
};

static int slice_reserve(myr__parse_slice *s, size_t rows, size_t p) {
  if (rows <= s->cap)
    return 1;
  uint8_t *st = myr__realloc(s->status, rows);
  if (st)
    s->status = st;
  uint32_t *bc = myr__reallocarray(s->bad_col, rows, sizeof *bc);
  if (bc)
    s->bad_col = bc;
  double *y = myr__reallocarray(s->y, rows, sizeof *y);
  if (y)
    s->y = y;
  double *x = myr__reallocarray(s->x, rows * (p ? p : 1), sizeof *x);
  if (x)
    s->x = x;
  uint64_t *h = myr__reallocarray(s->hash, rows, sizeof *h);
  if (h)
    s->hash = h;
  size_t *ko = myr__reallocarray(s->key_off, rows + 1, sizeof *ko);
  if (ko)
    s->key_off = ko;
  if (!st || !bc || !y || !x || !h || !ko)
    return 0;
  s->cap = rows;
  return 1;
}

static void slice_free(myr__parse_slice *s) {
  myr__free(s->status);
  myr__free(s->bad_col);
  myr__free(s->y);
  myr__free(s->x);
  myr__free(s->hash);
  myr__free(s->key_off);
  myr__buf_free(&s->keys);
}

static int num_reason(int k, int missing_reason) {
  return k == MYR__NUM_MISSING ? missing_reason
         : k == MYR__NUM_INF   ? MYR_SKIP_NON_FINITE
                               : MYR_SKIP_NON_NUMERIC;
}

/* Describe row i of b, skipped for reason, into ex (once per reason and slice). */
static void describe_skip(const run *r, const myr__batch *b, size_t i, int reason,
                          uint32_t col, myr_skip_example *ex) {
  uint32_t arg = b->skip_arg ? b->skip_arg[i] : 0;
  const char *name = NULL;
  ex->row = b->first_row + i + 1;
  ex->line = b->line ? b->line[i] : 0;
  ex->detail[0] = '\0';
  switch (reason) {
  case MYR_SKIP_FIELD_COUNT:
    snprintf(ex->detail, sizeof ex->detail, "expected %zu fields, got %u", r->n_cols, arg);
    break;
  case MYR_SKIP_BAD_QUOTING:
  case MYR_SKIP_NUL_BYTE:
    if (arg >= 1 && arg <= r->n_cols)
      name = myr__csv_column_name(r->csv, arg - 1);
    break;
  case MYR_SKIP_BLANK_LINE:
    break;
  case MYR_SKIP_INVALID_KEY:
    name = myr__csv_column_name(r->csv, col);
    snprintf(ex->detail, sizeof ex->detail, "key is not valid UTF-8");
    break;
  case MYR_SKIP_NON_NUMERIC:
  case MYR_SKIP_NON_FINITE: {
    const myr__column *c = &b->columns[col];
    name = myr__csv_column_name(r->csv, col);
    if (c->kind == MYR__COL_TEXT)
      show_value(ex->detail, sizeof ex->detail, c->text + c->text_off[i], c->text_len[i]);
    break;
  }
  default:
    name = myr__csv_column_name(r->csv, col);
    break;
  }
  snprintf(ex->column, sizeof ex->column, "%s", name ? name : "");
}

/* Parse rows [s->lo, s->hi) of b. Runs on any thread; touches only s. */
static void parse_slice(const run *r, const myr__batch *b, myr__parse_slice *s) {
  const size_t n_keys = r->opt->n_keys, p = r->p;
  myr__buf_reset(&s->keys);
  for (int k = 0; k < MYR_SKIP__COUNT; k++)
    s->ex[k].row = 0;
  for (size_t i = s->lo; i < s->hi; i++) {
    size_t j = i - s->lo;
    s->key_off[j] = s->keys.len;
    s->status[j] = 0;
    s->bad_col[j] = 0;
    if (b->skip && b->skip[i]) {
      s->status[j] = b->skip[i];
      if (!s->ex[b->skip[i] - 1].row)
        describe_skip(r, b, i, b->skip[i] - 1, 0, &s->ex[b->skip[i] - 1]);
      continue;
    }
    int bad = 0;
    for (size_t k = 0; k < n_keys; k++) {
      const myr__column *c = &b->columns[r->key_col[k]];
      char num[32];
      const char *t = NULL;
      size_t tl = 0;
      if (!myr__batch_valid(c->validity, i)) {
        bad = MYR_SKIP_MISSING_KEY + 1;
      } else if (c->kind == MYR__COL_TEXT) {
        t = c->text + c->text_off[i];
        tl = c->text_len[i];
        if (myr__is_missing_fast(t, tl))
          bad = MYR_SKIP_MISSING_KEY + 1;
        else if (!myr__utf8_valid((const unsigned char *)t, tl))
          bad = MYR_SKIP_INVALID_KEY + 1;
      } else if (c->kind == MYR__COL_I64) {
        int w = snprintf(num, sizeof num, "%lld", (long long)c->i64[i]);
        t = num;
        tl = (size_t)w;
      } else {
        bad = MYR_SKIP_INVALID_KEY + 1;
      }
      if (bad) {
        s->bad_col[j] = (uint32_t)r->key_col[k];
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
    if (!bad) {
      const char *t;
      size_t tl;
      int k = cell_number(&b->columns[r->label_col], i, &s->y[j], &t, &tl);
      if (k != MYR__NUM_OK) {
        bad = num_reason(k, MYR_SKIP_MISSING_LABEL) + 1;
        s->bad_col[j] = (uint32_t)r->label_col;
      }
    }
    for (size_t f = 0; f < p && !bad; f++) {
      const char *t;
      size_t tl;
      int k = cell_number(&b->columns[r->feat_col[f]], i, &s->x[j * p + f], &t, &tl);
      if (k != MYR__NUM_OK) {
        bad = num_reason(k, MYR_SKIP_MISSING_FEATURE) + 1;
        s->bad_col[j] = (uint32_t)r->feat_col[f];
      }
    }
    if (bad) {
      s->status[j] = (uint8_t)bad;
      s->keys.len = s->key_off[j]; /* drop a partial key */
      if (!s->ex[bad - 1].row)
        describe_skip(r, b, i, bad - 1, s->bad_col[j], &s->ex[bad - 1]);
      continue;
    }
    const unsigned char *enc = (const unsigned char *)s->keys.data + s->key_off[j];
    s->hash[j] = myr__key_hash(enc, s->keys.len - s->key_off[j]);
  }
  s->key_off[s->hi - s->lo] = s->keys.len;
  s->rc = s->keys.failed ? MYR_ENOMEM : MYR_OK;
}

/* Merge parsed slices in row order: count skips, intern keys, append rows. */
static int merge_slice(run *r, const myr__parse_slice *s, myr_error *err) {
  const size_t p = r->p;
  myr_train_summary *sum = r->sum;
  sum->rows_total += s->hi - s->lo;
  for (size_t i = s->lo; i < s->hi; i++) {
    size_t j = i - s->lo;
    if (s->status[j]) {
      int reason = s->status[j] - 1;
      /* The first row of a reason in the first slice that has one is the first overall. */
      if (sum->skipped[reason]++ == 0)
        sum->skip_example[reason] = s->ex[reason];
      continue;
    }
    uint32_t gid;
    const unsigned char *enc = (const unsigned char *)s->keys.data + s->key_off[j];
    MYR_RETURN_NOT_OK(myr__keytab_intern(&r->keys, enc, s->key_off[j + 1] - s->key_off[j],
                                         s->hash[j], &gid, err));
    if (!r->tail || r->tail->n == MYR__CHUNK_ROWS) {
      myr__row_chunk *c = chunk_new(p);
      if (!c)
        return myr_error_set(err, MYR_ENOMEM, "out of memory holding %llu rows",
                             (unsigned long long)r->n_used_rows);
      if (r->tail)
        r->tail->next = c;
      else
        r->head = c;
      r->tail = c;
    }
    myr__row_chunk *c = r->tail;
    c->gid[c->n] = gid;
    c->y[c->n] = s->y[j];
    memcpy(c->x + c->n * p, s->x + j * p, p * sizeof(double));
    c->n++;
    r->n_used_rows++;
  }
  return MYR_OK;
}

/* Split b's rows over the slices of set `set` and size their arrays; returns how many
   slices are used (one for small batches). */
static int prepare_slices(run *r, const myr__batch *b, myr__parse_slice *set,
                          size_t *n_used, myr_error *err) {
  size_t n = b->n_rows >= 4096 ? r->n_slices : 1;
  size_t per = (b->n_rows + n - 1) / n;
  for (size_t t = 0; t < n; t++) {
    myr__parse_slice *s = &set[t];
    s->lo = t * per < b->n_rows ? t * per : b->n_rows;
    s->hi = s->lo + per < b->n_rows ? s->lo + per : b->n_rows;
    if (!slice_reserve(s, s->hi - s->lo + 1, r->p))
      return myr_error_set(err, MYR_ENOMEM, "out of memory parsing rows");
  }
  *n_used = n;
  return MYR_OK;
}

typedef struct parse_job {
  const run *r;
  const myr__batch *b;
  myr__parse_slice *set;
} parse_job;

static int parse_task(void *ctx, size_t task, unsigned worker) {
  parse_job *job = ctx;
  (void)worker;
  parse_slice(job->r, job->b, &job->set[task]);
  return MYR_OK;
}

static int merge_set(run *r, myr__parse_slice *set, size_t n, myr_error *err) {
  for (size_t t = 0; t < n; t++) {
    if (set[t].rc != MYR_OK)
      return myr_error_set(err, set[t].rc, "out of memory encoding keys");
    MYR_RETURN_NOT_OK(merge_slice(r, &set[t], err));
  }
  return MYR_OK;
}

int myr__ingest(run *r, myr_error *err) {
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
    if (!myr__csv_find(r->csv, o->keys[k], &r->key_col[k])) {
      myr__csv_list(r->csv, cols, sizeof cols);
      return myr_error_set(err, MYR_ENOTFOUND, "%s: no key column '%s' (columns: %s)",
                           o->input, o->keys[k], cols);
    }
    for (size_t j = 0; j < k; j++)
      if (r->key_col[j] == r->key_col[k])
        return myr_error_set(err, MYR_EINVAL, "key column '%s' is listed twice", o->keys[k]);
  }
  if (!myr__csv_find(r->csv, o->label, &r->label_col)) {
    myr__csv_list(r->csv, cols, sizeof cols);
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

  /* Two sets of slices: the pool parses batch k+1 into one while this thread merges
     batch k from the other. Parsing copies everything merging needs out of the batch,
     so the reader may move on as soon as a parse is done. */
  r->n_slices = myr__pool_size(r->pool);
  r->slices = myr__calloc(2 * r->n_slices, sizeof *r->slices);
  int rc = r->slices ? MYR_OK : myr_error_set(err, MYR_ENOMEM, "out of memory");
  myr_progress pr = {0};
  pr.phase = 1;
  pr.bytes_total = myr__csv_bytes_total(r->csv);
  double t0 = myr__now(), last = 0;
  int cur = 0;
  size_t n_cur = 0;
  parse_job job = {r, b, r->slices};
  if (rc == MYR_OK && (rc = prepare_slices(r, b, r->slices, &n_cur, err)) == MYR_OK)
    myr__pool_run(r->pool, n_cur, parse_task, &job);
  while (rc == MYR_OK) {
    myr__parse_slice *done_set = r->slices + (size_t)cur * r->n_slices;
    size_t n_done = n_cur;
    pr.bytes_done = myr__csv_bytes_read(r->csv);
    rc = myr__csv_next(r->csv, &b, err);
    int parsing = 0;
    if (rc == MYR_OK && b) {
      myr__parse_slice *next_set = r->slices + (size_t)(1 - cur) * r->n_slices;
      rc = prepare_slices(r, b, next_set, &n_cur, err);
      if (rc == MYR_OK) {
        job.b = b;
        job.set = next_set;
        myr__pool_start(r->pool, n_cur, parse_task, &job);
        parsing = 1;
      }
    }
    int mrc = merge_set(r, done_set, n_done, err);
    if (parsing)
      myr__pool_wait(r->pool);
    if (rc == MYR_OK)
      rc = mrc;
    if (rc == MYR_OK && o->cancel && *o->cancel) {
      rc = myr_error_set(err, MYR_ECANCELED, "canceled while reading %s", o->input);
      break;
    }
    if (rc != MYR_OK || !b)
      break;
    cur = 1 - cur;
    pr.rows_done = r->sum->rows_total;
    myr__report(r, &pr, &last, t0, 0);
  }
  if (rc == MYR_OK) {
    pr.bytes_done = myr__csv_bytes_read(r->csv);
    pr.rows_done = r->sum->rows_total;
    myr__report(r, &pr, &last, t0, 1);
  }
  return rc;
}

/* ------------------------------------------------------------------ grouping */

/* Largest group first, ties by first appearance: sort (count, gid) packed in a u64. */
static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

int myr__group_rows(run *r, myr_error *err) {
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
    myr__row_chunk *c = r->head;
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


void myr__ingest_free(run *r) {
  while (r->head) {
    myr__row_chunk *c = r->head;
    r->head = c->next;
    myr__free(c);
  }
  r->tail = NULL;
  if (r->slices)
    for (size_t t = 0; t < 2 * r->n_slices; t++)
      slice_free(&r->slices[t]);
  myr__free(r->slices);
  r->slices = NULL;
  myr__free(r->offset);
  myr__free(r->order);
  myr__free(r->x);
  myr__free(r->y);
  myr__keytab_free(&r->keys);
  myr__free(r->key_col);
  myr__free(r->feat_col);
  myr__free(r->feat_name);
  myr__csv_close(r->csv);
  r->csv = NULL;
}
