/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Ingest: stream batches from the source, turn every row into (key, label, features) or
 * a counted skip reason, and group the kept rows by key.
 *
 * Each batch is parsed in slices on the pool (numbers, key encodings and their hashes,
 * per-row status) and then merged in input order by the calling thread, which interns
 * keys and takes the slice's label and feature arrays over as a chunk (the workers
 * write, and first touch, the rows; the calling thread copies none). float64 columns of
 * an Arrow batch are not copied at all: the chunk points into the batch, which it keeps
 * alive (myr__source_keep). Merging in order keeps group ids, skip examples and
 * therefore every model independent of the thread count.
 * Grouping is a stable counting sort: per-group offsets from the key table's counts,
 * then a window of chunks at a time on the pool (each task takes a run of chunks, after
 * counting its rows per group so that every group keeps input order) writes one row
 * reference (chunk, row) per row in group order. The chunks stay until training ends and
 * each fit gathers its own rows (train.c), so the rows are held once, never copied into a
 * second grouped matrix.
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

/* Add c to the end of the run's chunks (input order). */
static void chunk_append(run *r, myr__row_chunk *c) {
  if (r->tail)
    r->tail->next = c;
  else
    r->head = c;
  r->tail = c;
}

static void chunk_free(myr__row_chunk *c) {
  myr__free(c->gid);
  myr__free(c->y);
  myr__free(c->x);
  myr__free((void *)c->fcol);
  myr__kept_release(c->kept);
  myr__free(c);
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
      if (!myr__source_find(r->src, o->features[f], &c)) {
        char cols[512];
        myr__source_list(r->src, cols, sizeof cols);
        return myr_error_set(err, MYR_ENOTFOUND,
                             "%s: no feature column '%s' (columns: %s)", r->input_name,
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
      r->feat_name[p] = myr__source_column_name(r->src, c);
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
        r->feat_name[p] = myr__source_column_name(r->src, c);
        p++;
      }
    }
    if (p == 0)
      return myr_error_set(err, MYR_EINVAL,
                           "%s: no numeric feature columns besides the keys and the label; "
                           "name them with --features",
                           r->input_name);
  }
  r->p = p;
  r->sum->n_features = p;
  r->schema_hash = myr_feature_schema_hash(r->feat_name, p);
  /* From now on read only the columns we use: keys as text, the others as numbers. */
  unsigned char *want = myr__calloc(r->n_cols, 1);
  if (!want)
    return myr_error_set(err, MYR_ENOMEM, "out of memory");
  want[r->label_col] = MYR__WANT_VALUE;
  for (size_t f = 0; f < p; f++)
    want[r->feat_col[f]] = MYR__WANT_VALUE;
  for (size_t k = 0; k < o->n_keys; k++)
    want[r->key_col[k]] = MYR__WANT_TEXT;
  int rc = myr__source_select(r->src, want, err);
  myr__free(want);
  return rc;
}

/* ------------------------------------------------------------------ parsing */

/* Parsed rows [lo, hi) of the current batch; arrays are indexed from lo. Reused. */
struct myr__parse_slice {
  size_t lo, hi;       /* rows of the batch */
  size_t cap;          /* rows status, bad_col, hash and key_off hold */
  size_t y_cap, x_cap; /* rows y and x hold (0 once a merge took them) */
  uint8_t *status;     /* 0 = usable, else a myr_skip_reason + 1 */
  uint32_t *bad_col;   /* source column at fault (skips found here) */
  double *y;           /* labels, unless ycol */
  double *x;           /* features, row-major, but for those in fcol */
  const double *ycol;  /* labels in place in the batch (from row lo), or NULL */
  const double **fcol; /* p: feature f in place (from row lo), or NULL */
  int any_in_place;    /* some fcol[f] is set */
  uint64_t *hash;      /* key lookup hashes */
  uint8_t *same;       /* 1: the row's key bytes equal the previous row's (in this slice) */
  size_t *key_off;     /* start of each row's key encoding in keys */
  myr__buf keys;       /* key encodings, back to back */
  int rc;              /* MYR_OK, or a failure of this slice */
  /* First skipped row of each reason in this slice, described while the batch's text
     is still valid, so that merging can run after the reader moved on. */
  myr_skip_example ex[MYR_SKIP__COUNT]; /* ex[r].row == 0: none */
};

/* Size s for rows rows; y and x only when some label or feature is copied (need_y,
   need_x). y and x are replaced, not grown: a merge takes them. */
static int slice_reserve(myr__parse_slice *s, size_t rows, size_t p, int need_y,
                         int need_x) {
  if (need_y && rows > s->y_cap) {
    myr__free(s->y);
    s->y = myr__reallocarray(NULL, rows, sizeof *s->y);
    s->y_cap = s->y ? rows : 0;
    if (!s->y)
      return 0;
  }
  if (need_x && rows > s->x_cap) {
    myr__free(s->x);
    s->x = myr__reallocarray(NULL, rows, (p ? p : 1) * sizeof *s->x);
    s->x_cap = s->x ? rows : 0;
    if (!s->x)
      return 0;
  }
  if (!s->fcol && !(s->fcol = myr__calloc(p ? p : 1, sizeof *s->fcol)))
    return 0;
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
  uint8_t *sm = myr__realloc(s->same, rows);
  if (sm)
    s->same = sm;
  size_t *ko = myr__reallocarray(s->key_off, rows + 1, sizeof *ko);
  if (ko)
    s->key_off = ko;
  if (!st || !bc || !h || !sm || !ko)
    return 0;
  s->cap = rows;
  return 1;
}

static void slice_free(myr__parse_slice *s) {
  myr__free((void *)s->fcol);
  myr__free(s->status);
  myr__free(s->bad_col);
  myr__free(s->y);
  myr__free(s->x);
  myr__free(s->hash);
  myr__free(s->same);
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
      name = myr__source_column_name(r->src, arg - 1);
    break;
  case MYR_SKIP_BLANK_LINE:
    break;
  case MYR_SKIP_INVALID_KEY:
    name = myr__source_column_name(r->src, col);
    snprintf(ex->detail, sizeof ex->detail, "key is not valid UTF-8");
    break;
  case MYR_SKIP_NON_NUMERIC:
  case MYR_SKIP_NON_FINITE: {
    const myr__column *c = &b->columns[col];
    name = myr__source_column_name(r->src, col);
    if (c->kind == MYR__COL_TEXT)
      show_value(ex->detail, sizeof ex->detail, c->text + c->text_off[i], c->text_len[i]);
    else if (c->kind == MYR__COL_F64)
      snprintf(ex->detail, sizeof ex->detail, "value %g", c->f64[i]);
    break;
  }
  default:
    name = myr__source_column_name(r->src, col);
    break;
  }
  snprintf(ex->column, sizeof ex->column, "%s", name ? name : "");
}

/* Mark row j (batch row i) of s skipped for reason (a myr_skip_reason) at column col,
   unless an earlier check already skipped it; keep the example of the lowest row. */
static void skip_row(const run *r, const myr__batch *b, myr__parse_slice *s, size_t j,
                     size_t i, int reason, uint32_t col) {
  if (s->status[j])
    return;
  s->status[j] = (uint8_t)(reason + 1);
  s->bad_col[j] = col;
  myr_skip_example *ex = &s->ex[reason];
  if (!ex->row || b->first_row + i + 1 < ex->row)
    describe_skip(r, b, i, reason, col, ex);
}

/* One label or feature column into dst[j * stride] for the slice's rows (dst NULL: the
   values stay in place, only checked); a missing or non-numeric cell skips its row (the
   first failing check of a row decides why, as the columns are checked in order: keys,
   label, features). float64 without nulls, the common case, is a plain copy (or read)
   with a finiteness test. */
static void parse_numbers(const run *r, const myr__batch *b, myr__parse_slice *s,
                          size_t col, double *dst, size_t stride, int missing_reason) {
  const myr__column *c = &b->columns[col];
  const size_t lo = s->lo, n = s->hi - s->lo;
  if (c->kind == MYR__COL_F64 && (!c->validity || !dst)) {
    const double *src = c->f64 + lo;
    if (!dst && !c->validity) { /* read in place: only non-finite values need a look */
      int bad = 0;
      for (size_t j = 0; j < n; j++)
        bad |= !(src[j] - src[j] == 0); /* NaN and +-inf: x - x is NaN */
      if (!bad)
        return;
    }
    for (size_t j = 0; j < n; j++) {
      double v = src[j];
      if (dst)
        dst[j * stride] = v;
      if (!myr__batch_valid(c->validity, lo + j))
        skip_row(r, b, s, j, lo + j, missing_reason, (uint32_t)col);
      else if (!isfinite(v))
        skip_row(r, b, s, j, lo + j, isnan(v) ? missing_reason : MYR_SKIP_NON_FINITE,
                 (uint32_t)col);
    }
    return;
  }
  for (size_t j = 0; j < n; j++) {
    if (s->status[j])
      continue;
    const char *t;
    size_t tl;
    int k = cell_number(c, lo + j, &dst[j * stride], &t, &tl);
    if (k != MYR__NUM_OK)
      skip_row(r, b, s, j, lo + j, num_reason(k, missing_reason), (uint32_t)col);
  }
}

/* Parse rows [s->lo, s->hi) of b. Runs on any thread; touches only s. Rows first (CSV
   problems, keys and their hashes), then the label and the features column by column:
   a batch's columns are read front to back. */
static void parse_slice(const run *r, const myr__batch *b, myr__parse_slice *s) {
  const size_t n_keys = r->opt->n_keys, p = r->p;
  myr__buf_reset(&s->keys);
  for (int k = 0; k < MYR_SKIP__COUNT; k++)
    s->ex[k].row = 0;
  /* Input is often sorted or clustered by key: a row whose key cells hold the same bytes
     as the previous row's (whose key was good) is neither checked nor hashed again, and
     merging reuses that row's group. prev_t/prev_tl: the previous row's key texts. */
  const char *prev_t[MYR__MAX_KEYS];
  size_t prev_tl[MYR__MAX_KEYS];
  int prev_ok = 0;
  for (size_t i = s->lo; i < s->hi; i++) {
    size_t j = i - s->lo;
    s->key_off[j] = s->keys.len;
    s->status[j] = 0;
    s->bad_col[j] = 0;
    s->same[j] = 0;
    int same = prev_ok;
    prev_ok = 0;
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
        if (same && (tl != prev_tl[k] || memcmp(t, prev_t[k], tl) != 0))
          same = 0;
        if (same)
          ; /* checked on the previous row */
        else if (myr__is_missing_fast(t, tl))
          bad = MYR_SKIP_MISSING_KEY + 1;
        else if (!myr__utf8_valid((const unsigned char *)t, tl))
          bad = MYR_SKIP_INVALID_KEY + 1;
        prev_t[k] = t;
        prev_tl[k] = tl;
      } else if (c->kind == MYR__COL_I64) {
        int w = snprintf(num, sizeof num, "%lld", (long long)c->i64[i]);
        t = num;
        tl = (size_t)w;
        same = 0; /* num is rewritten for every row */
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
    if (bad) {
      s->status[j] = (uint8_t)bad;
      s->keys.len = s->key_off[j]; /* drop a partial key */
      if (!s->ex[bad - 1].row)
        describe_skip(r, b, i, bad - 1, s->bad_col[j], &s->ex[bad - 1]);
      continue;
    }
    /* A row skipped below for its label or a feature keeps its (unused) encoding. */
    prev_ok = !s->keys.failed;
    if (same) {
      s->same[j] = 1;
      s->hash[j] = s->hash[j - 1];
      continue;
    }
    const unsigned char *enc = (const unsigned char *)s->keys.data + s->key_off[j];
    s->hash[j] = myr__key_lookup_hash(enc, s->keys.len - s->key_off[j]);
  }
  s->key_off[s->hi - s->lo] = s->keys.len;
  parse_numbers(r, b, s, r->label_col, s->ycol ? NULL : s->y, 1, MYR_SKIP_MISSING_LABEL);
  for (size_t f = 0; f < p; f++)
    parse_numbers(r, b, s, r->feat_col[f], s->fcol[f] ? NULL : s->x + f, p,
                  MYR_SKIP_MISSING_FEATURE);
  s->rc = s->keys.failed ? MYR_ENOMEM : MYR_OK;
}

/* Count row j of s, skipped (s->status[j] != 0), under its reason. */
static void count_skip(run *r, const myr__parse_slice *s, size_t j) {
  int reason = s->status[j] - 1;
  /* The first row of a reason in the first slice that has one is the first overall. */
  if (r->sum->skipped[reason]++ == 0)
    r->sum->skip_example[reason] = s->ex[reason];
}

/* Spill mode: count s's skips and add its usable rows to the spill, in row order. */
static int spill_slice(run *r, myr__parse_slice *s, myr_error *err) {
  const size_t n = s->hi - s->lo;
  int rc = MYR_OK;
  r->sum->rows_total += n;
  for (size_t j = 0; j < n && rc == MYR_OK; j++) {
    if (s->status[j]) {
      count_skip(r, s, j);
      continue;
    }
    myr__row_features(s->fcol, s->x, j, r->p, r->spill_x);
    const unsigned char *enc = (const unsigned char *)s->keys.data + s->key_off[j];
    rc = myr__spill_add(r->spill, s->hash[j], enc, s->key_off[j + 1] - s->key_off[j],
                        s->ycol ? s->ycol[j] : s->y[j], r->spill_x, err);
    r->n_used_rows++;
  }
  return rc;
}

/* Merge a parsed slice in row order: count skips, intern keys, and take its rows over
   as a chunk (with a reference to kept, the batch, for the columns read in place). */
static int merge_slice(run *r, myr__parse_slice *s, myr__kept *kept, myr_error *err) {
  myr_train_summary *sum = r->sum;
  const size_t n = s->hi - s->lo;
  if (r->spill)
    return spill_slice(r, s, err);
  sum->rows_total += n;
  myr__row_chunk *c = myr__calloc(1, sizeof *c);
  uint32_t *gid = myr__reallocarray(NULL, n ? n : 1, sizeof *gid);
  const double **fcol = s->any_in_place ? myr__calloc(r->p, sizeof *fcol) : NULL;
  if (!c || !gid || (s->any_in_place && !fcol)) {
    myr__free(c);
    myr__free(gid);
    myr__free((void *)fcol);
    return myr_error_set(err, MYR_ENOMEM, "out of memory holding %llu rows",
                         (unsigned long long)r->n_used_rows);
  }
  size_t used = 0;
  for (size_t j = 0; j < n; j++) {
    if (s->status[j]) {
      count_skip(r, s, j);
      gid[j] = MYR__NO_GROUP;
      continue;
    }
    if (s->same[j] && gid[j - 1] != MYR__NO_GROUP) { /* same key as row j - 1 */
      gid[j] = gid[j - 1];
      r->keys.count[gid[j]]++;
      used++;
      continue;
    }
    const unsigned char *enc = (const unsigned char *)s->keys.data + s->key_off[j];
    int rc = myr__keytab_intern(&r->keys, enc, s->key_off[j + 1] - s->key_off[j],
                                s->hash[j], &gid[j], err);
    if (rc != MYR_OK) {
      myr__free(c);
      myr__free(gid);
      myr__free((void *)fcol);
      return rc;
    }
    used++;
  }
  if (used == 0) { /* nothing to keep: the slice keeps its arrays */
    myr__free(c);
    myr__free(gid);
    myr__free((void *)fcol);
    return MYR_OK;
  }
  int all_in_place = 1;
  for (size_t f = 0; f < r->p; f++)
    all_in_place &= s->fcol[f] != NULL;
  c->n = n;
  c->gid = gid;
  c->ycol = s->ycol;
  if (!s->ycol) {
    c->y = s->y;
    s->y = NULL;
    s->y_cap = 0;
  }
  if (!all_in_place) {
    c->x = s->x;
    s->x = NULL;
    s->x_cap = 0;
  }
  if (fcol) {
    memcpy((void *)fcol, s->fcol, r->p * sizeof *fcol);
    c->fcol = fcol;
  }
  if (s->ycol || fcol) {
    c->kept = kept;
    myr__kept_ref(kept);
  }
  chunk_append(r, c);
  r->n_used_rows += used;
  return MYR_OK;
}

/* Split b, the source's current batch, over the slices of set k and size their
   arrays; takes the batch's in-place columns (myr__source_keep) for the set; returns
   how many slices are used (one for small batches). */
static int prepare_slices(run *r, const myr__batch *b, int k, size_t *n_used,
                          myr_error *err) {
  myr__parse_slice *set = r->slices + (size_t)k * r->n_slices;
  unsigned char *in_place = r->set_in_place[k];
  myr__kept_release(r->set_kept[k]);
  r->set_kept[k] = NULL;
  MYR_RETURN_NOT_OK(myr__source_keep(r->src, in_place, &r->set_kept[k], err));
  int y_in = in_place[r->label_col], x_all_in = 1, x_any_in = 0;
  for (size_t f = 0; f < r->p; f++) {
    x_all_in &= in_place[r->feat_col[f]] != 0;
    x_any_in |= in_place[r->feat_col[f]] != 0;
  }
  size_t n = b->n_rows >= 4096 ? r->n_slices : 1;
  size_t per = (b->n_rows + n - 1) / n;
  for (size_t t = 0; t < n; t++) {
    myr__parse_slice *s = &set[t];
    s->lo = t * per < b->n_rows ? t * per : b->n_rows;
    s->hi = s->lo + per < b->n_rows ? s->lo + per : b->n_rows;
    if (!slice_reserve(s, s->hi - s->lo + 1, r->p, !y_in, !x_all_in))
      return myr_error_set(err, MYR_ENOMEM, "out of memory parsing rows");
    s->ycol = y_in ? b->columns[r->label_col].f64 + s->lo : NULL;
    for (size_t f = 0; f < r->p; f++)
      s->fcol[f] = in_place[r->feat_col[f]] ? b->columns[r->feat_col[f]].f64 + s->lo : NULL;
    s->any_in_place = x_any_in;
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

/* Bytes per held row besides its values, group id and grouping reference: what a
   batch whose columns are read in place keeps alive for its other columns (keys). */
#define HELD_ROW_EXTRA 24

uint64_t myr__held_bytes(const run *r) {
  const myr__keytab *k = &r->keys;
  return r->n_used_rows * (8 * (r->p + 1) + 4 + 8 + HELD_ROW_EXTRA) + k->bytes_cap +
         k->n_alloc * (3 * 8 + 8 + 4) + k->cap * 4;
}

static void chunks_free(run *r) {
  while (r->head) {
    myr__row_chunk *c = r->head;
    r->head = c->next;
    chunk_free(c);
  }
  r->tail = NULL;
}

/* The rows held have passed half the memory limit: move them, in input order, to a new
   spill partitioned for the whole input's expected size, and free them. */
static int start_spill(run *r, myr_error *err) {
  const uint64_t limit = r->opt->memory_limit, held = myr__held_bytes(r);
  uint64_t total = myr__source_bytes_total(r->src), done = myr__source_bytes_read(r->src);
  /* a stream of unknown length: assume it is 4 times what was read */
  double expect = total && done ? (double)held * ((double)total / (double)done) * 1.1
                                : (double)held * 4;
  double per_part = (double)limit * 0.4; /* a load takes one or more partitions */
  double parts = expect / per_part + 1;
  unsigned n_parts = parts >= MYR__SPILL_MAX_PARTS ? MYR__SPILL_MAX_PARTS
                     : parts < 2                   ? 2
                                                   : (unsigned)parts;
  uint64_t stage = limit / 8 < ((uint64_t)64 << 20) ? limit / 8 : (uint64_t)64 << 20;
  MYR_RETURN_NOT_OK(
      myr__spill_open(r->opt->spill_dir, n_parts, r->p, (size_t)stage, &r->spill, err));
  if (!(r->spill_x = myr__reallocarray(NULL, r->p ? r->p : 1, sizeof *r->spill_x)))
    return myr_error_set(err, MYR_ENOMEM, "out of memory spilling rows");
  int rc = MYR_OK;
  for (const myr__row_chunk *c = r->head; c && rc == MYR_OK; c = c->next) {
    for (size_t i = 0; i < c->n && rc == MYR_OK; i++) {
      uint32_t g = c->gid[i];
      if (g == MYR__NO_GROUP)
        continue;
      myr__row_features(c->fcol, c->x, i, r->p, r->spill_x);
      size_t klen;
      const unsigned char *enc = myr__keytab_key(&r->keys, g, &klen);
      rc = myr__spill_add(r->spill, r->keys.lhash[g], enc, klen,
                          c->ycol ? c->ycol[i] : c->y[i], r->spill_x, err);
    }
  }
  chunks_free(r);
  myr__keytab_free(&r->keys);
  myr__keytab_init(&r->keys);
  return rc;
}

/* Merge the n slices of set k; the set's reference to its batch is dropped after. */
static int merge_set(run *r, int k, size_t n, myr_error *err) {
  myr__parse_slice *set = r->slices + (size_t)k * r->n_slices;
  int rc = MYR_OK;
  for (size_t t = 0; t < n && rc == MYR_OK; t++) {
    if (set[t].rc != MYR_OK)
      rc = myr_error_set(err, set[t].rc, "out of memory encoding keys");
    else
      rc = merge_slice(r, &set[t], r->set_kept[k], err);
  }
  myr__kept_release(r->set_kept[k]);
  r->set_kept[k] = NULL;
  if (rc == MYR_OK && r->opt->memory_limit && !r->spill &&
      myr__held_bytes(r) > r->opt->memory_limit / 2)
    rc = start_spill(r, err);
  return rc;
}

int myr__ingest(run *r, myr_error *err) {
  const myr_train_options *o = r->opt;
  if (r->stream)
    MYR_RETURN_NOT_OK(myr__source_open_stream(r->stream, r->input_name, &r->src, err));
  else
    MYR_RETURN_NOT_OK(myr__source_open_path(o->input, o->delimiter, &r->src, err));
  r->n_cols = myr__source_n_columns(r->src);
  r->key_col = myr__calloc(o->n_keys, sizeof *r->key_col);
  if (!r->key_col)
    return myr_error_set(err, MYR_ENOMEM, "out of memory");
  char cols[512];
  for (size_t k = 0; k < o->n_keys; k++) {
    if (!myr__source_find(r->src, o->keys[k], &r->key_col[k])) {
      myr__source_list(r->src, cols, sizeof cols);
      return myr_error_set(err, MYR_ENOTFOUND, "%s: no key column '%s' (columns: %s)",
                           r->input_name, o->keys[k], cols);
    }
    for (size_t j = 0; j < k; j++)
      if (r->key_col[j] == r->key_col[k])
        return myr_error_set(err, MYR_EINVAL, "key column '%s' is listed twice", o->keys[k]);
  }
  if (!myr__source_find(r->src, o->label, &r->label_col)) {
    myr__source_list(r->src, cols, sizeof cols);
    return myr_error_set(err, MYR_ENOTFOUND, "%s: no label column '%s' (columns: %s)",
                         r->input_name, o->label, cols);
  }
  for (size_t k = 0; k < o->n_keys; k++)
    if (r->key_col[k] == r->label_col)
      return myr_error_set(err, MYR_EINVAL, "column '%s' is both a key and the label",
                           o->label);

  /* Keys are read as text from the start (an Arrow key of numbers or dates becomes the
     text a CSV holds); the other columns are probed for choose_features. */
  unsigned char *want = myr__calloc(r->n_cols ? r->n_cols : 1, 1);
  if (!want)
    return myr_error_set(err, MYR_ENOMEM, "out of memory");
  for (size_t c = 0; c < r->n_cols; c++)
    want[c] = MYR__WANT_PROBE;
  want[r->label_col] = MYR__WANT_VALUE;
  for (size_t k = 0; k < o->n_keys; k++)
    want[r->key_col[k]] = MYR__WANT_TEXT;
  int src = myr__source_select(r->src, want, err);
  myr__free(want);
  MYR_RETURN_NOT_OK(src);

  const myr__batch *b = NULL;
  MYR_RETURN_NOT_OK(myr__source_next(r->src, &b, err));
  if (!b)
    return myr_error_set(err, MYR_ENODATA, "%s: no data rows%s", r->input_name,
                         myr__source_is_text(r->src) ? " after the header" : "");
  MYR_RETURN_NOT_OK(choose_features(r, b, err));

  /* Two sets of slices: the pool parses batch k+1 into one while this thread merges
     batch k from the other. Parsing copies everything merging needs out of the batch,
     so the reader may move on as soon as a parse is done. */
  r->n_slices = myr__pool_size(r->pool);
  r->slices = myr__calloc(2 * r->n_slices, sizeof *r->slices);
  r->set_in_place[0] = myr__calloc(r->n_cols ? r->n_cols : 1, 1);
  r->set_in_place[1] = myr__calloc(r->n_cols ? r->n_cols : 1, 1);
  int rc = r->slices && r->set_in_place[0] && r->set_in_place[1]
               ? MYR_OK
               : myr_error_set(err, MYR_ENOMEM, "out of memory");
  myr_progress pr = {0};
  pr.phase = 1;
  pr.bytes_total = myr__source_bytes_total(r->src);
  double t0 = myr__now(), last = 0;
  int cur = 0;
  size_t n_cur = 0;
  parse_job job = {r, b, r->slices};
  if (rc == MYR_OK && (rc = prepare_slices(r, b, 0, &n_cur, err)) == MYR_OK)
    myr__pool_run(r->pool, n_cur, parse_task, &job);
  while (rc == MYR_OK) {
    int done_set = cur;
    size_t n_done = n_cur;
    pr.bytes_done = myr__source_bytes_read(r->src);
    rc = myr__source_next(r->src, &b, err);
    int parsing = 0;
    if (rc == MYR_OK && b) {
      rc = prepare_slices(r, b, 1 - cur, &n_cur, err);
      if (rc == MYR_OK) {
        job.b = b;
        job.set = r->slices + (size_t)(1 - cur) * r->n_slices;
        /* One thread: parse after merging, so that --threads 1 uses one core. */
        parsing = myr__pool_size(r->pool) > 1 ? 1 : 2;
        if (parsing == 1)
          myr__pool_start(r->pool, n_cur, parse_task, &job);
      }
    }
    int mrc = merge_set(r, done_set, n_done, err);
    if (parsing == 1)
      myr__pool_wait(r->pool);
    else if (parsing == 2 && mrc == MYR_OK)
      myr__pool_run(r->pool, n_cur, parse_task, &job);
    if (rc == MYR_OK)
      rc = mrc;
    if (rc == MYR_OK && o->cancel && *o->cancel) {
      rc = myr_error_set(err, MYR_ECANCELED, "canceled while reading %s", r->input_name);
      break;
    }
    if (rc != MYR_OK || !b)
      break;
    cur = 1 - cur;
    pr.rows_done = r->sum->rows_total;
    myr__report(r, &pr, &last, t0, 0);
  }
  if (rc == MYR_OK) {
    pr.bytes_done = myr__source_bytes_read(r->src);
    pr.rows_done = r->sum->rows_total;
    myr__report(r, &pr, &last, t0, 1);
  }
  return rc;
}

/* ------------------------------------------------------------------ grouping */


#define GROUP_WINDOW_ROWS ((size_t)4 << 20) /* chunk rows scattered between frees */
#define GROUP_MAX_POSITIONS ((size_t)1 << 24) /* per-task positions (128 MiB) */

/* A window of chunks scattered by n_tasks tasks, each over a run of whole chunks: task
   t's rows of group g go to pos[t * n_groups + g] onwards, after the rows of g in the
   tasks before it (a per-task counting sort; every row is read once). */
typedef struct group_job {
  run *r;
  myr__row_chunk **chunk;      /* the window's chunks, in input order */
  size_t *first;               /* n_tasks + 1: task t has chunks [first[t], first[t+1]) */
  uint64_t *pos;               /* n_tasks * n_groups counts, then destination rows */
  int scatter;                 /* 0: count, 1: scatter */
  size_t base;                 /* index of chunk[0] among all chunks (for ref) */
} group_job;

static int group_task(void *ctx, size_t t, unsigned worker) {
  group_job *job = ctx;
  run *r = job->r;
  uint64_t *pos = job->pos + t * r->keys.n;
  (void)worker;
  if (!job->scatter)
    memset(pos, 0, r->keys.n * sizeof *pos);
  for (size_t k = job->first[t]; k < job->first[t + 1]; k++) {
    const myr__row_chunk *c = job->chunk[k];
    for (size_t i = 0; i < c->n; i++) {
      uint32_t g = c->gid[i];
      if (g == MYR__NO_GROUP)
        continue;
      if (job->scatter)
        r->ref[pos[g]++] = (uint64_t)(job->base + k) << 32 | i;
      else
        pos[g]++;
    }
  }
  return MYR_OK;
}

int myr__group_rows(run *r, myr_error *err) {
  size_t g_n = r->keys.n;
  /* Two tasks per thread (tasks are claimed first come, first served), as far as their
     positions (n_tasks * g_n) stay within GROUP_MAX_POSITIONS. */
  size_t n_tasks = myr__pool_size(r->pool) > 1 ? 2 * (size_t)myr__pool_size(r->pool) : 1;
  if (n_tasks > 1 && n_tasks * g_n > GROUP_MAX_POSITIONS)
    n_tasks = g_n < GROUP_MAX_POSITIONS / 2 ? GROUP_MAX_POSITIONS / g_n : 1;
  size_t max_chunks = 0;
  /* Rows are referenced, not copied: each fit gathers its group's rows from the chunks
     (parsed values or columns read in place), which stay until training ends. A chunk
     is one parse slice of a batch (sources hand out at most 65536 rows at a time), so
     32 bits hold its rows and, with room to spare, the chunks' count. */
  for (myr__row_chunk *c = r->head; c; c = c->next) {
    max_chunks++;
    if (c->n > UINT32_MAX)
      return myr_error_set(err, MYR_EINTERNAL, "a chunk of %zu rows", c->n);
  }
  if (max_chunks > UINT32_MAX)
    return myr_error_set(err, MYR_EINTERNAL, "%zu chunks", max_chunks);
  r->offset = myr__calloc(g_n + 1, sizeof *r->offset);
  r->order = myr__calloc(g_n, sizeof *r->order);
  uint64_t *fill = myr__calloc(g_n, sizeof *fill);
  uint64_t *pos = myr__reallocarray(NULL, n_tasks * g_n, sizeof *pos);
  myr__row_chunk **chunk = myr__calloc(max_chunks + 1, sizeof *chunk);
  size_t *first = myr__calloc(n_tasks + 1, sizeof *first);
  r->ref = myr__reallocarray(NULL, r->n_used_rows ? r->n_used_rows : 1, sizeof *r->ref);
  r->chunks = myr__calloc(max_chunks + 1, sizeof *r->chunks);
  if (!r->offset || !r->order || !fill || !pos || !chunk || !first || !r->ref ||
      !r->chunks) {
    myr__free(fill);
    myr__free(pos);
    myr__free(chunk);
    myr__free(first);
    return myr_error_set(err, MYR_ENOMEM, "out of memory grouping %llu rows into %zu groups",
                         (unsigned long long)r->n_used_rows, g_n);
  }
  for (size_t g = 0; g < g_n; g++) {
    r->offset[g + 1] = r->offset[g] + r->keys.count[g];
    fill[g] = r->offset[g];
  }
  group_job job = {r, chunk, first, pos, 0, 0};
  myr__row_chunk *cursor = r->head; /* the chunks stay in the list */
  while (cursor) {
    size_t n_chunks = 0, rows = 0;
    for (myr__row_chunk *c = cursor; c && rows < GROUP_WINDOW_ROWS; c = c->next) {
      chunk[n_chunks++] = c;
      rows += c->n;
    }
    /* task t: the chunks starting in its share of the window's rows */
    for (size_t t = 0, k = 0, seen = 0; t <= n_tasks; t++) {
      size_t at = rows * t / n_tasks;
      while (k < n_chunks && seen < at)
        seen += chunk[k++]->n;
      first[t] = t == n_tasks ? n_chunks : k;
    }
    job.scatter = 0;
    if (n_tasks > 1)
      myr__pool_run(r->pool, n_tasks, group_task, &job);
    else
      group_task(&job, 0, 0);
    for (size_t g = 0; g < g_n; g++) { /* counts -> first destination row per task */
      uint64_t at = fill[g];
      for (size_t t = 0; t < n_tasks; t++) {
        uint64_t n = pos[t * g_n + g];
        pos[t * g_n + g] = at;
        at += n;
      }
      fill[g] = at;
    }
    job.scatter = 1;
    if (n_tasks > 1)
      myr__pool_run(r->pool, n_tasks, group_task, &job);
    else
      group_task(&job, 0, 0);
    for (size_t k = 0; k < n_chunks; k++)
      r->chunks[job.base + k] = chunk[k];
    job.base += n_chunks;
    cursor = chunk[n_chunks - 1]->next;
  }
  myr__free(fill);
  myr__free(pos);
  myr__free(chunk);
  myr__free(first);
  uint64_t *packed = myr__calloc(g_n, sizeof *packed);
  if (!packed)
    return myr_error_set(err, MYR_ENOMEM, "out of memory ordering %zu groups", g_n);
  for (size_t g = 0; g < g_n; g++)
    packed[g] = (uint64_t)(UINT32_MAX - r->keys.count[g]) << 32 | g;
  /* Largest group first, ties by first appearance: sort (count, gid) packed in a u64. */
  qsort(packed, g_n, sizeof *packed, myr__cmp_u64);
  for (size_t g = 0; g < g_n; g++)
    r->order[g] = (uint32_t)packed[g];
  myr__free(packed);
  return MYR_OK;
}

/* ------------------------------------------------------------------ loads */

void myr__load_free(run *r) {
  chunks_free(r);
  myr__free(r->offset);
  myr__free(r->order);
  myr__free(r->ref);
  myr__free(r->chunks);
  r->offset = NULL;
  r->order = NULL;
  r->ref = NULL;
  r->chunks = NULL;
  myr__keytab_free(&r->keys);
  myr__keytab_init(&r->keys);
  r->n_used_rows = 0;
}

/* One spilled block as a chunk of the load: its own copies of the values, keys
   interned (a row with the same key bytes as the row before reuses its group). */
static int load_block(void *ud, const myr__spill_rows *b, myr_error *err) {
  run *r = ud;
  const size_t n = b->n, p = r->p;
  myr__row_chunk *c = myr__calloc(1, sizeof *c);
  if (c) {
    c->n = n;
    c->gid = myr__reallocarray(NULL, n ? n : 1, sizeof *c->gid);
    c->y = myr__reallocarray(NULL, n ? n : 1, sizeof *c->y);
    c->x = myr__reallocarray(NULL, n ? n : 1, (p ? p : 1) * sizeof *c->x);
  }
  if (!c || !c->gid || !c->y || !c->x) {
    if (c)
      chunk_free(c);
    return myr_error_set(err, MYR_ENOMEM, "out of memory reading spilled rows");
  }
  memcpy(c->y, b->y, n * sizeof *c->y);
  memcpy(c->x, b->x, n * p * sizeof *c->x);
  chunk_append(r, c);
  r->n_used_rows += n;
  uint32_t prev = 0; /* start of row j - 1's key */
  for (size_t j = 0; j < n; j++) {
    uint32_t start = j ? b->key_end[j - 1] : 0, len = b->key_end[j] - start;
    const unsigned char *enc = b->keys + start;
    if (j && b->hash[j] == b->hash[j - 1] && len == start - prev &&
        memcmp(enc, b->keys + prev, len) == 0) {
      c->gid[j] = c->gid[j - 1];
      r->keys.count[c->gid[j]]++;
    } else {
      MYR_RETURN_NOT_OK(
          myr__keytab_intern(&r->keys, enc, len, b->hash[j], &c->gid[j], err));
    }
    prev = start;
  }
  return MYR_OK;
}

int myr__load_read(run *r, unsigned first, unsigned last, myr_error *err) {
  for (unsigned i = first; i < last; i++)
    MYR_RETURN_NOT_OK(myr__spill_read(r->spill, i, load_block, r, err));
  return MYR_OK;
}

void myr__ingest_free(run *r) {
  myr__load_free(r); /* chunks, grouping arrays, key table */
  myr__spill_close(r->spill);
  r->spill = NULL;
  myr__free(r->spill_x);
  r->spill_x = NULL;
  if (r->slices)
    for (size_t t = 0; t < 2 * r->n_slices; t++)
      slice_free(&r->slices[t]);
  myr__free(r->slices);
  r->slices = NULL;
  for (int k = 0; k < 2; k++) {
    myr__kept_release(r->set_kept[k]);
    r->set_kept[k] = NULL;
    myr__free(r->set_in_place[k]);
    r->set_in_place[k] = NULL;
  }
  myr__free(r->key_col);
  myr__free(r->feat_col);
  myr__free(r->feat_name);
  myr__source_close(r->src);
  r->src = NULL;
}
