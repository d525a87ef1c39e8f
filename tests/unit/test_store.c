/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of the SQLite model store (src/store/store.c): visibility before and after
 * publish, versions across runs, failed runs, key filters and worst-metric order, key
 * name rules, files that are not stores, hash collisions, odd key strings, a
 * 100,000-model run, damaged stores, and an allocation-failure loop over the whole write
 * path.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "myriad/store.h"
#include "testutil.h"

static const char *const KEYS[] = {"app", "api"};

static void fresh_path(char *out, size_t cap, const char *name) {
  char side[600];
  tu_path(out, cap, name);
  unlink(out);
  snprintf(side, sizeof side, "%s-wal", out);
  unlink(side);
  snprintf(side, sizeof side, "%s-shm", out);
  unlink(side);
}

static myr_store *open_ok(const char *path, unsigned flags) {
  myr_store *s = NULL;
  myr_error err = {0};
  int rc = myr_store_open(path, flags, &s, &err);
  if (rc != MYR_OK)
    print_error("open %s: %s\n", path, err.message);
  assert_int_equal(rc, MYR_OK);
  assert_non_null(s);
  return s;
}

static int64_t begin_ok(myr_store *s, const char *const *keys, size_t n_keys) {
  myr_run_spec spec = {keys, n_keys, "linear", "{\"model\":\"linear\"}", 42};
  myr_error err = {0};
  int64_t run = 0;
  int rc = myr_store_run_begin(s, &spec, &run, &err);
  if (rc != MYR_OK)
    print_error("begin: %s\n", err.message);
  assert_int_equal(rc, MYR_OK);
  assert_true(run > 0);
  return run;
}

/* Put a model for (app, api) whose blob is "blob:<app>/<api>" and metrics hold r2. */
static int put2(myr_store *s, int64_t run, uint64_t hash, const char *app,
                const char *api, const char *metrics, myr_error *err) {
  const char *vals[2] = {app, api};
  size_t lens[2] = {strlen(app), strlen(api)};
  char blob[256];
  int n = snprintf(blob, sizeof blob, "blob:%s/%s", app, api);
  myr_model_row row = {
      hash, vals, lens, 100, 20, metrics, (const unsigned char *)blob, (size_t)n};
  return myr_store_put_model(s, run, &row, err);
}

static void put2_ok(myr_store *s, int64_t run, uint64_t hash, const char *app,
                    const char *api, double r2) {
  char metrics[64];
  myr_error err = {0};
  snprintf(metrics, sizeof metrics, "{\"r2\":%g,\"rmse\":%g}", r2, 1.0 - r2);
  int rc = put2(s, run, hash, app, api, metrics, &err);
  if (rc != MYR_OK)
    print_error("put: %s\n", err.message);
  assert_int_equal(rc, MYR_OK);
}

static void publish_ok(myr_store *s, int64_t run) {
  myr_error err = {0};
  int rc = myr_store_run_publish(s, run, "{\"groups\":3}", &err);
  if (rc != MYR_OK)
    print_error("publish: %s\n", err.message);
  assert_int_equal(rc, MYR_OK);
}

/* Collects what the callbacks saw. */
typedef struct seen {
  int n;
  char key[64][128]; /* "app|api" per record */
  int64_t version[64];
  int64_t run[64];
  char blob[64][128];
  char metrics[64][128];
  uint64_t hash[64];
  int stop_after; /* return 7 after this many when > 0 */
} seen;

static int collect(void *ud, const myr_model_record *r) {
  seen *v = ud;
  assert_true(v->n < 64);
  assert_non_null(r->blob);
  assert_non_null(r->metrics_json);
  assert_non_null(r->family);
  assert_non_null(r->published_at);
  char *k = v->key[v->n];
  size_t used = 0;
  k[0] = '\0';
  for (size_t i = 0; i < r->n_keys; i++) {
    assert_non_null(r->key_values[i]);
    used +=
        (size_t)snprintf(k + used, 128 - used, "%s%.60s", i ? "|" : "", r->key_values[i]);
  }
  v->version[v->n] = r->version;
  v->run[v->n] = r->run_id;
  v->hash[v->n] = r->key_hash;
  snprintf(v->blob[v->n], 128, "%.*s", (int)r->blob_len, (const char *)r->blob);
  snprintf(v->metrics[v->n], 128, "%s", r->metrics_json);
  v->n++;
  return v->stop_after > 0 && v->n >= v->stop_after ? 7 : 0;
}

static seen *query(myr_store *s, const myr_model_query *q) {
  static seen v;
  myr_error err = {0};
  memset(&v, 0, sizeof v);
  int rc = myr_store_models(s, q, collect, &v, &err);
  if (rc != MYR_OK)
    print_error("models: %s\n", err.message);
  assert_int_equal(rc, MYR_OK);
  return &v;
}

static int find(const seen *v, const char *key) {
  for (int i = 0; i < v->n; i++)
    if (strcmp(v->key[i], key) == 0)
      return i;
  return -1;
}

static int count_errors(void *ud, const myr_error_record *r) {
  int *n = ud;
  assert_string_equal(r->reason, "too_few_rows");
  assert_int_equal(r->n_keys, 2);
  assert_string_equal(r->key_names[0], "app");
  assert_string_equal(r->key_values[0], "a9");
  (*n)++;
  return 0;
}

/* Rows of the run committed so far, as another connection sees them. */
static int committed_models(const char *path, int64_t run) {
  sqlite3 *db;
  sqlite3_stmt *q;
  assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM models WHERE run_id = ?1",
                                      -1, &q, NULL),
                   SQLITE_OK);
  sqlite3_bind_int64(q, 1, run);
  assert_int_equal(sqlite3_step(q), SQLITE_ROW);
  int n = sqlite3_column_int(q, 0);
  sqlite3_finalize(q);
  sqlite3_close(db);
  return n;
}

/* A put batch is committed once it holds 4 MiB of blobs, long before 20,000 rows or a
   second: big models reach the file while the run goes on, not all at publish. */
static void test_batches_commit_by_bytes(void **state) {
  (void)state;
  char path[512];
  myr_error err = {0};
  fresh_path(path, sizeof path, "bytes.db");
  myr_store *w = open_ok(path, 0);
  int64_t run = begin_ok(w, KEYS, 2);
  size_t len = (size_t)3 << 20;
  unsigned char *blob = calloc(len, 1);
  assert_non_null(blob);
  const char *apps[] = {"a1", "a2", "a3"};
  for (int i = 0; i < 3; i++) {
    const char *vals[2] = {apps[i], "/x"};
    size_t lens[2] = {2, 2};
    myr_model_row row = {(uint64_t)i + 1, vals, lens, 10, 0, NULL, blob, len};
    assert_int_equal(myr_store_put_model(w, run, &row, &err), MYR_OK);
  }
  /* 3 MiB, then 6 MiB: committed; the third put opened a new batch */
  assert_int_equal(committed_models(path, run), 2);
  free(blob);
  publish_ok(w, run);
  assert_int_equal(committed_models(path, run), 3);
  myr_store_close(w);
}

static int collect_hash(void *ud, uint64_t h) {
  uint64_t *sum = ud;
  sum[0]++;
  sum[1] += h;
  return MYR_OK;
}

/* A run whose process died (still "running") is taken up again with its models kept and
   its errors dropped; a published one is reported, not reopened; another spec is not. */
static void test_resume(void **state) {
  (void)state;
  char path[512];
  myr_error err = {0};
  fresh_path(path, sizeof path, "resume.db");
  myr_run_spec spec = {KEYS, 2, "linear", "{\"model\":\"linear\"}", 42};
  myr_run_spec other = {KEYS, 2, "linear", "{\"model\":\"linear\",\"x\":1}", 42};
  int64_t run = 0, pub = 0;
  myr_store *w = open_ok(path, 0);
  /* nothing yet: no run, nothing published */
  assert_int_equal(myr_store_run_resume(w, &spec, &run, &pub, &err), MYR_OK);
  assert_true(run == 0 && pub == 0);
  int64_t r1 = begin_ok(w, KEYS, 2);
  put2_ok(w, r1, 11, "a1", "/login", 0.9);
  put2_ok(w, r1, 12, "a1", "/logout", 0.8);
  const char *vals[2] = {"a9", "/x"};
  size_t lens[2] = {2, 2};
  myr_error_row erow = {19, vals, lens, 3, "too_few_rows", "3 rows, need 10"};
  assert_int_equal(myr_store_put_error(w, r1, &erow, &err), MYR_OK);
  myr_store_close(w); /* as a killed process: the run stays "running" */

  w = open_ok(path, 0);
  assert_int_equal(myr_store_run_resume(w, &other, &run, &pub, &err), MYR_OK);
  assert_true(run == 0 && pub == 0);
  assert_int_equal(myr_store_run_resume(w, &spec, &run, &pub, &err), MYR_OK);
  assert_true(run == r1 && pub == 0);
  uint64_t keys_seen[2] = {0, 0};
  assert_int_equal(myr_store_run_keys(w, run, collect_hash, keys_seen, &err), MYR_OK);
  assert_true(keys_seen[0] == 2 && keys_seen[1] == 11 + 12);
  put2_ok(w, run, 13, "a2", "/login", 0.7);
  keys_seen[0] = keys_seen[1] = 0;
  assert_int_equal(myr_store_run_keys(w, run, collect_hash, keys_seen, &err), MYR_OK);
  assert_true(keys_seen[0] == 3 && keys_seen[1] == 11 + 12 + 13); /* its own puts count */
  publish_ok(w, run);
  myr_store_info info;
  assert_int_equal(myr_store_get_info(w, &info, &err), MYR_OK);
  assert_int_equal(info.n_models, 3);
  assert_int_equal(info.n_errors, 0); /* the error row was dropped for a retry */
  assert_int_equal(info.latest_run, r1);
  assert_int_equal(myr_store_run_resume(w, &spec, &run, &pub, &err), MYR_OK);
  assert_true(run == 0 && pub == r1);
  myr_store_close(w);

  myr_store *r = open_ok(path, MYR_STORE_READONLY);
  assert_int_equal(myr_store_run_resume(r, &spec, &run, &pub, &err), MYR_EINVAL);
  myr_store_close(r);
}

static void test_publish_visibility(void **state) {
  (void)state;
  char path[512];
  myr_error err = {0};
  fresh_path(path, sizeof path, "vis.db");
  myr_store *w = open_ok(path, 0);
  int64_t run = begin_ok(w, KEYS, 2);
  put2_ok(w, run, 11, "a1", "/login", 0.9);
  put2_ok(w, run, 12, "a1", "/logout", 0.8);
  put2_ok(w, run, 13, "a2", "/login", 0.7);
  const char *vals[2] = {"a9", "/x"};
  size_t lens[2] = {2, 2};
  myr_error_row erow = {19, vals, lens, 3, "too_few_rows", "3 rows, need 10"};
  assert_int_equal(myr_store_put_error(w, run, &erow, &err), MYR_OK);
  assert_int_equal(myr_store_flush(w, &err), MYR_OK); /* committed, not yet published */

  myr_store *r = open_ok(path, MYR_STORE_READONLY);
  myr_store_info info;
  assert_int_equal(myr_store_get_info(r, &info, &err), MYR_OK);
  assert_int_equal(info.n_keys, 2);
  assert_string_equal(info.key_names[1], "api");
  assert_int_equal(info.n_models, 0);
  assert_int_equal(info.latest_run, 0);
  assert_int_equal(query(r, NULL)->n, 0);

  publish_ok(w, run);
  seen *v = query(r, NULL);
  assert_int_equal(v->n, 3);
  /* key order */
  assert_string_equal(v->key[0], "a1|/login");
  assert_string_equal(v->key[1], "a1|/logout");
  assert_string_equal(v->key[2], "a2|/login");
  assert_int_equal(v->version[0], 1);
  assert_int_equal(v->run[0], run);
  assert_int_equal(v->hash[2], 13);
  assert_string_equal(v->blob[1], "blob:a1//logout");
  assert_non_null(strstr(v->metrics[0], "\"r2\":0.9"));

  assert_int_equal(myr_store_get_info(r, &info, &err), MYR_OK);
  assert_int_equal(info.n_models, 3);
  assert_int_equal(info.n_errors, 1);
  assert_int_equal(info.latest_run, run);
  assert_true(info.file_bytes > 0);
  int n_err = 0;
  assert_int_equal(myr_store_errors(r, 0, 0, count_errors, &n_err, &err), MYR_OK);
  assert_int_equal(n_err, 1);

  /* ending a run twice, or a run that does not exist */
  assert_int_equal(myr_store_run_publish(w, run, NULL, &err), MYR_EINVAL);
  assert_non_null(strstr(err.message, "published"));
  assert_int_equal(myr_store_run_fail(w, run, "x", &err), MYR_EINVAL);
  assert_int_equal(myr_store_run_publish(w, 999, NULL, &err), MYR_ENOTFOUND);
  assert_int_equal(put2(w, run, 1, "a", "b", NULL, &err), MYR_EINVAL);
  /* a read-only handle cannot write */
  int64_t rid = 0;
  myr_run_spec spec = {KEYS, 2, "linear", NULL, 1};
  assert_int_equal(myr_store_run_begin(r, &spec, &rid, &err), MYR_EINVAL);
  assert_non_null(strstr(err.message, "read-only"));
  myr_store_close(r);
  myr_store_close(w);
}

static int count_runs(void *ud, const myr_run_record *r) {
  char *out = ud; /* 256 bytes */
  size_t used = strlen(out);
  snprintf(out + used, 256 - used, "%s,", r->status);
  return 0;
}

static void test_versions_and_failed_runs(void **state) {
  (void)state;
  char path[512];
  myr_error err = {0};
  fresh_path(path, sizeof path, "ver.db");
  myr_store *w = open_ok(path, 0);
  int64_t r1 = begin_ok(w, KEYS, 2);
  put2_ok(w, r1, 1, "a", "x", 0.5);
  put2_ok(w, r1, 2, "a", "y", 0.5);
  put2_ok(w, r1, 3, "b", "x", 0.5);
  publish_ok(w, r1);

  int64_t r2 = begin_ok(w, KEYS, 2);
  put2_ok(w, r2, 1, "a", "x", 0.6);
  put2_ok(w, r2, 4, "c", "z", 0.6); /* a new key: version 1 */
  publish_ok(w, r2);

  int64_t r3 = begin_ok(w, KEYS, 2);
  put2_ok(w, r3, 1, "a", "x", 0.1);
  put2_ok(w, r3, 9, "d", "d", 0.1);
  assert_int_equal(myr_store_run_fail(w, r3, "canceled", &err), MYR_OK);
  assert_int_equal(myr_store_run_publish(w, r3, NULL, &err), MYR_EINVAL);
  assert_non_null(strstr(err.message, "failed"));

  myr_store *r = open_ok(path, MYR_STORE_READONLY);
  seen *v = query(r, NULL);
  assert_int_equal(v->n, 4);
  int i = find(v, "a|x");
  assert_true(i >= 0);
  assert_int_equal(v->version[i], 2);
  assert_int_equal(v->run[i], r2);
  assert_non_null(strstr(v->metrics[i], "0.6"));
  i = find(v, "a|y");
  assert_int_equal(v->version[i], 1);
  assert_int_equal(v->run[i], r1);
  i = find(v, "c|z");
  assert_int_equal(v->version[i], 1);
  assert_int_equal(find(v, "d|d"), -1);

  /* a third publish bumps again */
  int64_t r4 = begin_ok(w, KEYS, 2);
  put2_ok(w, r4, 1, "a", "x", 0.7);
  publish_ok(w, r4);
  v = query(r, NULL);
  assert_int_equal(v->version[find(v, "a|x")], 3);

  char statuses[256] = "";
  assert_int_equal(myr_store_runs(r, count_runs, statuses, &err), MYR_OK);
  assert_string_equal(statuses, "published,failed,published,published,");
  myr_store_info info;
  assert_int_equal(myr_store_get_info(r, &info, &err), MYR_OK);
  assert_int_equal(info.latest_run, r4);
  assert_int_equal(info.n_models, 4);
  myr_store_close(r);
  myr_store_close(w);
}

static void test_filters_and_worst(void **state) {
  (void)state;
  char path[512];
  myr_error err = {0};
  fresh_path(path, sizeof path, "filter.db");
  myr_store *w = open_ok(path, 0);
  int64_t run = begin_ok(w, KEYS, 2);
  put2_ok(w, run, 1, "a", "1", 0.9);
  put2_ok(w, run, 2, "a", "2", 0.2);
  put2_ok(w, run, 3, "b", "1", 0.5);
  put2_ok(w, run, 4, "b", "2", -1.5);
  put2_ok(w, run, 5, "c", "1", 0.7);
  assert_int_equal(put2(w, run, 6, "c", "2", "{\"rmse\":9}", &err), MYR_OK); /* no r2 */
  assert_int_equal(put2(w, run, 7, "c", "3", "{\"r2\":\"bad\"}", &err), MYR_OK);
  /* metrics must be JSON */
  assert_int_equal(put2(w, run, 8, "c", "4", "{oops", &err), MYR_EINVAL);
  assert_non_null(strstr(err.message, "app=c, api=4"));
  publish_ok(w, run);

  const char *fk[] = {"app"}, *fv[] = {"b"};
  myr_model_query q = {fk, fv, 1, NULL, 0};
  seen *v = query(w, &q);
  assert_int_equal(v->n, 2);
  assert_string_equal(v->key[0], "b|1");
  assert_string_equal(v->key[1], "b|2");

  const char *fk2[] = {"api", "app"}, *fv2[] = {"2", "a"};
  myr_model_query q2 = {fk2, fv2, 2, NULL, 0};
  v = query(w, &q2);
  assert_int_equal(v->n, 1);
  assert_string_equal(v->blob[0], "blob:a/2");

  const char *fk3[] = {"host"};
  myr_model_query q3 = {fk3, fv, 1, NULL, 0};
  seen dummy = {0};
  assert_int_equal(myr_store_models(w, &q3, collect, &dummy, &err), MYR_EINVAL);
  assert_non_null(strstr(err.message, "host"));
  assert_non_null(strstr(err.message, "app, api"));
  assert_non_null(strstr(err.message, path));

  myr_model_query worst = {NULL, NULL, 0, "r2", 3};
  v = query(w, &worst);
  assert_int_equal(v->n, 3);
  assert_string_equal(v->key[0], "b|2");
  assert_string_equal(v->key[1], "a|2");
  assert_string_equal(v->key[2], "b|1");

  worst.limit = 0; /* rows without a numeric r2 come last */
  v = query(w, &worst);
  assert_int_equal(v->n, 7);
  assert_string_equal(v->key[5], "c|2");
  assert_string_equal(v->key[6], "c|3");

  myr_model_query worst_rmse = {NULL, NULL, 0, "rmse", 2};
  v = query(w, &worst_rmse);
  assert_string_equal(v->key[0], "c|2"); /* rmse 9 */
  assert_string_equal(v->key[1], "b|2"); /* rmse 2.5 */

  myr_model_query worst_b = {fk, fv, 1, "r2", 1}; /* filter and order together */
  v = query(w, &worst_b);
  assert_int_equal(v->n, 1);
  assert_string_equal(v->key[0], "b|2");

  myr_model_query bad = {NULL, NULL, 0, "r2') --", 0};
  assert_int_equal(myr_store_models(w, &bad, collect, &dummy, &err), MYR_EINVAL);

  /* a callback's non-zero return stops the iteration and is returned */
  memset(&dummy, 0, sizeof dummy);
  dummy.stop_after = 2;
  assert_int_equal(myr_store_models(w, NULL, collect, &dummy, &err), 7);
  assert_int_equal(dummy.n, 2);
  myr_store_close(w);
}

static void test_key_names(void **state) {
  (void)state;
  char path[512];
  myr_error err = {0};
  int64_t run = 0;
  fresh_path(path, sizeof path, "names.db");
  myr_store *w = open_ok(path, 0);
  const char *bad1[] = {"app", "version"};
  const char *bad2[] = {"a\"b"};
  const char *bad3[] = {""};
  const char *bad4[] = {"app", "APP"};
  myr_run_spec spec = {bad1, 2, "linear", NULL, 1};
  assert_int_equal(myr_store_run_begin(w, &spec, &run, &err), MYR_EINVAL);
  assert_non_null(strstr(err.message, "version"));
  spec.key_names = bad2;
  spec.n_keys = 1;
  assert_int_equal(myr_store_run_begin(w, &spec, &run, &err), MYR_EINVAL);
  spec.key_names = bad3;
  assert_int_equal(myr_store_run_begin(w, &spec, &run, &err), MYR_EINVAL);
  spec.key_names = bad4;
  spec.n_keys = 2;
  assert_int_equal(myr_store_run_begin(w, &spec, &run, &err), MYR_EINVAL);
  /* names with spaces, dots, dashes and slashes are fine */
  const char *odd[] = {"app name", "api.path-v/1"};
  run = begin_ok(w, odd, 2);
  put2_ok(w, run, 1, "x", "y", 0.1);
  publish_ok(w, run);
  /* later runs must use the same names */
  const char *other[] = {"host", "port"};
  spec.key_names = other;
  spec.n_keys = 2;
  assert_int_equal(myr_store_run_begin(w, &spec, &run, &err), MYR_EINVAL);
  assert_non_null(strstr(err.message, "app name, api.path-v/1"));
  assert_non_null(strstr(err.message, "host, port"));
  spec.n_keys = 1;
  spec.key_names = odd;
  assert_int_equal(myr_store_run_begin(w, &spec, &run, &err), MYR_EINVAL);
  myr_store_close(w);

  /* a fresh handle reads the names back and filters on them */
  myr_store *r = open_ok(path, MYR_STORE_READONLY);
  const char *fv[] = {"y"};
  const char *fk[] = {"api.path-v/1"};
  myr_model_query q = {fk, fv, 1, NULL, 0};
  assert_int_equal(query(r, &q)->n, 1);
  myr_store_close(r);
}

static void test_not_a_store(void **state) {
  (void)state;
  char path[512];
  myr_error err = {0};
  myr_store *s = NULL;
  static const char junk[] = "this is not an SQLite database, just some text that is "
                             "long enough to fill a header and then some more bytes....";
  tu_write_file(path, sizeof path, "junk.db", junk, sizeof junk);
  int rc = myr_store_open(path, 0, &s, &err);
  assert_true(rc == MYR_ECORRUPT || rc == MYR_ESTORE);
  assert_null(s);
  assert_non_null(strstr(err.message, path));
  rc = myr_store_open(path, MYR_STORE_READONLY, &s, &err);
  assert_true(rc == MYR_ECORRUPT || rc == MYR_ESTORE);
  assert_non_null(strstr(err.message, path));

  /* an SQLite database of some other application */
  sqlite3 *db;
  fresh_path(path, sizeof path, "other.db");
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db, "CREATE TABLE t(x)", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  assert_int_equal(myr_store_open(path, 0, &s, &err), MYR_ESTORE);
  assert_non_null(strstr(err.message, "not a myriad store"));

  /* a store from a newer myriad */
  fresh_path(path, sizeof path, "newer.db");
  s = open_ok(path, 0);
  myr_store_close(s);
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 7", NULL, NULL, NULL),
                   SQLITE_OK);
  sqlite3_close(db);
  assert_int_equal(myr_store_open(path, MYR_STORE_READONLY, &s, &err), MYR_EUNSUPPORTED);
  assert_non_null(strstr(err.message, "version 7"));

  /* read-only on a missing path neither creates it nor succeeds */
  fresh_path(path, sizeof path, "typo.db");
  assert_int_equal(myr_store_open(path, MYR_STORE_READONLY, &s, &err), MYR_ENOTFOUND);
  assert_non_null(strstr(err.message, "no store at"));
  assert_int_equal(access(path, F_OK), -1);
  assert_int_equal(myr_store_open(NULL, 0, &s, &err), MYR_EINVAL);
}

/* A store no run has written yet: readers see nothing, filters name no key. */
static void test_empty_store(void **state) {
  (void)state;
  char path[512];
  myr_error err = {0};
  fresh_path(path, sizeof path, "empty.db");
  myr_store *w = open_ok(path, 0);
  myr_store *r = open_ok(path, MYR_STORE_READONLY);
  myr_store_info info;
  assert_int_equal(myr_store_get_info(r, &info, &err), MYR_OK);
  assert_int_equal(info.n_keys, 0);
  assert_int_equal(info.n_models, 0);
  assert_int_equal(info.latest_run, 0);
  assert_int_equal(query(r, NULL)->n, 0);
  const char *fk[] = {"app"}, *fv[] = {"x"};
  myr_model_query q = {fk, fv, 1, NULL, 0};
  seen dummy = {0};
  assert_int_equal(myr_store_models(r, &q, collect, &dummy, &err), MYR_EINVAL);
  assert_non_null(strstr(err.message, "none yet"));
  /* the reader learns the key names once the first run has fixed them */
  int64_t run = begin_ok(w, KEYS, 2);
  put2_ok(w, run, 1, "x", "y", 0.5);
  publish_ok(w, run);
  assert_int_equal(query(r, &q)->n, 1);
  assert_int_equal(myr_store_get_info(r, &info, &err), MYR_OK);
  assert_int_equal(info.n_keys, 2);
  myr_store_close(r);
  myr_store_close(w);
}

static void test_hash_collision_and_odd_keys(void **state) {
  (void)state;
  char path[512];
  fresh_path(path, sizeof path, "odd.db");
  myr_store *w = open_ok(path, 0);
  int64_t run = begin_ok(w, KEYS, 2);
  const uint64_t h = 0xfedcba9876543210ULL; /* above INT64_MAX on purpose */
  put2_ok(w, run, h, "one", "x", 0.1);
  put2_ok(w, run, h, "two", "x", 0.2);
  put2_ok(w, run, 5, "m\xc3\xbcnchen \xe2\x82\xac", "a,b \"q\" 'c'", 0.3);
  put2_ok(w, run, 6, "", "empty app", 0.4);
  publish_ok(w, run);
  myr_store *r = open_ok(path, MYR_STORE_READONLY);
  seen *v = query(r, NULL);
  assert_int_equal(v->n, 4);
  int i = find(v, "one|x"), j = find(v, "two|x");
  assert_true(i >= 0 && j >= 0);
  assert_true(v->hash[i] == h && v->hash[j] == h);
  assert_string_equal(v->blob[i], "blob:one/x");
  assert_string_equal(v->blob[j], "blob:two/x");
  assert_true(find(v, "m\xc3\xbcnchen \xe2\x82\xac|a,b \"q\" 'c'") >= 0);
  assert_true(find(v, "|empty app") >= 0);
  const char *fk[] = {"app", "api"};
  const char *fv[] = {"m\xc3\xbcnchen \xe2\x82\xac", "a,b \"q\" 'c'"};
  myr_model_query q = {fk, fv, 2, NULL, 0};
  v = query(r, &q);
  assert_int_equal(v->n, 1);
  assert_int_equal(v->hash[0], 5);

  /* republishing one of the colliding keys bumps only that key */
  int64_t run2 = begin_ok(w, KEYS, 2);
  put2_ok(w, run2, h, "two", "x", 0.9);
  publish_ok(w, run2);
  v = query(r, NULL);
  assert_int_equal(v->version[find(v, "one|x")], 1);
  assert_int_equal(v->version[find(v, "two|x")], 2);
  myr_store_close(r);
  myr_store_close(w);
}

/* A second writer handle carries on a run begun by the first (as --resume does), and a
   query nested in a callback works. */
static int nested(void *ud, const myr_model_record *rec) {
  myr_store *s = ud;
  const char *fk[] = {"app", "api"};
  const char *fv[] = {rec->key_values[0], rec->key_values[1]};
  myr_model_query q = {fk, fv, 2, NULL, 0};
  seen inner;
  memset(&inner, 0, sizeof inner);
  myr_error err = {0};
  assert_int_equal(myr_store_models(s, &q, collect, &inner, &err), MYR_OK);
  assert_int_equal(inner.n, 1);
  return 0;
}

static void test_second_writer_and_nesting(void **state) {
  (void)state;
  char path[512];
  myr_error err = {0};
  fresh_path(path, sizeof path, "resume.db");
  myr_store *w1 = open_ok(path, 0);
  int64_t run = begin_ok(w1, KEYS, 2);
  put2_ok(w1, run, 1, "a", "1", 0.5);
  myr_store_close(w1); /* closing commits what was put */
  myr_store *w2 = open_ok(path, 0);
  put2_ok(w2, run, 2, "a", "2", 0.5);
  publish_ok(w2, run);
  assert_int_equal(query(w2, NULL)->n, 2);
  assert_int_equal(myr_store_models(w2, NULL, nested, w2, &err), MYR_OK);
  myr_store_close(w2);
}

/* Rows damaged by hand read back as empty values, never a crash. */
static void test_damaged_store(void **state) {
  (void)state;
  char path[512];
  fresh_path(path, sizeof path, "damaged.db");
  myr_store *w = open_ok(path, 0);
  int64_t run = begin_ok(w, KEYS, 2);
  put2_ok(w, run, 1, "a", "1", 0.5);
  put2_ok(w, run, 2, "a", "2", 0.5);
  publish_ok(w, run);
  myr_store_close(w);
  sqlite3 *db;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db,
                                "PRAGMA foreign_keys = OFF;"
                                "DELETE FROM blobs WHERE model_id = 1;"
                                "UPDATE models SET metrics = NULL, family = x'00ff';"
                                "UPDATE current SET version = 'abc';"
                                "DELETE FROM runs;",
                                NULL, NULL, NULL),
                   SQLITE_OK);
  sqlite3_close(db);
  myr_store *r = open_ok(path, MYR_STORE_READONLY);
  seen *v = query(r, NULL);
  assert_int_equal(v->n, 2);
  assert_string_equal(v->blob[0], "");
  assert_string_equal(v->metrics[0], "{}");
  assert_string_equal(v->blob[1], "blob:a/2");
  /* every metric is gone: ranking by one is refused rather than listing key order */
  myr_model_query worst = {NULL, NULL, 0, "r2", 0};
  myr_error err = {0};
  seen dummy;
  memset(&dummy, 0, sizeof dummy);
  assert_int_equal(myr_store_models(r, &worst, collect, &dummy, &err), MYR_ENOTFOUND);
  assert_non_null(strstr(err.message, "no current model has the metric 'r2'"));
  myr_store_close(r);

  /* key names that would inject SQL are refused on open */
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  assert_int_equal(
      sqlite3_exec(db,
                   "UPDATE meta SET value = '[\"app\",\"x\\\"; DROP TABLE runs\"]'"
                   " WHERE name = 'key_names'",
                   NULL, NULL, NULL),
      SQLITE_OK);
  sqlite3_close(db);
  myr_store *s = NULL;
  myr_error_clear(&err);
  assert_int_equal(myr_store_open(path, MYR_STORE_READONLY, &s, &err), MYR_ECORRUPT);
  assert_non_null(strstr(err.message, "key_names"));
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db,
                                "UPDATE meta SET value = '{' WHERE name = 'key_names'",
                                NULL, NULL, NULL),
                   SQLITE_OK);
  sqlite3_close(db);
  assert_int_equal(myr_store_open(path, 0, &s, &err), MYR_ECORRUPT);
}

static void test_many_models(void **state) {
  (void)state;
  char path[512];
  myr_error err = {0};
  enum { N = 100000 };
  fresh_path(path, sizeof path, "many.db");
  myr_store *w = open_ok(path, 0);
  const char *one[] = {"id"};
  int64_t run = begin_ok(w, one, 1);
  unsigned char blob[100];
  memset(blob, 0xab, sizeof blob);
  for (int i = 0; i < N; i++) {
    char key[32];
    const char *vals[1] = {key};
    size_t lens[1];
    lens[0] = (size_t)snprintf(key, sizeof key, "k%07d", i);
    myr_model_row row = {
        (uint64_t)i * 2654435761u, vals, lens, 50, 10, "{\"r2\":0.5}", blob, sizeof blob};
    if (myr_store_put_model(w, run, &row, &err) != MYR_OK)
      fail_msg("put %d: %s", i, err.message);
  }
  publish_ok(w, run);
  myr_store_info info;
  assert_int_equal(myr_store_get_info(w, &info, &err), MYR_OK);
  assert_int_equal(info.n_models, N);
  assert_int_equal(info.latest_run, run);
  const char *fk[] = {"id"}, *fv[] = {"k0054321"};
  myr_model_query q = {fk, fv, 1, NULL, 0};
  seen *v = query(w, &q);
  assert_int_equal(v->n, 1);
  assert_int_equal(v->hash[0], (uint64_t)54321 * 2654435761u);
  myr_store_close(w);
}

/* Fail the 1st, 2nd, ... allocation across the write and read path (with every later
   one too when sticky, else only that one): each failure is a clean error, nothing
   leaks, and without failures the whole path works. */
static void alloc_failure_loop(int sticky) {
  char path[512];
  long base = tu_alloc_live();
  int done = 0;
  long n;
  for (n = 1; n < 1000 && !done; n++) {
    myr_error err = {0};
    myr_store *s = NULL;
    int64_t run = 0;
    seen v;
    myr_store_info info;
    memset(&v, 0, sizeof v);
    fresh_path(path, sizeof path, "oom.db");
    tu_alloc_fail_at(n, sticky);
    int rc = myr_store_open(path, 0, &s, &err);
    if (rc == MYR_OK) {
      myr_run_spec spec = {KEYS, 2, "linear", "{}", 3};
      rc = myr_store_run_begin(s, &spec, &run, &err);
    }
    if (rc == MYR_OK)
      rc = put2(s, run, 1, "a", "1", "{\"r2\":1}", &err);
    if (rc == MYR_OK) {
      const char *vals[2] = {"b", "2"};
      size_t lens[2] = {1, 1};
      myr_error_row e = {2, vals, lens, 1, "too_few_rows", "1 row"};
      rc = myr_store_put_error(s, run, &e, &err);
    }
    if (rc == MYR_OK)
      rc = myr_store_run_publish(s, run, "{}", &err);
    if (rc == MYR_OK)
      rc = myr_store_models(s, NULL, collect, &v, &err);
    if (rc == MYR_OK) {
      myr_model_query worst = {KEYS, (const char *const[]){"a", "1"}, 2, "r2", 1};
      rc = myr_store_models(s, &worst, collect, &v, &err);
    }
    if (rc == MYR_OK)
      rc = myr_store_get_info(s, &info, &err);
    myr_store_close(s);
    int failed = tu_alloc_failed();
    tu_alloc_fail_at(0, 0);
    if (rc != MYR_OK) {
      assert_true(failed);
      assert_true(rc < 0);
      assert_int_equal(err.code, rc);
      assert_true(err.message[0] != '\0');
    } else if (!failed) {
      assert_int_equal(v.n, 2);
      done = 1;
    }
    assert_int_equal(tu_alloc_live(), base);
  }
  assert_true(done);
  assert_true(n > 10); /* the path does allocate: the loop tested something */
}

static void test_alloc_failures(void **state) {
  (void)state;
  alloc_failure_loop(1);
  alloc_failure_loop(0);
}

int main(void) {
  tu_alloc_install();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_publish_visibility),
      cmocka_unit_test(test_batches_commit_by_bytes),
      cmocka_unit_test(test_resume),
      cmocka_unit_test(test_versions_and_failed_runs),
      cmocka_unit_test(test_filters_and_worst),
      cmocka_unit_test(test_key_names),
      cmocka_unit_test(test_not_a_store),
      cmocka_unit_test(test_empty_store),
      cmocka_unit_test(test_hash_collision_and_odd_keys),
      cmocka_unit_test(test_second_writer_and_nesting),
      cmocka_unit_test(test_damaged_store),
      cmocka_unit_test(test_many_models),
      cmocka_unit_test(test_alloc_failures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
