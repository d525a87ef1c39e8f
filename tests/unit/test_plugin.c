/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Model plugins: myr_registry_load_plugin() with the example `knn` plugin (trained
 * through myr_train, predictions checked against nearest neighbours worked out by hand
 * below), the knn payload's validation, and every way loading can fail: no such file, a
 * library without the entry point, a plugin built for another ABI, a plugin clashing with
 * a built-in name half-way through (nothing stays registered, the library is unloaded),
 * and allocation failures. Paths come from ctest's environment (tests/CMakeLists.txt).
 */
#include <dlfcn.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/arena.h"
#include "myriad/myriad.h"
#include "store/blob.h"
#include "testutil.h"

static const char *env_path(const char *name) {
  const char *p = getenv(name);
  if (!p || !*p)
    fail_msg("%s is not set: run this test through ctest (tests/CMakeLists.txt sets it)",
             name);
  return p;
}

/* Whether the library at path is mapped in this process right now. */
static int is_loaded(const char *path) {
  void *h = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
  if (h)
    dlclose(h);
  return h != NULL;
}

static myr_registry *knn_registry(const myr_model_family **knn_out) {
  myr_registry *reg = NULL;
  myr_error err = {0};
  assert_int_equal(myr_registry_create(&reg, &err), MYR_OK);
  int rc = myr_registry_load_plugin(reg, env_path("MYR_KNN_PLUGIN"), &err);
  if (rc != MYR_OK)
    fail_msg("loading the knn plugin failed: %s", err.message);
  *knn_out = myr_registry_find(reg, "knn");
  assert_non_null(*knn_out);
  return reg;
}

/* Fixture of the knn tests: a registry holding the plugin, destroyed even when a test
   fails, so that one failure does not leave the library loaded for the next tests. */
static int knn_setup(void **state) {
  const myr_model_family *knn;
  *state = knn_registry(&knn);
  return 0;
}

static int knn_teardown(void **state) {
  myr_registry_destroy(*state);
  return 0;
}

/* Fit the family on d with "key=value" params (NULL: defaults) from arena a. */
static void *fit_knn(const myr_model_family *f, const char *const *kv, size_t n_kv,
                     const myr_dataset *d, myr__arena *a) {
  char params[64];
  assert_true(f->params_size <= sizeof params);
  f->params_init(params);
  for (size_t i = 0; i < n_kv; i += 2)
    assert_int_equal(f->params_set(params, kv[i], kv[i + 1], NULL), MYR_OK);
  myr_scratch s = myr__arena_scratch(a);
  void *m = NULL;
  myr_error err = {0};
  int rc = f->fit(params, d, 7, &s, &m, &err);
  if (rc != MYR_OK)
    fail_msg("knn fit failed: %s", err.message);
  return m;
}

static double predict1(const myr_model_family *f, const void *m, const double *x,
                       size_t p) {
  double out = NAN;
  myr_error err = {0};
  assert_int_equal(f->predict(m, x, 1, p, &out, &err), MYR_OK);
  return out;
}

static void test_knn_registers_one_family(void **state) {
  myr_registry *reg = *state;
  const myr_model_family *knn = myr_registry_find(reg, "knn");
  assert_int_equal(myr_registry_count(reg), myr_registry_count(NULL) + 1);
  assert_ptr_equal(myr_registry_at(reg, myr_registry_count(NULL)), knn);
  assert_null(myr_registry_find(NULL, "knn")); /* built-ins are untouched */
  assert_non_null(myr_registry_find(reg, "linear"));
  assert_string_equal(knn->name, "knn");
  assert_int_equal(knn->task, MYR_TASK_REGRESSION);
  assert_int_equal(knn->abi_version, MYR_MODEL_ABI_VERSION);

  char params[64], text[128];
  knn->params_init(params);
  knn->params_format(params, text, sizeof text);
  assert_string_equal(text, "k=5,weights=uniform,standardize=false");
  assert_int_equal(knn->min_rows(params, 3), 5);
  myr_error err = {0};
  const char *bad[][2] = {{"k", "0"},
                          {"k", "-1"},
                          {"k", "2.5"},
                          {"k", ""},
                          {"k", "1000001"},
                          {"weights", "inverse"},
                          {"standardize", "maybe"},
                          {"n_trees", "3"}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(knn->params_set(params, bad[i][0], bad[i][1], &err), MYR_EINVAL);
    assert_non_null(strstr(err.message, bad[i][0]));
  }
  assert_int_equal(knn->params_set(params, "k", "3", &err), MYR_OK);
  assert_int_equal(knn->params_set(params, "weights", "distance", &err), MYR_OK);
  assert_int_equal(knn->params_set(params, "standardize", "true", &err), MYR_OK);
  knn->params_format(params, text, sizeof text);
  assert_string_equal(text, "k=3,weights=distance,standardize=true");
  assert_int_equal(knn->min_rows(params, 3), 3);
}

/*
 * One feature x = 0, 1, 1, 2 with labels 10, 20, 40, 80.
 * - uniform k=2 at 0.5: distances .5 .5 .5 1.5, a three-way tie: rows 0 and 1 (lower
 *   index) win -> (10 + 20) / 2 = 15 (rows 1+2 would give 30, rows 0+2 25).
 * - uniform k=2 at 1.4: rows 1 and 2 (.4) -> 30.
 * - distance k=3 at 0.25: rows 0 (.25), 1 and 2 (.75): weights 4, 4/3, 4/3 ->
 *   (40 + 80/3 + 160/3) / (20/3) = 18.
 * - distance k=3 at 1: rows 1 and 2 are at distance 0, so they alone count -> 30.
 * Then x = 0, 1, .6 with labels 10, 20, 40, uniform k=2 at .5: row 2 (.1) is nearest,
 * rows 0 and 1 tie at .5 for the second place, row 0 wins -> (40 + 10) / 2 = 25 (a tie
 * kept in the wrong order would give 30 once row 2 pushes the last one out).
 */
static void test_knn_hand_computed(void **state) {
  myr_registry *reg = *state;
  const myr_model_family *knn = myr_registry_find(reg, "knn");
  double x[] = {0, 1, 1, 2}, y[] = {10, 20, 40, 80};
  myr_dataset d = {4, 1, x, y};
  myr__arena a;
  myr__arena_init(&a, 0);
  const char *k2[] = {"k", "2"};
  void *m = fit_knn(knn, k2, 2, &d, &a);
  double q = 0.5;
  assert_true(predict1(knn, m, &q, 1) == 15.0);
  q = 1.4;
  assert_true(predict1(knn, m, &q, 1) == 30.0);
  const char *k3d[] = {"k", "3", "weights", "distance"};
  m = fit_knn(knn, k3d, 4, &d, &a);
  q = 0.25;
  assert_true(fabs(predict1(knn, m, &q, 1) - 18.0) < 1e-12);
  q = 1.0;
  assert_true(predict1(knn, m, &q, 1) == 30.0);
  double x3[] = {0, 1, 0.6}, y3[] = {10, 20, 40};
  myr_dataset d3 = {3, 1, x3, y3};
  q = 0.5;
  assert_true(predict1(knn, fit_knn(knn, k2, 2, &d3, &a), &q, 1) == 25.0);
  /* Default k=5 needs 5 rows: fit refuses 4 (the engine checks min_rows first). */
  char params[64];
  knn->params_init(params);
  myr_scratch s = myr__arena_scratch(&a);
  myr_error err = {0};
  assert_int_equal(knn->fit(params, &d, 0, &s, &m, &err), MYR_EMODEL);
  assert_non_null(strstr(err.message, "k=5"));
  /* Wrong feature count at predict time. */
  double q2[2] = {0, 0};
  assert_int_equal(knn->predict(m, q2, 1, 2, q2, &err), MYR_EINVAL);
  myr__arena_free(&a);
}

/*
 * Standardization (as StandardScaler): rows (0,0) y=1 and (1,10) y=2 scale to (-1,-1)
 * and (1,1); the query (0,9) becomes (-1,.8), nearest row 0 -> 1, while raw distances
 * (81 against 2) pick row 1 -> 2. A constant feature gets scale 1, not a division by 0.
 */
static void test_knn_standardize(void **state) {
  myr_registry *reg = *state;
  const myr_model_family *knn = myr_registry_find(reg, "knn");
  myr__arena a;
  myr__arena_init(&a, 0);
  double x[] = {0, 0, 1, 10}, y[] = {1, 2}, q[] = {0, 9};
  myr_dataset d = {2, 2, x, y};
  const char *raw[] = {"k", "1"};
  const char *std[] = {"k", "1", "standardize", "true"};
  assert_true(predict1(knn, fit_knn(knn, raw, 2, &d, &a), q, 2) == 2.0);
  assert_true(predict1(knn, fit_knn(knn, std, 4, &d, &a), q, 2) == 1.0);

  double xc[] = {5, 0, 5, 1, 5, 2}, yc[] = {1, 2, 3}, qc[] = {7, 1.9};
  myr_dataset dc = {3, 2, xc, yc};
  void *m = fit_knn(knn, std, 4, &dc, &a);
  assert_true(predict1(knn, m, qc, 2) == 3.0);
  myr__arena_free(&a);
}

static int collect(void *ud, const char *bytes, size_t len) {
  char *buf = ud;
  size_t have = strlen(buf);
  if (have + len >= 512)
    return MYR_EIO;
  memcpy(buf + have, bytes, len);
  buf[have + len] = '\0';
  return MYR_OK;
}

/* Round trip, then every corruption decode must refuse. */
static void test_knn_payload(void **state) {
  myr_registry *reg = *state;
  const myr_model_family *knn = myr_registry_find(reg, "knn");
  myr__arena a;
  myr__arena_init(&a, 0);
  double x[] = {0, 0, 1, 10, 3, 4}, y[] = {1, 2, 5};
  myr_dataset d = {3, 2, x, y};
  const char *prm[] = {"k", "2", "weights", "distance", "standardize", "true"};
  void *m = fit_knn(knn, prm, 6, &d, &a);
  size_t len = knn->encoded_size(m);
  assert_int_equal(len, 16 + 16 * 2 + 8 * 3 * 3); /* header, scaler, rows + labels */
  unsigned char buf[256], bad[256];
  myr_error err = {0};
  assert_int_equal(knn->encode(m, buf, len, &err), MYR_OK);
  assert_int_equal(buf[0], 2); /* k */
  assert_int_equal(buf[4], 3); /* flags: distance | standardized */
  assert_int_equal(buf[8], 3); /* n_rows */
  myr_scratch s = myr__arena_scratch(&a);
  void *m2 = NULL;
  assert_int_equal(knn->decode(buf, len, 1, 2, &s, &m2, &err), MYR_OK);
  double q[] = {0.5, 6};
  assert_true(predict1(knn, m, q, 2) == predict1(knn, m2, q, 2));
  char text[512] = "";
  assert_int_equal(knn->describe(m2, collect, text), MYR_OK);
  assert_non_null(strstr(text, "\"k\":2,\"weights\":\"distance\",\"standardize\":true"));
  assert_non_null(strstr(text, "\"mean\":[1.3333333333333333,4.666666666666667"));

  assert_int_equal(knn->decode(buf, len, 2, 2, &s, &m2, &err), MYR_EUNSUPPORTED);
  for (size_t cut = 0; cut < len; cut++)
    assert_int_equal(knn->decode(buf, cut, 1, 2, &s, &m2, &err), MYR_ECORRUPT);
  memcpy(bad, buf, len);
  bad[len] = 0;
  assert_int_equal(knn->decode(bad, len + 1, 1, 2, &s, &m2, &err), MYR_ECORRUPT);
  assert_int_equal(knn->decode(buf, len, 1, 3, &s, &m2, &err), MYR_ECORRUPT);
  struct {
    size_t at;
    unsigned char value;
  } edits[] = {
      {0, 0},              /* k = 0 */
      {0, 4},              /* k > n_rows */
      {4, 7},              /* unknown flag bit */
      {4, 1},              /* no scaler flag: the length no longer fits */
      {8, 0},              /* n_rows = 0 */
      {15, 0x80},          /* n_rows near 2^63: no overflow, just a mismatch */
      {16 + 7, 0x7f},      /* mean[0] high bytes -> NaN/inf pattern */
      {16 + 16 + 7, 0x80}, /* scale[0] sign bit -> negative scale */
      {len - 1, 0x7f},     /* last label -> not finite (0x7ff...) */
  };
  for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
    memcpy(bad, buf, len);
    bad[edits[i].at] = edits[i].value;
    if (edits[i].at == 16 + 7 || edits[i].at == len - 1)
      bad[edits[i].at - 1] = 0xf0; /* exponent all ones */
    err.message[0] = '\0';
    assert_int_equal(knn->decode(bad, len, 1, 2, &s, &m2, &err), MYR_ECORRUPT);
    assert_non_null(strstr(err.message, "knn payload"));
  }
  myr__arena_free(&a);
}

typedef struct found_models {
  const myr_registry *reg;
  myr__arena arena;
  int n;
  double pred[2];     /* by group: a, b */
  double pred_far[2]; /* a second query per group */
  char describe[512];
} found_models;

static int on_model(void *ud, const myr_model_record *r) {
  found_models *fm = ud;
  myr_scratch s = myr__arena_scratch(&fm->arena);
  const myr_model_family *f = NULL;
  void *m = NULL;
  myr_error err = {0};
  int rc = myr__blob_decode(fm->reg, r->blob, r->blob_len, &s, &f, &m, NULL, &err);
  if (rc != MYR_OK)
    fail_msg("decoding key %s: %s", r->key_values[0], err.message);
  assert_string_equal(r->family, "knn");
  int g = r->key_values[0][0] - 'a';
  assert_true(g == 0 || g == 1);
  double q[2][2] = {{0.2, 0.1}, {4, 2}}, qb[2][2] = {{6, 1}, {1, 9}};
  assert_int_equal(f->predict(m, g ? qb[0] : q[0], 1, 2, &fm->pred[g], &err), MYR_OK);
  assert_int_equal(f->predict(m, g ? qb[1] : q[1], 1, 2, &fm->pred_far[g], &err), MYR_OK);
  /* Without the plugin the blob names a family nobody can decode. */
  assert_int_equal(
      myr_blob_describe(NULL, r->blob, r->blob_len, collect, fm->describe, &err),
      MYR_ENOTFOUND);
  assert_non_null(strstr(err.message, "'knn'"));
  if (g == 0) {
    fm->describe[0] = '\0';
    assert_int_equal(
        myr_blob_describe(fm->reg, r->blob, r->blob_len, collect, fm->describe, &err),
        MYR_OK);
  }
  fm->n++;
  return 0;
}

/*
 * Through myr_train with k=2 (features x0, x1; distances squared):
 *   a: (0,0)1 (1,0)2 (0,2)4 (3,3)8 (5,1)16
 *      at (.2,.1): .05 .65 3.65 16.25 23.85 -> (1 + 2) / 2 = 1.5
 *      at (4,2):   20 13 16 2 2             -> (8 + 16) / 2 = 12
 *   b: (0,0)100 (10,0)200 (0,10)300
 *      at (6,1): 37 17 117 -> 150;  at (1,9): 82 162 2 -> 200
 *   c: one row, fewer than k: too_few_rows.
 */
static void test_train_with_plugin(void **state) {
  (void)state;
  static const char csv[] = "g,x0,x1,y\n"
                            "a,0,0,1\n"
                            "b,0,0,100\n"
                            "a,1,0,2\n"
                            "a,0,2,4\n"
                            "b,10,0,200\n"
                            "a,3,3,8\n"
                            "c,1,1,1\n"
                            "a,5,1,16\n"
                            "b,0,10,300\n";
  static const char *keys[] = {"g"};
  myr_registry *reg = *state;
  char path[512], store[512];
  tu_write_file(path, sizeof path, "knn.csv", csv, sizeof csv - 1);
  tu_path(store, sizeof store, "knn.db");
  myr_train_options o;
  memset(&o, 0, sizeof o);
  o.input = path;
  o.keys = keys;
  o.n_keys = 1;
  o.label = "y";
  o.model = "knn";
  o.params = "k=2";
  o.store = store;
  o.n_threads = 2;
  myr_train_summary sum;
  myr_error err = {0};

  /* The built-in registry does not know knn, and says which families it does know. */
  assert_int_equal(myr_train(&o, &sum, &err), MYR_ENOTFOUND);
  assert_non_null(strstr(err.message, "'knn'"));

  o.registry = reg;
  int rc = myr_train(&o, &sum, &err);
  if (rc != MYR_OK)
    fail_msg("myr_train with the knn plugin failed: %s", err.message);
  assert_string_equal(sum.family, "knn");
  assert_int_equal(sum.groups_total, 3);
  assert_int_equal(sum.groups_trained, 2);
  assert_int_equal(sum.failed[MYR_FAIL_TOO_FEW_ROWS], 1);

  myr_store *st = NULL;
  assert_int_equal(myr_store_open(store, MYR_STORE_READONLY, &st, &err), MYR_OK);
  found_models fm;
  memset(&fm, 0, sizeof fm);
  fm.reg = reg;
  myr__arena_init(&fm.arena, 0);
  myr_model_query q;
  memset(&q, 0, sizeof q);
  assert_int_equal(myr_store_models(st, &q, on_model, &fm, &err), MYR_OK);
  myr_store_close(st);
  assert_int_equal(fm.n, 2);
  assert_true(fm.pred[0] == 1.5);
  assert_true(fm.pred_far[0] == 12.0);
  assert_true(fm.pred[1] == 150.0);
  assert_true(fm.pred_far[1] == 200.0);
  assert_non_null(strstr(fm.describe, "\"family\":\"knn\""));
  assert_non_null(strstr(fm.describe, "\"k\":2,\"weights\":\"uniform\""));
  assert_non_null(strstr(fm.describe, "\"n_rows\":5"));
  myr__arena_free(&fm.arena);
}

static void test_missing_file(void **state) {
  (void)state;
  myr_registry *reg = NULL;
  myr_error err = {0};
  assert_int_equal(myr_registry_create(&reg, &err), MYR_OK);
  const char *path = "/nonexistent/dir/libmyriad_nope.so";
  assert_int_equal(myr_registry_load_plugin(reg, path, &err), MYR_EIO);
  assert_non_null(strstr(err.message, path));
  assert_non_null(strstr(err.message, "cannot load plugin"));
  assert_non_null(strstr(err.message, "No such file")); /* dlerror()'s reason */
  /* A bare name is searched in the library path: the message says how to mean "here". */
  assert_int_equal(myr_registry_load_plugin(reg, "libmyriad_nope.so", &err), MYR_EIO);
  assert_non_null(strstr(err.message, "./NAME"));
  assert_int_equal(myr_registry_load_plugin(reg, "", &err), MYR_EINVAL);
  assert_int_equal(myr_registry_load_plugin(reg, NULL, &err), MYR_EINVAL);
  assert_int_equal(myr_registry_load_plugin(NULL, path, &err), MYR_EINVAL);
  assert_int_equal(myr_registry_count(reg), myr_registry_count(NULL));
  myr_registry_destroy(reg);
}

static void test_not_a_plugin(void **state) {
  (void)state;
  myr_registry *reg = NULL;
  myr_error err = {0};
  assert_int_equal(myr_registry_create(&reg, &err), MYR_OK);
  const char *path = env_path("MYR_TEST_PLUGIN_NOSYM");
  assert_int_equal(myr_registry_load_plugin(reg, path, &err), MYR_EINVAL);
  assert_non_null(strstr(err.message, path));
  assert_non_null(strstr(err.message, "is not a myriad plugin"));
  assert_non_null(strstr(err.message, MYR_PLUGIN_SYMBOL));
  assert_false(is_loaded(path));
  /* A system library (already mapped into this process) is refused the same way and
     keeps working: only this call's reference is dropped. */
  assert_int_equal(myr_registry_load_plugin(reg, "libm.so.6", &err), MYR_EINVAL);
  assert_non_null(strstr(err.message, "libm.so.6"));
  assert_true(is_loaded("libm.so.6"));
  assert_int_equal(myr_registry_count(reg), myr_registry_count(NULL));
  myr_registry_destroy(reg);
}

static void test_other_abi_version(void **state) {
  (void)state;
  myr_registry *reg = NULL;
  myr_error err = {0};
  assert_int_equal(myr_registry_create(&reg, &err), MYR_OK);
  const char *path = env_path("MYR_TEST_PLUGIN_BADABI");
  assert_int_equal(myr_registry_load_plugin(reg, path, &err), MYR_EUNSUPPORTED);
  assert_non_null(strstr(err.message, path));
  assert_non_null(strstr(err.message, "failed to register"));
  assert_non_null(strstr(err.message, "ABI version 99"));
  assert_false(is_loaded(path));
  assert_int_equal(myr_registry_count(reg), myr_registry_count(NULL));
  myr_registry_destroy(reg);
}

static void test_clash_with_builtin_leaves_nothing(void **state) {
  (void)state;
  myr_registry *reg = NULL;
  myr_error err = {0};
  assert_int_equal(myr_registry_create(&reg, &err), MYR_OK);
  const char *path = env_path("MYR_TEST_PLUGIN_DUP");
  assert_int_equal(myr_registry_load_plugin(reg, path, &err), MYR_EINVAL);
  assert_non_null(strstr(err.message, path));
  assert_non_null(strstr(err.message, "'linear' is already registered"));
  /* It added `halfway` before failing: that is gone again, and so is its code. */
  assert_null(myr_registry_find(reg, "halfway"));
  assert_int_equal(myr_registry_count(reg), myr_registry_count(NULL));
  assert_null(myr_registry_at(reg, myr_registry_count(NULL)));
  assert_false(is_loaded(path));
  const myr_model_family *lin = myr_registry_find(reg, "linear");
  assert_non_null(lin);
  assert_ptr_equal(lin, myr_registry_find(NULL, "linear")); /* still the built-in */

  /* The registry still works: the good plugin loads after the failures. */
  const char *knn_path = env_path("MYR_KNN_PLUGIN");
  assert_int_equal(myr_registry_load_plugin(reg, knn_path, &err), MYR_OK);
  assert_non_null(myr_registry_find(reg, "knn"));
  myr_registry_destroy(reg);
}

static void test_load_twice_and_unload(void **state) {
  (void)state;
  const char *path = env_path("MYR_KNN_PLUGIN");
  myr_registry *r1 = NULL, *r2 = NULL;
  myr_error err = {0};
  assert_int_equal(myr_registry_create(&r1, &err), MYR_OK);
  assert_int_equal(myr_registry_create(&r2, &err), MYR_OK);
  assert_int_equal(myr_registry_load_plugin(r1, path, &err), MYR_OK);
  size_t n = myr_registry_count(r1);
  /* The same library again, by the same path or another naming it: a no-op. */
  assert_int_equal(myr_registry_load_plugin(r1, path, &err), MYR_OK);
  char other[1024];
  const char *slash = strrchr(path, '/');
  assert_non_null(slash);
  snprintf(other, sizeof other, "%.*s/./%s", (int)(slash - path), path, slash + 1);
  assert_int_equal(myr_registry_load_plugin(r1, other, &err), MYR_OK);
  assert_int_equal(myr_registry_count(r1), n);
  /* Two registries load it independently; it stays mapped until both are gone. */
  assert_int_equal(myr_registry_load_plugin(r2, path, &err), MYR_OK);
  assert_ptr_equal(myr_registry_find(r1, "knn"), myr_registry_find(r2, "knn"));
  myr_registry_destroy(r1);
  assert_true(is_loaded(path));
  assert_non_null(myr_registry_find(r2, "knn"));
  myr_registry_destroy(r2);
  assert_false(is_loaded(path));
}

/* Every allocation of create + load can fail: a clean error, nothing leaked or loaded,
   and nothing half-registered (an add that fails inside the plugin included). */
static void test_allocation_failures(void **state) {
  (void)state;
  const char *path = env_path("MYR_KNN_PLUGIN");
  tu_alloc_install();
  long baseline = tu_alloc_live();
  int succeeded = 0;
  for (long n = 1; n < 100 && !succeeded; n++) {
    myr_registry *reg = NULL;
    myr_error err = {0};
    tu_alloc_fail_at(n, 0);
    int rc = myr_registry_create(&reg, &err);
    if (rc == MYR_OK)
      rc = myr_registry_load_plugin(reg, path, &err);
    int failed = tu_alloc_failed();
    tu_alloc_fail_at(0, 0);
    if (!failed) {
      assert_int_equal(rc, MYR_OK);
      assert_non_null(myr_registry_find(reg, "knn"));
      succeeded = 1;
    } else {
      assert_int_equal(rc, MYR_ENOMEM);
      assert_true(err.message[0] != '\0');
      assert_null(myr_registry_find(reg, "knn"));
      if (reg)
        assert_false(is_loaded(path));
    }
    myr_registry_destroy(reg);
    assert_int_equal(tu_alloc_live(), baseline);
    assert_false(is_loaded(path));
  }
  assert_true(succeeded);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_knn_registers_one_family, knn_setup,
                                      knn_teardown),
      cmocka_unit_test_setup_teardown(test_knn_hand_computed, knn_setup, knn_teardown),
      cmocka_unit_test_setup_teardown(test_knn_standardize, knn_setup, knn_teardown),
      cmocka_unit_test_setup_teardown(test_knn_payload, knn_setup, knn_teardown),
      cmocka_unit_test_setup_teardown(test_train_with_plugin, knn_setup, knn_teardown),
      cmocka_unit_test(test_missing_file),
      cmocka_unit_test(test_not_a_plugin),
      cmocka_unit_test(test_other_abi_version),
      cmocka_unit_test(test_clash_with_builtin_leaves_nothing),
      cmocka_unit_test(test_load_twice_and_unload),
      cmocka_unit_test(test_allocation_failures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
