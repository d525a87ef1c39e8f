/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The training run end to end through the library: row accounting with malformed CSV
 * (every row used or skipped with a reason, the first offender located), per-group
 * failure isolation, determinism across thread counts, publishing, and an
 * allocation-failure loop over the whole train path.
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

#include "myriad/myriad.h"
#include "testutil.h"

static const char *KEYS1[] = {"k"};
static const char *KEYS2[] = {"app", "api"};

typedef struct run_out {
  int rc;
  myr_error err;
  myr_train_summary s;
} run_out;

static run_out train_text(const char *name, const char *csv, size_t len,
                          const char *const *keys, size_t n_keys, const char *label,
                          const char *store, unsigned threads, double holdout) {
  char path[512];
  tu_write_file(path, sizeof path, name, csv, len);
  myr_train_options o;
  memset(&o, 0, sizeof o);
  o.input = path;
  o.keys = keys;
  o.n_keys = n_keys;
  o.label = label;
  o.store = store;
  o.n_threads = threads;
  o.holdout = holdout;
  run_out r;
  memset(&r, 0, sizeof r);
  r.rc = myr_train(&o, &r.s, &r.err);
  return r;
}

#define TRAIN(csv, ...) train_text(#csv, csv, sizeof(csv) - 1, __VA_ARGS__)

static void assert_accounted(const myr_train_summary *s) {
  uint64_t sum = 0;
  for (int i = 0; i < MYR_SKIP__COUNT; i++)
    sum += s->skipped[i];
  assert_true(s->rows_used + s->rows_skipped == s->rows_total);
  assert_true(sum == s->rows_skipped);
}

/* ---------------------------------------------------------------- accounting */

static void test_every_row_is_accounted_for(void **state) {
  (void)state;
  static const char csv[] =
      "k,x,y\n"           /* line 1 */
      "a,1,3\n"           /* 2 ok */
      "a,2,5\n"           /* 3 ok */
      "a,3,7,9\n"         /* 4 field_count (4 fields) */
      "a,4\n"             /* 5 field_count (2 fields) */
      "a,abc,1\n"         /* 6 non_numeric x */
      "a,5,\n"            /* 7 missing_label */
      "a,NA,3\n"          /* 8 missing_feature */
      ",1,2\n"            /* 9 missing_key */
      "a,inf,1\n"         /* 10 non_finite */
      "\n"                /* 11 blank_line */
      "b,\"1\",\"3\"\n"   /* 12 ok (quoted) */
      "b,2,5\r\n"         /* 13 ok (CRLF) */
      "b,3,x\"y\n"        /* 14 bad_quoting */
      "b,3,7\n";          /* 15 ok */
  run_out r = TRAIN(csv, KEYS1, 1, "y", NULL, 1, 0);
  assert_int_equal(r.rc, MYR_OK);
  const myr_train_summary *s = &r.s;
  assert_int_equal(s->rows_total, 14);
  assert_int_equal(s->rows_used, 5);
  assert_int_equal(s->skipped[MYR_SKIP_FIELD_COUNT], 2);
  assert_int_equal(s->skip_example[MYR_SKIP_FIELD_COUNT].line, 4);
  assert_string_equal(s->skip_example[MYR_SKIP_FIELD_COUNT].detail,
                      "expected 3 fields, got 4");
  assert_int_equal(s->skipped[MYR_SKIP_NON_NUMERIC], 1);
  assert_int_equal(s->skip_example[MYR_SKIP_NON_NUMERIC].line, 6);
  assert_int_equal(s->skip_example[MYR_SKIP_NON_NUMERIC].row, 5);
  assert_string_equal(s->skip_example[MYR_SKIP_NON_NUMERIC].column, "x");
  assert_non_null(strstr(s->skip_example[MYR_SKIP_NON_NUMERIC].detail, "'abc'"));
  assert_int_equal(s->skipped[MYR_SKIP_MISSING_LABEL], 1);
  assert_int_equal(s->skip_example[MYR_SKIP_MISSING_LABEL].line, 7);
  assert_string_equal(s->skip_example[MYR_SKIP_MISSING_LABEL].column, "y");
  assert_int_equal(s->skipped[MYR_SKIP_MISSING_FEATURE], 1);
  assert_int_equal(s->skip_example[MYR_SKIP_MISSING_FEATURE].line, 8);
  assert_int_equal(s->skipped[MYR_SKIP_MISSING_KEY], 1);
  assert_string_equal(s->skip_example[MYR_SKIP_MISSING_KEY].column, "k");
  assert_int_equal(s->skipped[MYR_SKIP_NON_FINITE], 1);
  assert_int_equal(s->skipped[MYR_SKIP_BLANK_LINE], 1);
  assert_int_equal(s->skip_example[MYR_SKIP_BLANK_LINE].line, 11);
  assert_int_equal(s->skipped[MYR_SKIP_BAD_QUOTING], 1);
  assert_int_equal(s->skip_example[MYR_SKIP_BAD_QUOTING].line, 14);
  assert_int_equal(s->groups_trained, 2);
  assert_int_equal(s->n_features, 1); /* x picked automatically */
  assert_accounted(s);
}

static void test_malformed_inputs(void **state) {
  (void)state;
  /* empty file */
  run_out r = train_text("empty.csv", "", 0, KEYS1, 1, "y", NULL, 1, 0);
  assert_int_equal(r.rc, MYR_ENODATA);
  assert_non_null(strstr(r.err.message, "empty"));
  /* header only */
  r = TRAIN("k,x,y\n", KEYS1, 1, "y", NULL, 1, 0);
  assert_int_equal(r.rc, MYR_ENODATA);
  assert_non_null(strstr(r.err.message, "no data rows"));
  /* every row bad: an error that points at the summary */
  r = TRAIN("k,x,y\na,1,\na,1\n", KEYS1, 1, "y", NULL, 1, 0);
  assert_int_equal(r.rc, MYR_ENODATA);
  assert_non_null(strstr(r.err.message, "all 2 rows were skipped"));
  assert_int_equal(r.s.rows_total, 2);
  assert_int_equal(r.s.skipped[MYR_SKIP_FIELD_COUNT], 1);
  assert_int_equal(r.s.skipped[MYR_SKIP_MISSING_LABEL], 1);
  assert_accounted(&r.s);
  /* BOM, CRLF everywhere, semicolons, unquoted header */
  r = TRAIN("\xEF\xBB\xBFk;x;y\r\na;1;2\r\na;2;4\r\n", KEYS1, 1, "y", NULL, 1, 0);
  assert_int_equal(r.rc, MYR_OK);
  assert_int_equal(r.s.rows_used, 2);
  /* NUL byte inside a field */
  static const char nul[] = "k,x,y\na,1,2\na,1\0,2\na,3,4\n";
  r = train_text("nul.csv", nul, sizeof nul - 1, KEYS1, 1, "y", NULL, 1, 0);
  assert_int_equal(r.rc, MYR_OK);
  assert_int_equal(r.s.skipped[MYR_SKIP_NUL_BYTE], 1);
  assert_int_equal(r.s.skip_example[MYR_SKIP_NUL_BYTE].line, 3);
  assert_accounted(&r.s);
  /* non-UTF-8 key */
  r = TRAIN("k,x,y\na,1,2\n\xff\xfe,1,2\na,2,3\n", KEYS1, 1, "y", NULL, 1, 0);
  assert_int_equal(r.rc, MYR_OK);
  assert_int_equal(r.s.skipped[MYR_SKIP_INVALID_KEY], 1);
  assert_int_equal(r.s.skip_example[MYR_SKIP_INVALID_KEY].line, 3);
  /* unterminated quote swallows the rest of the file as one bad row */
  r = TRAIN("k,x,y\na,1,2\na,2,4\na,\"3,6\nb,1,1\n", KEYS1, 1, "y", NULL, 1, 0);
  assert_int_equal(r.rc, MYR_OK);
  assert_int_equal(r.s.rows_total, 3);
  assert_int_equal(r.s.skipped[MYR_SKIP_BAD_QUOTING], 1);
  /* unknown columns are named, with the columns that exist */
  r = TRAIN("k,x,y\na,1,2\n", KEYS2, 2, "y", NULL, 1, 0);
  assert_int_equal(r.rc, MYR_ENOTFOUND);
  assert_non_null(strstr(r.err.message, "no key column 'app'"));
  assert_non_null(strstr(r.err.message, "columns: k, x, y"));
  r = TRAIN("k,x,y\na,1,2\n", KEYS1, 1, "z", NULL, 1, 0);
  assert_int_equal(r.rc, MYR_ENOTFOUND);
  assert_non_null(strstr(r.err.message, "label column 'z'"));
  /* missing file */
  myr_train_options o;
  memset(&o, 0, sizeof o);
  o.input = "/nonexistent/dir/data.csv";
  o.keys = KEYS1;
  o.n_keys = 1;
  o.label = "y";
  myr_error err = {0};
  assert_int_equal(myr_train(&o, NULL, &err), MYR_EIO);
  assert_non_null(strstr(err.message, "/nonexistent/dir/data.csv"));
}

static void test_ten_megabyte_field(void **state) {
  (void)state;
  size_t big = 10u << 20;
  const char *head = "k,note,x,y\na,small,1,2\nb,\"";
  const char *tail = "\",1,2\na,small,2,4\n";
  size_t len = strlen(head) + big + strlen(tail);
  char *csv = malloc(len);
  memcpy(csv, head, strlen(head));
  memset(csv + strlen(head), 'z', big);
  memcpy(csv + strlen(head) + big, tail, strlen(tail));
  run_out r = train_text("big.csv", csv, len, KEYS1, 1, "y", NULL, 1, 0);
  free(csv);
  assert_int_equal(r.rc, MYR_OK);
  assert_int_equal(r.s.rows_total, 3);
  assert_int_equal(r.s.rows_used, 3);
  assert_int_equal(r.s.n_features, 1); /* note is text: not a feature */
}

/* ---------------------------------------------------------------- groups and store */

typedef struct coef_sink {
  char text[8][512];
  char keys[8][64];
  int64_t version[8];
  int n;
} coef_sink;

static int collect_describe(void *ud, const char *b, size_t n) {
  char *t = ud;
  strncat(t, b, n);
  return 0;
}

static int collect(void *ud, const myr_model_record *m) {
  coef_sink *c = ud;
  if (c->n >= 8)
    return 1;
  c->text[c->n][0] = '\0';
  snprintf(c->keys[c->n], sizeof c->keys[0], "%s", m->key_values[0]);
  c->version[c->n] = m->version;
  assert_int_equal(myr_blob_describe(NULL, m->blob, m->blob_len, collect_describe,
                                     c->text[c->n], NULL),
                   MYR_OK);
  c->n++;
  return 0;
}

static void test_groups_are_fitted_separately_and_published(void **state) {
  (void)state;
  /* a: y = 1 + 2x; b: y = -3 + 0.5x; c has one row and fails with --min-rows 2. */
  static const char csv[] = "k,x,y\na,0,1\nb,0,-3\na,1,3\nb,2,-2\na,2,5\nb,4,-1\nc,1,1\n";
  char store[512];
  tu_path(store, sizeof store, "groups.db");
  char path[512];
  tu_write_file(path, sizeof path, "groups.csv", csv, sizeof csv - 1);
  myr_train_options o;
  memset(&o, 0, sizeof o);
  o.input = path;
  o.keys = KEYS1;
  o.n_keys = 1;
  o.label = "y";
  o.params = "alpha=0";
  o.min_rows = 2;
  o.store = store;
  myr_train_summary s;
  myr_error err = {0};
  assert_int_equal(myr_train(&o, &s, &err), MYR_OK);
  assert_int_equal(s.groups_trained, 2);
  assert_int_equal(s.groups_failed, 1);
  assert_int_equal(s.failed[MYR_FAIL_TOO_FEW_ROWS], 1);
  assert_non_null(strstr(s.failed_example[MYR_FAIL_TOO_FEW_ROWS], "key c"));
  assert_int_equal(s.skipped[MYR_SKIP_GROUP_FAILED], 1);
  assert_accounted(&s);

  myr_store *st;
  assert_int_equal(myr_store_open(store, MYR_STORE_READONLY, &st, &err), MYR_OK);
  coef_sink c;
  memset(&c, 0, sizeof c);
  myr_model_query q;
  memset(&q, 0, sizeof q);
  assert_int_equal(myr_store_models(st, &q, collect, &c, &err), MYR_OK);
  assert_int_equal(c.n, 2);
  double icpt, coef;
  assert_string_equal(c.keys[0], "a");
  assert_int_equal(sscanf(strstr(c.text[0], "\"intercept\":"), "\"intercept\":%lf,\"coef\":[%lf]",
                          &icpt, &coef), 2);
  assert_true(fabs(icpt - 1) < 1e-12 && fabs(coef - 2) < 1e-12);
  assert_string_equal(c.keys[1], "b");
  assert_int_equal(sscanf(strstr(c.text[1], "\"intercept\":"), "\"intercept\":%lf,\"coef\":[%lf]",
                          &icpt, &coef), 2);
  assert_true(fabs(icpt + 3) < 1e-12 && fabs(coef - 0.5) < 1e-12);
  myr_store_info info;
  assert_int_equal(myr_store_get_info(st, &info, &err), MYR_OK);
  assert_int_equal(info.n_models, 2);
  myr_store_close(st);

  /* a second run republishes: versions become 2 */
  assert_int_equal(myr_train(&o, &s, &err), MYR_OK);
  assert_int_equal(myr_store_open(store, MYR_STORE_READONLY, &st, &err), MYR_OK);
  memset(&c, 0, sizeof c);
  assert_int_equal(myr_store_models(st, &q, collect, &c, &err), MYR_OK);
  assert_int_equal(c.n, 2);
  assert_int_equal(c.version[0], 2);
  myr_store_close(st);
}

static int collect_blobs(void *ud, const myr_model_record *m) {
  FILE *f = ud;
  fprintf(f, "%s|%s|%llu|%llu|", m->key_values[0], m->key_values[1],
          (unsigned long long)m->n_rows, (unsigned long long)m->n_holdout);
  fwrite(m->blob, 1, m->blob_len, f);
  fprintf(f, "|%s\n", m->metrics_json);
  return 0;
}

static char *store_dump(const char *store, size_t *len) {
  myr_store *st;
  char *text = NULL;
  FILE *f = open_memstream(&text, len);
  assert_int_equal(myr_store_open(store, MYR_STORE_READONLY, &st, NULL), MYR_OK);
  myr_model_query q;
  memset(&q, 0, sizeof q);
  assert_int_equal(myr_store_models(st, &q, collect_blobs, f, NULL), MYR_OK);
  myr_store_close(st);
  fclose(f);
  return text;
}

static void test_same_models_whatever_the_thread_count(void **state) {
  (void)state;
  char data[512];
  tu_path(data, sizeof data, "det.csv");
  myr_gen_options g;
  myr_gen_options_init(&g);
  g.out = data;
  g.n_groups = 300;
  g.rows_per_group = 20;
  g.skew = MYR_GEN_SKEW_ZIPF;
  g.n_features = 4;
  g.seed = 5;
  assert_int_equal(myr_gen_csv(&g, NULL, NULL), MYR_OK);
  char *dumps[3];
  size_t lens[3];
  unsigned threads[3] = {1, 2, 5};
  for (int i = 0; i < 3; i++) {
    char store[512], name[32];
    snprintf(name, sizeof name, "det%u.db", threads[i]);
    tu_path(store, sizeof store, name);
    myr_train_options o;
    memset(&o, 0, sizeof o);
    o.input = data;
    o.keys = KEYS2;
    o.n_keys = 2;
    o.label = "y";
    o.holdout = 0.3;
    o.seed = 11;
    o.n_threads = threads[i];
    o.store = store;
    myr_train_summary s;
    myr_error err = {0};
    assert_int_equal(myr_train(&o, &s, &err), MYR_OK);
    assert_int_equal(s.groups_total, 300);
    assert_int_equal(s.rows_total, 6000);
    dumps[i] = store_dump(store, &lens[i]);
  }
  assert_true(lens[0] > 300 * 100);
  for (int i = 1; i < 3; i++) {
    assert_int_equal(lens[i], lens[0]);
    assert_memory_equal(dumps[i], dumps[0], lens[0]);
  }
  for (int i = 0; i < 3; i++)
    free(dumps[i]);
}

static void test_cancel_publishes_nothing(void **state) {
  (void)state;
  static const char csv[] = "k,x,y\na,0,1\na,1,3\n";
  char store[512], path[512];
  tu_path(store, sizeof store, "cancel.db");
  tu_write_file(path, sizeof path, "cancel.csv", csv, sizeof csv - 1);
  volatile int cancel = 1;
  myr_train_options o;
  memset(&o, 0, sizeof o);
  o.input = path;
  o.keys = KEYS1;
  o.n_keys = 1;
  o.label = "y";
  o.store = store;
  o.cancel = &cancel;
  myr_error err = {0};
  assert_int_equal(myr_train(&o, NULL, &err), MYR_ECANCELED);
}

/* ---------------------------------------------------------------- fault injection */

static void test_allocation_failures_are_clean(void **state) {
  (void)state;
  static const char csv[] =
      "app,api,x,y\nA,1,0,1\nA,1,1,3\nB,2,0,0\nB,2,1,1\nB,2,2,2\nC,3,1,1\nA,1,2,5\n";
  char path[512], store[512];
  tu_write_file(path, sizeof path, "oom.csv", csv, sizeof csv - 1);
  tu_alloc_install();
  long baseline = tu_alloc_live();
  int sticky_modes[2] = {1, 0};
  for (int m = 0; m < 2; m++) {
    int succeeded = 0;
    for (long n = 1; n < 5000 && !succeeded; n++) {
      char name[64];
      snprintf(name, sizeof name, "oom-%d-%ld.db", m, n);
      tu_path(store, sizeof store, name);
      myr_train_options o;
      memset(&o, 0, sizeof o);
      o.input = path;
      o.keys = KEYS2;
      o.n_keys = 2;
      o.label = "y";
      o.store = store;
      o.n_threads = 2;
      o.holdout = 0.3;
      myr_train_summary s;
      myr_error err = {0};
      tu_alloc_fail_at(n, sticky_modes[m]);
      int rc = myr_train(&o, &s, &err);
      int failed = tu_alloc_failed();
      tu_alloc_fail_at(0, 0);
      assert_int_equal(tu_alloc_live(), baseline); /* nothing leaked */
      if (!failed) {
        assert_int_equal(rc, MYR_OK);
        assert_int_equal(s.groups_trained, 3);
        succeeded = 1;
      } else if (rc == MYR_OK) {
        /* the failure hit a group: it is an error record, the run went on */
        assert_int_equal(s.groups_trained + s.groups_failed, 3);
        assert_accounted(&s);
      } else {
        assert_int_equal(rc, MYR_ENOMEM);
        assert_true(err.message[0] != '\0');
      }
    }
    assert_true(succeeded);
  }
  myr_set_allocator(NULL, NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_every_row_is_accounted_for),
      cmocka_unit_test(test_malformed_inputs),
      cmocka_unit_test(test_ten_megabyte_field),
      cmocka_unit_test(test_groups_are_fitted_separately_and_published),
      cmocka_unit_test(test_same_models_whatever_the_thread_count),
      cmocka_unit_test(test_cancel_publishes_nothing),
      cmocka_unit_test(test_allocation_failures_are_clean),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
