/* SPDX-License-Identifier: Apache-2.0 */
/* Core: errors, allocator hook, arena, thread pool, stable hashes, text buffer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/alloc.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/hash.h"
#include "core/pool.h"
#include "testutil.h"

static void test_error_set_and_prefix(void **state) {
  (void)state;
  myr_error err = {0};
  assert_int_equal(myr_error_set(&err, MYR_EPARSE, "line %d bad", 7), MYR_EPARSE);
  assert_string_equal(err.message, "line 7 bad");
  myr_error_prefix(&err, "data.csv");
  assert_string_equal(err.message, "data.csv: line 7 bad");
  assert_int_equal(err.code, MYR_EPARSE);
  assert_string_equal(myr_status_name(MYR_ENOMEM), "MYR_ENOMEM");
  assert_int_equal(myr_error_set(NULL, MYR_EIO, "x"), MYR_EIO); /* NULL err is allowed */
  myr_error_clear(&err);
  assert_int_equal(err.code, MYR_OK);
  assert_string_equal(err.message, "");
}

static void test_arena_alignment_and_reuse(void **state) {
  (void)state;
  myr__arena a;
  myr__arena_init(&a, 256);
  char *p1 = myr__arena_alloc(&a, 3, 1);
  double *p2 = myr__arena_alloc(&a, sizeof(double) * 4, sizeof(double));
  assert_non_null(p1);
  assert_non_null(p2);
  assert_int_equal((uintptr_t)p2 % sizeof(double), 0);
  /* larger than a block: a new block */
  char *big = myr__arena_alloc(&a, 10000, 16);
  assert_non_null(big);
  memset(big, 1, 10000);
  myr__arena_reset(&a);
  /* after reset the arena is one block big enough for the peak */
  assert_non_null(a.head);
  char *again = myr__arena_alloc(&a, 10000, 16);
  assert_non_null(again);
  myr__arena_free(&a);
  assert_null(a.head);
}

static void test_arena_out_of_memory(void **state) {
  (void)state;
  tu_alloc_install();
  long live = tu_alloc_live();
  myr__arena a;
  myr__arena_init(&a, 64);
  tu_alloc_fail_at(1, 1);
  assert_null(myr__arena_alloc(&a, 32, 8));
  tu_alloc_fail_at(0, 0);
  assert_non_null(myr__arena_alloc(&a, 32, 8));
  myr__arena_free(&a);
  assert_int_equal(tu_alloc_live(), live);
  myr_set_allocator(NULL, NULL);
}

typedef struct pool_ctx {
  int *hits;
  int fail_at;
} pool_ctx;

static int count_task(void *ctx, size_t task, unsigned worker) {
  pool_ctx *c = ctx;
  (void)worker;
  __atomic_fetch_add(&c->hits[task], 1, __ATOMIC_RELAXED);
  return (int)task == c->fail_at ? MYR_EMODEL : MYR_OK;
}

static void test_pool_runs_every_task_once(void **state) {
  (void)state;
  myr__pool *pool;
  assert_int_equal(myr__pool_create(3, &pool, NULL), MYR_OK);
  assert_int_equal(myr__pool_size(pool), 3);
  int hits[1000] = {0};
  pool_ctx c = {hits, -1};
  for (int round = 0; round < 5; round++)
    assert_int_equal(myr__pool_run(pool, 1000, count_task, &c), MYR_OK);
  for (int i = 0; i < 1000; i++)
    assert_int_equal(hits[i], 5);
  /* a failing task stops the job and its status comes back */
  memset(hits, 0, sizeof hits);
  c.fail_at = 10;
  assert_int_equal(myr__pool_run(pool, 1000, count_task, &c), MYR_EMODEL);
  assert_int_equal(hits[10], 1);
  /* zero tasks */
  assert_int_equal(myr__pool_run(pool, 0, count_task, &c), MYR_OK);
  myr__pool_destroy(pool);
  myr__pool_destroy(NULL);
}

static void test_hash_is_stable(void **state) {
  (void)state;
  /* These values are part of the store format: they must never change. */
  assert_true(myr__hash64("", 0, 0) == myr__hash64("", 0, 0));
  uint64_t h1 = myr__hash64("app-0001", 8, 0);
  uint64_t h2 = myr__hash64("app-0002", 8, 0);
  assert_true(h1 != h2);
  assert_true(myr__hash64("abc", 3, 1) != myr__hash64("abc", 3, 2));
  /* golden values, computed once and frozen */
  assert_int_equal(myr__mix64(0), 0);
  assert_true(myr__mix64(1) == 0x5692161d100b05e5ULL);
  /* tails of every length differ from each other */
  const char *s = "0123456789abcdef";
  for (size_t i = 0; i < 16; i++)
    assert_true(myr__hash64(s, i, 0) != myr__hash64(s, i + 1, 0));
  /* endianness-independent: same bytes, same hash whatever the alignment */
  char buf[32];
  memcpy(buf + 1, "app-0001", 8);
  assert_true(myr__hash64(buf + 1, 8, 0) == h1);
}

static void test_rng_is_deterministic(void **state) {
  (void)state;
  myr__rng a, b;
  myr__rng_seed(&a, 42);
  myr__rng_seed(&b, 42);
  for (int i = 0; i < 100; i++)
    assert_true(myr__rng_next(&a) == myr__rng_next(&b));
  int seen[7] = {0};
  for (int i = 0; i < 7000; i++) {
    uint64_t v = myr__rng_below(&a, 7);
    assert_true(v < 7);
    seen[v]++;
  }
  for (int i = 0; i < 7; i++)
    assert_true(seen[i] > 800 && seen[i] < 1200);
  double d = myr__rng_double(&a);
  assert_true(d >= 0 && d < 1);
  assert_true(myr__key_seed(1, 2) != myr__key_seed(2, 1));
}

static void test_buf_json(void **state) {
  (void)state;
  myr__buf b;
  myr__buf_init(&b);
  myr__buf_json_str(&b, "a\"b\\c\n\x01", 7);
  assert_string_equal(myr__buf_str(&b), "\"a\\\"b\\\\c\\n\\u0001\"");
  myr__buf_reset(&b);
  myr__buf_json_num(&b, 0.1);
  assert_string_equal(myr__buf_str(&b), "0.1");
  myr__buf_reset(&b);
  myr__buf_json_num(&b, 1.0 / 3.0);
  assert_true(strtod(myr__buf_str(&b), NULL) == 1.0 / 3.0);
  myr__buf_reset(&b);
  myr__buf_printf(&b, "%0300d", 5); /* longer than the small stack buffer */
  assert_int_equal(b.len, 300);
  assert_false(b.failed);
  myr__buf_free(&b);
}

static void test_num12(void **state) {
  (void)state;
  myr__buf b;
  myr__buf_init(&b);
  const double cases[] = {0.0, 1.0, -1.0, 0.5, 0.1, 1.0 / 3.0, -2.0 / 3.0, 123456.789,
                          1e-7, 3.14159e-5, 9.99999999999999e11, 1e12, 123456789012345.0,
                          -8.289729754253965, 0.99999999999999, 1e-300, 5e300, 2.5e-310};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    myr__buf_reset(&b);
    myr__buf_num12(&b, cases[i]);
    char *end;
    double back = strtod(myr__buf_str(&b), &end);
    if (*end != 0)
      fail_msg("%.17g written as \"%s\"", cases[i], myr__buf_str(&b));
    double tol = 5e-12 * fabs(cases[i]) + 1e-320;
    if (fabs(back - cases[i]) > tol)
      fail_msg("%.17g written as %s", cases[i], myr__buf_str(&b));
  }
  myr__buf_reset(&b);
  myr__buf_num12(&b, 0.25);
  assert_string_equal(myr__buf_str(&b), "0.25");
  myr__buf_reset(&b);
  myr__buf_num12(&b, -1500);
  assert_string_equal(myr__buf_str(&b), "-1500");
  myr__buf_reset(&b);
  myr__buf_num12(&b, 1e-7);
  assert_string_equal(myr__buf_str(&b), "1e-7");
  myr__buf_reset(&b);
  myr__buf_num12(&b, NAN);
  assert_string_equal(myr__buf_str(&b), "null");
  myr__buf_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_error_set_and_prefix),
      cmocka_unit_test(test_arena_alignment_and_reuse),
      cmocka_unit_test(test_arena_out_of_memory),
      cmocka_unit_test(test_pool_runs_every_task_once),
      cmocka_unit_test(test_hash_is_stable),
      cmocka_unit_test(test_rng_is_deterministic),
      cmocka_unit_test(test_buf_json),
      cmocka_unit_test(test_num12),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
