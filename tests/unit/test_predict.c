/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Batch scoring through the library: stores are trained in-process with exactly known
 * models (least squares on y = 1 + 2x and y = -3 + 0.5x, a tiny classifier family
 * registered here), then scored. Checks: predictions equal the known values, every input
 * row appears once and in order with its reason, each key's model is loaded once, the
 * output does not depend on the thread count, runs whose features are missing, plugin
 * families, CSV quoting of keys, and an allocation-failure loop over the whole path.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "myriad/myriad.h"
#include "testutil.h"

static const char *KEYS1[] = {"k"};

/* ---------------------------------------------------------------- helpers */

static char *read_file(const char *path, size_t *len_out) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  size_t cap = 4096, len = 0;
  char *buf = malloc(cap);
  size_t n;
  while (buf && (n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
    len += n;
    if (cap - len - 1 == 0) {
      char *nb = realloc(buf, cap * 2);
      if (!nb) {
        free(buf);
        buf = NULL;
        break;
      }
      buf = nb;
      cap *= 2;
    }
  }
  fclose(f);
  if (buf)
    buf[len] = '\0';
  if (len_out)
    *len_out = len;
  return buf;
}

#define MAX_FIELDS 12

/* A parsed output CSV: rows of fields (RFC 4180 quoting), row 0 the header. */
typedef struct table {
  size_t n_rows;
  size_t *n_fields;
  char *(*field)[MAX_FIELDS];
} table;

static void table_free(table *t) {
  for (size_t r = 0; r < t->n_rows; r++)
    for (size_t f = 0; f < t->n_fields[r]; f++)
      free(t->field[r][f]);
  free(t->n_fields);
  free(t->field);
  memset(t, 0, sizeof *t);
}

static table parse_csv(const char *s) {
  table t;
  memset(&t, 0, sizeof t);
  size_t cap = 0;
  while (*s) {
    if (t.n_rows == cap) {
      cap = cap ? cap * 2 : 64;
      t.n_fields = realloc(t.n_fields, cap * sizeof *t.n_fields);
      t.field = realloc(t.field, cap * sizeof *t.field);
      assert_non_null(t.n_fields);
      assert_non_null(t.field);
    }
    size_t r = t.n_rows++, nf = 0;
    for (;;) {
      char buf[1024];
      size_t n = 0;
      if (*s == '"') {
        s++;
        for (;;) {
          assert_true(*s != '\0');
          if (*s == '"' && s[1] == '"') {
            buf[n++] = '"';
            s += 2;
          } else if (*s == '"') {
            s++;
            break;
          } else {
            buf[n++] = *s++;
          }
          assert_true(n < sizeof buf);
        }
      } else {
        while (*s && *s != ',' && *s != '\n') {
          buf[n++] = *s++;
          assert_true(n < sizeof buf);
        }
      }
      buf[n] = '\0';
      assert_true(nf < MAX_FIELDS);
      t.field[r][nf++] = strdup(buf);
      if (*s == ',') {
        s++;
        continue;
      }
      assert_int_equal(*s, '\n'); /* every line ends with a newline */
      s++;
      break;
    }
    t.n_fields[r] = nf;
  }
  return t;
}

static table read_table(const char *path) {
  char *text = read_file(path, NULL);
  assert_non_null(text);
  table t = parse_csv(text);
  free(text);
  return t;
}

/* Column index by header name, -1 when absent. */
static int col(const table *t, const char *name) {
  for (size_t f = 0; f < t->n_fields[0]; f++)
    if (strcmp(t->field[0][f], name) == 0)
      return (int)f;
  return -1;
}

static const char *cell(const table *t, size_t row, const char *name) {
  int c = col(t, name);
  assert_true(c >= 0);
  assert_true((size_t)c < t->n_fields[row]);
  return t->field[row][c];
}

static int train_file(const char *name, const char *csv, const char *const *features,
                      size_t n_features, const char *model, const char *params,
                      const myr_registry *reg, const char *store) {
  char path[512];
  tu_write_file(path, sizeof path, name, csv, strlen(csv));
  myr_train_options o;
  memset(&o, 0, sizeof o);
  o.input = path;
  o.keys = KEYS1;
  o.n_keys = 1;
  o.label = "y";
  o.features = features;
  o.n_features = n_features;
  o.model = model;
  o.params = params;
  o.registry = reg;
  o.store = store;
  o.n_threads = 2;
  myr_train_summary s;
  myr_error err = {0};
  int rc = myr_train(&o, &s, &err);
  if (rc != MYR_OK)
    fprintf(stderr, "train: %s\n", err.message);
  return rc;
}

/* Store with key a: y = 1 + 2x and key b: y = -3 + 0.5x (exact, least squares). */
static void linear_store(char *store, size_t cap, const char *name) {
  static const char *const X[] = {"x"};
  char csv[4096];
  size_t n = (size_t)snprintf(csv, sizeof csv, "k,x,other,y\n");
  for (int i = 0; i < 10; i++) {
    double x = i * 0.5 - 1;
    n += (size_t)snprintf(csv + n, sizeof csv - n, "a,%g,%d,%.17g\nb,%g,%d,%.17g\n", x, i,
                          1 + 2 * x, x, -i, -3 + 0.5 * x);
  }
  char csv_name[128];
  snprintf(csv_name, sizeof csv_name, "%s.csv", name);
  tu_path(store, cap, name);
  unlink(store);
  assert_int_equal(train_file(csv_name, csv, X, 1, "linear", "alpha=0", NULL, store),
                   MYR_OK);
}

typedef struct pred_out {
  int rc;
  myr_error err;
  myr_predict_summary s;
  char out[512];
} pred_out;

static pred_out predict_text(const char *name, const char *csv, size_t len,
                             const char *store, unsigned threads,
                             const myr_registry *reg) {
  pred_out r;
  memset(&r, 0, sizeof r);
  char path[512], oname[128];
  tu_write_file(path, sizeof path, name, csv, len);
  snprintf(oname, sizeof oname, "%s.out", name);
  tu_path(r.out, sizeof r.out, oname);
  unlink(r.out);
  myr_predict_options o;
  memset(&o, 0, sizeof o);
  o.input = path;
  o.store = store;
  o.out = r.out;
  o.n_threads = threads;
  o.registry = reg;
  r.rc = myr_predict(&o, &r.s, &r.err);
  return r;
}

#define PREDICT(csv, store, threads)                                                     \
  predict_text(#csv, csv, sizeof(csv) - 1, store, threads, NULL)

static void assert_accounted(const myr_predict_summary *s) {
  uint64_t sum = 0;
  for (int i = 0; i < MYR_MISS__COUNT; i++)
    sum += s->missed[i];
  assert_true(s->rows_predicted + s->rows_missed == s->rows_total);
  assert_true(sum == s->rows_missed);
}

static int file_exists(const char *path) {
  return access(path, F_OK) == 0;
}

/* ---------------------------------------------------------------- predictions */

static void test_known_values_and_reasons(void **state) {
  (void)state;
  char store[512];
  linear_store(store, sizeof store, "known.db");
  static const char csv[] =
      "x,k,extra\n" /* other column order than training; 'other' absent */
      "2.5,a,1\n"   /* 1: 6 */
      "2.5,b,1\n"   /* 2: -1.75 */
      "1,zz,1\n"    /* 3: no_model */
      "1,a\n"       /* 4: bad_row (2 fields) */
      "NA,a,1\n"    /* 5: missing_feature */
      "abc,b,1\n"   /* 6: non_numeric */
      "1,,1\n"      /* 7: missing_key */
      "\n"          /* 8: bad_row (blank line) */
      "inf,a,1\n"   /* 9: non_numeric (not finite) */
      "-4,a,1\n";   /* 10: -7 */
  pred_out r = PREDICT(csv, store, 2);
  assert_int_equal(r.rc, MYR_OK);
  const myr_predict_summary *s = &r.s;
  assert_int_equal(s->rows_total, 10);
  assert_int_equal(s->rows_predicted, 3);
  assert_int_equal(s->missed[MYR_MISS_NO_MODEL], 1);
  assert_int_equal(s->first_missed_row[MYR_MISS_NO_MODEL], 3);
  assert_non_null(strstr(s->first_missed_detail[MYR_MISS_NO_MODEL], "zz"));
  assert_int_equal(s->missed[MYR_MISS_BAD_ROW], 2);
  assert_int_equal(s->first_missed_row[MYR_MISS_BAD_ROW], 4);
  assert_non_null(strstr(s->first_missed_detail[MYR_MISS_BAD_ROW], "expected 3 fields"));
  assert_int_equal(s->missed[MYR_MISS_MISSING_FEATURE], 1);
  assert_int_equal(s->first_missed_row[MYR_MISS_MISSING_FEATURE], 5);
  assert_int_equal(s->missed[MYR_MISS_NON_NUMERIC], 2);
  assert_int_equal(s->first_missed_row[MYR_MISS_NON_NUMERIC], 6);
  assert_non_null(strstr(s->first_missed_detail[MYR_MISS_NON_NUMERIC], "'abc'"));
  assert_int_equal(s->missed[MYR_MISS_MISSING_KEY], 1);
  assert_int_equal(s->first_missed_row[MYR_MISS_MISSING_KEY], 7);
  assert_int_equal(s->missed[MYR_MISS_MODEL_ERROR], 0);
  assert_int_equal(s->keys_seen, 3);
  assert_int_equal(s->models_loaded, 2);
  assert_int_equal(s->has_probabilities, 0);
  assert_accounted(s);

  table t = read_table(r.out);
  assert_int_equal(t.n_rows, 1 + 10); /* header + one row per input row */
  assert_int_equal(t.n_fields[0], 4);
  assert_string_equal(t.field[0][0], "k");
  assert_string_equal(t.field[0][1], "row");
  assert_string_equal(t.field[0][2], "prediction");
  assert_string_equal(t.field[0][3], "reason");
  static const char *const reason[10] = {"",
                                         "",
                                         "no_model",
                                         "bad_row",
                                         "missing_feature",
                                         "non_numeric",
                                         "missing_key",
                                         "bad_row",
                                         "non_numeric",
                                         ""};
  static const char *const key[10] = {"a", "b", "zz", "a", "a", "b", "", "", "a", "a"};
  for (size_t i = 1; i <= 10; i++) {
    char num[32];
    snprintf(num, sizeof num, "%zu", i);
    assert_int_equal(t.n_fields[i], 4);
    assert_string_equal(cell(&t, i, "row"), num); /* in input order */
    assert_string_equal(cell(&t, i, "reason"), reason[i - 1]);
    assert_string_equal(cell(&t, i, "k"), key[i - 1]);
    if (reason[i - 1][0])
      assert_string_equal(cell(&t, i, "prediction"), "");
  }
  assert_true(fabs(strtod(cell(&t, 1, "prediction"), NULL) - 6.0) < 1e-9);
  assert_true(fabs(strtod(cell(&t, 2, "prediction"), NULL) - -1.75) < 1e-9);
  assert_true(fabs(strtod(cell(&t, 10, "prediction"), NULL) - -7.0) < 1e-9);
  table_free(&t);
}

/* n rows cycling keys a, b, unknown c; x = i / 1000. */
static char *interleaved(size_t n, size_t *len_out) {
  size_t cap = n * 24 + 32, len = 0;
  char *csv = malloc(cap);
  assert_non_null(csv);
  len += (size_t)snprintf(csv, cap, "k,x\n");
  for (size_t i = 0; i < n; i++)
    len += (size_t)snprintf(csv + len, cap - len, "%c,%.3f\n", "abc"[i % 3],
                            (double)i / 1000);
  *len_out = len;
  return csv;
}

static void test_models_loaded_once_and_threads_agree(void **state) {
  (void)state;
  char store[512];
  linear_store(store, sizeof store, "once.db");
  size_t n = 30000, len; /* several slices per batch on a pool */
  char *csv = interleaved(n, &len);
  pred_out r1 = predict_text("once1.csv", csv, len, store, 1, NULL);
  pred_out r4 = predict_text("once4.csv", csv, len, store, 4, NULL);
  free(csv);
  assert_int_equal(r1.rc, MYR_OK);
  assert_int_equal(r4.rc, MYR_OK);
  assert_int_equal(r4.s.rows_total, n);
  assert_int_equal(r4.s.models_loaded, 2); /* once per key with a model, not per row */
  assert_int_equal(r4.s.keys_seen, 3);
  assert_int_equal(r4.s.missed[MYR_MISS_NO_MODEL], n / 3);
  assert_int_equal(r4.s.first_missed_row[MYR_MISS_NO_MODEL], 3);
  assert_int_equal(r4.s.rows_predicted, n - n / 3);
  assert_int_equal(r4.s.n_threads, 4);
  char *o1 = read_file(r1.out, NULL), *o4 = read_file(r4.out, NULL);
  assert_non_null(o1);
  assert_non_null(o4);
  assert_string_equal(o1, o4); /* byte-identical whatever the thread count */
  table t = parse_csv(o4);
  free(o1);
  free(o4);
  assert_int_equal(t.n_rows, n + 1);
  for (size_t i = 0; i < n; i++) {
    size_t row = i + 1;
    assert_int_equal(strtoull(cell(&t, row, "row"), NULL, 10), row);
    double x = (double)i / 1000;
    const char *pred = cell(&t, row, "prediction");
    switch (i % 3) {
    case 0: assert_true(fabs(strtod(pred, NULL) - (1 + 2 * x)) < 1e-9); break;
    case 1: assert_true(fabs(strtod(pred, NULL) - (-3 + 0.5 * x)) < 1e-9); break;
    default:
      assert_string_equal(pred, "");
      assert_string_equal(cell(&t, row, "reason"), "no_model");
    }
  }
  table_free(&t);
}

/* A cache too small for one model: every batch forgets the models of the one before and
   decodes them again; predictions do not change. */
static void test_model_cache_evicts_between_batches(void **state) {
  (void)state;
  char store[512], path[512], out_small[512], out_default[512];
  linear_store(store, sizeof store, "cache.db");
  size_t n = 150000, len; /* batches of at most 8192 rows: at least 19 of them */
  char *csv = interleaved(n, &len);
  tu_write_file(path, sizeof path, "cache.csv", csv, len);
  free(csv);
  myr_predict_summary s[2];
  for (int k = 0; k < 2; k++) {
    char *out = k ? out_default : out_small;
    tu_path(out, 512, k ? "cache_default.out" : "cache_small.out");
    myr_predict_options o;
    memset(&o, 0, sizeof o);
    o.input = path;
    o.store = store;
    o.out = out;
    o.n_threads = 2;
    o.model_cache_bytes = k ? 0 : 1;
    myr_error err = {0};
    assert_int_equal(myr_predict(&o, &s[k], &err), MYR_OK);
  }
  assert_int_equal(s[1].models_loaded, 2);
  /* both keys again in every batch */
  assert_true(s[0].models_loaded >= 2 * 19 && s[0].models_loaded % 2 == 0);
  assert_int_equal(s[0].rows_predicted, s[1].rows_predicted);
  char *a = read_file(out_small, NULL), *b = read_file(out_default, NULL);
  assert_non_null(a);
  assert_non_null(b);
  assert_string_equal(a, b);
  free(a);
  free(b);
}

static void test_header_only_input(void **state) {
  (void)state;
  char store[512];
  linear_store(store, sizeof store, "empty.db");
  pred_out r = PREDICT("k,x\n", store, 1);
  assert_int_equal(r.rc, MYR_OK);
  assert_int_equal(r.s.rows_total, 0);
  char *text = read_file(r.out, NULL);
  assert_non_null(text);
  assert_string_equal(text, "k,row,prediction,reason\n");
  free(text);
}

/* ---------------------------------------------------------------- errors */

static void test_missing_columns_fail_up_front(void **state) {
  (void)state;
  char store[512];
  linear_store(store, sizeof store, "cols.db");
  /* no key column: named, with the input's columns listed */
  pred_out r = PREDICT("key,x\na,1\n", store, 1);
  assert_int_equal(r.rc, MYR_ENOTFOUND);
  assert_non_null(strstr(r.err.message, "no key column k of store"));
  assert_non_null(strstr(r.err.message, "key, x"));
  assert_false(file_exists(r.out));
  /* no feature column of any run: nothing can be scored */
  r = PREDICT("k,z\na,1\n", store, 1);
  assert_int_equal(r.rc, MYR_ENOTFOUND);
  assert_non_null(strstr(r.err.message, "x"));
  assert_false(file_exists(r.out));
  /* a store that does not exist */
  char missing[512];
  tu_path(missing, sizeof missing, "no-such-store.db");
  r = PREDICT("k,x\na,1\n", missing, 1);
  assert_int_not_equal(r.rc, MYR_OK);
  assert_false(file_exists(r.out));
  /* options */
  myr_predict_options o;
  memset(&o, 0, sizeof o);
  myr_error err = {0};
  assert_int_equal(myr_predict(&o, NULL, &err), MYR_EINVAL);
  o.input = "in.csv";
  o.store = store;
  assert_int_equal(myr_predict(&o, NULL, &err), MYR_EINVAL);
  assert_non_null(strstr(err.message, "output"));
}

static void test_run_with_missing_features_is_model_error(void **state) {
  (void)state;
  char store[512];
  linear_store(store, sizeof store, "runs.db");
  /* a second run trains key c on x and z */
  static const char *const XZ[] = {"x", "z"};
  static const char csv2[] = "k,x,z,y\nc,0,0,1\nc,1,0,2\nc,0,1,3\nc,1,1,4\nc,2,1,5\n";
  assert_int_equal(train_file("run2.csv", csv2, XZ, 2, "linear", "alpha=0", NULL, store),
                   MYR_OK);
  static const char in[] = "k,x\na,1\nc,1\nc,2\nb,2\n";
  pred_out r = PREDICT(in, store, 1);
  assert_int_equal(r.rc, MYR_OK);
  assert_int_equal(r.s.rows_predicted, 2);
  assert_int_equal(r.s.missed[MYR_MISS_MODEL_ERROR], 2);
  assert_int_equal(r.s.first_missed_row[MYR_MISS_MODEL_ERROR], 2);
  const char *d = r.s.first_missed_detail[MYR_MISS_MODEL_ERROR];
  assert_non_null(strstr(d, "key c"));
  assert_non_null(strstr(d, "z"));
  table t = read_table(r.out);
  assert_string_equal(cell(&t, 2, "reason"), "model_error");
  assert_string_equal(cell(&t, 3, "reason"), "model_error");
  assert_true(fabs(strtod(cell(&t, 1, "prediction"), NULL) - 3) < 1e-9);
  assert_true(fabs(strtod(cell(&t, 4, "prediction"), NULL) - -2) < 1e-9);
  table_free(&t);
  /* with z present, c's model from the second run is used: y = 1 + x + 2z */
  pred_out r2 = PREDICT("k,x,z\nc,1,1\na,0,9\n", store, 1);
  assert_int_equal(r2.rc, MYR_OK);
  assert_int_equal(r2.s.rows_predicted, 2);
  t = read_table(r2.out);
  assert_true(fabs(strtod(cell(&t, 1, "prediction"), NULL) - 4) < 1e-9);
  assert_true(fabs(strtod(cell(&t, 2, "prediction"), NULL) - 1) < 1e-9);
  table_free(&t);
}

static void test_keys_are_quoted(void **state) {
  (void)state;
  static const char *const X[] = {"x"};
  static const char csv[] = "k,x,y\n\"a,\"\"b\"\"\",0,1\n\"a,\"\"b\"\"\",1,3\n"
                            "\"a,\"\"b\"\"\",2,5\n";
  char store[512];
  tu_path(store, sizeof store, "quote.db");
  unlink(store);
  assert_int_equal(train_file("quote.csv", csv, X, 1, "linear", "alpha=0", NULL, store),
                   MYR_OK);
  static const char in[] = "x,k\n3,\"a,\"\"b\"\"\"\n";
  pred_out r = PREDICT(in, store, 1);
  assert_int_equal(r.rc, MYR_OK);
  assert_int_equal(r.s.rows_predicted, 1);
  char *text = read_file(r.out, NULL);
  assert_non_null(text);
  const char *line = strstr(text, "\n\"a,\"\"b\"\"\",1,"); /* quoted, quotes doubled */
  assert_non_null(line);
  free(text);
  table t = read_table(r.out);
  assert_string_equal(cell(&t, 1, "k"), "a,\"b\"");
  assert_true(fabs(strtod(cell(&t, 1, "prediction"), NULL) - 7) < 1e-9);
  table_free(&t);
}

/* A run published while predict reads: its models are used when their features are
   read already, else their rows are model_error; earlier keys keep their models. */
typedef struct publish_state {
  const char *store;
  int calls;
  int rc;
} publish_state;

static void publish_on_first_progress(void *ud, const myr_progress *p) {
  publish_state *st = ud;
  (void)p;
  if (st->calls++)
    return;
  static const char *const X[] = {"x"}, *const XZ[] = {"x", "z"};
  st->rc = train_file("late-c.csv", "k,x,y\nc,0,5\nc,1,6\nc,2,7\n", X, 1, "linear",
                      "alpha=0", NULL, st->store);
  if (st->rc == MYR_OK)
    st->rc = train_file("late-d.csv", "k,x,z,y\nd,0,0,1\nd,1,0,2\nd,0,1,3\nd,1,1,5\n", XZ,
                        2, "linear", "alpha=0", NULL, st->store);
}

static void test_runs_published_while_predicting_are_not_seen(void **state) {
  (void)state;
  char store[512];
  linear_store(store, sizeof store, "late.db");
  size_t n_a = 70000, cap = n_a * 16 + 256, len = 0; /* more than one batch of a */
  char *csv = malloc(cap);
  assert_non_null(csv);
  len += (size_t)snprintf(csv, cap, "k,x,z\n");
  for (size_t i = 0; i < n_a; i++)
    len += (size_t)snprintf(csv + len, cap - len, "a,%zu,0\n", i % 10);
  len += (size_t)snprintf(csv + len, cap - len, "c,3,0\nd,1,1\nc,4,0\n");
  char path[512], out[512];
  tu_write_file(path, sizeof path, "late.csv", csv, len);
  free(csv);
  tu_path(out, sizeof out, "late.out");
  publish_state st = {store, 0, MYR_OK};
  myr_predict_options o;
  memset(&o, 0, sizeof o);
  o.input = path;
  o.store = store;
  o.out = out;
  o.n_threads = 2;
  o.progress = publish_on_first_progress;
  o.progress_ud = &st;
  myr_predict_summary s;
  myr_error err = {0};
  assert_int_equal(myr_predict(&o, &s, &err), MYR_OK);
  assert_int_equal(st.rc, MYR_OK);
  assert_true(st.calls >= 2); /* the callback ran between batches, and at the end */
  /* One snapshot for the whole run: models published meanwhile are not used. */
  assert_int_equal(s.rows_total, n_a + 3);
  assert_int_equal(s.rows_predicted, n_a);
  assert_int_equal(s.missed[MYR_MISS_NO_MODEL], 3);
  assert_int_equal(s.first_missed_row[MYR_MISS_NO_MODEL], n_a + 1);
  table t = read_table(out);
  for (size_t r = n_a + 1; r <= n_a + 3; r++) {
    assert_string_equal(cell(&t, r, "reason"), "no_model");
    assert_string_equal(cell(&t, r, "prediction"), "");
  }
  table_free(&t);
}

/* ---------------------------------------------------------------- classifiers */

/* "vote": predicts each class's share of the group's labels, whatever the features. */
typedef struct vote_model {
  size_t k;
  double cls[8];
  double p[8];
} vote_model;

static void vote_params_init(void *p) {
  (void)p;
}
static int vote_params_set(void *p, const char *key, const char *value, myr_error *err) {
  (void)p;
  (void)value;
  return myr_error_set(err, MYR_EINVAL, "vote: no parameter '%s'", key);
}
static void vote_params_format(const void *p, char *out, size_t cap) {
  (void)p;
  snprintf(out, cap, "%s", "");
}
static int vote_fit(const void *params, const myr_dataset *d, uint64_t seed,
                    const myr_scratch *s, void **model_out, myr_error *err) {
  (void)params;
  (void)seed;
  vote_model *m = s->alloc(s->ud, sizeof *m, sizeof(double));
  if (!m)
    return myr_error_set(err, MYR_ENOMEM, "out of memory");
  memset(m, 0, sizeof *m);
  for (size_t i = 0; i < d->n_rows; i++) {
    size_t c = 0;
    while (c < m->k && m->cls[c] < d->y[i])
      c++;
    if (c < m->k && m->cls[c] == d->y[i]) {
      m->p[c] += 1;
      continue;
    }
    if (m->k == 8)
      return myr_error_set(err, MYR_EMODEL, "vote: more than 8 classes");
    memmove(&m->cls[c + 1], &m->cls[c], (m->k - c) * sizeof(double));
    memmove(&m->p[c + 1], &m->p[c], (m->k - c) * sizeof(double));
    m->cls[c] = d->y[i];
    m->p[c] = 1;
    m->k++;
  }
  for (size_t c = 0; c < m->k; c++)
    m->p[c] /= (double)d->n_rows;
  *model_out = m;
  return MYR_OK;
}
static size_t vote_n_outputs(const void *m) {
  return ((const vote_model *)m)->k;
}
static int vote_predict(const void *mp, const double *x, size_t n, size_t p, double *out,
                        myr_error *err) {
  const vote_model *m = mp;
  (void)x;
  (void)p;
  (void)err;
  for (size_t i = 0; i < n; i++)
    memcpy(out + i * m->k, m->p, m->k * sizeof(double));
  return MYR_OK;
}
static size_t vote_encoded_size(const void *m) {
  (void)m;
  return sizeof(vote_model);
}
static int vote_encode(const void *m, unsigned char *out, size_t len, myr_error *err) {
  (void)err;
  memcpy(out, m, len);
  return MYR_OK;
}
static int vote_decode(const unsigned char *payload, size_t len, uint32_t version,
                       size_t n_features, const myr_scratch *s, void **model_out,
                       myr_error *err) {
  (void)version;
  (void)n_features;
  if (len != sizeof(vote_model))
    return myr_error_set(err, MYR_ECORRUPT, "vote payload of %zu bytes", len);
  vote_model *m = s->alloc(s->ud, sizeof *m, sizeof(double));
  if (!m)
    return myr_error_set(err, MYR_ENOMEM, "out of memory");
  memcpy(m, payload, len);
  if (m->k == 0 || m->k > 8)
    return myr_error_set(err, MYR_ECORRUPT, "vote payload has %zu classes", m->k);
  *model_out = m;
  return MYR_OK;
}
static const double *vote_classes(const void *m) {
  return ((const vote_model *)m)->cls;
}

static const myr_model_family VOTE = {
    .abi_version = MYR_MODEL_ABI_VERSION,
    .name = "vote",
    .summary = "test classifier: class shares of the group",
    .payload_version = 1,
    .task = MYR_TASK_CLASSIFICATION,
    .params_size = 1,
    .params_init = vote_params_init,
    .params_set = vote_params_set,
    .params_format = vote_params_format,
    .fit = vote_fit,
    .n_outputs = vote_n_outputs,
    .predict = vote_predict,
    .encoded_size = vote_encoded_size,
    .encode = vote_encode,
    .decode = vote_decode,
    .class_values = vote_classes,
};

static void test_classifier_probabilities(void **state) {
  (void)state;
  myr_registry *reg = NULL;
  myr_error err = {0};
  assert_int_equal(myr_registry_create(&reg, &err), MYR_OK);
  assert_int_equal(myr_registry_add(reg, &VOTE, &err), MYR_OK);
  char store[512];
  linear_store(store, sizeof store, "vote.db"); /* keys a, b: linear */
  static const char *const X[] = {"x"};
  /* c: classes 0 and 1 tie (0.5 each) -> 0, the first; d: 2 wins with 0.5 */
  static const char csv[] =
      "k,x,y\nc,0,1\nc,1,0\nc,2,0\nc,3,1\nd,0,0\nd,1,2\nd,2,-1\nd,3,2\n";
  assert_int_equal(train_file("vote.csv", csv, X, 1, "vote", NULL, reg, store), MYR_OK);

  static const char in[] = "k,x\nc,5\nd,5\na,1\n";
  pred_out r = predict_text("vote-in.csv", in, sizeof in - 1, store, 2, reg);
  assert_int_equal(r.rc, MYR_OK);
  assert_int_equal(r.s.has_probabilities, 1);
  assert_int_equal(r.s.rows_predicted, 3);
  table t = read_table(r.out);
  assert_int_equal(t.n_fields[0], 5);
  assert_string_equal(t.field[0][3], "probabilities");
  assert_string_equal(cell(&t, 1, "prediction"), "0");
  assert_string_equal(cell(&t, 1, "probabilities"), "0:0.5;1:0.5");
  assert_string_equal(cell(&t, 2, "prediction"), "2");
  assert_string_equal(cell(&t, 2, "probabilities"), "-1:0.25;0:0.25;2:0.5");
  assert_string_equal(cell(&t, 3, "prediction"), "3");
  assert_string_equal(cell(&t, 3, "probabilities"), "");
  assert_string_equal(cell(&t, 3, "reason"), "");
  table_free(&t);

  /* without the family (no --plugin): the classifier's keys are model_error */
  pred_out r2 = predict_text("vote-in2.csv", in, sizeof in - 1, store, 1, NULL);
  assert_int_equal(r2.rc, MYR_OK);
  assert_int_equal(r2.s.rows_predicted, 1);
  assert_int_equal(r2.s.missed[MYR_MISS_MODEL_ERROR], 2);
  assert_non_null(strstr(r2.s.first_missed_detail[MYR_MISS_MODEL_ERROR], "vote"));
  assert_int_equal(r2.s.models_loaded, 1);
  myr_registry_destroy(reg);
}

/* ---------------------------------------------------------------- summary JSON */

static int to_buf(void *ud, const char *bytes, size_t len) {
  char *b = ud;
  size_t n = strlen(b);
  if (n + len >= 4096)
    return MYR_EIO;
  memcpy(b + n, bytes, len);
  b[n + len] = '\0';
  return MYR_OK;
}

static void test_summary_json(void **state) {
  (void)state;
  myr_predict_summary s;
  memset(&s, 0, sizeof s);
  s.rows_total = 3;
  s.rows_predicted = 2;
  s.rows_missed = 1;
  s.missed[MYR_MISS_NO_MODEL] = 1;
  s.first_missed_row[MYR_MISS_NO_MODEL] = 2;
  snprintf(s.first_missed_detail[MYR_MISS_NO_MODEL], 160, "key \"q\"");
  char buf[4096] = "";
  myr_error err = {0};
  assert_int_equal(myr_predict_summary_json(&s, to_buf, buf, &err), MYR_OK);
  assert_non_null(strstr(buf, "\"rows_total\":3"));
  assert_non_null(strstr(
      buf, "\"no_model\":{\"rows\":1,\"first_row\":2,\"detail\":\"key \\\"q\\\"\"}"));
  assert_string_equal(myr_predict_miss_name(MYR_MISS_MODEL_ERROR), "model_error");
  assert_string_equal(myr_predict_miss_name(99), "unknown");
}

/* ---------------------------------------------------------------- fault injection */

static void test_allocation_failures_are_clean(void **state) {
  (void)state;
  char store[512];
  linear_store(store, sizeof store, "oom.db");
  static const char csv[] = "k,x\na,1\nb,2\nzz,1\na\n,3\nb,NA\na,2\n";
  pred_out ref = PREDICT(csv, store, 2);
  assert_int_equal(ref.rc, MYR_OK);
  char *want = read_file(ref.out, NULL);
  assert_non_null(want);
  tu_alloc_install();
  long baseline = tu_alloc_live();
  int sticky_modes[2] = {1, 0};
  for (int m = 0; m < 2; m++) {
    int succeeded = 0;
    for (long n = 1; n < 5000 && !succeeded; n++) {
      tu_alloc_fail_at(n, sticky_modes[m]);
      pred_out r = PREDICT(csv, store, 2);
      int failed = tu_alloc_failed();
      tu_alloc_fail_at(0, 0);
      assert_int_equal(tu_alloc_live(), baseline); /* nothing leaked */
      if (r.rc == MYR_OK) {
        char *got = read_file(r.out, NULL);
        assert_non_null(got);
        assert_string_equal(got, want); /* a failure never changes the output */
        free(got);
        assert_int_equal(r.s.models_loaded, 2);
        succeeded = !failed;
      } else {
        assert_true(failed);
        assert_int_equal(r.rc, MYR_ENOMEM);
        assert_true(r.err.message[0] != '\0');
        assert_false(file_exists(r.out)); /* no partial output */
      }
    }
    assert_true(succeeded);
  }
  myr_set_allocator(NULL, NULL);
  free(want);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_known_values_and_reasons),
      cmocka_unit_test(test_models_loaded_once_and_threads_agree),
      cmocka_unit_test(test_model_cache_evicts_between_batches),
      cmocka_unit_test(test_header_only_input),
      cmocka_unit_test(test_missing_columns_fail_up_front),
      cmocka_unit_test(test_run_with_missing_features_is_model_error),
      cmocka_unit_test(test_keys_are_quoted),
      cmocka_unit_test(test_runs_published_while_predicting_are_not_seen),
      cmocka_unit_test(test_classifier_probabilities),
      cmocka_unit_test(test_summary_json),
      cmocka_unit_test(test_allocation_failures_are_clean),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
