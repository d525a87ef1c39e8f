/* SPDX-License-Identifier: Apache-2.0 */
/*
 * myr_store_import: a models table (engine/mtable.h) into a store as one published run.
 * The run is begun on the first row, once the key names, the family and the feature
 * list are known; its spec names the feature list, so that predict can resolve it as it
 * resolves a trained run's.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "engine/keys.h"
#include "engine/mtable.h"
#include "myriad/blob.h"
#include "myriad/store.h"

typedef struct imp {
  const myr_import_options *opt;
  myr_import_summary *sum;
  myr_store *store;
  char ***key_names; /* mtable_read's, set before the first row */
  size_t *n_keys;
  int64_t run_id;
  char *features; /* the feature list (JSON text) of the first model */
  uint64_t schema_hash;
  uint32_t n_features;
  myr__buf spec;
  /* failed groups met before the first model (the run begins with it): their key
     encoding, rows, reason and message, back to back, NUL-separated */
  myr__buf early;
  size_t n_early;
} imp;

/* "key app=a, api=b at row N" for messages. */
static void where(const imp *m, const myr__mrow *r, char *out, size_t cap) {
  char key[200];
  myr__key_format(r->enc, r->enc_len, *m->n_keys, key, sizeof key);
  snprintf(out, cap, "row %llu (key %s)", (unsigned long long)r->row, key);
}

/* The first model fixes the family and the features; begin the run. */
static int begin(imp *m, const myr__mrow *r, const myr_blob_view *v, myr_error *err) {
  char at[260];
  where(m, r, at, sizeof at);
  if (!r->features)
    return myr_error_set(err, MYR_EINVAL,
                         "models table %s: no features (a JSON array "
                         "of the feature names is needed to score the model)",
                         at);
  json_error_t jerr;
  json_t *arr = json_loadb(r->features, r->features_len, JSON_DECODE_ANY, &jerr);
  size_t p = arr && json_is_array(arr) ? json_array_size(arr) : 0;
  const char **names = p ? myr__calloc(p, sizeof *names) : NULL;
  int rc = MYR_OK;
  for (size_t f = 0; f < p && names; f++)
    if (!(names[f] = json_string_value(json_array_get(arr, f))))
      p = 0;
  if (!arr || !p || !names)
    rc = myr_error_set(err, MYR_EINVAL,
                       "models table %s: features is not a JSON array "
                       "of names",
                       at);
  else if (myr_feature_schema_hash(names, p) != v->schema_hash || p != v->n_features)
    rc = myr_error_set(err, MYR_ECORRUPT,
                       "models table %s: the model was trained on "
                       "other features than its features column lists",
                       at);
  myr__free(names);
  json_decref(arr);
  MYR_RETURN_NOT_OK(rc);
  if (!(m->features = myr__strndup(r->features, r->features_len)))
    return myr_error_set(err, MYR_ENOMEM, "out of memory");
  m->schema_hash = v->schema_hash;
  m->n_features = v->n_features;
  snprintf(m->sum->family, sizeof m->sum->family, "%s", v->family);
  const char *src = m->opt->source ? m->opt->source : "import";
  myr__buf_puts(&m->spec, "{\"input\":");
  myr__buf_json_str(&m->spec, src, strlen(src));
  myr__buf_puts(&m->spec, ",\"keys\":[");
  for (size_t k = 0; k < *m->n_keys; k++) {
    if (k)
      myr__buf_puts(&m->spec, ",");
    myr__buf_json_str(&m->spec, (*m->key_names)[k], strlen((*m->key_names)[k]));
  }
  myr__buf_printf(&m->spec, "],\"features\":%s,\"model\":", m->features);
  myr__buf_json_str(&m->spec, v->family, strlen(v->family));
  myr__buf_printf(&m->spec, ",\"seed\":%llu,\"imported\":true}",
                  (unsigned long long)m->opt->seed);
  if (m->spec.failed)
    return myr_error_set(err, MYR_ENOMEM, "out of memory");
  myr_run_spec rs = {(const char *const *)*m->key_names, *m->n_keys, v->family,
                     myr__buf_str(&m->spec), m->opt->seed};
  return myr_store_run_begin(m->store, &rs, &m->run_id, err);
}

/* Store one failed group: key encoding enc, its rows, reason and message. */
static int put_failed(imp *m, const unsigned char *enc, size_t enc_len, uint64_t n_rows,
                      const char *reason, const char *msg, myr_error *err) {
  const char *kv[MYR__MAX_KEYS];
  size_t kl[MYR__MAX_KEYS];
  if (!myr__key_split(enc, enc_len, *m->n_keys, kv, kl))
    return myr_error_set(err, MYR_EINTERNAL, "a key encoding is damaged");
  myr_error_row row = {myr__key_hash(enc, enc_len), kv, kl, n_rows, reason, msg};
  m->sum->errors++;
  return myr_store_put_error(m->store, m->run_id, &row, err);
}

/* The failed groups kept until the run began. */
static int put_early(imp *m, myr_error *err) {
  const char *at = m->early.data;
  for (size_t i = 0; i < m->n_early; i++) {
    uint64_t enc_len, n_rows;
    memcpy(&enc_len, at, 8);
    memcpy(&n_rows, at + 8, 8);
    const unsigned char *enc = (const unsigned char *)at + 16;
    const char *reason = at + 16 + enc_len, *msg = reason + strlen(reason) + 1;
    MYR_RETURN_NOT_OK(put_failed(m, enc, (size_t)enc_len, n_rows, reason, msg, err));
    at = msg + strlen(msg) + 1;
  }
  return MYR_OK;
}

static int import_row(void *ud, const myr__mrow *r, myr_error *err) {
  imp *m = ud;
  char at[260];
  if (!r->blob) {
    char reason[64] = "model_error", msg[512] = "";
    if (r->status && r->status_len && r->status_len < sizeof reason)
      snprintf(reason, sizeof reason, "%.*s", (int)r->status_len, r->status);
    if (r->error)
      snprintf(msg, sizeof msg, "%.*s", (int)r->error_len, r->error);
    uint64_t n_rows = r->n_rows > 0 ? (uint64_t)r->n_rows : 0;
    if (m->run_id)
      return put_failed(m, r->enc, r->enc_len, n_rows, reason, msg, err);
    uint64_t enc_len =
        r->enc_len; /* no run yet: keep it for when the first model comes */
    myr__buf_append(&m->early, &enc_len, 8);
    myr__buf_append(&m->early, &n_rows, 8);
    myr__buf_append(&m->early, r->enc, r->enc_len);
    myr__buf_append(&m->early, reason, strlen(reason) + 1);
    myr__buf_append(&m->early, msg, strlen(msg) + 1);
    m->n_early++;
    return m->early.failed ? myr_error_set(err, MYR_ENOMEM, "out of memory") : MYR_OK;
  }
  uint64_t hash = myr__key_hash(r->enc, r->enc_len);
  myr_blob_view v;
  myr_error berr = {0};
  if (myr_blob_parse(r->blob, r->blob_len, &v, &berr) != MYR_OK) {
    where(m, r, at, sizeof at);
    return myr_error_set(err, MYR_ECORRUPT, "models table %s: %s", at, berr.message);
  }
  if (!m->run_id) {
    MYR_RETURN_NOT_OK(begin(m, r, &v, err));
    MYR_RETURN_NOT_OK(put_early(m, err));
  }
  if (strcmp(v.family, m->sum->family) != 0 || v.schema_hash != m->schema_hash ||
      !r->features || r->features_len != strlen(m->features) ||
      memcmp(r->features, m->features, r->features_len) != 0) {
    where(m, r, at, sizeof at);
    return myr_error_set(err, MYR_EINVAL,
                         "models table %s: a %s model on features %.*s, "
                         "where the first model is a %s model on %s: import them as "
                         "separate tables",
                         at, v.family, r->features ? (int)r->features_len : 4,
                         r->features ? r->features : "null", m->sum->family, m->features);
  }
  char metrics[4096] = "{}";
  if (r->metrics && r->metrics_len < sizeof metrics)
    snprintf(metrics, sizeof metrics, "%.*s", (int)r->metrics_len, r->metrics);
  myr_model_row row = {hash, r->key,  r->key_len, r->n_rows > 0 ? (uint64_t)r->n_rows : 0,
                       0,    metrics, r->blob,    r->blob_len};
  m->sum->models++;
  return myr_store_put_model(m->store, m->run_id, &row, err);
}

int myr_store_import(const myr_import_options *opt, myr_import_summary *summary,
                     myr_error *err) {
  myr_import_summary local;
  myr_import_summary *s = summary ? summary : &local;
  memset(s, 0, sizeof *s);
  struct ArrowArrayStream in;
  in.release = NULL;
  if (opt && opt->models && opt->models->release) {
    in = *opt->models;
    opt->models->release = NULL;
  }
  if (!opt || !in.release || !opt->store || !*opt->store) {
    if (in.release)
      in.release(&in);
    return myr_error_set(err, MYR_EINVAL, "importing needs a store and a models table");
  }
  imp m;
  memset(&m, 0, sizeof m);
  m.opt = opt;
  m.sum = s;
  myr__buf_init(&m.spec);
  myr__buf_init(&m.early);
  char **names = NULL;
  size_t n_keys = 0;
  m.key_names = &names;
  m.n_keys = &n_keys;
  int rc = myr_store_open(opt->store, 0, &m.store, err);
  if (rc != MYR_OK)
    in.release(&in);
  else
    rc = myr__mtable_read(&in, "the models table", &names, &n_keys, import_row, &m, err);
  if (rc == MYR_OK && !m.run_id)
    rc = myr_error_set(err, MYR_ENODATA, "the models table holds no model to import");
  if (rc == MYR_OK) {
    char js[256];
    snprintf(js, sizeof js,
             "{\"imported\":true,\"groups_trained\":%llu,"
             "\"groups_failed\":%llu}",
             (unsigned long long)s->models, (unsigned long long)s->errors);
    rc = myr_store_run_publish(m.store, m.run_id, js, err);
  }
  if (rc != MYR_OK && m.run_id) {
    myr_error ignored = {0};
    myr_store_run_fail(m.store, m.run_id, err ? err->message : "import failed", &ignored);
  }
  if (rc == MYR_OK)
    s->run_id = m.run_id;
  myr_store_close(m.store);
  myr__mtable_names_free(names, n_keys);
  myr__free(m.features);
  myr__buf_free(&m.spec);
  myr__buf_free(&m.early);
  return rc;
}
