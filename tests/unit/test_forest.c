/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The forest family: hand-checkable CART trees (bootstrap=false, max_features=all,
 * n_trees=1 is one exact tree), scikit-learn's parameter semantics, classification
 * probabilities, determinism, the payload codec against truncation and corruption, and
 * out-of-memory from the scratch allocator.
 */
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
#include "core/hash.h"
#include "models/families.h"
#include "store/blob.h"

static const myr_model_family *F = &myr__family_forest;

typedef struct fixture {
  myr__arena arena;
  myr_scratch s;
  char params[512]; /* >= F->params_size */
} fixture;

static int setup(void **state) {
  fixture *fx = calloc(1, sizeof *fx);
  if (!fx || F->params_size > sizeof fx->params)
    return -1;
  myr__arena_init(&fx->arena, 0);
  fx->s = myr__arena_scratch(&fx->arena);
  *state = fx;
  return 0;
}

static int teardown(void **state) {
  fixture *fx = *state;
  myr__arena_free(&fx->arena);
  free(fx);
  return 0;
}

/* Params from "k=v,k=v" (asserts every one is accepted). */
static void *params(fixture *fx, const char *text) {
  F->params_init(fx->params);
  char buf[256];
  snprintf(buf, sizeof buf, "%s", text);
  char *save = NULL;
  for (char *kv = strtok_r(buf, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
    char *eq = strchr(kv, '=');
    assert_non_null(eq);
    *eq = '\0';
    myr_error err = {0};
    assert_int_equal(F->params_set(fx->params, kv, eq + 1, &err), MYR_OK);
  }
  return fx->params;
}

static void *fit(fixture *fx, const char *ptext, const myr_dataset *d, uint64_t seed) {
  void *m = NULL;
  myr_error err = {0};
  int rc = F->fit(params(fx, ptext), d, seed, &fx->s, &m, &err);
  if (rc != MYR_OK)
    fail_msg("fit failed: %s", err.message);
  return m;
}

static double predict1(const void *m, const double *x, size_t p) {
  double out;
  assert_int_equal(F->predict(m, x, 1, p, &out, NULL), MYR_OK);
  return out;
}

static unsigned char *encode(const void *m, size_t *len) {
  *len = F->encoded_size(m);
  unsigned char *b = malloc(*len ? *len : 1);
  assert_non_null(b);
  assert_int_equal(F->encode(m, b, *len, NULL), MYR_OK);
  return b;
}

static float le_f32(const unsigned char *p) {
  uint32_t u =
      (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

static uint32_t le_u32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}

static void random_data(double *x, double *y, size_t n, size_t p, uint64_t seed,
                        int classes) {
  myr__rng r;
  myr__rng_seed(&r, seed);
  for (size_t i = 0; i < n * p; i++)
    x[i] = myr__rng_normal(&r);
  for (size_t i = 0; i < n; i++) {
    const double *xi = x + i * p;
    double v = 2 * xi[0] + sin(3 * xi[1 % p]) + 0.3 * myr__rng_normal(&r);
    y[i] = classes ? (v > 0.5 ? 2 : v < -1 ? -1 : 0.5) : v;
  }
}

/* ------------------------------------------------------------------ exact trees */

static void test_threshold_is_the_midpoint(void **state) {
  fixture *fx = *state;
  /* y = (x0 > 2.5): the only perfect split lies between 2 and 3, at exactly 2.5; x1 is
     noise that splits worse. One tree, no bootstrap, all features: plain CART. */
  double x[] = {0, 4, 1, 0, 2, 5, 3, 1, 4, 3, 5, 2}, y[] = {0, 0, 0, 1, 1, 1};
  myr_dataset d = {6, 2, x, y};
  void *m = fit(fx, "n_trees=1,bootstrap=false,max_features=all", &d, 1);
  size_t len;
  unsigned char *b = encode(m, &len);
  /* header 12, node count 4, root (code 1 + f32), two leaves (code 0 + f32 value) */
  assert_int_equal(len, 12 + 4 + 5 + 5 + 5);
  assert_int_equal(b[0], 1);          /* regression */
  assert_int_equal(b[1], 1);          /* 1-byte feature codes */
  assert_int_equal(b[2], 4);          /* leaf values 0 and 1 are exact in float32 */
  assert_int_equal(le_u32(b + 4), 1); /* trees */
  assert_int_equal(le_u32(b + 8), 0); /* no classes */
  assert_int_equal(le_u32(b + 12), 3);
  assert_int_equal(b[16], 1); /* feature 0 */
  assert_true(le_f32(b + 17) == 2.5f);
  assert_int_equal(b[21], 0);
  assert_true(le_f32(b + 22) == 0.0f);
  assert_int_equal(b[26], 0);
  assert_true(le_f32(b + 27) == 1.0f);
  double at[] = {2.5, 9}, next[] = {2.5000003, 9}, same[] = {2.5000001, 9};
  assert_true(predict1(m, at, 2) == 0.0);   /* x <= threshold goes left */
  assert_true(predict1(m, next, 2) == 1.0); /* the next float32 above 2.5 goes right */
  assert_true(predict1(m, same, 2) == 0.0); /* rounds to 2.5f, as in scikit-learn */
  free(b);
}

static void test_leaf_values_are_means(void **state) {
  fixture *fx = *state;
  /* Two clusters: splitting after row 3 leaves squared errors 2 + 2; after row 2 or 4
     it is over 400. The leaves hold the means. */
  double x[] = {1, 2, 3, 4, 5, 6}, y[] = {1, 2, 3, 31, 32, 33};
  myr_dataset d = {6, 1, x, y};
  void *m = fit(fx, "n_trees=1,bootstrap=false,max_depth=1", &d, 1);
  double lo[] = {3.5}, hi[] = {3.51};
  assert_true(predict1(m, lo, 1) == 2.0);
  assert_true(predict1(m, hi, 1) == 32.0);
}

/* A mean that float32 cannot hold: rounded by default (4-byte leaves in the payload),
   exact with leaf_values=float64 (8-byte leaves); one beyond float32's range stays. */
static void test_leaf_value_precision(void **state) {
  fixture *fx = *state;
  double x[] = {1, 2, 3}, y[] = {0, 0, 1}, at[] = {1};
  myr_dataset d = {3, 1, x, y};
  void *m32 =
      fit(fx, "n_trees=1,bootstrap=false,max_depth=none,min_samples_split=4", &d, 1);
  void *m64 =
      fit(fx, "n_trees=1,bootstrap=false,min_samples_split=4,leaf_values=float64", &d, 1);
  assert_true(predict1(m32, at, 1) == (double)(float)(1.0 / 3));
  assert_true(predict1(m64, at, 1) == 1.0 / 3);
  size_t l32, l64;
  unsigned char *b32 = encode(m32, &l32), *b64 = encode(m64, &l64);
  assert_int_equal(b32[2], 4); /* leaf value width in the header */
  assert_int_equal(b64[2], 8);
  assert_int_equal(l64, l32 + 4);
  free(b32);
  free(b64);
  double big[] = {1e300, 3e300, 2e300};
  myr_dataset db = {3, 1, x, big};
  void *mb = fit(fx, "n_trees=1,bootstrap=false,min_samples_split=4", &db, 1);
  assert_true(predict1(mb, at, 1) == ((1e300 + 3e300) + 2e300) / 3); /* not rounded */
}

static void test_min_samples_leaf(void **state) {
  fixture *fx = *state;
  /* An outlier at the end: with leaves of one row the best split isolates it (5.5); with
     min_samples_leaf=2 the best allowed split is 4.5 (right leaf {0, 100}, mean 50). */
  double x[] = {1, 2, 3, 4, 5, 6}, y[] = {0, 0, 0, 0, 0, 100};
  myr_dataset d = {6, 1, x, y};
  double at5[] = {5};
  void *m1 = fit(fx, "n_trees=1,bootstrap=false,max_depth=1", &d, 1);
  assert_true(predict1(m1, at5, 1) == 0.0);
  void *m2 = fit(fx, "n_trees=1,bootstrap=false,max_depth=1,min_samples_leaf=2", &d, 1);
  assert_true(predict1(m2, at5, 1) == 50.0);
  double at4[] = {4.4};
  assert_true(predict1(m2, at4, 1) == 0.0);
  /* As a fraction: ceil(0.3 * 6) = 2 rows per leaf, the same tree. */
  void *m3 = fit(fx, "n_trees=1,bootstrap=false,max_depth=1,min_samples_leaf=0.3", &d, 1);
  assert_true(predict1(m3, at5, 1) == 50.0);
}

static int write_to_buf(void *ud, const char *bytes, size_t len) {
  char *buf = ud;
  size_t have = strlen(buf);
  if (have + len >= 4096)
    return MYR_ENOMEM;
  memcpy(buf + have, bytes, len);
  buf[have + len] = '\0';
  return MYR_OK;
}

static void test_max_depth(void **state) {
  fixture *fx = *state;
  /* y = x on 1..8: depth 2 gives four leaves of two rows each, means 1.5 .. 7.5. */
  double x[] = {1, 2, 3, 4, 5, 6, 7, 8}, y[] = {1, 2, 3, 4, 5, 6, 7, 8};
  myr_dataset d = {8, 1, x, y};
  void *m = fit(fx, "n_trees=1,bootstrap=false,max_depth=2", &d, 1);
  for (int i = 1; i <= 8; i++) {
    double xi[] = {i};
    assert_true(predict1(m, xi, 1) == ((i - 1) / 2) * 2 + 1.5);
  }
  char json[4096] = "";
  assert_int_equal(F->describe(m, write_to_buf, json), MYR_OK);
  assert_non_null(strstr(json, "\"depth\":{\"min\":2,\"mean\":2,\"max\":2}"));
  assert_non_null(strstr(json, "\"leaves\":{\"total\":4,"));
  /* Unlimited depth on distinct labels: one row per leaf, the training data exactly. */
  void *full = fit(fx, "n_trees=1,bootstrap=false", &d, 1);
  for (int i = 0; i < 8; i++)
    assert_true(predict1(full, &x[i], 1) == y[i]);
}

static void test_hand_built_cart_tree(void **state) {
  fixture *fx = *state;
  /*
   * Worked by hand (squared error, sums of squares about the mean):
   * rows (x0, x1, y): (1,5,1) (2,1,1) (3,4,5) (4,2,5) (5,3,9) (6,6,9). y = 1,1,5,5,9,9.
   * Root: x0 orders rows as y = 1 1 5 5 9 9; x1 orders them as y = 1 5 9 5 1 9. The best
   * x0 split is after 4 rows or 2 rows (SSE 8 + 0 = 8 either way, ties keep the first,
   * the 1|... side: threshold 2.5); any x1 split is worse. Left {1,1} is pure; right
   * {5,5,9,9} splits at x0 <= 4.5. Leaves: 1, 5, 9.
   */
  double x[] = {1, 5, 2, 1, 3, 4, 4, 2, 5, 3, 6, 6}, y[] = {1, 1, 5, 5, 9, 9};
  myr_dataset d = {6, 2, x, y};
  void *m = fit(fx, "n_trees=1,bootstrap=false,max_features=all", &d, 3);
  struct {
    double x0, want;
  } cases[] = {{-10, 1}, {2.5, 1}, {2.51, 5}, {4.5, 5}, {4.51, 9}, {100, 9}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    double xi[] = {cases[i].x0, 0};
    assert_true(predict1(m, xi, 2) == cases[i].want);
  }
  size_t len;
  unsigned char *b = encode(m, &len);
  assert_int_equal(le_u32(b + 12), 5); /* root, leaf, split, leaf, leaf in preorder */
  free(b);
}

static void test_float32_features(void **state) {
  fixture *fx = *state;
  /* Features are float32 as in scikit-learn: 0 and 5e-8 differ by less than its 1e-7
     tolerance, so there is no split and the forest is one leaf at the mean. Huge values
     saturate instead of becoming infinite. */
  double x[] = {0, 5e-8}, y[] = {0, 1};
  myr_dataset d = {2, 1, x, y};
  void *m = fit(fx, "n_trees=1,bootstrap=false", &d, 1);
  assert_true(predict1(m, x, 1) == 0.5);
  double x2[] = {1e300, -1e300, 3}, y2[] = {1, 2, 3};
  myr_dataset d2 = {3, 1, x2, y2};
  void *m2 = fit(fx, "n_trees=1,bootstrap=false", &d2, 1);
  for (int i = 0; i < 3; i++)
    assert_true(predict1(m2, &x2[i], 1) == y2[i]);
  size_t len;
  unsigned char *b = encode(m2, &len);
  void *back;
  assert_int_equal(F->decode(b, len, 1, 1, &fx->s, &back, NULL), MYR_OK);
  free(b);
}

static void test_min_impurity_decrease(void **state) {
  fixture *fx = *state;
  /* The root split of test_leaf_values_are_means decreases the impurity (variance) from
     225 2/3 to 2/3, by 225: asking for 1000 keeps a single leaf, 1 does not. */
  double x[] = {1, 2, 3, 4, 5, 6}, y[] = {1, 2, 3, 31, 32, 33};
  myr_dataset d = {6, 1, x, y};
  double mean = 17, at[] = {1};
  void *m = fit(fx, "n_trees=1,bootstrap=false,min_impurity_decrease=1000", &d, 1);
  assert_true(predict1(m, at, 1) == mean);
  void *m2 = fit(fx, "n_trees=1,bootstrap=false,min_impurity_decrease=1", &d, 1);
  assert_true(predict1(m2, at, 1) != mean);
}

/* ------------------------------------------------------------------ forests */

static void test_no_randomness_means_identical_trees(void **state) {
  fixture *fx = *state;
  double x[60 * 3], y[60];
  random_data(x, y, 60, 3, 5, 0);
  myr_dataset d = {60, 3, x, y};
  const char *exact = "bootstrap=false,max_features=all,leaf_values=float64";
  char p1[128], p7[128];
  snprintf(p1, sizeof p1, "n_trees=1,%s", exact);
  snprintf(p7, sizeof p7, "n_trees=7,%s", exact);
  void *one = fit(fx, p1, &d, 1);
  void *many = fit(fx, p7, &d, 2);
  /* Every tree is the same exact CART tree (on training rows even feature ties give the
     same partition), so the mean of 7 equals one. */
  for (int i = 0; i < 60; i++) {
    double a = predict1(one, x + 3 * i, 3), b = predict1(many, x + 3 * i, 3);
    assert_true(fabs(a - b) <= 1e-12 * (1 + fabs(a)));
    assert_true(a == y[i]); /* fully grown on distinct labels, exact leaves */
  }
}

static void test_bootstrap_max_samples(void **state) {
  fixture *fx = *state;
  /* max_samples=1: each tree sees one drawn row, so it is a single leaf holding that
     row's label, and the forest predicts the mean of the drawn labels everywhere. */
  double x[] = {1, 2, 3, 4}, y[] = {10, 20, 30, 40};
  myr_dataset d = {4, 1, x, y};
  void *m = fit(fx, "n_trees=50,max_samples=1", &d, 9);
  size_t len;
  unsigned char *b = encode(m, &len);
  assert_int_equal(len, 12 + 50 * (4 + 5)); /* 50 one-leaf trees, float32 values */
  double p1 = predict1(m, x, 1), p4 = predict1(m, x + 3, 1);
  assert_true(p1 == p4);
  assert_true(p1 > 10 && p1 < 40);
  double sum = 0;
  for (int t = 0; t < 50; t++) {
    float v = le_f32(b + 12 + 9 * t + 5);
    assert_true(v == 10 || v == 20 || v == 30 || v == 40);
    sum += v;
  }
  assert_true(fabs(p1 - sum / 50) < 1e-12);
  free(b);
  /* bootstrap=false with max_samples is refused, as scikit-learn does. */
  void *bad = NULL;
  myr_error err = {0};
  assert_int_equal(
      F->fit(params(fx, "bootstrap=false,max_samples=0.5"), &d, 1, &fx->s, &bad, &err),
      MYR_EINVAL);
  assert_non_null(strstr(err.message, "max_samples"));
}

static void test_classification(void **state) {
  fixture *fx = *state;
  double x[200 * 4], y[200];
  random_data(x, y, 200, 4, 11, 1); /* labels 2, -1, 0.5 */
  myr_dataset d = {200, 4, x, y};
  void *m = fit(fx, "task=classification", &d, 3);
  assert_int_equal(F->n_outputs(m), 3);
  const double *cv = F->class_values(m);
  assert_non_null(cv);
  assert_true(cv[0] == -1 && cv[1] == 0.5 && cv[2] == 2); /* ascending, like classes_ */
  double out[3 * 200];
  assert_int_equal(F->predict(m, x, 200, 4, out, NULL), MYR_OK);
  int right = 0;
  for (int i = 0; i < 200; i++) {
    double s = out[3 * i] + out[3 * i + 1] + out[3 * i + 2];
    assert_true(fabs(s - 1) < 1e-12);
    int best = 0;
    for (int k = 0; k < 3; k++) {
      assert_true(out[3 * i + k] >= 0 && out[3 * i + k] <= 1);
      if (out[3 * i + k] > out[3 * i + best])
        best = k;
    }
    right += cv[best] == y[i];
  }
  assert_true(right > 180); /* training accuracy of a fully grown forest */
  /* Regression models have no classes. */
  void *r = fit(fx, "", &d, 3);
  assert_null(F->class_values(r));
  assert_int_equal(F->n_outputs(r), 1);
}

static void test_single_class(void **state) {
  fixture *fx = *state;
  double x[] = {1, 2, 3}, y[] = {7, 7, 7};
  myr_dataset d = {3, 1, x, y};
  void *m = fit(fx, "task=classification,n_trees=5", &d, 1);
  assert_int_equal(F->n_outputs(m), 1);
  assert_true(F->class_values(m)[0] == 7);
  assert_true(predict1(m, x, 1) == 1.0);
}

static void test_hand_built_gini_tree(void **state) {
  fixture *fx = *state;
  /* Labels 0 0 1 1 1 along x0; gini prefers 1.5 < x0 <= 2.5 over any x1 split; the
     leaves are pure, so probabilities are exactly 0 or 1. */
  double x[] = {1, 3, 2, 1, 3, 2, 4, 1, 5, 3}, y[] = {0, 0, 1, 1, 1};
  myr_dataset d = {5, 2, x, y};
  void *m =
      fit(fx, "task=classification,n_trees=1,bootstrap=false,max_features=all", &d, 1);
  double out[2], a[] = {2.5, 0}, b[] = {2.6, 0};
  assert_int_equal(F->predict(m, a, 1, 2, out, NULL), MYR_OK);
  assert_true(out[0] == 1 && out[1] == 0);
  assert_int_equal(F->predict(m, b, 1, 2, out, NULL), MYR_OK);
  assert_true(out[0] == 0 && out[1] == 1);
  /* Mixed leaves hold class fractions. Labels 0 1 0 1 1 at x = 1..5, one split. */
  double x1[] = {1, 2, 3, 4, 5}, y2[] = {0, 1, 0, 1, 1};
  myr_dataset d2 = {5, 1, x1, y2};
  void *m2 = fit(fx, "task=classification,n_trees=1,bootstrap=false,max_depth=1", &d2, 1);
  /* Candidates: 1|4 rows (gini .0 + 4 * .375 = 1.5), 2|3 (1 + 3*(4/9)=2.33), 3|2
     (3*(4/9) + 0 = 1.33), 4|1 (4*.5 = 2): the best leaves {0,1,0} and {1,1}. */
  double at[] = {3}, hi[] = {4};
  assert_int_equal(F->predict(m2, at, 1, 1, out, NULL), MYR_OK);
  assert_true(fabs(out[0] - 2.0 / 3) < 1e-15 && fabs(out[1] - 1.0 / 3) < 1e-15);
  assert_int_equal(F->predict(m2, hi, 1, 1, out, NULL), MYR_OK);
  assert_true(out[0] == 0 && out[1] == 1);
}

/* ------------------------------------------------------------------ determinism, codec
 */

static void test_determinism(void **state) {
  fixture *fx = *state;
  double x[100 * 8], y[100];
  random_data(x, y, 100, 8, 21, 0);
  myr_dataset d = {100, 8, x, y};
  size_t la, lb, lc;
  unsigned char *a = encode(fit(fx, "n_trees=20", &d, 42), &la);
  unsigned char *b = encode(fit(fx, "n_trees=20", &d, 42), &lb);
  unsigned char *c = encode(fit(fx, "n_trees=20", &d, 43), &lc);
  assert_int_equal(la, lb);
  assert_memory_equal(a, b, la);
  assert_true(la != lc || memcmp(a, c, la) != 0);
  free(a);
  free(b);
  free(c);
}

static void check_roundtrip(fixture *fx, void *m, const double *x, size_t n, size_t p) {
  size_t len;
  unsigned char *b = encode(m, &len);
  void *back = NULL;
  myr_error err = {0};
  int rc = F->decode(b, len, 1, p, &fx->s, &back, &err);
  if (rc != MYR_OK)
    fail_msg("decode: %s", err.message);
  size_t k = F->n_outputs(m);
  assert_int_equal(F->n_outputs(back), k);
  double *o1 = malloc(n * k * sizeof *o1), *o2 = malloc(n * k * sizeof *o2);
  assert_int_equal(F->predict(m, x, n, p, o1, NULL), MYR_OK);
  assert_int_equal(F->predict(back, x, n, p, o2, NULL), MYR_OK);
  assert_memory_equal(o1, o2, n * k * sizeof *o1);
  size_t len2;
  unsigned char *b2 = encode(back, &len2);
  assert_int_equal(len, len2);
  assert_memory_equal(b, b2, len);
  char j1[4096] = "", j2[4096] = "";
  assert_int_equal(F->describe(m, write_to_buf, j1), MYR_OK);
  assert_int_equal(F->describe(back, write_to_buf, j2), MYR_OK);
  assert_string_equal(j1, j2);
  assert_non_null(strstr(j1, "\"n_trees\":"));
  free(o1);
  free(o2);
  free(b);
  free(b2);
}

static void test_roundtrip(void **state) {
  fixture *fx = *state;
  double x[120 * 5], y[120];
  random_data(x, y, 120, 5, 8, 0);
  myr_dataset d = {120, 5, x, y};
  check_roundtrip(fx, fit(fx, "n_trees=30", &d, 1), x, 120, 5);
  check_roundtrip(fx, fit(fx, "n_trees=3,max_depth=4,min_samples_leaf=3", &d, 1), x, 120,
                  5);
  random_data(x, y, 120, 5, 8, 1);
  check_roundtrip(fx, fit(fx, "task=classification,n_trees=30", &d, 1), x, 120, 5);
  /* The blob layer finds the family by name. */
  void *m = fit(fx, "n_trees=4", &d, 1);
  unsigned char *blob;
  size_t len;
  assert_int_equal(myr__blob_encode(F, m, 5, 0, &blob, &len, NULL), MYR_OK);
  const myr_model_family *f2;
  void *back;
  assert_int_equal(myr__blob_decode(NULL, blob, len, &fx->s, &f2, &back, NULL, NULL),
                   MYR_OK);
  assert_ptr_equal(f2, F);
  assert_true(predict1(m, x, 5) == predict1(back, x, 5));
  free(blob);
}

static void test_wide_features(void **state) {
  fixture *fx = *state;
  /* 300 features: feature codes take two bytes; the split is on feature 299. */
  enum { P = 300, N = 6 };
  double *x = calloc(N * P, sizeof *x), y[N] = {0, 0, 0, 1, 1, 1};
  for (int i = 0; i < N; i++)
    x[i * P + P - 1] = i;
  myr_dataset d = {N, P, x, y};
  void *m = fit(fx, "n_trees=1,bootstrap=false,max_features=all", &d, 1);
  size_t len;
  unsigned char *b = encode(m, &len);
  assert_int_equal(b[1], 2);
  assert_int_equal(b[16] | b[17] << 8, P); /* code = feature + 1 */
  assert_true(le_f32(b + 18) == 2.5f);
  check_roundtrip(fx, m, x, N, P);
  free(b);
  free(x);
}

static void test_decode_rejects_truncation_and_garbage(void **state) {
  fixture *fx = *state;
  double x[80 * 3], y[80];
  random_data(x, y, 80, 3, 4, 0);
  myr_dataset d = {80, 3, x, y};
  for (int task = 0; task < 2; task++) {
    if (task)
      random_data(x, y, 80, 3, 4, 1);
    size_t len;
    unsigned char *b = encode(
        fit(fx, task ? "task=classification,n_trees=3" : "n_trees=3", &d, 1), &len);
    void *m;
    myr_error err = {0};
    for (size_t cut = 0; cut < len; cut++) {
      unsigned char *t = malloc(cut ? cut : 1); /* exact size, so ASan sees overreads */
      memcpy(t, b, cut);
      assert_int_equal(F->decode(t, cut, 1, 3, &fx->s, &m, &err), MYR_ECORRUPT);
      free(t);
    }
    unsigned char *longer = malloc(len + 1);
    memcpy(longer, b, len);
    longer[len] = 0;
    assert_int_equal(F->decode(longer, len + 1, 1, 3, &fx->s, &m, &err), MYR_ECORRUPT);
    assert_int_equal(F->decode(b, len, 2, 3, &fx->s, &m, &err), MYR_EUNSUPPORTED);
    assert_int_equal(F->decode(b, len, 1, 1, &fx->s, &m, &err),
                     MYR_ECORRUPT); /* splits on x1 */
    free(longer);
    free(b);
  }
  /* Hand-made hostile payloads: a tree that never ends, a child beyond the tree, a split
     on a feature that does not exist, a NaN threshold, an all-zero class leaf. */
  unsigned char never[] = {1, 1, 4, 0, 1, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0,
                           1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0};
  void *m;
  assert_int_equal(F->decode(never, sizeof never, 1, 1, &fx->s, &m, NULL), MYR_ECORRUPT);
  unsigned char badfeat[] = {1, 1, 4, 0, 1, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0,
                             3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  /* Regression payloads with float32 leaves take the branch-free tree loop; a fault there
     is named by the general one. */
  myr_error e2 = {0};
  assert_int_equal(F->decode(badfeat, sizeof badfeat, 1, 1, &fx->s, &m, &e2),
                   MYR_ECORRUPT);
  assert_non_null(strstr(e2.message, "split on feature 2 of 1"));
  assert_int_equal(F->decode(never, sizeof never, 1, 1, &fx->s, &m, &e2), MYR_ECORRUPT);
  assert_non_null(strstr(e2.message, "tree of 3 nodes"));
  assert_int_equal(F->decode(badfeat, sizeof badfeat, 1, 2, &fx->s, &m, NULL),
                   MYR_ECORRUPT);
  assert_int_equal(F->decode(badfeat, sizeof badfeat, 1, 3, &fx->s, &m, NULL), MYR_OK);
  unsigned char nan_thr[] = {1, 1, 4, 0,    1,    0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0,
                             1, 0, 0, 0xc0, 0x7f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  assert_int_equal(F->decode(nan_thr, sizeof nan_thr, 1, 1, &fx->s, &m, &e2),
                   MYR_ECORRUPT);
  assert_non_null(strstr(e2.message, "threshold"));
  unsigned char zero_leaf[] = {2, 1, 0, 0, 1, 0, 0, 0, 2,    0,    0, 0, 0, 0, 0, 0, 0, 0,
                               0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0x3f, 1, 0, 0, 0, 0, 0, 0};
  assert_int_equal(F->decode(zero_leaf, sizeof zero_leaf, 1, 1, &fx->s, &m, NULL),
                   MYR_ECORRUPT);
  zero_leaf[sizeof zero_leaf - 1] = 1; /* counts 0, 1: a valid leaf */
  assert_int_equal(F->decode(zero_leaf, sizeof zero_leaf, 1, 1, &fx->s, &m, NULL),
                   MYR_OK);
  unsigned char padded[] = {2, 1, 0, 0, 1,    0,    0, 0, 1, 0, 0, 0,    0,   0,
                            0, 0, 0, 0, 0x80, 0x3f, 1, 0, 0, 0, 0, 0x81, 0x00};
  assert_int_equal(F->decode(padded, sizeof padded, 1, 1, &fx->s, &m, NULL),
                   MYR_ECORRUPT);
}

static void test_decode_survives_byte_flips(void **state) {
  fixture *fx = *state;
  double x[60 * 3], y[60];
  myr__rng r;
  myr__rng_seed(&r, 77);
  for (int task = 0; task < 2; task++) {
    random_data(x, y, 60, 3, 6, task);
    myr_dataset d = {60, 3, x, y};
    size_t len;
    unsigned char *b = encode(
        fit(fx, task ? "task=classification,n_trees=4" : "n_trees=4", &d, 2), &len);
    unsigned char *t = malloc(len);
    int accepted = 0;
    for (int iter = 0; iter < 3000; iter++) {
      memcpy(t, b, len);
      int flips = 1 + (int)myr__rng_below(&r, 3);
      for (int k = 0; k < flips; k++)
        t[myr__rng_below(&r, len)] ^= (unsigned char)(1u << myr__rng_below(&r, 8));
      void *m = NULL;
      int rc = F->decode(t, len, 1, 3, &fx->s, &m, NULL);
      assert_true(rc == MYR_OK || rc == MYR_ECORRUPT);
      if (rc != MYR_OK)
        continue;
      accepted++;
      /* Whatever decoded is harmless: it predicts finite values, probabilities in [0, 1].
       */
      size_t k = F->n_outputs(m);
      assert_true(k >= 1);
      double out[64 * 4];
      if (k <= 64) {
        assert_int_equal(F->predict(m, x, 4, 3, out, NULL), MYR_OK);
        for (size_t i = 0; i < 4 * k; i++) {
          assert_true(isfinite(out[i]));
          if (task)
            assert_true(out[i] >= 0 && out[i] <= 1);
        }
      }
      char json[4096] = "";
      assert_int_equal(F->describe(m, write_to_buf, json), MYR_OK);
      myr__arena_reset(&fx->arena);
    }
    assert_true(accepted > 0); /* flipped thresholds and values are still valid models */
    free(t);
    free(b);
  }
}

/* ------------------------------------------------------------------ params */

static void test_params(void **state) {
  fixture *fx = *state;
  char text[512];
  F->params_init(fx->params);
  F->params_format(fx->params, text, sizeof text);
  assert_string_equal(text,
                      "task=regression,n_trees=100,max_depth=none,min_samples_split=2,"
                      "min_samples_leaf=1,max_features=1.0,bootstrap=true,"
                      "max_samples=none,min_impurity_decrease=0,leaf_values=float32");
  params(fx, "task=classification");
  F->params_format(fx->params, text, sizeof text);
  assert_non_null(strstr(text, "max_features=sqrt"));
  params(fx, "n_estimators=7,max_depth=5,min_samples_split=0.25,min_samples_leaf=3,"
             "max_features=1,bootstrap=no,min_impurity_decrease=0.5");
  F->params_format(fx->params, text, sizeof text);
  assert_string_equal(text,
                      "task=regression,n_trees=7,max_depth=5,min_samples_split=0.25,"
                      "min_samples_leaf=3,max_features=1,bootstrap=false,"
                      "max_samples=none,min_impurity_decrease=0.5,leaf_values=float32");
  /* The canonical form reads back to the same params. */
  char again[512];
  params(fx, text);
  F->params_format(fx->params, again, sizeof again);
  assert_string_equal(text, again);
  params(fx, "max_features=1.0,max_samples=0.5,max_depth=none");
  F->params_format(fx->params, text, sizeof text);
  assert_non_null(strstr(text, "max_features=1.0,"));
  assert_non_null(strstr(text, "max_samples=0.5,"));
  params(fx, text);
  F->params_format(fx->params, again, sizeof again);
  assert_string_equal(text, again);
  params(fx, "max_features=log2,max_samples=30");
  F->params_format(fx->params, text, sizeof text);
  assert_non_null(strstr(text, "max_features=log2,bootstrap=true,max_samples=30,"));

  struct {
    const char *k, *v;
  } bad[] = {{"n_trees", "0"},
             {"n_trees", "1.5"},
             {"n_estimators", "-3"},
             {"max_depth", "0"},
             {"max_depth", "deep"},
             {"min_samples_split", "1"},
             {"min_samples_split", "1.5"},
             {"min_samples_leaf", "0"},
             {"min_samples_leaf", "1.0"},
             {"max_features", "0"},
             {"max_features", "1.5"},
             {"max_features", "auto"},
             {"bootstrap", "maybe"},
             {"max_samples", "0"},
             {"max_samples", "-0.5"},
             {"min_impurity_decrease", "-1"},
             {"min_impurity_decrease", "nan"},
             {"leaf_values", "float16"},
             {"task", "clustering"}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    myr_error err = {0};
    F->params_init(fx->params);
    assert_int_equal(F->params_set(fx->params, bad[i].k, bad[i].v, &err), MYR_EINVAL);
    assert_non_null(strstr(err.message, bad[i].k));
  }
  myr_error err = {0};
  assert_int_equal(F->params_set(fx->params, "depth", "3", &err), MYR_EINVAL);
  assert_non_null(strstr(err.message, "unknown parameter 'depth'"));
}

static void test_max_features_more_than_features(void **state) {
  fixture *fx = *state;
  /* An integer above the feature count means all of them (scikit-learn >= 1.x). */
  double x[] = {1, 2, 3, 4}, y[] = {1, 2, 3, 4};
  myr_dataset d = {4, 1, x, y};
  void *m = fit(fx, "n_trees=1,bootstrap=false,max_features=5", &d, 1);
  assert_true(predict1(m, x + 2, 1) == 3);
  double out;
  myr_error err = {0};
  assert_int_equal(F->predict(m, x, 1, 2, &out, &err), MYR_EINVAL);
  assert_non_null(strstr(err.message, "features"));
}

/* ------------------------------------------------------------------ out of memory */

typedef struct failing {
  myr__arena *arena;
  long left; /* allocations that succeed before the first failure */
} failing;

static void *failing_alloc(void *ud, size_t size, size_t align) {
  failing *f = ud;
  if (f->left-- <= 0)
    return NULL;
  return myr__arena_alloc(f->arena, size, align);
}

static void test_out_of_memory(void **state) {
  fixture *fx = *state;
  double x[50 * 3], y[50];
  const char *configs[] = {"n_trees=5", "task=classification,n_trees=5"};
  for (int c = 0; c < 2; c++) {
    random_data(x, y, 50, 3, 2, c);
    myr_dataset d = {50, 3, x, y};
    params(fx, configs[c]);
    int ok = 0;
    for (long n = 0; n < 10000 && !ok; n++) {
      failing f = {&fx->arena, n};
      myr_scratch s = {failing_alloc, &f};
      void *m = NULL;
      myr_error err = {0};
      int rc = F->fit(fx->params, &d, 1, &s, &m, &err);
      if (rc == MYR_OK) {
        ok = 1;
        size_t len;
        unsigned char *b = encode(m, &len);
        for (long k = 0;; k++) {
          failing g = {&fx->arena, k};
          myr_scratch s2 = {failing_alloc, &g};
          void *back = NULL;
          rc = F->decode(b, len, 1, 3, &s2, &back, &err);
          if (rc == MYR_OK)
            break;
          assert_int_equal(rc, MYR_ENOMEM);
        }
        free(b);
      } else {
        assert_int_equal(rc, MYR_ENOMEM);
        assert_null(m);
        assert_non_null(strstr(err.message, "out of memory"));
      }
      myr__arena_reset(&fx->arena);
    }
    assert_true(ok);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_threshold_is_the_midpoint, setup, teardown),
      cmocka_unit_test_setup_teardown(test_leaf_values_are_means, setup, teardown),
      cmocka_unit_test_setup_teardown(test_leaf_value_precision, setup, teardown),
      cmocka_unit_test_setup_teardown(test_min_samples_leaf, setup, teardown),
      cmocka_unit_test_setup_teardown(test_max_depth, setup, teardown),
      cmocka_unit_test_setup_teardown(test_hand_built_cart_tree, setup, teardown),
      cmocka_unit_test_setup_teardown(test_float32_features, setup, teardown),
      cmocka_unit_test_setup_teardown(test_min_impurity_decrease, setup, teardown),
      cmocka_unit_test_setup_teardown(test_no_randomness_means_identical_trees, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_bootstrap_max_samples, setup, teardown),
      cmocka_unit_test_setup_teardown(test_classification, setup, teardown),
      cmocka_unit_test_setup_teardown(test_single_class, setup, teardown),
      cmocka_unit_test_setup_teardown(test_hand_built_gini_tree, setup, teardown),
      cmocka_unit_test_setup_teardown(test_determinism, setup, teardown),
      cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
      cmocka_unit_test_setup_teardown(test_wide_features, setup, teardown),
      cmocka_unit_test_setup_teardown(test_decode_rejects_truncation_and_garbage, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_decode_survives_byte_flips, setup, teardown),
      cmocka_unit_test_setup_teardown(test_params, setup, teardown),
      cmocka_unit_test_setup_teardown(test_max_features_more_than_features, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_out_of_memory, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
