/* SPDX-License-Identifier: Apache-2.0 */
/* Text-to-number conversion: exact results, missing tokens, rejects. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "io/number.h"

static int parse(const char *s, double *v) { return myr__parse_double(s, strlen(s), v); }

static void test_exact_against_strtod(void **state) {
  (void)state;
  const char *cases[] = {"0",         "1",          "-1",        "3.14159",   "-0.000123",
                         "1e10",      "1.5E-7",     "+42",       "123456789012345678",
                         "0.1",       "2.2250738585072014e-308", "1.7976931348623157e308",
                         "9007199254740993", "12345678901234567890123", "  7.5 ", "1.",
                         ".5",        "00012.50",   "4.9e-324"};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    double v = -999;
    assert_int_equal(parse(cases[i], &v), MYR__NUM_OK);
    assert_true(v == strtod(cases[i], NULL));
  }
}

static void test_missing_tokens(void **state) {
  (void)state;
  const char *missing[] = {"", "NA", "na", "NaN", "nan", "NAN", "null", "NULL", "  ", " NA "};
  double v;
  for (size_t i = 0; i < sizeof missing / sizeof missing[0]; i++)
    assert_int_equal(parse(missing[i], &v), MYR__NUM_MISSING);
  assert_true(myr__is_missing("Null", 4));
  assert_false(myr__is_missing("0", 1));
}

static void test_rejects(void **state) {
  (void)state;
  const char *bad[] = {"abc", "1,5", "0x10", "1e", "1e+", "--1", "1.2.3", "e5", ".", "-",
                       "12a", "1 2", "nan1"};
  double v;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_int_equal(parse(bad[i], &v), MYR__NUM_BAD);
  assert_int_equal(parse("inf", &v), MYR__NUM_INF);
  assert_int_equal(parse("-Infinity", &v), MYR__NUM_INF);
  assert_int_equal(parse("1e999", &v), MYR__NUM_INF);
}

static void test_not_nul_terminated(void **state) {
  (void)state;
  double v;
  const char buf[] = {'1', '2', '3', '4'};
  assert_int_equal(myr__parse_double(buf, 2, &v), MYR__NUM_OK);
  assert_true(v == 12.0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_exact_against_strtod),
      cmocka_unit_test(test_missing_tokens),
      cmocka_unit_test(test_rejects),
      cmocka_unit_test(test_not_nul_terminated),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
