/* SPDX-License-Identifier: Apache-2.0 */
/* The linear family on hand-checkable data (closed-form answers worked out below). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/arena.h"
#include "models/families.h"

static const myr_model_family *F = &myr__family_linear;

static void *fit_with(const char *k, const char *v, const myr_dataset *d, myr__arena *a,
                      int expect) {
  char params[64];
  F->params_init(params);
  if (k)
    assert_int_equal(F->params_set(params, k, v, NULL), MYR_OK);
  myr_scratch s = myr__arena_scratch(a);
  void *m = NULL;
  myr_error err = {0};
  assert_int_equal(F->fit(params, d, 0, &s, &m, &err), expect);
  return m;
}

static void test_ols_exact_line(void **state) {
  (void)state;
  /* y = 1 + 2x exactly: least squares recovers it. */
  double x[] = {0, 1, 2, 3}, y[] = {1, 3, 5, 7};
  myr_dataset d = {4, 1, x, y};
  myr__arena a;
  myr__arena_init(&a, 0);
  void *m = fit_with("alpha", "0", &d, &a, MYR_OK);
  double xp[] = {10}, out;
  assert_int_equal(F->predict(m, xp, 1, 1, &out, NULL), MYR_OK);
  assert_true(fabs(out - 21.0) < 1e-12);
  myr__arena_free(&a);
}

static void test_ridge_shrinks_slope_not_intercept(void **state) {
  (void)state;
  /* Centered x = -1.5,-.5,.5,1.5: Sxx = 5, Sxy = 10. With alpha = 1 the slope is
     10 / (5 + 1) = 5/3 and the intercept mean(y) - mean(x) * slope = 4 - 1.5 * 5/3 = 1.5. */
  double x[] = {0, 1, 2, 3}, y[] = {1, 3, 5, 7};
  myr_dataset d = {4, 1, x, y};
  myr__arena a;
  myr__arena_init(&a, 0);
  void *m = fit_with(NULL, NULL, &d, &a, MYR_OK); /* default alpha = 1 */
  double xp[] = {0, 1}, out[2];
  assert_int_equal(F->predict(m, xp, 2, 1, out, NULL), MYR_OK);
  assert_true(fabs(out[0] - 1.5) < 1e-12);
  assert_true(fabs(out[1] - out[0] - 5.0 / 3.0) < 1e-12);
  myr__arena_free(&a);
}

static void test_two_features(void **state) {
  (void)state;
  /* y = 3 - x0 + 0.5 x1, four rows spanning the plane. */
  double x[] = {0, 0, 1, 0, 0, 1, 1, 1, 2, 3}, y[5];
  for (int i = 0; i < 5; i++)
    y[i] = 3 - x[2 * i] + 0.5 * x[2 * i + 1];
  myr_dataset d = {5, 2, x, y};
  myr__arena a;
  myr__arena_init(&a, 0);
  void *m = fit_with("alpha", "0", &d, &a, MYR_OK);
  unsigned char buf[64];
  assert_int_equal(F->encoded_size(m), 24);
  assert_int_equal(F->encode(m, buf, 24, NULL), MYR_OK);
  double v[3];
  memcpy(v, buf, 24); /* little-endian host: intercept, coef0, coef1 */
  assert_true(fabs(v[0] - 3) < 1e-12 && fabs(v[1] + 1) < 1e-12 && fabs(v[2] - 0.5) < 1e-12);
  myr__arena_free(&a);
}

static void test_singular_ols_fails_ridge_does_not(void **state) {
  (void)state;
  double x[] = {1, 5, 2, 5, 3, 5}, y[] = {1, 2, 3}; /* second feature is constant */
  myr_dataset d = {3, 2, x, y};
  myr__arena a;
  myr__arena_init(&a, 0);
  fit_with("alpha", "0", &d, &a, MYR_EMODEL);
  void *m = fit_with("alpha", "0.5", &d, &a, MYR_OK);
  unsigned char buf[24];
  F->encode(m, buf, 24, NULL);
  double v[3];
  memcpy(v, buf, 24);
  assert_true(v[2] == 0.0); /* constant column gets a zero coefficient, as in scikit-learn */
  myr__arena_free(&a);
}

static void test_params(void **state) {
  (void)state;
  char p[64];
  myr_error err = {0};
  F->params_init(p);
  assert_int_equal(F->params_set(p, "alpha", "-1", &err), MYR_EINVAL);
  assert_non_null(strstr(err.message, "alpha"));
  assert_int_equal(F->params_set(p, "alpha", "abc", &err), MYR_EINVAL);
  assert_int_equal(F->params_set(p, "depth", "3", &err), MYR_EINVAL);
  assert_non_null(strstr(err.message, "unknown parameter 'depth'"));
  assert_int_equal(F->params_set(p, "alpha", "0.25", &err), MYR_OK);
  assert_int_equal(F->params_set(p, "fit_intercept", "false", &err), MYR_OK);
  char text[128];
  F->params_format(p, text, sizeof text);
  assert_string_equal(text, "alpha=0.25,fit_intercept=false");
  assert_int_equal(F->min_rows(p, 8), 1);
  F->params_set(p, "alpha", "0", &err);
  assert_int_equal(F->min_rows(p, 8), 8);
}

static void test_decode_validates(void **state) {
  (void)state;
  myr__arena a;
  myr__arena_init(&a, 0);
  myr_scratch s = myr__arena_scratch(&a);
  unsigned char buf[24] = {0};
  void *m;
  myr_error err = {0};
  assert_int_equal(F->decode(buf, 24, 1, 2, &s, &m, &err), MYR_OK);
  assert_int_equal(F->decode(buf, 23, 1, 2, &s, &m, &err), MYR_ECORRUPT);
  assert_int_equal(F->decode(buf, 24, 1, 3, &s, &m, &err), MYR_ECORRUPT);
  assert_int_equal(F->decode(buf, 24, 2, 2, &s, &m, &err), MYR_EUNSUPPORTED);
  double inf = INFINITY;
  memcpy(buf + 8, &inf, 8);
  assert_int_equal(F->decode(buf, 24, 1, 2, &s, &m, &err), MYR_ECORRUPT);
  assert_int_equal(F->decode(buf, 8, 1, SIZE_MAX, &s, &m, &err), MYR_ECORRUPT);
  myr__arena_free(&a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ols_exact_line),
      cmocka_unit_test(test_ridge_shrinks_slope_not_intercept),
      cmocka_unit_test(test_two_features),
      cmocka_unit_test(test_singular_ols_fails_ridge_does_not),
      cmocka_unit_test(test_params),
      cmocka_unit_test(test_decode_validates),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
