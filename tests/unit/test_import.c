/* SPDX-License-Identifier: Apache-2.0 */
/* myr_store_import: a results table (myr_train's `results`) stored as one published run
   holds the same models as training into the store; bad tables fail cleanly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "myriad/myriad.h"
#include "testutil.h"

static const char *const KEYS[] = {"k"};

/* 20 keys x 12 rows and one key of 2 rows (too few with min_rows 5). */
static void write_data(char *path, size_t cap) {
  static char csv[32768];
  size_t at = (size_t)snprintf(csv, sizeof csv, "k,x1,x2,y\n");
  for (int g = 0; g < 20; g++)
    for (int i = 0; i < 12; i++) {
      double x1 = (double)((g * 7 + i * 13) % 17) / 4.0, x2 = (double)((i * 5) % 11) - 5;
      at += (size_t)snprintf(csv + at, sizeof csv - at, "key%02d,%g,%g,%g\n", g, x1, x2,
                             g + 2 * x1 - x2 + (double)(i % 3) / 10.0);
    }
  at += (size_t)snprintf(csv + at, sizeof csv - at, "tiny,1,2,3\ntiny,2,3,4\n");
  tu_write_file(path, cap, "import.csv", csv, at);
}

static int train(const char *data, const char *store, struct ArrowArrayStream *results) {
  myr_train_options o;
  memset(&o, 0, sizeof o);
  o.input = data;
  o.keys = KEYS;
  o.n_keys = 1;
  o.label = "y";
  o.model = "forest";
  o.params = "n_trees=3";
  o.min_rows = 5;
  o.n_threads = 2;
  o.store = store;
  o.results = results;
  myr_error err = {0};
  return myr_train(&o, NULL, &err);
}

typedef struct blobs {
  char key[32][16];
  unsigned char *blob[32];
  size_t len[32];
  size_t n;
} blobs;

static int collect(void *ud, const myr_model_record *m) {
  blobs *b = ud;
  if (b->n == 32)
    return 1;
  snprintf(b->key[b->n], sizeof b->key[0], "%s", m->key_values[0]);
  b->blob[b->n] = malloc(m->blob_len);
  memcpy(b->blob[b->n], m->blob, m->blob_len);
  b->len[b->n++] = m->blob_len;
  return 0;
}

static void read_blobs(const char *store, blobs *b) {
  myr_store *s = NULL;
  myr_error err = {0};
  memset(b, 0, sizeof *b);
  assert_int_equal(myr_store_open(store, MYR_STORE_READONLY, &s, &err), MYR_OK);
  myr_model_query q = {0}; /* key order */
  assert_int_equal(myr_store_models(s, &q, collect, b, &err), MYR_OK);
  myr_store_close(s);
}

static void blobs_free(blobs *b) {
  for (size_t i = 0; i < b->n; i++)
    free(b->blob[i]);
}

static void test_import_equals_training_into_the_store(void **state) {
  (void)state;
  char data[512], trained[512], imported[512];
  write_data(data, sizeof data);
  tu_path(trained, sizeof trained, "trained.db");
  tu_path(imported, sizeof imported, "imported.db");
  struct ArrowArrayStream res = {0};
  assert_int_equal(train(data, NULL, &res), MYR_OK);
  assert_int_equal(train(data, trained, NULL), MYR_OK);
  myr_import_options o = {imported, &res, "test", 0};
  myr_import_summary s;
  myr_error err = {0};
  assert_int_equal(myr_store_import(&o, &s, &err), MYR_OK);
  assert_null(res.release); /* moved in */
  assert_true(s.run_id == 1 && s.models == 20 && s.errors == 1);
  assert_string_equal(s.family, "forest");
  blobs a, b;
  read_blobs(trained, &a);
  read_blobs(imported, &b);
  assert_int_equal(a.n, 20);
  assert_int_equal(b.n, 20);
  for (size_t i = 0; i < a.n; i++) {
    assert_string_equal(a.key[i], b.key[i]);
    assert_int_equal(a.len[i], b.len[i]);
    assert_memory_equal(a.blob[i], b.blob[i], a.len[i]);
  }
  blobs_free(&a);
  blobs_free(&b);
  myr_store *st = NULL;
  myr_store_info info;
  assert_int_equal(myr_store_open(imported, MYR_STORE_READONLY, &st, &err), MYR_OK);
  assert_int_equal(myr_store_get_info(st, &info, &err), MYR_OK);
  assert_true(info.n_errors == 1 && info.latest_run == 1);
  myr_store_close(st);
}

static void test_bad_tables_fail_and_publish_nothing(void **state) {
  (void)state;
  char data[512], store[512];
  write_data(data, sizeof data);
  tu_path(store, sizeof store, "bad.db");
  myr_error err = {0};
  myr_import_options o = {store, NULL, NULL, 0};
  assert_int_equal(myr_store_import(&o, NULL, &err), MYR_EINVAL); /* no table */
  o.store = NULL;
  struct ArrowArrayStream res = {0};
  assert_int_equal(train(data, NULL, &res), MYR_OK);
  o.models = &res;
  assert_int_equal(myr_store_import(&o, NULL, &err), MYR_EINVAL); /* no store */
  assert_null(res.release); /* released even so */
}

static void test_allocation_failures_are_clean(void **state) {
  (void)state;
  char data[512], store[512];
  write_data(data, sizeof data);
  for (long n = 1; n < 400; n += 7) {
    struct ArrowArrayStream res = {0};
    long live = tu_alloc_live(); /* the results stream too is freed by the import */
    assert_int_equal(train(data, NULL, &res), MYR_OK);
    tu_path(store, sizeof store, "oom.db");
    remove(store);
    tu_alloc_fail_at(n, 0);
    myr_import_options o = {store, &res, NULL, 0};
    myr_error err = {0};
    int rc = myr_store_import(&o, NULL, &err);
    int failed = tu_alloc_failed();
    tu_alloc_fail_at(0, 0);
    if (!failed)
      assert_int_equal(rc, MYR_OK);
    else if (rc != MYR_OK && rc != MYR_ENOMEM && !strstr(err.message, "out of memory"))
      fail_msg("allocation %ld failed, reported as %d: %s", n, rc, err.message);
    assert_null(res.release);
    assert_int_equal(tu_alloc_live(), live);
  }
}

int main(void) {
  tu_alloc_install();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_import_equals_training_into_the_store),
      cmocka_unit_test(test_bad_tables_fail_and_publish_nothing),
      cmocka_unit_test(test_allocation_failures_are_clean),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
