/* SPDX-License-Identifier: Apache-2.0 */
/* Models tables: see mtable.h. */
#include "engine/mtable.h"

#include <string.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/text.h"
#include "engine/keys.h"
#include "io/number.h"
#include "io/source.h"

enum { V_MODEL, V_N_ROWS, V_METRICS, V_STATUS, V_ERROR, V_FEATURES, V__COUNT };
static const char *const value_columns[V__COUNT] = {"model",  "n_rows", "metrics",
                                                    "status", "error",  "features"};

int myr__mtable_is_value_column(const char *name) {
  for (size_t i = 0; i < V__COUNT; i++)
    if (strcmp(name, value_columns[i]) == 0)
      return 1;
  return 0;
}

void myr__mtable_names_free(char **names, size_t n) {
  for (size_t k = 0; names && k < n; k++)
    myr__free(names[k]);
  myr__free(names);
}

/* Text of column c at row i, or NULL (absent, null or not text). */
static const char *cell_text(const myr__column *c, size_t i, size_t *len) {
  *len = 0;
  if (!c || c->kind != MYR__COL_TEXT || !myr__batch_valid(c->validity, i))
    return NULL;
  *len = c->text_len[i];
  return c->text + c->text_off[i];
}

int myr__mtable_read(struct ArrowArrayStream *s, const char *name, char ***key_names,
                     size_t *n_keys, myr__mrow_fn fn, void *ud, myr_error *err) {
  myr__source *ms = NULL;
  unsigned char *want = NULL;
  size_t kcol[MYR__MAX_KEYS], vcol[V__COUNT], nk = 0;
  int has[V__COUNT] = {0};
  *key_names = NULL;
  *n_keys = 0;
  MYR_RETURN_NOT_OK(myr__source_open_stream(s, name, &ms, err));
  size_t n = myr__source_n_columns(ms);
  int rc = MYR_OK;
  char cols[512];
  myr__buf enc;
  myr__buf_init(&enc);
  for (size_t v = 0; v < V__COUNT; v++)
    has[v] = myr__source_find(ms, value_columns[v], &vcol[v]);
  if (!has[V_MODEL]) {
    myr__source_list(ms, cols, sizeof cols);
    rc = myr_error_set(err, MYR_ENOTFOUND, "%s has no 'model' column (columns: %s)", name,
                       cols);
    goto done;
  }
  for (size_t j = 0; j < n; j++) {
    if (myr__mtable_is_value_column(myr__source_column_name(ms, j)))
      continue;
    if (nk == MYR__MAX_KEYS) {
      rc = myr_error_set(err, MYR_EUNSUPPORTED, "%s has more than %d key columns", name,
                         MYR__MAX_KEYS);
      goto done;
    }
    kcol[nk++] = j;
  }
  if (nk == 0) {
    rc = myr_error_set(err, MYR_EINVAL, "%s has no key columns", name);
    goto done;
  }
  want = myr__calloc(n, 1);
  *key_names = myr__calloc(nk, sizeof **key_names);
  if (!want || !*key_names) {
    rc = myr_error_set(err, MYR_ENOMEM, "out of memory reading %s", name);
    goto done;
  }
  *n_keys = nk; /* *key_names has nk entries from here on */
  for (size_t k = 0; k < nk; k++) {
    if (!((*key_names)[k] = myr__strdup(myr__source_column_name(ms, kcol[k])))) {
      rc = myr_error_set(err, MYR_ENOMEM, "out of memory reading %s", name);
      goto done;
    }
    want[kcol[k]] = MYR__WANT_TEXT;
  }
  for (size_t v = 0; v < V__COUNT; v++)
    if (has[v])
      want[vcol[v]] = v == V_N_ROWS ? MYR__WANT_VALUE : MYR__WANT_TEXT;
  if ((rc = myr__source_select(ms, want, err)) != MYR_OK)
    goto done;
  uint64_t row = 0;
  for (;;) {
    const myr__batch *b = NULL;
    if ((rc = myr__source_next(ms, &b, err)) != MYR_OK || !b)
      break;
    const myr__column *vc[V__COUNT];
    for (size_t v = 0; v < V__COUNT; v++)
      vc[v] = has[v] ? &b->columns[vcol[v]] : NULL;
    for (size_t i = 0; i < b->n_rows && rc == MYR_OK; i++) {
      myr__mrow r;
      memset(&r, 0, sizeof r);
      r.row = ++row;
      const char *kv[MYR__MAX_KEYS];
      size_t kl[MYR__MAX_KEYS];
      myr__buf_reset(&enc);
      int usable = 1;
      for (size_t k = 0; k < nk && usable; k++) {
        const myr__column *kc = &b->columns[kcol[k]];
        const char *t = cell_text(kc, i, &kl[k]);
        if (!t || myr__is_missing_fast(t, kl[k]) ||
            !myr__utf8_valid((const unsigned char *)t, kl[k])) {
          usable = 0; /* no input row can have this key */
          break;
        }
        size_t tl = kl[k];
        unsigned char len4[4] = {(unsigned char)tl, (unsigned char)(tl >> 8),
                                 (unsigned char)(tl >> 16), (unsigned char)(tl >> 24)};
        myr__buf_append(&enc, len4, 4);
        myr__buf_append(&enc, t, tl);
        kv[k] = t;
      }
      if (!usable)
        continue;
      if (enc.failed) {
        rc = myr_error_set(err, MYR_ENOMEM, "out of memory reading %s", name);
        break;
      }
      r.enc = (const unsigned char *)enc.data;
      r.enc_len = enc.len;
      r.key = kv;
      r.key_len = kl;
      r.blob = (const unsigned char *)cell_text(vc[V_MODEL], i, &r.blob_len);
      r.features = cell_text(vc[V_FEATURES], i, &r.features_len);
      r.metrics = cell_text(vc[V_METRICS], i, &r.metrics_len);
      r.status = cell_text(vc[V_STATUS], i, &r.status_len);
      r.error = cell_text(vc[V_ERROR], i, &r.error_len);
      r.n_rows = -1;
      const myr__column *nc = vc[V_N_ROWS];
      if (nc && myr__batch_valid(nc->validity, i)) {
        if (nc->kind == MYR__COL_I64)
          r.n_rows = nc->i64[i];
        else if (nc->kind == MYR__COL_F64 && nc->f64[i] >= 0 && nc->f64[i] < 9e18)
          r.n_rows = (int64_t)nc->f64[i];
      }
      rc = fn(ud, &r, err);
    }
    if (rc != MYR_OK)
      break;
  }
done:
  myr__buf_free(&enc);
  myr__free(want);
  myr__source_close(ms);
  return rc;
}
