/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of the synthetic data generator (myr_gen_csv): byte-identical output for the same
 * options, exact row and group counts (also with Zipf skew), holdout split, shuffle as a
 * pure reordering, header and number formats, the promised linear-fit quality, option
 * validation and clean failure on every allocation. Shapes and classification: features
 * that do not depend on either, each shape's documented property (smooth: Lipschitz
 * bound; piecewise: few distinct values; interactions: exact in its product basis, poor
 * linear fit), class labels in range, about balanced, monotone in the latent value, and
 * the documented flip rate.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "myriad/gen.h"
#include "testutil.h"

/* ---- helpers ---------------------------------------------------------------------- */

typedef struct lines {
  char *data;   /* whole file, '\n' replaced by NUL */
  char **line;  /* line[0] is the header */
  size_t n;     /* lines, header included */
} lines;

static char *slurp(const char *path, size_t *len_out) {
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)len + 1);
  assert_non_null(buf);
  assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
  buf[len] = '\0';
  fclose(f);
  *len_out = (size_t)len;
  return buf;
}

static lines read_lines(const char *path) {
  lines l = {0};
  size_t len;
  l.data = slurp(path, &len);
  assert_true(len > 0);
  assert_int_equal(l.data[len - 1], '\n');
  for (size_t i = 0; i < len; i++)
    l.n += l.data[i] == '\n';
  l.line = malloc(l.n * sizeof *l.line);
  assert_non_null(l.line);
  char *p = l.data;
  for (size_t i = 0; i < l.n; i++) {
    char *nl = strchr(p, '\n');
    *nl = '\0';
    l.line[i] = p;
    p = nl + 1;
  }
  return l;
}

static void free_lines(lines *l) {
  free(l->line);
  free(l->data);
}

static int same_file(const char *a, const char *b) {
  size_t na, nb;
  char *da = slurp(a, &na), *db = slurp(b, &nb);
  int same = na == nb && memcmp(da, db, na) == 0;
  free(da);
  free(db);
  return same;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Length of the key prefix of a data line: everything before the n_keys-th comma. */
static size_t key_len(const char *line, size_t n_keys) {
  const char *p = line;
  for (size_t k = 0; k < n_keys; k++) {
    p = strchr(p, ',');
    assert_non_null(p);
    p++;
  }
  return (size_t)(p - line - 1);
}

/* Rows per distinct key among data lines 1..n-1, sorted ascending; returns the count. */
static size_t group_sizes(const lines *l, size_t n_keys, uint64_t **sizes_out) {
  size_t n = l->n - 1;
  char **keys = malloc(n * sizeof *keys);
  uint64_t *sizes = calloc(n, sizeof *sizes);
  assert_true(keys && sizes);
  for (size_t i = 0; i < n; i++) {
    size_t kl = key_len(l->line[i + 1], n_keys);
    keys[i] = malloc(kl + 1);
    memcpy(keys[i], l->line[i + 1], kl);
    keys[i][kl] = '\0';
  }
  qsort(keys, n, sizeof *keys, cmp_str);
  size_t groups = 0;
  for (size_t i = 0; i < n; i++) {
    if (i == 0 || strcmp(keys[i], keys[i - 1]) != 0)
      groups++;
    sizes[groups - 1]++;
  }
  for (size_t i = 0; i < n; i++)
    free(keys[i]);
  free(keys);
  qsort(sizes, groups, sizeof *sizes, cmp_u64);
  *sizes_out = sizes;
  return groups;
}

static myr_gen_options small_options(const char *out) {
  myr_gen_options o;
  myr_gen_options_init(&o);
  o.out = out;
  o.n_groups = 50;
  o.rows_per_group = 20;
  o.n_features = 5;
  return o;
}

static int gen(const myr_gen_options *o, myr_gen_summary *sum) {
  myr_error err = {0};
  int rc = myr_gen_csv(o, sum, &err);
  if (rc != MYR_OK)
    print_error("myr_gen_csv: %s\n", err.message);
  return rc;
}

/* ---- tests ------------------------------------------------------------------------ */

static void test_determinism(void **state) {
  (void)state;
  char a[512], b[512], c[512], ta[512], tb[512];
  tu_path(a, sizeof a, "det_a.csv");
  tu_path(b, sizeof b, "det_b.csv");
  tu_path(c, sizeof c, "det_c.csv");
  myr_gen_options o = small_options(a);
  o.holdout = 0.25;
  o.seed = 7;
  o.skew = MYR_GEN_SKEW_ZIPF;
  o.n_threads = 1;
  assert_int_equal(gen(&o, NULL), MYR_OK);
  o.out = b;
  o.n_threads = 3; /* thread count must not matter */
  assert_int_equal(gen(&o, NULL), MYR_OK);
  assert_true(same_file(a, b));
  myr_gen_test_path(a, ta, sizeof ta);
  myr_gen_test_path(b, tb, sizeof tb);
  assert_true(same_file(ta, tb));
  o.out = c;
  o.seed = 8;
  assert_int_equal(gen(&o, NULL), MYR_OK);
  assert_false(same_file(a, c));
}

static void test_counts_uniform(void **state) {
  (void)state;
  char path[512];
  tu_path(path, sizeof path, "uniform.csv");
  myr_gen_options o = small_options(path);
  o.n_groups = 37;
  o.rows_per_group = 11;
  o.n_key_columns = 3;
  myr_gen_summary sum;
  assert_int_equal(gen(&o, &sum), MYR_OK);
  assert_int_equal(sum.rows_total, 37 * 11);
  assert_int_equal(sum.rows_train, 37 * 11);
  assert_int_equal(sum.rows_test, 0);
  assert_int_equal(sum.n_groups, 37);
  assert_int_equal(sum.min_group_rows, 11);
  assert_int_equal(sum.max_group_rows, 11);

  lines l = read_lines(path);
  assert_int_equal(l.n, 1 + 37 * 11);
  uint64_t *sizes;
  assert_int_equal(group_sizes(&l, 3, &sizes), 37);
  assert_int_equal(sizes[0], 11);
  assert_int_equal(sizes[36], 11);
  /* Unshuffled: a group's rows are contiguous and groups come in key order. */
  for (size_t i = 2; i < l.n; i++) {
    size_t ka = key_len(l.line[i - 1], 3), kb = key_len(l.line[i], 3);
    size_t n = ka < kb ? ka : kb;
    int c = strncmp(l.line[i - 1], l.line[i], n);
    assert_true(c < 0 || (c == 0 && ka <= kb));
  }
  free(sizes);
  free_lines(&l);
}

static void test_counts_zipf(void **state) {
  (void)state;
  char path[512];
  tu_path(path, sizeof path, "zipf.csv");
  myr_gen_options o = small_options(path);
  o.n_groups = 500;
  o.rows_per_group = 40;
  o.skew = MYR_GEN_SKEW_ZIPF;
  myr_gen_summary sum;
  assert_int_equal(gen(&o, &sum), MYR_OK);
  assert_int_equal(sum.rows_total, 500 * 40);

  lines l = read_lines(path);
  assert_int_equal(l.n, 1 + 500 * 40); /* the total is exact */
  uint64_t *sizes;
  assert_int_equal(group_sizes(&l, 2, &sizes), 500); /* every group has a row */
  assert_true(sizes[0] >= 1);
  assert_int_equal(sizes[0], sum.min_group_rows);
  assert_int_equal(sizes[499], sum.max_group_rows);
  uint64_t median = sizes[250];
  assert_true(sizes[499] >= 10 * median);
  /* Sizes are dealt to groups at random, not descending in key order. */
  uint64_t first_run = 0, larger_later = 0, run = 0;
  for (size_t i = 1; i < l.n; i++) {
    run++;
    if (i + 1 == l.n || strncmp(l.line[i], l.line[i + 1], key_len(l.line[i], 2) + 1)) {
      if (!first_run)
        first_run = run;
      else if (run > first_run)
        larger_later = 1;
      run = 0;
    }
  }
  assert_true(larger_later);
  free(sizes);
  free_lines(&l);

  /* A steeper exponent concentrates more rows in the largest group. */
  o.zipf_s = 2.0;
  myr_gen_summary steep;
  assert_int_equal(gen(&o, &steep), MYR_OK);
  assert_int_equal(steep.rows_total, 500 * 40);
  assert_true(steep.max_group_rows > sum.max_group_rows);
  assert_true(steep.min_group_rows >= 1);
}

static void test_holdout(void **state) {
  (void)state;
  char path[512], test[512], full[512];
  tu_path(path, sizeof path, "hold.csv");
  tu_path(full, sizeof full, "hold_full.csv");
  tu_path(test, sizeof test, "hold.test.csv");
  myr_gen_options o = small_options(path);
  o.n_groups = 200;
  o.rows_per_group = 100;
  o.holdout = 0.2;
  myr_gen_summary sum;
  assert_int_equal(gen(&o, &sum), MYR_OK);
  assert_int_equal(sum.rows_train + sum.rows_test, 20000);
  assert_true(sum.rows_test > 3600 && sum.rows_test < 4400);

  lines tr = read_lines(path), te = read_lines(test); /* default test path */
  assert_int_equal(tr.n - 1, sum.rows_train);
  assert_int_equal(te.n - 1, sum.rows_test);
  assert_string_equal(tr.line[0], te.line[0]);

  /* The split only routes rows: train + test is the file generated without holdout. */
  o.out = full;
  o.holdout = 0;
  assert_int_equal(gen(&o, NULL), MYR_OK);
  lines fu = read_lines(full);
  assert_int_equal(fu.n - 1, 20000);
  char **both = malloc(20000 * sizeof *both);
  size_t n = 0;
  for (size_t i = 1; i < tr.n; i++)
    both[n++] = tr.line[i];
  for (size_t i = 1; i < te.n; i++)
    both[n++] = te.line[i];
  qsort(both, n, sizeof *both, cmp_str);
  qsort(fu.line + 1, fu.n - 1, sizeof *fu.line, cmp_str);
  for (size_t i = 0; i < n; i++)
    assert_string_equal(both[i], fu.line[i + 1]);
  free(both);
  free_lines(&tr);
  free_lines(&te);
  free_lines(&fu);

  /* An explicit test path. */
  char other[512];
  tu_path(other, sizeof other, "hold_other.csv");
  o.out = path;
  o.holdout = 0.5;
  o.test_out = other;
  assert_int_equal(gen(&o, &sum), MYR_OK);
  lines ot = read_lines(other);
  assert_int_equal(ot.n - 1, sum.rows_test);
  assert_true(sum.rows_test > 9000 && sum.rows_test < 11000);
  free_lines(&ot);
}

static void test_shuffle(void **state) {
  (void)state;
  char plain[512], shuf[512];
  tu_path(plain, sizeof plain, "plain.csv");
  tu_path(shuf, sizeof shuf, "shuf.csv");
  myr_gen_options o = small_options(plain);
  o.n_groups = 300;
  o.rows_per_group = 30;
  o.skew = MYR_GEN_SKEW_ZIPF;
  assert_int_equal(gen(&o, NULL), MYR_OK);
  o.out = shuf;
  o.shuffle = 1;
  assert_int_equal(gen(&o, NULL), MYR_OK);
  lines a = read_lines(plain), b = read_lines(shuf);
  assert_int_equal(a.n, b.n);
  assert_string_equal(a.line[0], b.line[0]);
  /* Interleaved: the first 100 rows come from many groups. */
  size_t changes = 0;
  for (size_t i = 2; i <= 100; i++)
    changes += strncmp(b.line[i - 1], b.line[i], key_len(b.line[i], 2) + 1) != 0;
  assert_true(changes > 50);
  /* The same rows, reordered. */
  size_t moved = 0;
  for (size_t i = 1; i < a.n; i++)
    moved += strcmp(a.line[i], b.line[i]) != 0;
  assert_true(moved > a.n / 2);
  qsort(a.line + 1, a.n - 1, sizeof *a.line, cmp_str);
  qsort(b.line + 1, b.n - 1, sizeof *b.line, cmp_str);
  for (size_t i = 1; i < a.n; i++)
    assert_string_equal(a.line[i], b.line[i]);
  free_lines(&a);
  free_lines(&b);
}

static int is_fixed5(const char *s, size_t len, double *v) {
  char buf[64];
  if (len == 0 || len >= sizeof buf)
    return 0;
  memcpy(buf, s, len);
  buf[len] = '\0';
  const char *dot = strchr(buf, '.');
  if (!dot || strlen(dot + 1) != 5)
    return 0;
  for (const char *p = buf + (buf[0] == '-'); *p; p++)
    if (!(*p == '.' || (*p >= '0' && *p <= '9')))
      return 0;
  if (strcmp(buf, "-0.00000") == 0)
    return 0;
  char *end;
  *v = strtod(buf, &end);
  return *end == '\0';
}

static void test_header_and_format(void **state) {
  (void)state;
  char path[512];
  tu_path(path, sizeof path, "format.csv");
  myr_gen_options o = small_options(path);
  o.n_key_columns = 3;
  o.n_features = 4;
  o.label = "target";
  o.n_groups = 1000;
  o.rows_per_group = 3;
  assert_int_equal(gen(&o, NULL), MYR_OK);
  lines l = read_lines(path);
  assert_string_equal(l.line[0], "app,api,host,f0,f1,f2,f3,target");
  uint64_t *sizes;
  assert_int_equal(group_sizes(&l, 3, &sizes), 1000); /* distinct key tuples */
  free(sizes);
  double lo = 0, hi = 0;
  for (size_t i = 1; i < l.n; i++) {
    const char *p = l.line[i];
    assert_true(strncmp(p, "app-", 4) == 0);
    p = strchr(p, ',') + 1;
    assert_true(strncmp(p, "/api/v1/ep-", 11) == 0);
    p = strchr(p, ',') + 1;
    assert_true(strncmp(p, "host-", 5) == 0);
    p = strchr(p, ',') + 1;
    for (int j = 0; j < 5; j++) {
      const char *end = j < 4 ? strchr(p, ',') : p + strlen(p);
      assert_non_null(end);
      double v = 0;
      assert_true(is_fixed5(p, (size_t)(end - p), &v));
      if (j < 4) {
        assert_true(v >= -2.0 && v <= 2.0);
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
      }
      p = end + (j < 4);
    }
  }
  assert_true(lo < -1.9 && hi > 1.9); /* uniform over [-2, 2] */
  free_lines(&l);

  /* The names myr_gen_key_name reports are the header's. */
  assert_string_equal(myr_gen_key_name(0), "app");
  assert_string_equal(myr_gen_key_name(7), "metric");
  assert_null(myr_gen_key_name(8));

  o.n_key_columns = 8;
  o.n_features = 1;
  o.label = NULL;
  o.n_groups = 300; /* radix 3: 3^8 >= 300 */
  assert_int_equal(gen(&o, NULL), MYR_OK);
  l = read_lines(path);
  assert_string_equal(l.line[0], "app,api,host,region,zone,tenant,device,metric,f0,y");
  assert_int_equal(group_sizes(&l, 8, &sizes), 300);
  free(sizes);
  free_lines(&l);
}

/* Least squares of y on [1, f0..f{n-1}] through the normal equations; returns R^2. */
static double linear_r2(double *const *x, const double *y, size_t rows, size_t n) {
  if (n > 15)
    return -1; /* more than this test needs */
  size_t m = n + 1;
  double a[16][17] = {{0}};
  for (size_t r = 0; r < rows; r++) {
    double row[16];
    row[0] = 1;
    for (size_t j = 0; j < n; j++)
      row[j + 1] = x[r][j];
    for (size_t i = 0; i < m; i++) {
      for (size_t j = 0; j < m; j++)
        a[i][j] += row[i] * row[j];
      a[i][m] += row[i] * y[r];
    }
  }
  for (size_t c = 0; c < m; c++) { /* Gauss-Jordan; the system is well conditioned */
    for (size_t r = 0; r < m; r++) {
      if (r == c)
        continue;
      double f = a[r][c] / a[c][c];
      for (size_t k = c; k <= m; k++)
        a[r][k] -= f * a[c][k];
    }
  }
  double mean = 0, ss_tot = 0, ss_res = 0;
  for (size_t r = 0; r < rows; r++)
    mean += y[r];
  mean /= (double)rows;
  for (size_t r = 0; r < rows; r++) {
    double pred = a[0][m] / a[0][0];
    for (size_t j = 0; j < n; j++)
      pred += a[j + 1][m] / a[j + 1][j + 1] * x[r][j];
    ss_res += (y[r] - pred) * (y[r] - pred);
    ss_tot += (y[r] - mean) * (y[r] - mean);
  }
  return 1 - ss_res / ss_tot;
}

static void test_linear_fit_quality(void **state) {
  (void)state;
  char path[512];
  tu_path(path, sizeof path, "fit.csv");
  myr_gen_options o = small_options(path);
  o.n_groups = 40;
  o.rows_per_group = 500;
  o.n_features = 8;
  o.noise = 0.1;
  o.seed = 3;
  assert_int_equal(gen(&o, NULL), MYR_OK);
  lines l = read_lines(path);
  size_t rows = o.rows_per_group, n = o.n_features;
  double *store = malloc(rows * n * sizeof *store), *y = malloc(rows * sizeof *y);
  double **x = malloc(rows * sizeof *x);
  double sum = 0, min = 1, max = 0;
  for (size_t g = 0; g < o.n_groups; g++) {
    for (size_t r = 0; r < rows; r++) {
      const char *p = l.line[1 + g * rows + r];
      p = strchr(strchr(p, ',') + 1, ',') + 1;
      x[r] = store + r * n;
      for (size_t j = 0; j < n; j++) {
        char *end;
        x[r][j] = strtod(p, &end);
        p = end + 1;
      }
      y[r] = strtod(p, NULL);
    }
    double r2 = linear_r2(x, y, rows, n);
    sum += r2;
    min = r2 < min ? r2 : min;
    max = r2 > max ? r2 : max;
  }
  double mean = sum / (double)o.n_groups;
  print_message("linear R^2 per group: mean %.3f, min %.3f, max %.3f\n", mean, min, max);
  assert_true(mean > 0.8 && mean < 0.95); /* fits well, but not perfectly */
  assert_true(min > 0.7);
  assert_true(max < 0.99);
  free(store);
  free(y);
  free(x);
  free_lines(&l);
}

static void expect_invalid(const myr_gen_options *o, int code, const char *needle) {
  myr_error err = {0};
  myr_gen_summary sum;
  sum.rows_total = 99;
  int rc = myr_gen_csv(o, &sum, &err);
  if (rc != code || !strstr(err.message, needle))
    print_error("got %s '%s', wanted %s with '%s'\n", myr_status_name(rc), err.message,
                myr_status_name(code), needle);
  assert_int_equal(rc, code);
  assert_non_null(strstr(err.message, needle));
  assert_int_equal(sum.rows_total, 0);
}

static void test_invalid_options(void **state) {
  (void)state;
  char path[512];
  tu_path(path, sizeof path, "invalid.csv");
  unlink(path);
  myr_gen_options base = small_options(path), o;

  o = base;
  o.out = NULL;
  expect_invalid(&o, MYR_EINVAL, "--out");
  o = base;
  o.n_groups = 0;
  expect_invalid(&o, MYR_EINVAL, "--groups");
  o = base;
  o.n_features = MYR_GEN_MAX_FEATURES + 1;
  expect_invalid(&o, MYR_EINVAL, "--features");
  o = base;
  o.n_key_columns = 9;
  expect_invalid(&o, MYR_EINVAL, "--key-columns");
  o = base;
  o.holdout = 1.0;
  expect_invalid(&o, MYR_EINVAL, "--holdout");
  o = base;
  o.holdout = -0.1;
  expect_invalid(&o, MYR_EINVAL, "--holdout");
  o = base;
  o.noise = -1;
  expect_invalid(&o, MYR_EINVAL, "--noise");
  o = base;
  o.skew = MYR_GEN_SKEW_ZIPF;
  o.zipf_s = -1;
  expect_invalid(&o, MYR_EINVAL, "--zipf-s");
  o = base;
  o.skew = 7;
  expect_invalid(&o, MYR_EINVAL, "--skew");
  o = base;
  o.n_groups = UINT64_C(1) << 40;
  o.rows_per_group = UINT64_C(1) << 20;
  expect_invalid(&o, MYR_EINVAL, "--groups");
  o = base;
  o.label = "a,b";
  expect_invalid(&o, MYR_EINVAL, "--label");
  o = base;
  o.label = "f3";
  expect_invalid(&o, MYR_EINVAL, "feature column");
  o = base;
  o.label = "api";
  expect_invalid(&o, MYR_EINVAL, "key column");
  o = base;
  o.label = "";
  expect_invalid(&o, MYR_EINVAL, "--label");
  o = base;
  o.holdout = 0.2;
  o.test_out = path;
  expect_invalid(&o, MYR_EINVAL, "--test-out");
  o = base;
  o.out = "-";
  o.holdout = 0.2;
  expect_invalid(&o, MYR_EINVAL, "--test-out");
  assert_int_not_equal(access(path, F_OK), 0); /* nothing was written */

  o = base;
  o.out = "/nonexistent-myriad-dir/out.csv";
  expect_invalid(&o, MYR_EIO, "/nonexistent-myriad-dir/out.csv");
  /* An unwritable test file fails the call and removes the half-made output. */
  o = base;
  o.holdout = 0.3;
  o.test_out = "/nonexistent-myriad-dir/test.csv";
  expect_invalid(&o, MYR_EIO, "/nonexistent-myriad-dir/test.csv");
  assert_int_not_equal(access(path, F_OK), 0);

  /* Fields left zero take their defaults; labels that only look like columns are fine. */
  myr_gen_options z;
  memset(&z, 0, sizeof z);
  z.out = path;
  z.n_groups = 3;
  z.label = "f8";
  myr_gen_summary sum;
  assert_int_equal(gen(&z, &sum), MYR_OK);
  assert_int_equal(sum.rows_total, 300);
  assert_int_equal(sum.n_features, 8);
  assert_int_equal(sum.n_key_columns, 2);
}

static void test_test_path(void **state) {
  (void)state;
  char buf[256];
  assert_int_equal(myr_gen_test_path("data.csv", buf, sizeof buf), 13);
  assert_string_equal(buf, "data.test.csv");
  myr_gen_test_path("dir.v2/data", buf, sizeof buf);
  assert_string_equal(buf, "dir.v2/data.test");
  myr_gen_test_path("a/b.c.csv", buf, sizeof buf);
  assert_string_equal(buf, "a/b.c.test.csv");
  myr_gen_test_path(".hidden", buf, sizeof buf);
  assert_string_equal(buf, ".hidden.test");
  assert_int_equal(myr_gen_test_path("data.csv", NULL, 0), 13);
  char small[6];
  assert_int_equal(myr_gen_test_path("data.csv", small, sizeof small), 13);
  assert_string_equal(small, "data.");
}

static void test_allocation_failures(void **state) {
  (void)state;
  char path[512], test[512];
  tu_path(path, sizeof path, "oom.csv");
  tu_path(test, sizeof test, "oom.test.csv");
  myr_gen_options o = small_options(path);
  o.skew = MYR_GEN_SKEW_ZIPF;
  o.shuffle = 1;
  o.holdout = 0.3;
  o.n_threads = 2;
  tu_alloc_install();
  long live = tu_alloc_live();
  int succeeded = 0, failures = 0;
  for (long n = 1; n < 500 && !succeeded; n++) {
    unlink(path);
    unlink(test);
    tu_alloc_fail_at(n, 0);
    myr_error err = {0};
    int rc = myr_gen_csv(&o, NULL, &err);
    if (tu_alloc_failed()) {
      assert_int_equal(rc, MYR_ENOMEM);
      assert_true(err.message[0] != '\0');
      failures++;
      assert_int_not_equal(access(path, F_OK), 0); /* no half-written output left */
      assert_int_not_equal(access(test, F_OK), 0);
    } else {
      assert_int_equal(rc, MYR_OK);
      succeeded = 1;
    }
    assert_int_equal(tu_alloc_live(), live);
  }
  tu_alloc_fail_at(0, 0);
  assert_true(succeeded);
  assert_true(failures >= 8); /* plan, pool, slots, header, coefficients, row buffers */
}

/* ---- shapes and classification --------------------------------------------------- */

/* Features (rows x n, row-major) and labels of data lines 1..n-1 of l, in file order. */
static void parse_rows(const lines *l, size_t n_keys, size_t n, double *x, double *y) {
  for (size_t i = 1; i < l->n; i++) {
    const char *p = l->line[i];
    for (size_t k = 0; k < n_keys; k++)
      p = strchr(p, ',') + 1;
    for (size_t j = 0; j < n; j++) {
      char *end;
      x[(i - 1) * n + j] = strtod(p, &end);
      assert_int_equal(*end, ',');
      p = end + 1;
    }
    char *end;
    y[i - 1] = strtod(p, &end);
    assert_int_equal(*end, '\0');
  }
}

/* Everything of a data line but its label. */
static size_t features_len(const char *line) {
  return (size_t)(strrchr(line, ',') - line);
}

static myr_gen_options shape_options(const char *out, int shape, int task) {
  myr_gen_options o = small_options(out);
  o.n_groups = 40;
  o.rows_per_group = 200;
  o.n_features = 6;
  o.shape = shape;
  o.task = task;
  o.seed = 11;
  return o;
}

static void test_shapes_deterministic(void **state) {
  (void)state;
  char a[512], b[512], lin[512];
  tu_path(a, sizeof a, "shape_a.csv");
  tu_path(b, sizeof b, "shape_b.csv");
  tu_path(lin, sizeof lin, "shape_lin.csv");
  myr_gen_options o = shape_options(lin, MYR_GEN_SHAPE_LINEAR, MYR_GEN_TASK_REGRESSION);
  o.n_groups = 30;
  o.rows_per_group = 40;
  assert_int_equal(gen(&o, NULL), MYR_OK);
  lines base = read_lines(lin);
  for (int shape = MYR_GEN_SHAPE_LINEAR; shape <= MYR_GEN_SHAPE_INTERACTIONS; shape++) {
    for (int task = 0; task < 2; task++) {
      o.shape = shape;
      o.task = task;
      o.n_classes = 3;
      o.out = a;
      o.n_threads = 1;
      assert_int_equal(gen(&o, NULL), MYR_OK);
      o.out = b;
      o.n_threads = 4; /* thread count must not matter, with or without shuffle */
      assert_int_equal(gen(&o, NULL), MYR_OK);
      assert_true(same_file(a, b));
      o.shuffle = 1;
      assert_int_equal(gen(&o, NULL), MYR_OK);
      o.shuffle = 0;
      lines l = read_lines(a), sh = read_lines(b);
      assert_int_equal(l.n, base.n);
      /* The shape and the task change labels only: features are the linear file's. */
      size_t differ = 0;
      for (size_t i = 1; i < l.n; i++) {
        size_t n = features_len(l.line[i]);
        assert_int_equal(n, features_len(base.line[i]));
        assert_memory_equal(l.line[i], base.line[i], n);
        differ += strcmp(l.line[i] + n, base.line[i] + n) != 0;
      }
      if (shape == MYR_GEN_SHAPE_LINEAR && task == MYR_GEN_TASK_REGRESSION)
        assert_int_equal(differ, 0);
      else
        assert_true(differ > (l.n - 1) / 2);
      /* Shuffled: the same rows. */
      qsort(l.line + 1, l.n - 1, sizeof *l.line, cmp_str);
      qsort(sh.line + 1, sh.n - 1, sizeof *sh.line, cmp_str);
      for (size_t i = 1; i < l.n; i++)
        assert_string_equal(l.line[i], sh.line[i]);
      free_lines(&l);
      free_lines(&sh);
    }
  }
  free_lines(&base);
}

static void test_shape_smooth(void **state) {
  (void)state;
  char path[512];
  tu_path(path, sizeof path, "smooth.csv");
  myr_gen_options o = shape_options(path, MYR_GEN_SHAPE_SMOOTH, MYR_GEN_TASK_REGRESSION);
  o.noise = 0;
  assert_int_equal(gen(&o, NULL), MYR_OK);
  lines l = read_lines(path);
  size_t rows = o.rows_per_group, n = o.n_features;
  double *x = malloc((l.n - 1) * n * sizeof *x), *y = malloc((l.n - 1) * sizeof *y);
  double **xr = malloc(rows * sizeof *xr);
  assert_true(x && y && xr);
  parse_rows(&l, 2, n, x, y);
  double worst = 0, r2_sum = 0;
  for (size_t g = 0; g < o.n_groups; g++) {
    const double *gx = x + g * rows * n, *gy = y + g * rows;
    /* |s(x) - s(x')| <= 10 * |x - x'|_1, up to the labels' rounding to 1e-5. */
    for (size_t a = 0; a < rows; a++) {
      for (size_t b = a + 1; b < rows; b++) {
        double d1 = 0;
        for (size_t j = 0; j < n; j++)
          d1 += fabs(gx[a * n + j] - gx[b * n + j]);
        double ratio = (fabs(gy[a] - gy[b]) - 1.1e-5) / d1;
        worst = ratio > worst ? ratio : worst;
      }
    }
    for (size_t r = 0; r < rows; r++)
      xr[r] = x + (g * rows + r) * n;
    r2_sum += linear_r2(xr, gy, rows, n);
  }
  print_message("smooth: largest |dy| / |dx|_1 %.3f, linear R^2 %.3f\n", worst,
                r2_sum / (double)o.n_groups);
  assert_true(worst <= 10.0);
  assert_true(worst > 1.0);                       /* and not flat */
  assert_true(r2_sum / (double)o.n_groups < 0.6); /* nonlinear */
  free(x);
  free(y);
  free(xr);
  free_lines(&l);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Distinct values among v[0..n) (sorts v). */
static size_t distinct(double *v, size_t n) {
  qsort(v, n, sizeof *v, cmp_double);
  size_t d = n > 0;
  for (size_t i = 1; i < n; i++)
    d += v[i] != v[i - 1];
  return d;
}

static void test_shape_piecewise(void **state) {
  (void)state;
  char path[512];
  tu_path(path, sizeof path, "piecewise.csv");
  myr_gen_options o =
      shape_options(path, MYR_GEN_SHAPE_PIECEWISE, MYR_GEN_TASK_REGRESSION);
  o.noise = 0;
  for (int pass = 0; pass < 2; pass++) {
    assert_int_equal(gen(&o, NULL), MYR_OK);
    lines l = read_lines(path);
    size_t rows = o.rows_per_group, n = o.n_features;
    double *x = malloc((l.n - 1) * n * sizeof *x), *y = malloc((l.n - 1) * sizeof *y);
    assert_true(x && y);
    parse_rows(&l, 2, n, x, y);
    size_t most = 0, fewest = rows;
    for (size_t g = 0; g < o.n_groups; g++) {
      size_t d = distinct(y + g * rows, rows);
      most = d > most ? d : most;
      fewest = d < fewest ? d : fewest;
    }
    if (pass == 0) { /* a step function: at most 4 x 4 leaf sums */
      print_message("piecewise: %zu to %zu distinct labels per group of %zu\n", fewest,
                    most, rows);
      assert_true(most <= 16);
      assert_true(fewest >= 2);
    } else { /* the check can fail: a continuous shape has a new value per row */
      assert_true(fewest > rows - 5);
    }
    free(x);
    free(y);
    free_lines(&l);
    o.shape = MYR_GEN_SHAPE_SMOOTH;
  }
}

static void test_shape_interactions(void **state) {
  (void)state;
  char path[512];
  tu_path(path, sizeof path, "interactions.csv");
  myr_gen_options o =
      shape_options(path, MYR_GEN_SHAPE_INTERACTIONS, MYR_GEN_TASK_REGRESSION);
  o.noise = 0;
  assert_int_equal(gen(&o, NULL), MYR_OK);
  lines l = read_lines(path);
  size_t rows = o.rows_per_group, n = o.n_features, m = n + 3;
  double *x = malloc((l.n - 1) * n * sizeof *x), *y = malloc((l.n - 1) * sizeof *y);
  double *basis = malloc(rows * m * sizeof *basis);
  double **xr = malloc(rows * sizeof *xr), **br = malloc(rows * sizeof *br);
  assert_true(x && y && basis && xr && br);
  parse_rows(&l, 2, n, x, y);
  double lin_sum = 0, exact_min = 1;
  for (size_t g = 0; g < o.n_groups; g++) {
    for (size_t r = 0; r < rows; r++) {
      const double *f = x + (g * rows + r) * n;
      double *b = basis + r * m;
      memcpy(b, f, n * sizeof *f);
      b[n] = f[0] * f[1];
      b[n + 1] = f[0] * f[1] * f[2];
      b[n + 2] = (double)((f[2] > 0) - (f[2] < 0)) * (double)((f[3] > 0) - (f[3] < 0));
      xr[r] = x + (g * rows + r) * n;
      br[r] = b;
    }
    double lin = linear_r2(xr, y + g * rows, rows, n);
    double exact = linear_r2(br, y + g * rows, rows, m);
    lin_sum += lin;
    exact_min = exact < exact_min ? exact : exact_min;
  }
  print_message("interactions: linear R^2 %.3f; in the product basis at least %.9f\n",
                lin_sum / (double)o.n_groups, exact_min);
  /* Linear in [1, f, f0*f1, f0*f1*f2, sgn(f2)*sgn(f3)] up to the labels' rounding ... */
  assert_true(exact_min > 1 - 1e-6);
  /* ... but hardly linear in the features alone. */
  assert_true(lin_sum / (double)o.n_groups < 0.35);
  free(x);
  free(y);
  free(basis);
  free(xr);
  free(br);
  free_lines(&l);
}

static void test_classification(void **state) {
  (void)state;
  char reg[512], cls[512], flip[512];
  tu_path(reg, sizeof reg, "cls_reg.csv");
  tu_path(cls, sizeof cls, "cls.csv");
  tu_path(flip, sizeof flip, "cls_flip.csv");
  for (unsigned k = 2; k <= 5; k += 3) {
    myr_gen_options o = shape_options(reg, MYR_GEN_SHAPE_SMOOTH, MYR_GEN_TASK_REGRESSION);
    o.n_groups = 100;
    o.noise = 0.5;
    o.n_classes = k;
    assert_int_equal(gen(&o, NULL), MYR_OK);
    o.out = cls;
    o.task = MYR_GEN_TASK_CLASSIFICATION;
    o.flip = 0;
    assert_int_equal(gen(&o, NULL), MYR_OK);
    o.out = flip;
    o.flip = 0.3;
    assert_int_equal(gen(&o, NULL), MYR_OK);
    lines lr = read_lines(reg), lc = read_lines(cls), lf = read_lines(flip);
    size_t rows = o.rows_per_group, total = lc.n - 1, changed = 0;
    assert_int_equal(lr.n, lc.n);
    assert_int_equal(lf.n, lc.n);
    double *yr = malloc(total * sizeof *yr);
    unsigned *yc = malloc(total * sizeof *yc), *yf = malloc(total * sizeof *yf);
    size_t count[5] = {0};
    assert_true(yr && yc && yf);
    for (size_t i = 0; i < total; i++) {
      const char *a = strrchr(lc.line[i + 1], ',') + 1,
                 *b = strrchr(lf.line[i + 1], ',') + 1;
      /* A class is a bare integer 0..K-1. */
      assert_true(strlen(a) == 1 && a[0] >= '0' && a[0] < (char)('0' + k));
      assert_true(strlen(b) == 1 && b[0] >= '0' && b[0] < (char)('0' + k));
      yc[i] = (unsigned)(a[0] - '0');
      yf[i] = (unsigned)(b[0] - '0');
      yr[i] = strtod(strrchr(lr.line[i + 1], ',') + 1, NULL);
      count[yc[i]]++;
      changed += yc[i] != yf[i];
    }
    /* About equally frequent classes, each in every group. */
    for (unsigned c = 0; c < k; c++) {
      double share = (double)count[c] / (double)total;
      print_message("K=%u: class %u has %.3f of the rows\n", k, c, share);
      assert_true(fabs(share - 1.0 / k) < 0.03);
    }
    for (size_t g = 0; g < o.n_groups; g++) {
      size_t seen[5] = {0};
      for (size_t r = 0; r < rows; r++)
        seen[yc[g * rows + r]]++;
      for (unsigned c = 0; c < k; c++)
        assert_true(seen[c] > 0);
      /* Without flips the class bins the regression label of the same options: a row
         with a smaller value never has a larger class. */
      for (size_t a = 0; a < rows; a++)
        for (size_t b = 0; b < rows; b++)
          if (yr[g * rows + a] < yr[g * rows + b])
            assert_true(yc[g * rows + a] <= yc[g * rows + b]);
    }
    /* A flip redraws the class uniformly: flip * (K-1)/K of the rows change. */
    double want = 0.3 * (double)(k - 1) / (double)k;
    double got = (double)changed / (double)total;
    print_message("K=%u: flip 0.3 changed %.3f of the classes (expected %.3f)\n", k, got,
                  want);
    assert_true(fabs(got - want) < 0.02);
    free(yr);
    free(yc);
    free(yf);
    free_lines(&lr);
    free_lines(&lc);
    free_lines(&lf);
  }
}

static void test_shape_task_invalid(void **state) {
  (void)state;
  char path[512];
  tu_path(path, sizeof path, "invalid_shape.csv");
  unlink(path);
  myr_gen_options base = small_options(path), o;
  o = base;
  o.shape = 4;
  expect_invalid(&o, MYR_EINVAL, "--shape");
  o = base;
  o.shape = -1;
  expect_invalid(&o, MYR_EINVAL, "--shape");
  o = base;
  o.task = 2;
  expect_invalid(&o, MYR_EINVAL, "--task");
  o = base;
  o.task = MYR_GEN_TASK_CLASSIFICATION;
  o.n_classes = 1;
  expect_invalid(&o, MYR_EINVAL, "--classes");
  o.n_classes = MYR_GEN_MAX_CLASSES + 1;
  expect_invalid(&o, MYR_EINVAL, "--classes");
  o.n_classes = 2;
  o.flip = 1.5;
  expect_invalid(&o, MYR_EINVAL, "--flip");
  o.flip = -0.1;
  expect_invalid(&o, MYR_EINVAL, "--flip");
  assert_int_not_equal(access(path, F_OK), 0);

  /* Regression ignores the class options; zero means 2 classes and no flips. */
  o = base;
  o.n_classes = 1000;
  o.flip = 7;
  assert_int_equal(gen(&o, NULL), MYR_OK);
  myr_gen_options z;
  memset(&z, 0, sizeof z);
  z.out = path;
  z.n_groups = 20;
  z.task = MYR_GEN_TASK_CLASSIFICATION;
  assert_int_equal(gen(&z, NULL), MYR_OK);
  lines l = read_lines(path);
  size_t ones = 0;
  for (size_t i = 1; i < l.n; i++) {
    const char *c = strrchr(l.line[i], ',') + 1;
    assert_true(strcmp(c, "0") == 0 || strcmp(c, "1") == 0);
    ones += c[0] == '1';
  }
  assert_true(ones > 800 && ones < 1200);
  free_lines(&l);
  /* The most classes, and flip 1 (every class drawn at random). */
  z.n_classes = MYR_GEN_MAX_CLASSES;
  z.flip = 1;
  z.shape = MYR_GEN_SHAPE_INTERACTIONS;
  assert_int_equal(gen(&z, NULL), MYR_OK);
  l = read_lines(path);
  int top = 0;
  for (size_t i = 1; i < l.n; i++) {
    int c = atoi(strrchr(l.line[i], ',') + 1);
    assert_true(c >= 0 && c < MYR_GEN_MAX_CLASSES);
    top = c > top ? c : top;
  }
  assert_true(top > 90);
  free_lines(&l);
}

static void test_classification_allocation_failures(void **state) {
  (void)state;
  char path[512], test[512];
  tu_path(path, sizeof path, "oom_cls.csv");
  tu_path(test, sizeof test, "oom_cls.test.csv");
  myr_gen_options o = small_options(path);
  o.shape = MYR_GEN_SHAPE_PIECEWISE;
  o.task = MYR_GEN_TASK_CLASSIFICATION;
  o.n_classes = 4;
  o.shuffle = 1;
  o.holdout = 0.3;
  o.n_threads = 2;
  tu_alloc_install();
  long live = tu_alloc_live();
  int succeeded = 0, failures = 0;
  for (long n = 1; n < 500 && !succeeded; n++) {
    unlink(path);
    unlink(test);
    tu_alloc_fail_at(n, 0);
    myr_error err = {0};
    int rc = myr_gen_csv(&o, NULL, &err);
    if (tu_alloc_failed()) {
      assert_int_equal(rc, MYR_ENOMEM);
      failures++;
      assert_int_not_equal(access(path, F_OK), 0);
      assert_int_not_equal(access(test, F_OK), 0);
    } else {
      assert_int_equal(rc, MYR_OK);
      succeeded = 1;
    }
    assert_int_equal(tu_alloc_live(), live);
  }
  tu_alloc_fail_at(0, 0);
  assert_true(succeeded);
  assert_true(failures >= 8);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_determinism),
      cmocka_unit_test(test_counts_uniform),
      cmocka_unit_test(test_counts_zipf),
      cmocka_unit_test(test_holdout),
      cmocka_unit_test(test_shuffle),
      cmocka_unit_test(test_header_and_format),
      cmocka_unit_test(test_linear_fit_quality),
      cmocka_unit_test(test_invalid_options),
      cmocka_unit_test(test_test_path),
      cmocka_unit_test(test_allocation_failures),
      cmocka_unit_test(test_shapes_deterministic),
      cmocka_unit_test(test_shape_smooth),
      cmocka_unit_test(test_shape_piecewise),
      cmocka_unit_test(test_shape_interactions),
      cmocka_unit_test(test_classification),
      cmocka_unit_test(test_shape_task_invalid),
      cmocka_unit_test(test_classification_allocation_failures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
