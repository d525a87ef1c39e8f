/* SPDX-License-Identifier: Apache-2.0 */
/* Spill file: rows come back per partition, in the order added, bit for bit; the file
   is gone from the directory; failures are errors naming the directory. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "engine/spill.h"
#include "myriad/alloc.h"
#include "testutil.h"

#define ROWS 20000
#define P 3

static uint64_t mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  return x;
}

/* Row i: key "k<i % 997>" repeated (i % 5) + 1 times, hash of the key number, label and
   features that exercise every byte of a double (negative zero, tiny, huge, NaN bits). */
static size_t row_key(size_t i, unsigned char *out) {
  char one[16];
  int w = snprintf(one, sizeof one, "k%zu", i % 997);
  size_t len = 0;
  for (size_t r = 0; r <= i % 5; r++) {
    memcpy(out + len, one, (size_t)w);
    len += (size_t)w;
  }
  return len;
}
static uint64_t row_hash(size_t i) {
  return mix(i % 997 + 1);
}
static double row_value(size_t i, size_t f) {
  switch ((i + f) % 5) {
  case 0: return -0.0;
  case 1: return 1e-300 * (double)i;
  case 2: return -1e300 / (double)(i + 1);
  case 3: return (double)i + (double)f / 7.0;
  default: return (double)(mix(i * 31 + f) >> 11) * 0x1p-53;
  }
}

typedef struct check {
  unsigned part;
  const myr__spill *sp;
  size_t next; /* next row index expected in this partition */
  size_t seen;
} check;

static size_t next_in_part(const check *c, size_t i) {
  while (i < ROWS && myr__spill_part(c->sp, row_hash(i)) != c->part)
    i++;
  return i;
}

static int on_rows(void *ud, const myr__spill_rows *b, myr_error *err) {
  (void)err;
  check *c = ud;
  for (size_t j = 0; j < b->n; j++) {
    size_t i = c->next = next_in_part(c, c->next);
    assert_true(i < ROWS);
    unsigned char key[128];
    size_t len = row_key(i, key);
    uint32_t start = j ? b->key_end[j - 1] : 0;
    assert_int_equal(b->key_end[j] - start, len);
    assert_memory_equal(b->keys + start, key, len);
    assert_true(b->hash[j] == row_hash(i));
    double y = -(double)i;
    assert_memory_equal(&b->y[j], &y, sizeof y);
    for (size_t f = 0; f < P; f++) {
      double v = row_value(i, f);
      assert_memory_equal(&b->x[j * P + f], &v, sizeof v);
    }
    c->next++;
    c->seen++;
  }
  return MYR_OK;
}

static int count_spill_files(const char *dir) {
  DIR *d = opendir(dir);
  int n = 0;
  struct dirent *e;
  while (d && (e = readdir(d)) != NULL)
    n += strstr(e->d_name, "spill") != NULL;
  if (d)
    closedir(d);
  return n;
}

static void test_round_trip(void **state) {
  (void)state;
  myr__spill *sp = NULL;
  myr_error err = {0};
  /* little staging: many blocks per partition */
  assert_int_equal(myr__spill_open(tu_tmpdir(), 7, P, 64 * 1024, &sp, &err), MYR_OK);
  assert_int_equal(count_spill_files(tu_tmpdir()), 0);
  for (size_t i = 0; i < ROWS; i++) {
    unsigned char key[128];
    size_t len = row_key(i, key);
    double x[P];
    for (size_t f = 0; f < P; f++)
      x[f] = row_value(i, f);
    assert_int_equal(myr__spill_add(sp, row_hash(i), key, len, -(double)i, x, &err),
                     MYR_OK);
  }
  assert_int_equal(myr__spill_finish(sp, &err), MYR_OK);
  assert_int_equal(myr__spill_parts(sp), 7);
  assert_true(myr__spill_rows_total(sp) == ROWS);
  uint64_t rows = 0, bytes = 0;
  for (unsigned part = 0; part < 7; part++) {
    check c = {part, sp, 0, 0};
    assert_int_equal(myr__spill_read(sp, part, on_rows, &c, &err), MYR_OK);
    assert_true(c.seen == myr__spill_part_rows(sp, part));
    assert_true(next_in_part(&c, c.next) == ROWS); /* nothing of this part was lost */
    rows += c.seen;
    bytes += myr__spill_part_bytes(sp, part);
    assert_true(c.seen > ROWS / 20); /* the hash spreads keys over every partition */
  }
  assert_true(rows == ROWS);
  assert_true(myr__spill_file_bytes(sp) > 0 && myr__spill_file_bytes(sp) < bytes);
  /* reading twice gives the same rows */
  check again = {3, sp, 0, 0};
  assert_int_equal(myr__spill_read(sp, 3, on_rows, &again, &err), MYR_OK);
  assert_true(again.seen == myr__spill_part_rows(sp, 3));
  myr__spill_close(sp);
  assert_int_equal(count_spill_files(tu_tmpdir()), 0);
}

static int stop_at_first(void *ud, const myr__spill_rows *b, myr_error *err) {
  (void)b;
  ++*(int *)ud;
  return myr_error_set(err, MYR_ECANCELED, "stop");
}

static void test_callback_error_stops(void **state) {
  (void)state;
  myr__spill *sp = NULL;
  myr_error err = {0};
  assert_int_equal(myr__spill_open(tu_tmpdir(), 1, 1, 1024, &sp, &err), MYR_OK);
  double x = 1;
  for (int i = 0; i < 1000; i++)
    assert_int_equal(myr__spill_add(sp, 1, (const unsigned char *)"k", 1, 2, &x, &err),
                     MYR_OK);
  assert_int_equal(myr__spill_finish(sp, &err), MYR_OK);
  int calls = 0;
  assert_int_equal(myr__spill_read(sp, 0, stop_at_first, &calls, &err), MYR_ECANCELED);
  assert_int_equal(calls, 1);
  myr__spill_close(sp);
}

static void test_bad_dir_names_it(void **state) {
  (void)state;
  myr__spill *sp = NULL;
  myr_error err = {0};
  assert_int_equal(myr__spill_open("/nonexistent-myriad-dir", 4, 2, 1 << 20, &sp, &err),
                   MYR_EIO);
  assert_null(sp);
  assert_non_null(strstr(err.message, "spill file in /nonexistent-myriad-dir"));
  assert_int_equal(myr__spill_open(tu_tmpdir(), 0, 2, 1 << 20, &sp, &err), MYR_EINTERNAL);
}

static void test_out_of_memory_is_clean(void **state) {
  (void)state;
  /* Fail each allocation in turn: every failure is an error, and nothing leaks. */
  for (long n = 1; n < 60; n++) {
    myr__spill *sp = NULL;
    myr_error err = {0};
    long live = tu_alloc_live();
    tu_alloc_fail_at(n, 1);
    int rc = myr__spill_open(tu_tmpdir(), 3, 2, 4096, &sp, &err);
    for (int i = 0; i < 300 && rc == MYR_OK; i++) {
      double x[2] = {i, -i};
      rc = myr__spill_add(sp, mix((uint64_t)i), (const unsigned char *)"key", 3, i, x,
                          &err);
    }
    if (rc == MYR_OK)
      rc = myr__spill_finish(sp, &err);
    int failed = tu_alloc_failed();
    tu_alloc_fail_at(0, 0);
    if (rc != MYR_OK)
      assert_int_equal(rc, MYR_ENOMEM);
    if (!failed)
      assert_int_equal(rc, MYR_OK);
    myr__spill_close(sp);
    assert_int_equal(tu_alloc_live(), live);
  }
}

int main(void) {
  tu_alloc_install();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trip),
      cmocka_unit_test(test_callback_error_stops),
      cmocka_unit_test(test_bad_dir_names_it),
      cmocka_unit_test(test_out_of_memory_is_clean),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
