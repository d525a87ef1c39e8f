/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for the streaming CSV reader (src/io/csv.c). Most tests turn every batch
 * into a text dump, one row per line: "LINE:SKIP:ARG" and, for usable rows,
 * "|field|field" (absent columns as "~", bytes outside printable ASCII as \xHH). The dump
 * helper also checks the batch invariants (first_row, line order, column kinds) on every
 * batch.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "io/csv.h"
#include "myriad/train.h"
#include "testutil.h"

#define BAD_QUOTING (MYR_SKIP_BAD_QUOTING + 1)
#define FIELD_COUNT (MYR_SKIP_FIELD_COUNT + 1)
#define NUL_BYTE (MYR_SKIP_NUL_BYTE + 1)
#define BLANK_LINE (MYR_SKIP_BLANK_LINE + 1)

/* ---- helpers ----------------------------------------------------------------------- */

typedef struct sbuf {
  char *p;
  size_t n, cap;
} sbuf;

static void sb_put(sbuf *s, const char *data, size_t n) {
  if (s->n + n + 1 > s->cap) {
    size_t cap = s->cap ? s->cap : 256;
    while (cap < s->n + n + 1)
      cap *= 2;
    s->p = realloc(s->p, cap);
    assert_non_null(s->p);
    s->cap = cap;
  }
  memcpy(s->p + s->n, data, n);
  s->n += n;
  s->p[s->n] = '\0';
}

static void sb_printf(sbuf *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *s, const char *fmt, ...) {
  char tmp[128];
  va_list ap;
  va_start(ap, fmt);
  int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  sb_put(s, tmp, (size_t)k);
}

static void sb_field(sbuf *s, const char *t, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)t[i];
    if (ch == '\n')
      sb_put(s, "\\n", 2);
    else if (ch == '\r')
      sb_put(s, "\\r", 2);
    else if (ch == '|' || ch == '\\')
      sb_printf(s, "\\%c", ch);
    else if (ch < 0x20 || ch >= 0x7f)
      sb_printf(s, "\\x%02x", ch);
    else
      sb_put(s, (const char *)&ch, 1);
  }
}

/* Read every batch of c into a dump; returns the status of the first failing next().
   rows0 is the number of data rows already read from c. */
static int dump_rest(myr__csv *c, size_t batch_rows, uint64_t rows0, sbuf *s,
                     myr_error *err) {
  uint64_t rows = rows0, last_line = 0;
  size_t ncol = myr__csv_n_columns(c);
  sb_put(s, "", 0);
  for (;;) {
    const myr__batch *b = NULL;
    int rc = myr__csv_next(c, &b, err);
    if (rc != MYR_OK) {
      assert_null(b);
      return rc;
    }
    if (!b)
      return MYR_OK;
    assert_true(b->n_rows > 0);
    if (batch_rows)
      assert_true(b->n_rows <= batch_rows);
    assert_int_equal(b->first_row, rows);
    assert_int_equal(b->n_columns, ncol);
    assert_non_null(b->line);
    assert_non_null(b->skip);
    assert_non_null(b->skip_arg);
    for (size_t i = 0; i < b->n_rows; i++) {
      assert_true(b->line[i] > last_line);
      last_line = b->line[i];
      sb_printf(s, "%llu:%u:%u", (unsigned long long)b->line[i], (unsigned)b->skip[i],
                (unsigned)b->skip_arg[i]);
      if (b->skip[i] == 0) {
        for (size_t j = 0; j < ncol; j++) {
          const myr__column *col = &b->columns[j];
          assert_null(col->validity);
          sb_put(s, "|", 1);
          if (col->kind == MYR__COL_ABSENT) {
            assert_null(col->text_off);
            sb_put(s, "~", 1);
          } else {
            assert_int_equal(col->kind, MYR__COL_TEXT);
            sb_field(s, col->text + col->text_off[i], col->text_len[i]);
          }
        }
      }
      sb_put(s, "\n", 1);
    }
    rows += b->n_rows;
  }
}

static int dump_all(myr__csv *c, size_t batch_rows, sbuf *s, myr_error *err) {
  return dump_rest(c, batch_rows, 0, s, err);
}

static myr__csv_options opts(char delim, size_t chunk, size_t batch_rows) {
  myr__csv_options o;
  memset(&o, 0, sizeof o);
  o.delimiter = delim;
  o.chunk_size = chunk;
  o.batch_rows = batch_rows;
  return o;
}

/* Parse data from memory with the given options; returns the dump (caller frees). */
static char *parse_mem(const char *data, size_t len, const myr__csv_options *o) {
  myr__csv *c = NULL;
  myr_error err = {0};
  int rc = myr__csv_open_mem(data, len, "t.csv", o, &c, &err);
  if (rc != MYR_OK)
    fail_msg("open failed: %s", err.message);
  sbuf s = {0};
  rc = dump_all(c, o ? o->batch_rows : 0, &s, &err);
  if (rc != MYR_OK)
    fail_msg("next failed: %s", err.message);
  assert_int_equal(myr__csv_bytes_read(c), len);
  assert_int_equal(myr__csv_bytes_total(c), len);
  myr__csv_close(c);
  return s.p;
}

static void expect_dump(const char *data, const char *want) {
  char *got = parse_mem(data, strlen(data), NULL);
  assert_string_equal(got, want);
  free(got);
}

/* Open data from memory expecting failure: checks the code and a message fragment. */
static void expect_open_error(const char *data, size_t len, const myr__csv_options *o,
                              int code, const char *fragment) {
  myr__csv *c = (myr__csv *)1;
  myr_error err = {0};
  int rc = myr__csv_open_mem(data, len, "bad.csv", o, &c, &err);
  assert_int_equal(rc, code);
  assert_null(c);
  assert_int_equal(err.code, code);
  if (!strstr(err.message, fragment))
    fail_msg("message '%s' lacks '%s'", err.message, fragment);
  assert_non_null(strstr(err.message, "bad.csv"));
}

/* ---- tests ------------------------------------------------------------------------- */

static void test_simple(void **state) {
  (void)state;
  const char *data = "id,x,y\na,1,2\nb,3.5,-4\n";
  myr__csv *c = NULL;
  myr_error err = {0};
  assert_int_equal(myr__csv_open_mem(data, strlen(data), "s.csv", NULL, &c, &err),
                   MYR_OK);
  assert_int_equal(myr__csv_n_columns(c), 3);
  assert_string_equal(myr__csv_column_name(c, 0), "id");
  assert_string_equal(myr__csv_column_name(c, 1), "x");
  assert_string_equal(myr__csv_column_name(c, 2), "y");
  assert_null(myr__csv_column_name(c, 3));
  assert_int_equal(myr__csv_delimiter(c), ',');
  assert_string_equal(myr__csv_name(c), "s.csv");
  myr__csv_close(c);
  expect_dump(data, "2:0:0|a|1|2\n3:0:0|b|3.5|-4\n");
  expect_dump("a,b\n,\n1,\n,2\n", "2:0:0||\n3:0:0|1|\n4:0:0||2\n");
}

static void test_quoted(void **state) {
  (void)state;
  expect_dump("a,b\n"
              "\"x,y\",\"he said \"\"hi\"\"\"\n"
              "\"multi\nline\",z\n"
              "\"\",\"\"\"\"\n"
              "\"two\n\nbreaks\",\"a\"\"\nb\"\n"
              "last,1\n",
              "2:0:0|x,y|he said \"hi\"\n"
              "3:0:0|multi\\nline|z\n"
              "5:0:0||\"\n"
              "6:0:0|two\\n\\nbreaks|a\"\\nb\n"
              "10:0:0|last|1\n");
  /* Quoted header names are unescaped too. */
  const char *data = "\"a,1\",\"b\"\"2\",\"c\nd\"\nx,y,z\n";
  myr__csv *c = NULL;
  assert_int_equal(myr__csv_open_mem(data, strlen(data), "q", NULL, &c, NULL), MYR_OK);
  assert_string_equal(myr__csv_column_name(c, 0), "a,1");
  assert_string_equal(myr__csv_column_name(c, 1), "b\"2");
  assert_string_equal(myr__csv_column_name(c, 2), "c\nd");
  sbuf s = {0};
  assert_int_equal(dump_all(c, 0, &s, NULL), MYR_OK);
  assert_string_equal(s.p, "3:0:0|x|y|z\n");
  free(s.p);
  myr__csv_close(c);
}

static void test_crlf(void **state) {
  (void)state;
  expect_dump("a,b\r\n1,2\r\n\"q\",\"r\"\r\n3,\r\n\"x\r\ny\",4\r\n5,6",
              "2:0:0|1|2\n3:0:0|q|r\n4:0:0|3|\n5:0:0|x\\r\\ny|4\n7:0:0|5|6\n");
  /* A lone \r inside a field is data; \r before EOF ends the record. */
  expect_dump("a,b\n1\r2,3\n4,5\r", "2:0:0|1\\r2|3\n3:0:0|4|5\n");
  expect_dump("a,b\n\"4\",\"5\"\r", "2:0:0|4|5\n");
}

static void test_bom(void **state) {
  (void)state;
  const char *data = "\xEF\xBB\xBFid,v\n1,2\n";
  myr__csv *c = NULL;
  assert_int_equal(myr__csv_open_mem(data, strlen(data), "b", NULL, &c, NULL), MYR_OK);
  assert_string_equal(myr__csv_column_name(c, 0), "id");
  myr__csv_close(c);
  expect_dump(data, "2:0:0|1|2\n");
  /* Only at the start of the file: a BOM in a data row is data. */
  expect_dump("a\n\xEF\xBB\xBFx\n", "2:0:0|\\xef\\xbb\\xbfx\n");
  myr__csv_options o = opts(0, 1, 0);
  char *got = parse_mem(data, strlen(data), &o);
  assert_string_equal(got, "2:0:0|1|2\n");
  free(got);
}

static void check_delim(const char *data, const myr__csv_options *o, char want,
                        size_t ncol) {
  myr__csv *c = NULL;
  myr_error err = {0};
  assert_int_equal(myr__csv_open_mem(data, strlen(data), "d", o, &c, &err), MYR_OK);
  assert_int_equal(myr__csv_delimiter(c), want);
  assert_int_equal(myr__csv_n_columns(c), ncol);
  myr__csv_close(c);
}

static void test_delimiters(void **state) {
  (void)state;
  check_delim("a\tb\tc\n1\t2\t3\n", NULL, '\t', 3);
  check_delim("a;b;c\n1;2;3\n", NULL, ';', 3);
  check_delim("a,b;c;d\n", NULL, ';', 3);
  check_delim("a,b\tc\n", NULL, ',', 2);        /* tie -> ',' */
  check_delim("a;b\tc\n", NULL, ',', 1);        /* tie without ',' -> ',' */
  check_delim("single\n1\n", NULL, ',', 1);     /* none -> ',' */
  check_delim("\"a;b;c\",d,e\n", NULL, ',', 3); /* quoted delimiters do not count */
  myr__csv_options o = opts(';', 0, 0);
  check_delim("a,b;c\n", &o, ';', 2);
  o = opts('\t', 0, 0);
  check_delim("a;b,c\n", &o, '\t', 1);
  expect_dump("k\tv\nx,y\t\"1\t2\"\n", "2:0:0|x,y|1\\x092\n");
  expect_dump("k;v\n1,5;2\n", "2:0:0|1,5|2\n");
  o = opts('|', 0, 0);
  expect_open_error("a|b\n", 4, &o, MYR_EINVAL, "delimiter");
}

static void test_ragged(void **state) {
  (void)state;
  expect_dump("a,b,c\n1,2\n1,2,3,4\n1\n1,2,3\n,,,,,\n",
              "2:1:2\n3:1:4\n4:1:1\n5:0:0|1|2|3\n6:1:6\n");
}

static void test_bad_quoting(void **state) {
  (void)state;
  expect_dump("a,b,c\n"
              "1,x\"y,3\n"   /* quote inside an unquoted field */
              "\"1\"x,2,3\n" /* junk after the closing quote */
              "1,2,\"3\" \n" /* a space after the closing quote */
              "ok,\"\",\"\"\n"
              "1,\"a\"\"b\"c,3,4\n" /* bad quoting wins over the field count */
              "1,2,\"open\nstill,open\n",
              "2:2:2\n3:2:1\n4:2:3\n5:0:0|ok||\n6:2:2\n7:2:3\n");
  /* The unterminated field swallows the rest of the file: one skipped row. */
  expect_dump("a,b\n\"x\n1,2\n3,4\n", "2:2:1\n");
  expect_dump("a,b\n1,2\n3,\"", "2:0:0|1|2\n3:2:2\n");
}

static void test_nul_byte(void **state) {
  (void)state;
  static const char data[] = "a,b\n1,x\0y\n\"\0\",2\n3,4\n1\0,2,3\n\"a\0\"b,2\n";
  char *got = parse_mem(data, sizeof data - 1, NULL);
  /* NUL wins over the field count; bad quoting wins over NUL. */
  assert_string_equal(got, "2:3:2\n3:3:1\n4:0:0|3|4\n5:3:1\n6:2:1\n");
  free(got);
}

static void test_blank_lines(void **state) {
  (void)state;
  expect_dump("a,b\n\n1,2\r\n\r\n3,4\n\n", "2:4:0\n3:0:0|1|2\n4:4:0\n5:0:0|3|4\n6:4:0\n");
  /* One column: an empty line is an empty field; a final newline adds no row. */
  expect_dump("a\n1\n\n\r\n2\n", "2:0:0|1\n3:0:0|\n4:0:0|\n5:0:0|2\n");
  expect_dump("a\n1\n\n", "2:0:0|1\n3:0:0|\n");
  /* A quoted empty field is not a blank line. */
  expect_dump("a,b\n\"\"\n", "2:1:1\n");
}

static void test_empty_and_header_only(void **state) {
  (void)state;
  expect_open_error("", 0, NULL, MYR_ENODATA, "empty file, no header row");
  expect_open_error("\xEF\xBB\xBF", 3, NULL, MYR_ENODATA, "empty file, no header row");
  for (size_t chunk = 1; chunk <= 4; chunk++) {
    myr__csv_options o = opts(0, chunk, 0);
    expect_open_error("\xEF\xBB\xBF", 3, &o, MYR_ENODATA, "empty file, no header row");
  }
  char path[512];
  tu_write_file(path, sizeof path, "empty.csv", "", 0);
  myr__csv *c = NULL;
  myr_error err = {0};
  assert_int_equal(myr__csv_open(path, NULL, &c, &err), MYR_ENODATA);
  assert_non_null(strstr(err.message, "empty.csv: empty file"));

  const char *heads[] = {"a,b\n", "a,b", "a,b\r\n"};
  for (size_t k = 0; k < 3; k++) {
    assert_int_equal(myr__csv_open_mem(heads[k], strlen(heads[k]), "h", NULL, &c, &err),
                     MYR_OK);
    assert_int_equal(myr__csv_n_columns(c), 2);
    assert_string_equal(myr__csv_column_name(c, 1), "b");
    const myr__batch *b = (const myr__batch *)1;
    assert_int_equal(myr__csv_next(c, &b, &err), MYR_OK);
    assert_null(b);
    assert_int_equal(myr__csv_next(c, &b, &err), MYR_OK);
    assert_null(b);
    myr__csv_close(c);
  }
}

static void test_header_errors(void **state) {
  (void)state;
  expect_open_error("a,b,c,b,a\n1,2,3,4,5\n", 20, NULL, MYR_EPARSE,
                    "duplicate column name 'b' (columns 2 and 4)");
  expect_open_error("a,,c\n", 5, NULL, MYR_EPARSE, "column 2 has an empty name");
  expect_open_error("a,b,\n", 5, NULL, MYR_EPARSE, "column 3 has an empty name");
  expect_open_error("\n1\n", 3, NULL, MYR_EPARSE, "column 1 has an empty name");
  expect_open_error("a,b\"c\n", 6, NULL, MYR_EPARSE, "malformed header");
  expect_open_error("a,\"b\"c\n", 7, NULL, MYR_EPARSE, "malformed header");
  expect_open_error("a,\"b\n", 5, NULL, MYR_EPARSE, "malformed header");
  expect_open_error("a,b\0c\n", 6, NULL, MYR_EPARSE, "NUL");

  myr__csv *c = (myr__csv *)1;
  myr_error err = {0};
  assert_int_equal(myr__csv_open("/nonexistent/dir/x.csv", NULL, &c, &err), MYR_EIO);
  assert_null(c);
  assert_non_null(strstr(err.message, "/nonexistent/dir/x.csv"));
  assert_non_null(strstr(err.message, "No such file"));
  assert_int_equal(myr__csv_open(tu_tmpdir(), NULL, &c, &err), MYR_EIO);
  assert_null(c);
}

static void test_no_trailing_newline(void **state) {
  (void)state;
  expect_dump("a,b\n1,2\n3,4", "2:0:0|1|2\n3:0:0|3|4\n");
  expect_dump("a,b\n1,\"2\"", "2:0:0|1|2\n");
  expect_dump("a\nx", "2:0:0|x\n");
}

static void test_non_utf8(void **state) {
  (void)state;
  const char data[] = "k,v\n\xff\xfe,\"\x80\x81\"\n\xc3\x28,z\n";
  myr__csv *c = NULL;
  assert_int_equal(myr__csv_open_mem(data, sizeof data - 1, "u", NULL, &c, NULL), MYR_OK);
  const myr__batch *b = NULL;
  assert_int_equal(myr__csv_next(c, &b, NULL), MYR_OK);
  assert_non_null(b);
  assert_int_equal(b->n_rows, 2);
  const myr__column *k = &b->columns[0], *v = &b->columns[1];
  assert_int_equal(k->text_len[0], 2);
  assert_memory_equal(k->text + k->text_off[0], "\xff\xfe", 2);
  assert_int_equal(v->text_len[0], 2);
  assert_memory_equal(v->text + v->text_off[0], "\x80\x81", 2);
  assert_int_equal(k->text_len[1], 2);
  assert_memory_equal(k->text + k->text_off[1], "\xc3\x28", 2);
  myr__csv_close(c);
}

static void test_select(void **state) {
  (void)state;
  const char *data = "a,b,c\n1,2,3\n4,\"5\"\"\",6\n7,8,9\n";
  myr__csv *c = NULL;
  myr__csv_options o = opts(0, 0, 1);
  assert_int_equal(myr__csv_open_mem(data, strlen(data), "sel", &o, &c, NULL), MYR_OK);
  const unsigned char want[3] = {1, 0, 1};
  assert_int_equal(myr__csv_select(c, want, NULL), MYR_OK);
  const myr__batch *b = NULL;
  assert_int_equal(myr__csv_next(c, &b, NULL), MYR_OK);
  assert_int_equal(b->columns[1].kind, MYR__COL_ABSENT);
  assert_null(b->columns[1].text_off);
  assert_null(b->columns[1].text_len);
  assert_int_equal(b->columns[0].kind, MYR__COL_TEXT);
  assert_int_equal(b->columns[2].kind, MYR__COL_TEXT);
  assert_memory_equal(b->columns[2].text + b->columns[2].text_off[0], "3", 1);
  /* Change the selection between batches. */
  const unsigned char want2[3] = {0, 1, 0};
  assert_int_equal(myr__csv_select(c, want2, NULL), MYR_OK);
  sbuf s = {0};
  assert_int_equal(dump_rest(c, 1, 1, &s, NULL), MYR_OK);
  assert_string_equal(s.p, "3:0:0|~|5\"|~\n4:0:0|~|8|~\n");
  free(s.p);
  myr__csv_close(c);
}

static void test_batches(void **state) {
  (void)state;
  const char *data = "a\n1\n2\n3\n4\n5\n";
  myr__csv *c = NULL;
  myr__csv_options o = opts(0, 0, 2);
  assert_int_equal(myr__csv_open_mem(data, strlen(data), "bt", &o, &c, NULL), MYR_OK);
  size_t sizes[3], nb = 0;
  const myr__batch *b = NULL;
  uint64_t last_read = 0;
  while (myr__csv_next(c, &b, NULL) == MYR_OK && b) {
    assert_true(nb < 3);
    assert_int_equal(b->first_row, nb * 2);
    sizes[nb++] = b->n_rows;
    assert_true(myr__csv_bytes_read(c) > last_read);
    last_read = myr__csv_bytes_read(c);
  }
  assert_int_equal(nb, 3);
  assert_int_equal(sizes[0], 2);
  assert_int_equal(sizes[1], 2);
  assert_int_equal(sizes[2], 1);
  assert_int_equal(last_read, strlen(data));
  myr__csv_close(c);
}

/* Build the 10 MB test file: an unquoted and a quoted huge field, then a normal row. */
static char *big_file(size_t field, size_t *len_out) {
  size_t cap = 2 * field + 64, n = 0;
  char *d = malloc(cap);
  assert_non_null(d);
  n += (size_t)sprintf(d + n, "k,v\n");
  n += (size_t)sprintf(d + n, "big,");
  memset(d + n, 'x', field);
  n += field;
  n += (size_t)sprintf(d + n, "\nq,\"");
  for (size_t i = 0; i < field; i++) /* every 1000th byte a newline */
    d[n++] = i % 1000 == 999 ? '\n' : 'y';
  memcpy(d + n, "\"\"end\"\r\nlast,1\n", 15);
  n += 15;
  *len_out = n;
  return d;
}

static void test_huge_field(void **state) {
  (void)state;
  const size_t field = 10u << 20;
  size_t len;
  char *d = big_file(field, &len);
  char path[512];
  tu_write_file(path, sizeof path, "big.csv", d, len);
  free(d);
  myr__csv_options o = opts(0, 4096, 0);
  myr__csv *c = NULL;
  myr_error err = {0};
  assert_int_equal(myr__csv_open(path, &o, &c, &err), MYR_OK);
  assert_int_equal(myr__csv_bytes_total(c), len);
  size_t rows = 0;
  const myr__batch *b = NULL;
  while (myr__csv_next(c, &b, &err) == MYR_OK && b) {
    for (size_t i = 0; i < b->n_rows; i++, rows++) {
      const myr__column *v = &b->columns[1];
      const char *t = v->text + v->text_off[i];
      assert_int_equal(b->skip[i], 0);
      if (rows == 0) {
        assert_int_equal(b->line[i], 2);
        assert_int_equal(v->text_len[i], field);
        assert_true(t[0] == 'x' && t[field - 1] == 'x');
      } else if (rows == 1) {
        assert_int_equal(b->line[i], 3);
        assert_int_equal(v->text_len[i], field + 4);
        assert_true(t[998] == 'y' && t[999] == '\n' && t[1000] == 'y');
        assert_memory_equal(t + field, "\"end", 4);
      } else {
        assert_int_equal(b->line[i], 3 + field / 1000 + 1);
        assert_int_equal(v->text_len[i], 1);
        assert_int_equal(t[0], '1');
      }
    }
  }
  assert_int_equal(err.code, MYR_OK);
  assert_int_equal(rows, 3);
  assert_int_equal(myr__csv_bytes_read(c), len);
  myr__csv_close(c);
}

static void test_max_record(void **state) {
  (void)state;
  const char *data = "a,b\n1,2\n3,4\n5,0123456789012345678901234567890123456789\n6,7\n";
  char path[512];
  tu_write_file(path, sizeof path, "long.csv", data, strlen(data));
  const size_t chunks[] = {1, 7, 4096};
  for (size_t k = 0; k < 3; k++) {
    myr__csv_options o = opts(0, chunks[k], 0);
    o.max_record = 16;
    myr__csv *c = NULL;
    myr_error err = {0};
    assert_int_equal(myr__csv_open(path, &o, &c, &err), MYR_OK);
    sbuf s = {0};
    assert_int_equal(dump_all(c, 0, &s, &err), MYR_EPARSE);
    assert_non_null(strstr(err.message, "long.csv:4:"));
    assert_non_null(strstr(err.message, "longer than"));
    /* Rows before the long record are returned or lost with the batch, never wrong. */
    assert_true(strcmp(s.p, "") == 0 || strcmp(s.p, "2:0:0|1|2\n3:0:0|3|4\n") == 0);
    free(s.p);
    const myr__batch *b = (const myr__batch *)1;
    assert_int_equal(myr__csv_next(c, &b, &err), MYR_EPARSE); /* the error sticks */
    assert_null(b);
    myr__csv_close(c);
  }
  /* A record of exactly max_record bytes (plus CRLF) is fine. */
  myr__csv_options o = opts(0, 1, 0);
  o.max_record = 5;
  char *got = parse_mem("a,b\r\n123,5\r\n", 12, &o);
  assert_string_equal(got, "2:0:0|123|5\n");
  free(got);
  /* A header over the limit is an error too. */
  o.max_record = 3;
  expect_open_error("abc,def\n", 8, &o, MYR_EPARSE, "longer than");
}

/* A wide file starts with few rows per array, so the batch arrays grow mid-batch; an
   allocation failure there is a clean, sticky ENOMEM. */
static char *wide_file(size_t ncol, size_t nrows, size_t *len_out) {
  sbuf s = {0};
  for (size_t j = 0; j < ncol; j++)
    sb_printf(&s, j ? ",c%zu" : "c%zu", j);
  sb_put(&s, "\n", 1);
  for (size_t i = 0; i < nrows; i++) {
    sb_printf(&s, "%zu", i);
    for (size_t j = 1; j < ncol; j++)
      sb_put(&s, ",", 1);
    sb_printf(&s, "%zu\n", i * 7);
  }
  *len_out = s.n;
  return s.p;
}

static void test_wide_growth(void **state) {
  (void)state;
  const size_t ncol = 9000, nrows = 100;
  size_t len;
  char *d = wide_file(ncol, nrows, &len);
  unsigned char *want = calloc(ncol, 1);
  assert_non_null(want);
  want[0] = want[ncol - 1] = 1;
  for (int inject = 0; inject < 2; inject++) {
    myr__csv *c = NULL;
    myr_error err = {0};
    long live = tu_alloc_live();
    assert_int_equal(myr__csv_open_mem(d, len, "wide", NULL, &c, &err), MYR_OK);
    assert_int_equal(myr__csv_n_columns(c), ncol);
    assert_string_equal(myr__csv_column_name(c, ncol - 1), "c8999");
    assert_int_equal(myr__csv_select(c, want, &err), MYR_OK);
    const myr__batch *b = NULL;
    size_t rows = 0;
    if (inject)
      tu_alloc_fail_at(1, 1);
    int rc;
    while ((rc = myr__csv_next(c, &b, &err)) == MYR_OK && b) {
      for (size_t i = 0; i < b->n_rows; i++, rows++) {
        const myr__column *first = &b->columns[0], *last = &b->columns[ncol - 1];
        char tmp[32];
        assert_int_equal(b->skip[i], 0);
        assert_int_equal(b->columns[1].kind, MYR__COL_ABSENT);
        snprintf(tmp, sizeof tmp, "%zu", rows);
        assert_int_equal(first->text_len[i], strlen(tmp));
        assert_memory_equal(first->text + first->text_off[i], tmp, strlen(tmp));
        snprintf(tmp, sizeof tmp, "%zu", rows * 7);
        assert_int_equal(last->text_len[i], strlen(tmp));
        assert_memory_equal(last->text + last->text_off[i], tmp, strlen(tmp));
      }
    }
    if (inject) {
      assert_true(tu_alloc_failed());
      assert_int_equal(rc, MYR_ENOMEM);
      assert_int_equal(myr__csv_next(c, &b, &err), MYR_ENOMEM);
      tu_alloc_fail_at(0, 0);
    } else {
      assert_int_equal(rc, MYR_OK);
      assert_int_equal(rows, nrows);
    }
    myr__csv_close(c);
    assert_int_equal(tu_alloc_live(), live);
  }
  free(want);
  free(d);
}

/* ~50 rows of everything awkward: quoting, CRLF, embedded newlines, ragged, blank, NUL.
 */
static const char k_tricky[] = "\xEF\xBB\xBF"
                               "id,name,value\r\n"
                               "1,plain,10\n"
                               "2,\"quoted, comma\",20\r\n"
                               "3,\"esc \"\"q\"\"\",30\n"
                               "4,\"multi\nline\r\nfield\",40\n"
                               "\n"
                               "5,short\n"
                               "6,too,many,fields\r\n"
                               "7,bad\"quote,70\n"
                               "8,\"junk\"after,80\n"
                               "9,\"\",\"\"\n"
                               "\r\n"
                               "10,nul\0here,100\n"
                               "11,\xff\xfe\xfd,110\n"
                               "12,\"\"\"\"\"\",120\n"
                               "13,a,\"b\"\r\n"
                               "14,,\n"
                               ",,\n"
                               "15,\"x\ny\nz\",150\n"
                               "16,\"\r\",160\n"
                               "17,lone\rcr,170\n"
                               "18,\"a,b,c,d,e,f\",180\n"
                               "19,tab\there,190\n"
                               "20,semi;colon,200\n"
                               "21,\"end\"\r\n"
                               "22,x,220\n"
                               "23,x,230\n"
                               "24,x,240\n"
                               "25,\"longer field with some text in it, and more\",250\n"
                               "26,x,260\n"
                               "27,\"\"\"\",270\n"
                               "28,\"\n\",280\n"
                               "29,x,290\n"
                               "30,x,300\n"
                               "31,x,310\n"
                               "32,\"a\"\"\"\"b\",320\n"
                               "33,x,330\n"
                               "34,x,340\n"
                               "35,x,350\n"
                               "36,x,360\n"
                               "37,\"q\" ,370\n"
                               "38,x,380\n"
                               "39,x,390\n"
                               "40,x,400\n"
                               "41,x,410\n"
                               "42,x,420\n"
                               "43,x,430\n"
                               "44,x,440\n"
                               "45,x,450\n"
                               "46,x,460\n"
                               "47,\"unterminated,470\n"
                               "48,x,480\n";

static void test_chunk_boundaries(void **state) {
  (void)state;
  size_t len = sizeof k_tricky - 1;
  myr__csv_options o = opts(0, 0, 0);
  char *ref = parse_mem(k_tricky, len, &o);
  if (getenv("CSV_DUMP"))
    fputs(ref, stderr);
  /* Spot-check the reference itself. */
  assert_non_null(strstr(ref, "2:0:0|1|plain|10\n3:0:0|2|quoted, comma|20\n"));
  assert_non_null(
      strstr(ref, "5:0:0|4|multi\\nline\\r\\nfield|40\n8:4:0\n9:1:2\n10:1:4\n"));
  assert_non_null(strstr(ref, "11:2:2\n12:2:2\n13:0:0|9||\n14:4:0\n15:3:2\n"));
  assert_non_null(strstr(ref, "16:0:0|11|\\xff\\xfe\\xfd|110\n17:0:0|12|\"\"|120\n"));
  assert_non_null(strstr(ref, "20:0:0|||\n21:0:0|15|x\\ny\\nz|150\n"));
  assert_non_null(strstr(ref, "24:0:0|16|\\r|160\n25:0:0|17|lone\\rcr|170\n"));
  assert_non_null(strstr(ref, "29:1:2\n"));
  assert_non_null(strstr(ref, "35:0:0|27|\"|270\n36:0:0|28|\\n|280\n38:0:0|29|x|290\n"));
  assert_non_null(strstr(ref, "41:0:0|32|a\"\"b|320\n"));
  assert_non_null(strstr(ref, "45:0:0|36|x|360\n46:2:2\n47:0:0|38|x|380\n"));
  /* The unterminated quote runs to EOF: the last row is a bad-quoting skip. */
  const char *tail = "55:0:0|46|x|460\n56:2:2\n";
  assert_string_equal(ref + strlen(ref) - strlen(tail), tail);

  const size_t chunks[] = {1, 2, 3, 7, 64, 0};
  const size_t batches[] = {0, 1, 3};
  char path[512];
  tu_write_file(path, sizeof path, "tricky.csv", k_tricky, len);
  for (size_t k = 0; k < 6; k++) {
    for (size_t m = 0; m < 3; m++) {
      o = opts(0, chunks[k], batches[m]);
      char *got = parse_mem(k_tricky, len, &o);
      assert_string_equal(got, ref);
      free(got);
      myr__csv *c = NULL;
      myr_error err = {0};
      assert_int_equal(myr__csv_open(path, &o, &c, &err), MYR_OK);
      sbuf s = {0};
      assert_int_equal(dump_all(c, batches[m], &s, &err), MYR_OK);
      assert_string_equal(s.p, ref);
      assert_int_equal(myr__csv_bytes_read(c), len);
      free(s.p);
      myr__csv_close(c);
    }
  }
  free(ref);
}

/* One full run under fault injection; returns its status. */
static int alloc_run(const char *path, int from_file, size_t chunk) {
  myr__csv_options o = opts(0, chunk, 4);
  myr__csv *c = NULL;
  myr_error err = {0};
  int rc = from_file
               ? myr__csv_open(path, &o, &c, &err)
               : myr__csv_open_mem(k_tricky, sizeof k_tricky - 1, "m", &o, &c, &err);
  if (rc != MYR_OK) {
    assert_null(c);
    return rc;
  }
  const unsigned char want[3] = {1, 0, 1};
  const myr__batch *b = NULL;
  size_t rows = 0;
  while ((rc = myr__csv_next(c, &b, &err)) == MYR_OK && b) {
    rows += b->n_rows;
    if (rows == 8)
      myr__csv_select(c, want, &err);
  }
  if (rc == MYR_OK)
    assert_int_equal(rows, 50);
  myr__csv_close(c);
  return rc;
}

static void test_alloc_failures(void **state) {
  (void)state;
  char path[512];
  tu_write_file(path, sizeof path, "alloc.csv", k_tricky, sizeof k_tricky - 1);
  const size_t chunks[] = {3, 0};
  for (int from_file = 0; from_file < 2; from_file++) {
    for (size_t k = 0; k < 2; k++) {
      long n;
      for (n = 1; n < 10000; n++) {
        long live = tu_alloc_live();
        tu_alloc_fail_at(n, 1);
        int rc = alloc_run(path, from_file, chunks[k]);
        int failed = tu_alloc_failed();
        tu_alloc_fail_at(0, 0);
        assert_int_equal(tu_alloc_live(), live);
        if (!failed) {
          assert_int_equal(rc, MYR_OK);
          break;
        }
        if (rc != MYR_OK)
          assert_int_equal(rc, MYR_ENOMEM);
      }
      assert_true(n > 3 && n < 10000);
    }
  }
}

int main(void) {
  tu_alloc_install();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_simple),
      cmocka_unit_test(test_quoted),
      cmocka_unit_test(test_crlf),
      cmocka_unit_test(test_bom),
      cmocka_unit_test(test_delimiters),
      cmocka_unit_test(test_ragged),
      cmocka_unit_test(test_bad_quoting),
      cmocka_unit_test(test_nul_byte),
      cmocka_unit_test(test_blank_lines),
      cmocka_unit_test(test_empty_and_header_only),
      cmocka_unit_test(test_header_errors),
      cmocka_unit_test(test_no_trailing_newline),
      cmocka_unit_test(test_non_utf8),
      cmocka_unit_test(test_select),
      cmocka_unit_test(test_batches),
      cmocka_unit_test(test_huge_field),
      cmocka_unit_test(test_max_record),
      cmocka_unit_test(test_wide_growth),
      cmocka_unit_test(test_chunk_boundaries),
      cmocka_unit_test(test_alloc_failures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
