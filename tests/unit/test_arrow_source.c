/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for the Arrow import (src/io/arrow_source.c) and the engine through it.
 * Every array is built by hand over test-owned buffers, as a C Data Interface producer
 * would hand them out: every type the import reads, with nulls, struct and child offsets
 * (bitmaps off a byte boundary), dictionaries, string views, record batches cut into
 * windows, a stream that fails half-way, and malformed arrays that must be refused.
 * Batches are checked through a dump of each column: values as text, "~" for nulls.
 * The end of the file trains and predicts through the public API from streams and
 * compares with the same data as CSV.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "io/arrow.h"
#include "io/source.h"
#include "myriad/myriad.h"
#include "testutil.h"

/* ---- a hand-built producer ---------------------------------------------------------- */

static int n_array_releases; /* record batches released by the consumer */

static void release_array(struct ArrowArray *a) {
  n_array_releases++;
  a->release = NULL;
}
static void release_schema(struct ArrowSchema *s) { s->release = NULL; }

/* One column: schema and array over test-owned buffers (and a dictionary). */
typedef struct tcol {
  struct ArrowSchema schema, dict_schema;
  struct ArrowArray array, dict;
  const void *bufs[8];
  const void *dict_bufs[3];
} tcol;

static void tcol_init(tcol *c, const char *name, const char *format, int64_t length,
                      int64_t offset, int64_t null_count, int64_t n_buffers,
                      const void *validity, const void *b1, const void *b2) {
  memset(c, 0, sizeof *c);
  c->schema.format = format;
  c->schema.name = name;
  c->schema.flags = ARROW_FLAG_NULLABLE;
  c->schema.release = release_schema;
  c->bufs[0] = validity;
  c->bufs[1] = b1;
  c->bufs[2] = b2;
  c->array.length = length;
  c->array.offset = offset;
  c->array.null_count = null_count;
  c->array.n_buffers = n_buffers;
  c->array.buffers = c->bufs;
  c->array.release = release_array;
}

static void tcol_dict(tcol *c, const char *vformat, int64_t length, int64_t offset,
                      const void *validity, int64_t null_count, const void *offsets,
                      const void *data) {
  c->dict_schema.format = vformat;
  c->dict_schema.name = "";
  c->dict_schema.release = release_schema;
  c->schema.dictionary = &c->dict_schema;
  c->dict_bufs[0] = validity;
  c->dict_bufs[1] = offsets;
  c->dict_bufs[2] = data;
  c->dict.length = length;
  c->dict.offset = offset;
  c->dict.null_count = null_count;
  c->dict.n_buffers = 3;
  c->dict.buffers = c->dict_bufs;
  c->dict.release = release_array;
  c->array.dictionary = &c->dict;
}

#define MAX_COLS 24
#define MAX_BATCHES 8

/* A record batch: a struct array whose children are the columns' arrays. */
typedef struct tbatch {
  struct ArrowArray top;
  struct ArrowArray *kids[MAX_COLS];
  const void *top_bufs[1];
} tbatch;

static void tbatch_init(tbatch *b, tcol *cols, size_t n, int64_t length, int64_t offset) {
  memset(b, 0, sizeof *b);
  for (size_t i = 0; i < n; i++)
    b->kids[i] = &cols[i].array;
  b->top.length = length;
  b->top.offset = offset;
  b->top.n_buffers = 1;
  b->top.buffers = b->top_bufs;
  b->top.n_children = (int64_t)n;
  b->top.children = b->kids;
  b->top.release = release_array;
}

/* A stream over batches; get_next fails at batch fail_at (when >= 0). */
typedef struct tstream {
  struct ArrowSchema *children[MAX_COLS];
  size_t n_cols;
  tbatch *batches[MAX_BATCHES];
  int n_batches, next, fail_at, fail_schema;
  const char *fail_msg;
  int released;
} tstream;

static int ts_get_schema(struct ArrowArrayStream *st, struct ArrowSchema *out) {
  tstream *t = st->private_data;
  if (t->fail_schema)
    return EINVAL;
  memset(out, 0, sizeof *out);
  out->format = "+s";
  out->name = "";
  out->n_children = (int64_t)t->n_cols;
  out->children = t->children;
  out->release = release_schema;
  return 0;
}

static int ts_get_next(struct ArrowArrayStream *st, struct ArrowArray *out) {
  tstream *t = st->private_data;
  if (t->next == t->fail_at)
    return EIO;
  if (t->next >= t->n_batches) {
    memset(out, 0, sizeof *out);
    return 0;
  }
  *out = t->batches[t->next++]->top;
  return 0;
}

static const char *ts_last_error(struct ArrowArrayStream *st) {
  tstream *t = st->private_data;
  return t->fail_msg;
}

static void ts_release(struct ArrowArrayStream *st) {
  tstream *t = st->private_data;
  t->released++;
  st->release = NULL;
}

/* A stream over the given batches, whose schema is cols' schemas. */
static void ts_init(tstream *t, struct ArrowArrayStream *st, tcol *cols, size_t n_cols,
                    tbatch **batches, int n_batches) {
  memset(t, 0, sizeof *t);
  for (size_t i = 0; i < n_cols; i++)
    t->children[i] = &cols[i].schema;
  t->n_cols = n_cols;
  for (int i = 0; i < n_batches; i++)
    t->batches[i] = batches[i];
  t->n_batches = n_batches;
  t->fail_at = -1;
  memset(st, 0, sizeof *st);
  st->get_schema = ts_get_schema;
  st->get_next = ts_get_next;
  st->get_last_error = ts_last_error;
  st->release = ts_release;
  st->private_data = t;
}

/* ---- dumps -------------------------------------------------------------------------- */

/* Column j of b as "v|v|v": text as is, numbers with %.17g (I64 with 'i'), nulls "~",
   an absent column "-". */
static const char *dump_col(const myr__batch *b, size_t j) {
  static char out[4096];
  size_t o = 0;
  const myr__column *c = &b->columns[j];
  out[0] = '\0';
  if (c->kind == MYR__COL_ABSENT)
    return "-";
  for (size_t i = 0; i < b->n_rows && o + 64 < sizeof out; i++) {
    if (i)
      out[o++] = '|';
    if (!myr__batch_valid(c->validity, i)) {
      out[o++] = '~';
      continue;
    }
    int w = 0;
    if (c->kind == MYR__COL_TEXT)
      w = snprintf(out + o, sizeof out - o, "%.*s", (int)c->text_len[i],
                   c->text + c->text_off[i]);
    else if (c->kind == MYR__COL_F64)
      w = snprintf(out + o, sizeof out - o, "%.17g", c->f64[i]);
    else
      w = snprintf(out + o, sizeof out - o, "%lldi", (long long)c->i64[i]);
    o += (size_t)w;
  }
  out[o] = '\0';
  return out;
}

/* Open st, select every column with mode, read one batch. */
static const myr__batch *open_one(struct ArrowArrayStream *st, int mode,
                                  myr__arrow_source **src) {
  myr_error err = {0};
  assert_int_equal(myr__arrow_source_open(st, "t", src, &err), MYR_OK);
  assert_null(st->release); /* moved */
  unsigned char want[MAX_COLS];
  memset(want, mode, sizeof want);
  assert_int_equal(myr__arrow_source_select(*src, want, &err), MYR_OK);
  const myr__batch *b = NULL;
  int rc = myr__arrow_source_next(*src, &b, &err);
  if (rc != MYR_OK)
    fail_msg("next: %s", err.message);
  assert_non_null(b);
  return b;
}

/* ---- numbers ------------------------------------------------------------------------ */

static const int8_t I8[] = {-128, -1, 0, 127};
static const uint8_t U8[] = {0, 1, 200, 255};
static const int16_t I16[] = {-32768, -2, 3, 32767};
static const uint16_t U16[] = {0, 7, 40000, 65535};
static const int32_t I32[] = {INT32_MIN, -5, 6, INT32_MAX};
static const uint32_t U32[] = {0, 9, 3000000000u, UINT32_MAX};
static const int64_t I64[] = {INT64_MIN, -42, 42, INT64_MAX};
static const uint64_t U64[] = {0, 10, 9007199254740993ull, UINT64_MAX};
static const float F32[] = {0.1f, 1.0f, -2.5f, 1e-7f};
static const double F64[] = {0.1, 1.0, -1e300, 123456.789};
static const uint8_t BOOLS[] = {0x05}; /* 1, 0, 1, 0 */

static void number_cols(tcol *c) {
  tcol_init(&c[0], "i8", "c", 4, 0, 0, 2, NULL, I8, NULL);
  tcol_init(&c[1], "u8", "C", 4, 0, 0, 2, NULL, U8, NULL);
  tcol_init(&c[2], "i16", "s", 4, 0, 0, 2, NULL, I16, NULL);
  tcol_init(&c[3], "u16", "S", 4, 0, 0, 2, NULL, U16, NULL);
  tcol_init(&c[4], "i32", "i", 4, 0, 0, 2, NULL, I32, NULL);
  tcol_init(&c[5], "u32", "I", 4, 0, 0, 2, NULL, U32, NULL);
  tcol_init(&c[6], "i64", "l", 4, 0, 0, 2, NULL, I64, NULL);
  tcol_init(&c[7], "u64", "L", 4, 0, 0, 2, NULL, U64, NULL);
  tcol_init(&c[8], "f32", "f", 4, 0, 0, 2, NULL, F32, NULL);
  tcol_init(&c[9], "f64", "g", 4, 0, 0, 2, NULL, F64, NULL);
  tcol_init(&c[10], "b", "b", 4, 0, 0, 2, NULL, BOOLS, NULL);
}

static void test_numbers_as_values(void **state) {
  (void)state;
  tcol c[11];
  number_cols(c);
  tbatch b0;
  tbatch_init(&b0, c, 11, 4, 0);
  tbatch *bs[] = {&b0};
  tstream t;
  struct ArrowArrayStream st;
  ts_init(&t, &st, c, 11, bs, 1);
  myr__arrow_source *s = NULL;
  const myr__batch *b = open_one(&st, MYR__WANT_VALUE, &s);
  assert_int_equal(b->n_rows, 4);
  assert_int_equal(b->first_row, 0);
  assert_null(b->line);
  assert_null(b->skip);
  assert_string_equal(dump_col(b, 0), "-128|-1|0|127");
  assert_string_equal(dump_col(b, 1), "0|1|200|255");
  assert_string_equal(dump_col(b, 2), "-32768|-2|3|32767");
  assert_string_equal(dump_col(b, 3), "0|7|40000|65535");
  assert_string_equal(dump_col(b, 4), "-2147483648|-5|6|2147483647");
  assert_string_equal(dump_col(b, 5), "0|9|3000000000|4294967295");
  /* int64 in place, the others converted to float64 */
  assert_int_equal(b->columns[6].kind, MYR__COL_I64);
  assert_ptr_equal(b->columns[6].i64, I64);
  assert_string_equal(dump_col(b, 6),
                      "-9223372036854775808i|-42i|42i|9223372036854775807i");
  assert_string_equal(dump_col(b, 7), "0|10|9007199254740992|1.8446744073709552e+19");
  assert_string_equal(dump_col(b, 8), "0.10000000149011612|1|-2.5|1.0000000116860974e-07");
  /* float64 without a copy */
  assert_int_equal(b->columns[9].kind, MYR__COL_F64);
  assert_ptr_equal(b->columns[9].f64, F64);
  assert_string_equal(dump_col(b, 10), "1|0|1|0");
  const myr__batch *end = NULL;
  myr_error err = {0};
  assert_int_equal(myr__arrow_source_next(s, &end, &err), MYR_OK);
  assert_null(end);
  assert_int_equal(n_array_releases > 0, 1);
  myr__arrow_source_close(s);
  assert_int_equal(t.released, 1);
}

static void test_numbers_as_keys(void **state) {
  (void)state;
  tcol c[11];
  number_cols(c);
  tbatch b0;
  tbatch_init(&b0, c, 11, 4, 0);
  tbatch *bs[] = {&b0};
  tstream t;
  struct ArrowArrayStream st;
  ts_init(&t, &st, c, 11, bs, 1);
  myr__arrow_source *s = NULL;
  const myr__batch *b = open_one(&st, MYR__WANT_TEXT, &s);
  for (size_t j = 0; j < 11; j++)
    assert_int_equal(b->columns[j].kind, MYR__COL_TEXT);
  assert_string_equal(dump_col(b, 0), "-128|-1|0|127");
  assert_string_equal(dump_col(b, 1), "0|1|200|255");
  assert_string_equal(dump_col(b, 4), "-2147483648|-5|6|2147483647");
  assert_string_equal(dump_col(b, 5), "0|9|3000000000|4294967295");
  assert_string_equal(dump_col(b, 6), "-9223372036854775808|-42|42|9223372036854775807");
  assert_string_equal(dump_col(b, 7), "0|10|9007199254740993|18446744073709551615");
  /* floats as their shortest round-trip text, float32 as float32 */
  assert_string_equal(dump_col(b, 8), "0.1|1|-2.5|1e-07");
  assert_string_equal(dump_col(b, 9), "0.1|1|-1e+300|123456.789");
  assert_string_equal(dump_col(b, 10), "true|false|true|false");
  myr__arrow_source_close(s);
}

static void test_float_specials_as_keys(void **state) {
  (void)state;
  static const double v[] = {NAN, INFINITY, -INFINITY, -0.5};
  tcol c[1];
  tcol_init(&c[0], "f", "g", 4, 0, 0, 2, NULL, v, NULL);
  tbatch b0;
  tbatch_init(&b0, c, 1, 4, 0);
  tbatch *bs[] = {&b0};
  tstream t;
  struct ArrowArrayStream st;
  ts_init(&t, &st, c, 1, bs, 1);
  myr__arrow_source *s = NULL;
  const myr__batch *b = open_one(&st, MYR__WANT_TEXT, &s);
  /* NaN is a missing-value token, as an empty or "NaN" CSV cell */
  assert_string_equal(dump_col(b, 0), "NaN|inf|-inf|-0.5");
  myr__arrow_source_close(s);
}

/* ---- dates and timestamps ----------------------------------------------------------- */

static void test_dates_and_timestamps(void **state) {
  (void)state;
  static const int32_t d32[] = {0, 18628, -1, 11016, -719162, 2932896};
  static const int64_t d64[] = {0, 18628LL * 86400000, -86400000, 951782400000LL,
                                -86400000LL * 719162, 1};
  static const int64_t ts_s[] = {0, 1609459200, -1, 951827696, 86399, -62135596800LL};
  static const int64_t ts_ms[] = {1609459200500LL, 0, -1, 951827696007LL, 5, -999};
  static const int64_t ts_us[] = {1609459200000001LL, 0, -1, 1, 999999, -1000000};
  static const int64_t ts_ns[] = {1609459200000000001LL, 0, -1, INT64_MAX, INT64_MIN, 1};
  tcol c[7];
  tcol_init(&c[0], "d32", "tdD", 6, 0, 0, 2, NULL, d32, NULL);
  tcol_init(&c[1], "d64", "tdm", 6, 0, 0, 2, NULL, d64, NULL);
  tcol_init(&c[2], "ts", "tss:", 6, 0, 0, 2, NULL, ts_s, NULL);
  tcol_init(&c[3], "tsm", "tsm:", 6, 0, 0, 2, NULL, ts_ms, NULL);
  tcol_init(&c[4], "tsu", "tsu:", 6, 0, 0, 2, NULL, ts_us, NULL);
  tcol_init(&c[5], "tsn", "tsn:", 6, 0, 0, 2, NULL, ts_ns, NULL);
  tcol_init(&c[6], "tsz", "tss:Europe/Paris", 6, 0, 0, 2, NULL, ts_s, NULL);
  tbatch b0;
  tbatch_init(&b0, c, 7, 6, 0);
  tbatch *bs[] = {&b0};
  tstream t;
  struct ArrowArrayStream st;
  ts_init(&t, &st, c, 7, bs, 1);
  myr__arrow_source *s = NULL;
  const myr__batch *b = open_one(&st, MYR__WANT_TEXT, &s);
  assert_string_equal(dump_col(b, 0), "1970-01-01|2021-01-01|1969-12-31|2000-02-29|"
                                      "0001-01-01|9999-12-31");
  assert_string_equal(dump_col(b, 1), "1970-01-01|2021-01-01|1969-12-31|2000-02-29|"
                                      "0001-01-01|1970-01-01");
  assert_string_equal(dump_col(b, 2),
                      "1970-01-01 00:00:00|2021-01-01 00:00:00|1969-12-31 23:59:59|"
                      "2000-02-29 12:34:56|1970-01-01 23:59:59|0001-01-01 00:00:00");
  assert_string_equal(dump_col(b, 3),
                      "2021-01-01 00:00:00.500|1970-01-01 00:00:00.000|"
                      "1969-12-31 23:59:59.999|2000-02-29 12:34:56.007|"
                      "1970-01-01 00:00:00.005|1969-12-31 23:59:59.001");
  assert_string_equal(dump_col(b, 4),
                      "2021-01-01 00:00:00.000001|1970-01-01 00:00:00.000000|"
                      "1969-12-31 23:59:59.999999|1970-01-01 00:00:00.000001|"
                      "1970-01-01 00:00:00.999999|1969-12-31 23:59:59.000000");
  assert_string_equal(dump_col(b, 5),
                      "2021-01-01 00:00:00.000000001|1970-01-01 00:00:00.000000000|"
                      "1969-12-31 23:59:59.999999999|2262-04-11 23:47:16.854775807|"
                      "1677-09-21 00:12:43.145224192|1970-01-01 00:00:00.000000001");
  /* a time zone: the UTC time with a 'Z', as pyarrow writes UTC timestamps */
  assert_string_equal(dump_col(b, 6),
                      "1970-01-01 00:00:00Z|2021-01-01 00:00:00Z|1969-12-31 23:59:59Z|"
                      "2000-02-29 12:34:56Z|1970-01-01 23:59:59Z|0001-01-01 00:00:00Z");
  myr__arrow_source_close(s);

  /* as values: days, and the unit's count */
  ts_init(&t, &st, c, 7, bs, 1);
  b = open_one(&st, MYR__WANT_VALUE, &s);
  assert_string_equal(dump_col(b, 0), "0|18628|-1|11016|-719162|2932896");
  assert_string_equal(dump_col(b, 1), "0|18628|-1|11016|-719162|0");
  assert_string_equal(dump_col(b, 2), "0|1609459200|-1|951827696|86399|-62135596800");
  assert_string_equal(dump_col(b, 3), "1609459200500|0|-1|951827696007|5|-999");
  myr__arrow_source_close(s);

  /* times (as pyarrow's CSV writer: HH:MM:SS[.fff]), durations and the null type */
  static const int32_t t_s[] = {0, 3723, 86399, 1, 2, 3};
  static const int32_t t_ms[] = {0, 3723004, 1, 2, 3, 4};
  static const int64_t t_us[] = {0, 3723000005LL, 1, 2, 3, 4};
  static const int64_t t_ns[] = {0, 3723000000006LL, 1, 2, 3, 4};
  static const int64_t du[] = {1, -2, 3, 0, INT64_MIN, INT64_MAX};
  tcol_init(&c[0], "t32s", "tts", 6, 0, 0, 2, NULL, t_s, NULL);
  tcol_init(&c[1], "t32ms", "ttm", 6, 0, 0, 2, NULL, t_ms, NULL);
  tcol_init(&c[2], "t64us", "ttu", 6, 0, 0, 2, NULL, t_us, NULL);
  tcol_init(&c[3], "t64ns", "ttn", 6, 0, 0, 2, NULL, t_ns, NULL);
  tcol_init(&c[4], "du", "tDm", 6, 0, 0, 2, NULL, du, NULL);
  tcol_init(&c[5], "nothing", "n", 6, 0, 6, 0, NULL, NULL, NULL);
  c[5].array.buffers = NULL;
  tbatch_init(&b0, c, 6, 6, 0);
  ts_init(&t, &st, c, 6, bs, 1);
  b = open_one(&st, MYR__WANT_TEXT, &s);
  assert_string_equal(dump_col(b, 0), "00:00:00|01:02:03|23:59:59|00:00:01|00:00:02|00:00:03");
  assert_string_equal(dump_col(b, 1), "00:00:00.000|01:02:03.004|00:00:00.001|00:00:00.002|"
                                      "00:00:00.003|00:00:00.004");
  assert_string_equal(dump_col(b, 2), "00:00:00.000000|01:02:03.000005|00:00:00.000001|"
                                      "00:00:00.000002|00:00:00.000003|00:00:00.000004");
  assert_string_equal(dump_col(b, 3), "00:00:00.000000000|01:02:03.000000006|"
                                      "00:00:00.000000001|00:00:00.000000002|"
                                      "00:00:00.000000003|00:00:00.000000004");
  assert_string_equal(dump_col(b, 4),
                      "1|-2|3|0|-9223372036854775808|9223372036854775807");
  assert_string_equal(dump_col(b, 5), "~|~|~|~|~|~");
  myr__arrow_source_close(s);
  ts_init(&t, &st, c, 6, bs, 1);
  b = open_one(&st, MYR__WANT_VALUE, &s);
  assert_string_equal(dump_col(b, 1), "0|3723004|1|2|3|4");
  assert_string_equal(dump_col(b, 3), "0|3723000000006|1|2|3|4");
  assert_string_equal(dump_col(b, 4), "1|-2|3|0|-9.2233720368547758e+18|"
                                      "9.2233720368547758e+18");
  assert_string_equal(dump_col(b, 5), "~|~|~|~|~|~");
  myr__arrow_source_close(s);
}

/* ---- nulls and offsets -------------------------------------------------------------- */

static void test_nulls_and_offsets(void **state) {
  (void)state;
  /* 12 values; the batch is rows [2, 10) of a struct with offset 2, and each child has
     its own offset too: child row i is buffer index child.offset + 2 + i. */
  static const double f[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14};
  static const int32_t n32[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14};
  /* validity of f: buffer indexes 5 and 9 null (bits over 2 bytes) */
  static const uint8_t fv[] = {0xdf, 0xfd};
  /* strings: 15 values "s0".."s14", null at index 4 */
  static const int32_t so[] = {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 23, 26, 29, 32, 35};
  static const char sd[] = "s0s1s2s3s4s5s6s7s8s9s10s11s12s13s14";
  static const uint8_t sv[] = {0xef, 0xff};
  static const int64_t lo[] = {0, 1, 1, 3, 6, 10, 15, 21, 28, 36};
  static const char ld[] = "abbcccddddeeeeeffffffggggggghhhhhhhh";
  tcol c[4];
  tcol_init(&c[0], "f", "g", 13, 1, 2, 2, fv, f, NULL);   /* rows 0..7 = idx 3..10 */
  tcol_init(&c[1], "n", "i", 12, 0, 0, 2, NULL, n32, NULL); /* idx 2..9 */
  tcol_init(&c[2], "s", "u", 15, 2, 1, 3, sv, so, sd);     /* idx 4..11 */
  tcol_init(&c[3], "L", "U", 9, 0, 0, 3, NULL, lo, ld);    /* not in this batch */
  tbatch b0;
  tbatch_init(&b0, c, 3, 8, 2);
  tbatch *bs[] = {&b0};
  tstream t;
  struct ArrowArrayStream st;
  ts_init(&t, &st, c, 3, bs, 1);
  myr__arrow_source *s = NULL;
  const myr__batch *b = open_one(&st, MYR__WANT_VALUE, &s);
  assert_int_equal(b->n_rows, 8);
  /* f: buffer 3..10 with 5 and 9 null; the bitmap starts at bit 3: shifted */
  assert_string_equal(dump_col(b, 0), "3|4|~|6|7|8|~|10");
  assert_ptr_equal(b->columns[0].f64, f + 3);
  assert_string_equal(dump_col(b, 1), "2|3|4|5|6|7|8|9");
  assert_string_equal(dump_col(b, 2), "~|s5|s6|s7|s8|s9|s10|s11");
  myr__arrow_source_close(s);

  /* large_utf8, as keys, and a child offset on a byte boundary (bitmap in place) */
  static const uint8_t lv[] = {0xff, 0xfe}; /* index 8 null */
  tcol_init(&c[3], "L", "U", 9, 0, 1, 3, lv, lo, ld);
  tcol_init(&c[0], "f", "g", 16, 8, 1, 2, fv, f, NULL); /* rows 0..5 = idx 8..13 */
  tbatch_init(&b0, c, 4, 6, 0);
  c[3].array.offset = 3;  /* idx 3..8 */
  c[1].array.offset = 6;  /* idx 6..11 */
  c[2].array.offset = 0;  /* idx 0..5 */
  ts_init(&t, &st, c, 4, bs, 1);
  b = open_one(&st, MYR__WANT_TEXT, &s);
  assert_string_equal(dump_col(b, 3), "ccc|dddd|eeeee|ffffff|ggggggg|~");
  assert_string_equal(dump_col(b, 1), "6|7|8|9|10|11");
  assert_string_equal(dump_col(b, 2), "s0|s1|s2|s3|~|s5");
  assert_ptr_equal(b->columns[0].validity, fv + 1); /* used in place */
  assert_string_equal(dump_col(b, 0), "8|~|10|11|12|13");
  myr__arrow_source_close(s);
}

static void test_struct_nulls(void **state) {
  (void)state;
  static const double f[] = {1, 2, 3, 4, 5};
  static const uint8_t fv[] = {0x1d}; /* row 1 null */
  static const uint8_t top[] = {0x1b}; /* row 2 null at the struct level */
  tcol c[1];
  tcol_init(&c[0], "f", "g", 5, 0, 1, 2, fv, f, NULL);
  tbatch b0;
  tbatch_init(&b0, c, 1, 5, 0);
  b0.top_bufs[0] = top;
  b0.top.null_count = 1;
  tbatch *bs[] = {&b0};
  tstream t;
  struct ArrowArrayStream st;
  ts_init(&t, &st, c, 1, bs, 1);
  myr__arrow_source *s = NULL;
  const myr__batch *b = open_one(&st, MYR__WANT_VALUE, &s);
  assert_string_equal(dump_col(b, 0), "1|~|~|4|5");
  myr__arrow_source_close(s);
}

/* ---- dictionaries and views --------------------------------------------------------- */

static void test_dictionary(void **state) {
  (void)state;
  static const int32_t doff[] = {0, 3, 6, 8, 8};
  static const char ddata[] = "appapiqqX";
  static const int64_t loff[] = {0, 1, 3, 6};
  static const char ldata[] = "abbccc";
  static const uint8_t dv[] = {0x07}; /* entry 3 ("" ) null */
  static const int8_t idx8[] = {0, 1, 2, 3, 0, 2};
  static const uint8_t iv[] = {0x3d}; /* row 1 null (index garbage allowed) */
  static const uint64_t idx64[] = {2, 1, 0, 0, 1, 2};
  static const int16_t idx16[] = {1, 1, 0, 0, 0, 0};
  tcol c[3];
  tcol_init(&c[0], "k", "c", 6, 0, 1, 2, iv, idx8, NULL);
  tcol_dict(&c[0], "u", 4, 0, dv, 1, doff, ddata);
  tcol_init(&c[1], "L", "L", 6, 0, 0, 2, NULL, idx64, NULL);
  tcol_dict(&c[1], "U", 3, 0, NULL, 0, loff, ldata);
  /* a sliced dictionary: offset 1 → "api", "qq", "" */
  tcol_init(&c[2], "s", "s", 6, 0, 0, 2, NULL, idx16, NULL);
  tcol_dict(&c[2], "z", 3, 1, NULL, 0, doff, ddata);
  tbatch b0;
  tbatch_init(&b0, c, 3, 6, 0);
  tbatch *bs[] = {&b0};
  tstream t;
  struct ArrowArrayStream st;
  ts_init(&t, &st, c, 3, bs, 1);
  myr__arrow_source *s = NULL;
  const myr__batch *b = open_one(&st, MYR__WANT_TEXT, &s);
  assert_string_equal(dump_col(b, 0), "app|~|qq|~|app|qq");
  assert_ptr_equal(b->columns[0].text, ddata); /* views of the dictionary's bytes */
  assert_string_equal(dump_col(b, 1), "ccc|bb|a|a|bb|ccc");
  assert_string_equal(dump_col(b, 2), "qq|qq|api|api|api|api");
  myr__arrow_source_close(s);

  /* an index out of range is refused */
  static const int8_t bad[] = {0, 1, 4, 0, 0, 0};
  tcol_init(&c[0], "k", "c", 6, 0, 0, 2, NULL, bad, NULL);
  tcol_dict(&c[0], "u", 4, 0, NULL, 0, doff, ddata);
  ts_init(&t, &st, c, 1, bs, 1);
  tbatch_init(&b0, c, 1, 6, 0);
  myr_error err = {0};
  assert_int_equal(myr__arrow_source_open(&st, "t.arrow", &s, &err), MYR_OK);
  const myr__batch *bb = NULL;
  assert_int_equal(myr__arrow_source_next(s, &bb, &err), MYR_EPARSE);
  assert_non_null(strstr(err.message, "column 'k'"));
  assert_non_null(strstr(err.message, "dictionary index 4 is outside [0, 4)"));
  assert_non_null(strstr(err.message, "row 3"));
  /* and the reader stays stopped */
  assert_int_equal(myr__arrow_source_next(s, &bb, &err), MYR_EPARSE);
  myr__arrow_source_close(s);

  /* dictionaries of numbers are not read */
  static const int32_t nums[] = {1, 2};
  tcol_init(&c[0], "k", "c", 6, 0, 0, 2, NULL, idx8, NULL);
  tcol_dict(&c[0], "i", 2, 0, NULL, 0, nums, NULL);
  ts_init(&t, &st, c, 1, bs, 1);
  assert_int_equal(myr__arrow_source_open(&st, "t.arrow", &s, &err), MYR_OK);
  unsigned char want[] = {MYR__WANT_TEXT};
  assert_int_equal(myr__arrow_source_select(s, want, &err), MYR_EUNSUPPORTED);
  assert_non_null(strstr(err.message, "column 'k'"));
  assert_non_null(strstr(err.message, "values of format 'i'"));
  myr__arrow_source_close(s);
}

static void put_view(uint8_t *v, const char *s, int32_t buf, int32_t off) {
  int32_t len = (int32_t)strlen(s);
  memset(v, 0, 16);
  memcpy(v, &len, 4);
  if (len <= 12) {
    memcpy(v + 4, s, (size_t)len);
  } else {
    memcpy(v + 4, s, 4);
    memcpy(v + 8, &buf, 4);
    memcpy(v + 12, &off, 4);
  }
}

static void test_string_views(void **state) {
  (void)state;
  static const char d0[] = "xxa string longer than twelve";
  static const char d1[] = "another long string value";
  static int64_t sizes[] = {sizeof d0 - 1, sizeof d1 - 1};
  uint8_t views[4 * 16];
  put_view(views, "short", 0, 0);
  put_view(views + 16, "a string longer than twelve", 0, 2);
  put_view(views + 32, "", 0, 0);
  put_view(views + 48, "another long string value", 1, 0);
  static const uint8_t valid[] = {0x0b}; /* row 2 null */
  tcol c[1];
  tcol_init(&c[0], "v", "vu", 4, 0, 1, 5, valid, views, d0);
  c[0].bufs[3] = d1;
  c[0].bufs[4] = sizes;
  tbatch b0;
  tbatch_init(&b0, c, 1, 4, 0);
  tbatch *bs[] = {&b0};
  tstream t;
  struct ArrowArrayStream st;
  ts_init(&t, &st, c, 1, bs, 1);
  myr__arrow_source *s = NULL;
  const myr__batch *b = open_one(&st, MYR__WANT_VALUE, &s);
  assert_string_equal(dump_col(b, 0),
                      "short|a string longer than twelve|~|another long string value");
  myr__arrow_source_close(s);

  /* a view past the end of its buffer is refused */
  sizes[1] = 10;
  ts_init(&t, &st, c, 1, bs, 1);
  myr_error err = {0};
  assert_int_equal(myr__arrow_source_open(&st, "v", &s, &err), MYR_OK);
  assert_int_equal(myr__arrow_source_next(s, &b, &err), MYR_EPARSE);
  assert_non_null(strstr(err.message, "outside its data buffer"));
  assert_non_null(strstr(err.message, "row 4"));
  myr__arrow_source_close(s);
  sizes[1] = sizeof d1 - 1;
}

/* ---- malformed input ---------------------------------------------------------------- */

static void test_bad_offsets(void **state) {
  (void)state;
  static const int32_t dec[] = {0, 2, 5, 4, 6};
  static const int32_t neg[] = {-1, 2, 3};
  static const char data[] = "abcdefgh";
  tcol c[1];
  tcol_init(&c[0], "name", "u", 4, 0, 0, 3, NULL, dec, data);
  tbatch b0;
  tbatch_init(&b0, c, 1, 4, 0);
  tbatch *bs[] = {&b0};
  tstream t;
  struct ArrowArrayStream st;
  ts_init(&t, &st, c, 1, bs, 1);
  myr__arrow_source *s = NULL;
  myr_error err = {0};
  const myr__batch *b = NULL;
  assert_int_equal(myr__arrow_source_open(&st, "in.arrow", &s, &err), MYR_OK);
  assert_int_equal(myr__arrow_source_next(s, &b, &err), MYR_EPARSE);
  assert_string_equal(err.message, "in.arrow: column 'name' (Arrow format 'u'), record "
                                   "batch 1, row 3: value offsets decrease");
  myr__arrow_source_close(s);

  tcol_init(&c[0], "name", "u", 2, 0, 0, 3, NULL, neg, data);
  tbatch_init(&b0, c, 1, 2, 0);
  ts_init(&t, &st, c, 1, bs, 1);
  assert_int_equal(myr__arrow_source_open(&st, "in.arrow", &s, &err), MYR_OK);
  assert_int_equal(myr__arrow_source_next(s, &b, &err), MYR_EPARSE);
  assert_non_null(strstr(err.message, "negative value offset"));
  myr__arrow_source_close(s);

  /* a child shorter than its record batch, a missing values buffer, wrong buffers */
  static const double f[] = {1, 2, 3};
  tcol_init(&c[0], "f", "g", 2, 0, 0, 2, NULL, f, NULL);
  tbatch_init(&b0, c, 1, 3, 0);
  ts_init(&t, &st, c, 1, bs, 1);
  assert_int_equal(myr__arrow_source_open(&st, "in.arrow", &s, &err), MYR_OK);
  assert_int_equal(myr__arrow_source_next(s, &b, &err), MYR_EPARSE);
  assert_non_null(strstr(err.message, "shorter than its record batch"));
  myr__arrow_source_close(s);
  tcol_init(&c[0], "f", "g", 3, 0, 0, 2, NULL, NULL, NULL);
  tbatch_init(&b0, c, 1, 3, 0);
  ts_init(&t, &st, c, 1, bs, 1);
  assert_int_equal(myr__arrow_source_open(&st, "in.arrow", &s, &err), MYR_OK);
  assert_int_equal(myr__arrow_source_next(s, &b, &err), MYR_EPARSE);
  assert_non_null(strstr(err.message, "values buffer is NULL"));
  myr__arrow_source_close(s);
  tcol_init(&c[0], "f", "g", 3, 0, 0, 3, NULL, f, NULL);
  tbatch_init(&b0, c, 1, 3, 0);
  ts_init(&t, &st, c, 1, bs, 1);
  assert_int_equal(myr__arrow_source_open(&st, "in.arrow", &s, &err), MYR_OK);
  assert_int_equal(myr__arrow_source_next(s, &b, &err), MYR_EPARSE);
  assert_non_null(strstr(err.message, "malformed"));
  myr__arrow_source_close(s);
  /* a batch whose column count differs from the schema's */
  tcol_init(&c[0], "f", "g", 3, 0, 0, 2, NULL, f, NULL);
  tbatch_init(&b0, c, 1, 3, 0);
  b0.top.n_children = 0;
  ts_init(&t, &st, c, 1, bs, 1);
  assert_int_equal(myr__arrow_source_open(&st, "in.arrow", &s, &err), MYR_OK);
  assert_int_equal(myr__arrow_source_next(s, &b, &err), MYR_EPARSE);
  assert_non_null(strstr(err.message, "record batch 1 is malformed: 0 columns"));
  myr__arrow_source_close(s);
}

static void test_unsupported_type(void **state) {
  (void)state;
  static const double f[] = {1, 2};
  static const int32_t lo[] = {0, 1, 2};
  tcol c[2];
  tcol_init(&c[0], "tags", "+l", 2, 0, 0, 2, NULL, lo, NULL);
  tcol_init(&c[1], "f", "g", 2, 0, 0, 2, NULL, f, NULL);
  tbatch b0;
  tbatch_init(&b0, c, 2, 2, 0);
  tbatch *bs[] = {&b0};
  tstream t;
  struct ArrowArrayStream st;
  ts_init(&t, &st, c, 2, bs, 1);
  myr__arrow_source *s = NULL;
  myr_error err = {0};
  assert_int_equal(myr__arrow_source_open(&st, "in.arrow", &s, &err), MYR_OK);
  assert_string_equal(myr__arrow_source_column_format(s, 0), "+l");
  unsigned char want[] = {MYR__WANT_VALUE, MYR__WANT_VALUE};
  assert_int_equal(myr__arrow_source_select(s, want, &err), MYR_EUNSUPPORTED);
  assert_non_null(strstr(err.message, "in.arrow: column 'tags' has Arrow format '+l'"));
  /* probed, it is simply absent */
  unsigned char probe[] = {MYR__WANT_PROBE, MYR__WANT_VALUE};
  assert_int_equal(myr__arrow_source_select(s, probe, &err), MYR_OK);
  const myr__batch *b = NULL;
  assert_int_equal(myr__arrow_source_next(s, &b, &err), MYR_OK);
  assert_string_equal(dump_col(b, 0), "-");
  assert_string_equal(dump_col(b, 1), "1|2");
  myr__arrow_source_close(s);

  /* a stream whose get_schema fails */
  ts_init(&t, &st, c, 2, bs, 1);
  t.fail_schema = 1;
  t.fail_msg = "schema exploded";
  assert_int_equal(myr__arrow_source_open(&st, "in.arrow", &s, &err), MYR_EIO);
  assert_null(s);
  assert_string_equal(err.message, "in.arrow: reading the schema failed: schema exploded");
  assert_int_equal(t.released, 1); /* released although the open failed */
  assert_null(st.release);
}

/* ---- streams ------------------------------------------------------------------------ */

static void test_stream_fails_half_way(void **state) {
  (void)state;
  static const double f[] = {1, 2, 3};
  tcol c[1];
  tcol_init(&c[0], "f", "g", 3, 0, 0, 2, NULL, f, NULL);
  tbatch b0, b1;
  tbatch_init(&b0, c, 1, 3, 0);
  tbatch_init(&b1, c, 1, 0, 0); /* an empty batch is skipped */
  tbatch *bs[] = {&b0, &b1, &b0, &b0};
  tstream t;
  struct ArrowArrayStream st;
  ts_init(&t, &st, c, 1, bs, 4);
  t.fail_at = 3;
  t.fail_msg = "Invalid: the producer lost its connection";
  myr__arrow_source *s = NULL;
  myr_error err = {0};
  int released = n_array_releases;
  assert_int_equal(myr__arrow_source_open(&st, "remote", &s, &err), MYR_OK);
  const myr__batch *b = NULL;
  assert_int_equal(myr__arrow_source_next(s, &b, &err), MYR_OK);
  assert_int_equal(b->first_row, 0);
  assert_int_equal(myr__arrow_source_next(s, &b, &err), MYR_OK);
  assert_int_equal(b->first_row, 3); /* the empty batch was skipped */
  assert_int_equal(myr__arrow_source_next(s, &b, &err), MYR_EIO);
  assert_string_equal(err.message, "remote: reading record batch 4 failed: Invalid: the "
                                   "producer lost its connection");
  myr__arrow_source_close(s);
  assert_int_equal(n_array_releases - released, 3); /* every batch received, once */
  assert_int_equal(t.released, 1);

  /* no message from the producer: errno text */
  ts_init(&t, &st, c, 1, bs, 4);
  t.fail_at = 0;
  assert_int_equal(myr__arrow_source_open(&st, "remote", &s, &err), MYR_OK);
  assert_int_equal(myr__arrow_source_next(s, &b, &err), MYR_EIO);
  assert_non_null(strstr(err.message, "reading record batch 1 failed: "));
  assert_non_null(strstr(err.message, "(errno 5)"));
  myr__arrow_source_close(s);

  /* a released stream is refused */
  st.release = NULL;
  assert_int_equal(myr__arrow_source_open(&st, "x", &s, &err), MYR_EINVAL);
}

static void test_windows(void **state) {
  (void)state;
  const size_t n = 150000;
  double *f = malloc(n * sizeof *f);
  uint8_t *v = malloc(n / 8 + 1);
  assert_non_null(f);
  assert_non_null(v);
  for (size_t i = 0; i < n; i++)
    f[i] = (double)i;
  memset(v, 0xff, n / 8 + 1);
  v[70000 / 8] &= (uint8_t) ~(1u << (70000 % 8)); /* index 70000 null */
  tcol c[1];
  tcol_init(&c[0], "f", "g", (int64_t)n, 0, 1, 2, v, f, NULL);
  tbatch b0;
  tbatch_init(&b0, c, 1, (int64_t)n - 3, 3); /* rows 3.. */
  tbatch *bs[] = {&b0};
  tstream t;
  struct ArrowArrayStream st;
  ts_init(&t, &st, c, 1, bs, 1);
  myr__arrow_source *s = NULL;
  myr_error err = {0};
  assert_int_equal(myr__arrow_source_open(&st, "big", &s, &err), MYR_OK);
  const myr__batch *b = NULL;
  size_t rows = 0, batches = 0, nulls = 0;
  while (myr__arrow_source_next(s, &b, &err) == MYR_OK && b) {
    assert_true(b->n_rows <= 65536);
    assert_int_equal(b->first_row, rows);
    for (size_t i = 0; i < b->n_rows; i++) {
      if (!myr__batch_valid(b->columns[0].validity, i)) {
        nulls++;
        assert_int_equal(rows + i + 3, 70000);
        continue;
      }
      assert_true(b->columns[0].f64[i] == (double)(rows + i + 3));
    }
    rows += b->n_rows;
    batches++;
  }
  assert_null(b);
  assert_int_equal(rows, n - 3);
  assert_int_equal(batches, 3);
  assert_int_equal(nulls, 1);
  myr__arrow_source_close(s);
  free(f);
  free(v);
}

static void test_alloc_failures(void **state) {
  (void)state;
  static const int32_t so[] = {0, 1, 2, 3};
  static const char sd[] = "abc";
  static const int64_t k[] = {1, 2, 3};
  static const float f[] = {1, 2, 3};
  tcol c[3];
  tcol_init(&c[0], "s", "u", 3, 0, 0, 3, NULL, so, sd);
  tcol_init(&c[1], "k", "l", 3, 0, 0, 2, NULL, k, NULL);
  tcol_init(&c[2], "f", "f", 3, 0, 0, 2, NULL, f, NULL);
  tbatch b0;
  tbatch_init(&b0, c, 3, 3, 0);
  tbatch *bs[] = {&b0, &b0};
  long live = tu_alloc_live();
  for (long n = 1;; n++) {
    tstream t;
    struct ArrowArrayStream st;
    ts_init(&t, &st, c, 3, bs, 2);
    myr_error err = {0};
    myr__source *s = NULL;
    tu_alloc_fail_at(n, 0);
    int rc = myr__source_open_stream(&st, "t", &s, &err);
    unsigned char want[] = {MYR__WANT_TEXT, MYR__WANT_TEXT, MYR__WANT_VALUE};
    if (rc == MYR_OK)
      rc = myr__source_select(s, want, &err);
    const myr__batch *b = NULL;
    size_t rows = 0;
    while (rc == MYR_OK && (rc = myr__source_next(s, &b, &err)) == MYR_OK && b)
      rows += b->n_rows;
    myr__source_close(s);
    int failed = tu_alloc_failed();
    tu_alloc_fail_at(0, 0);
    assert_int_equal(tu_alloc_live(), live);
    assert_int_equal(t.released, 1); /* released on every path */
    if (!failed) {
      assert_int_equal(rc, MYR_OK);
      assert_int_equal(rows, 6);
      assert_true(n > 3);
      break;
    }
    assert_int_equal(rc, MYR_ENOMEM);
  }
}

/* ---- the engine through streams ----------------------------------------------------- */

/* 3 groups x 8 rows: key k (int64 1..3), f0, f1 (float64), y; row 5 has a null f1 and
   row 9 a null key. The same data as CSV: empty cells for the nulls. */
#define ENG_ROWS 24
static int64_t eng_k[ENG_ROWS];
static double eng_f0[ENG_ROWS], eng_f1[ENG_ROWS], eng_y[ENG_ROWS];
static uint8_t eng_kv[ENG_ROWS / 8], eng_fv[ENG_ROWS / 8];
static char eng_csv[4096];

static void eng_data(void) {
  size_t o = (size_t)snprintf(eng_csv, sizeof eng_csv, "k,f0,f1,y\n");
  memset(eng_kv, 0xff, sizeof eng_kv);
  memset(eng_fv, 0xff, sizeof eng_fv);
  eng_fv[4 / 8] &= (uint8_t) ~(1u << 4);
  eng_kv[8 / 8] &= (uint8_t) ~(1u << 0);
  for (int i = 0; i < ENG_ROWS; i++) {
    eng_k[i] = i % 3 + 1;
    eng_f0[i] = 0.25 * i - 1;
    eng_f1[i] = (i * 7 % 11) / 4.0;
    eng_y[i] = 2 * eng_f0[i] - eng_f1[i] + 0.125 * (i % 5) + (double)eng_k[i];
    char k[24] = "", f1[32] = "";
    if (i != 8)
      snprintf(k, sizeof k, "%lld", (long long)eng_k[i]);
    if (i != 4)
      snprintf(f1, sizeof f1, "%.17g", eng_f1[i]);
    o += (size_t)snprintf(eng_csv + o, sizeof eng_csv - o, "%s,%.17g,%s,%.17g\n", k,
                          eng_f0[i], f1, eng_y[i]);
  }
}

typedef struct eng_stream {
  tcol c[4];
  tbatch b0, b1;
  tbatch *bs[2];
  tstream t;
  struct ArrowArrayStream st;
} eng_stream;

/* The data as two record batches (rows 0..9 and 10..23, the second sliced). */
static void eng_stream_init(eng_stream *e) {
  tcol_init(&e->c[0], "k", "l", ENG_ROWS, 0, 1, 2, eng_kv, eng_k, NULL);
  tcol_init(&e->c[1], "f0", "g", ENG_ROWS, 0, 0, 2, NULL, eng_f0, NULL);
  tcol_init(&e->c[2], "f1", "g", ENG_ROWS, 0, 1, 2, eng_fv, eng_f1, NULL);
  tcol_init(&e->c[3], "y", "g", ENG_ROWS, 0, 0, 2, NULL, eng_y, NULL);
  tbatch_init(&e->b0, e->c, 4, 10, 0);
  tbatch_init(&e->b1, e->c, 4, ENG_ROWS - 10, 10);
  e->bs[0] = &e->b0;
  e->bs[1] = &e->b1;
  ts_init(&e->t, &e->st, e->c, 4, e->bs, 2);
}

static const char *ENG_KEYS[] = {"k"};

/* Read every (key, blob) of a results stream, in order, into out ("k=blobhex;..."). */
static void results_dump(struct ArrowArrayStream *st, char *out, size_t cap,
                         size_t *rows_out) {
  struct ArrowSchema sc;
  assert_int_equal(st->get_schema(st, &sc), 0);
  assert_int_equal(sc.n_children, 7);
  static const char *names[] = {"k", "model", "n_rows", "metrics", "status", "error",
                                "features"};
  static const char *formats[] = {"u", "z", "l", "u", "u", "u", "u"};
  for (int i = 0; i < 7; i++) {
    assert_string_equal(sc.children[i]->name, names[i]);
    assert_string_equal(sc.children[i]->format, formats[i]);
  }
  sc.release(&sc);
  size_t o = 0, rows = 0;
  out[0] = '\0';
  for (;;) {
    struct ArrowArray a;
    assert_int_equal(st->get_next(st, &a), 0);
    if (!a.release)
      break;
    const struct ArrowArray *k = a.children[0], *m = a.children[1], *nr = a.children[2];
    const struct ArrowArray *stt = a.children[4], *fe = a.children[6];
    for (int64_t i = 0; i < a.length; i++) {
      const int32_t *ko = k->buffers[1], *mo = m->buffers[1], *so = stt->buffers[1];
      const int32_t *fo = fe->buffers[1];
      o += (size_t)snprintf(out + o, cap - o, "%.*s:%lld:%.*s:%.*s=",
                            (int)(ko[i + 1] - ko[i]), (const char *)k->buffers[2] + ko[i],
                            (long long)((const int64_t *)nr->buffers[1])[i],
                            (int)(so[i + 1] - so[i]), (const char *)stt->buffers[2] + so[i],
                            (int)(fo[i + 1] - fo[i]), (const char *)fe->buffers[2] + fo[i]);
      const uint8_t *mb = (const uint8_t *)m->buffers[2] + mo[i];
      for (int32_t j = 0; j < mo[i + 1] - mo[i] && o + 3 < cap; j++)
        o += (size_t)snprintf(out + o, cap - o, "%02x", mb[j]);
      o += (size_t)snprintf(out + o, cap - o, ";");
      rows++;
    }
    a.release(&a);
  }
  st->release(st);
  *rows_out = rows;
}

static void test_train_from_stream(void **state) {
  (void)state;
  eng_data();
  char path[512], store[512];
  tu_write_file(path, sizeof path, "eng.csv", eng_csv, strlen(eng_csv));
  tu_path(store, sizeof store, "eng.db");
  remove(store);

  /* CSV, with results */
  static char csv_dump[16384], arrow_dump[16384];
  myr_train_options o;
  memset(&o, 0, sizeof o);
  o.input = path;
  o.keys = ENG_KEYS;
  o.n_keys = 1;
  o.label = "y";
  o.n_threads = 2;
  o.store = store;
  struct ArrowArrayStream res;
  o.results = &res;
  myr_train_summary s1, s2;
  myr_error err = {0};
  assert_int_equal(myr_train(&o, &s1, &err), MYR_OK);
  size_t rows1, rows2;
  results_dump(&res, csv_dump, sizeof csv_dump, &rows1);
  assert_int_equal(rows1, 3);

  /* the same data as an Arrow stream, without a store */
  eng_stream e;
  eng_stream_init(&e);
  o.input = NULL;
  o.store = NULL;
  o.stream = &e.st;
  assert_int_equal(myr_train(&o, &s2, &err), MYR_OK);
  assert_null(e.st.release);
  assert_int_equal(e.t.released, 1);
  results_dump(&res, arrow_dump, sizeof arrow_dump, &rows2);
  assert_string_equal(csv_dump, arrow_dump); /* byte-identical models */
  assert_non_null(strstr(arrow_dump, "1:8:trained:[\"f0\",\"f1\"]="));
  assert_non_null(strstr(arrow_dump, ";2:7:trained:"));
  assert_non_null(strstr(arrow_dump, ";3:7:trained:"));
  assert_true(strstr(arrow_dump, "1:") < strstr(arrow_dump, "2:")); /* first-row order */
  assert_int_equal(s1.rows_total, s2.rows_total);
  assert_int_equal(s2.rows_total, ENG_ROWS);
  assert_int_equal(s2.skipped[MYR_SKIP_MISSING_KEY], 1);
  assert_int_equal(s2.skip_example[MYR_SKIP_MISSING_KEY].row, 9);
  assert_int_equal(s2.skip_example[MYR_SKIP_MISSING_KEY].line, 0);
  assert_string_equal(s2.skip_example[MYR_SKIP_MISSING_KEY].column, "k");
  assert_int_equal(s2.skipped[MYR_SKIP_MISSING_FEATURE], 1);
  assert_int_equal(s2.skip_example[MYR_SKIP_MISSING_FEATURE].row, 5);
  assert_string_equal(s2.skip_example[MYR_SKIP_MISSING_FEATURE].column, "f1");
  assert_int_equal(s1.skipped[MYR_SKIP_MISSING_FEATURE], 1);
  assert_int_equal(s1.skip_example[MYR_SKIP_MISSING_FEATURE].row, 5);

  /* a failed group in the results: null model, its failure and message */
  eng_stream_init(&e);
  o.stream = &e.st;
  o.min_rows = 8;
  assert_int_equal(myr_train(&o, &s2, &err), MYR_OK);
  struct ArrowArray a;
  assert_int_equal(res.get_next(&res, &a), 0);
  assert_int_equal(a.length, 3);
  assert_int_equal(a.children[1]->null_count, 2);
  const int32_t *eo = a.children[5]->buffers[1];
  assert_string_equal(myr_group_failure_name(MYR_FAIL_TOO_FEW_ROWS), "too_few_rows");
  assert_int_equal(eo[1] - eo[0], 0); /* group 1 trained: null error */
  const char *msg = (const char *)a.children[5]->buffers[2] + eo[1];
  assert_int_equal(eo[2] - eo[1], strlen("7 rows, needs at least 8"));
  assert_int_equal(strncmp(msg, "7 rows, needs at least 8", (size_t)(eo[2] - eo[1])), 0);
  a.release(&a);
  res.release(&res);
  o.min_rows = 0;

  /* errors release the stream too: a bad option, and a key that is not a column */
  eng_stream_init(&e);
  o.label = NULL;
  assert_int_equal(myr_train(&o, NULL, &err), MYR_EINVAL);
  assert_int_equal(e.t.released, 1);
  assert_null(e.st.release);
  o.label = "y";
  eng_stream_init(&e);
  static const char *nokey[] = {"nope"};
  o.keys = nokey;
  assert_int_equal(myr_train(&o, NULL, &err), MYR_ENOTFOUND);
  assert_string_equal(err.message,
                      "<arrow stream>: no key column 'nope' (columns: k, f0, f1, y)");
  assert_int_equal(e.t.released, 1);
  o.keys = ENG_KEYS;
  /* a key named like a results column is refused when results are wanted */
  eng_stream_init(&e);
  static const char *badkey[] = {"model"};
  o.keys = badkey;
  assert_int_equal(myr_train(&o, NULL, &err), MYR_EUNSUPPORTED);
  assert_int_equal(e.t.released, 1);
  o.keys = ENG_KEYS;

  /* a stream failing half-way fails the run with the producer's message */
  eng_stream_init(&e);
  e.t.fail_at = 1;
  e.t.fail_msg = "IOError: connection reset";
  o.results = NULL;
  assert_int_equal(myr_train(&o, &s2, &err), MYR_EIO);
  assert_string_equal(err.message, "<arrow stream>: reading record batch 2 failed: "
                                   "IOError: connection reset");
  assert_int_equal(e.t.released, 1);
}

/* Every allocation of a train and a predict from streams fails in turn: a clean error,
   nothing leaked, the streams released, every batch released once. */
static void test_engine_alloc_failures(void **state) {
  (void)state;
  eng_data();
  long live = tu_alloc_live();
  int trained = 0;
  for (long n = 1; !trained; n++) {
    eng_stream e;
    eng_stream_init(&e);
    myr_train_options o;
    memset(&o, 0, sizeof o);
    o.stream = &e.st;
    o.keys = ENG_KEYS;
    o.n_keys = 1;
    o.label = "y";
    o.n_threads = 2;
    struct ArrowArrayStream res;
    res.release = NULL;
    o.results = &res;
    myr_error err = {0};
    int before = n_array_releases;
    tu_alloc_fail_at(n, 0);
    int rc = myr_train(&o, NULL, &err);
    int failed = tu_alloc_failed();
    tu_alloc_fail_at(0, 0);
    assert_int_equal(e.t.released, 1);
    assert_int_equal(n_array_releases - before, e.t.next); /* each batch received, once */
    if (rc == MYR_OK) {
      assert_non_null(res.release);
      res.release(&res);
    } else {
      assert_int_equal(rc, MYR_ENOMEM);
      assert_null(res.release);
    }
    assert_int_equal(tu_alloc_live(), live);
    trained = !failed;
    assert_true(n < 5000);
  }
}

/* Split a CSV line (no quoting) into 4 fields. */
static void split4(char *line, char **f) {
  for (int i = 0; i < 4; i++) {
    f[i] = line;
    char *comma = strchr(line, ',');
    if (i < 3) {
      assert_non_null(comma);
      *comma = '\0';
      line = comma + 1;
    }
  }
}

/* The CSV output and the stream formatted as CSV hold the same rows (predictions
   compared as numbers: the CSV has the shortest round-trip text). */
static void compare_predictions(char *ref, char *got) {
  int lines = 0;
  char *s1 = NULL, *s2 = NULL;
  char *l1 = strtok_r(ref, "\n", &s1), *l2 = strtok_r(got, "\n", &s2);
  while (l1 && l2) {
    if (lines > 0) {
      char *a[4], *b[4];
      split4(l1, a);
      split4(l2, b);
      assert_string_equal(a[0], b[0]);
      assert_string_equal(a[1], b[1]);
      assert_int_equal(*a[2] == '\0', *b[2] == '\0');
      if (*a[2])
        assert_true(strtod(a[2], NULL) == strtod(b[2], NULL));
      assert_string_equal(a[3], b[3]);
    } else {
      assert_string_equal(l1, l2);
    }
    lines++;
    l1 = strtok_r(NULL, "\n", &s1);
    l2 = strtok_r(NULL, "\n", &s2);
  }
  assert_null(l1);
  assert_null(l2);
  assert_int_equal(lines, ENG_ROWS + 1);
}

/* A stream over another one without its last column (a results table without its
   features column). */
typedef struct drop_last {
  struct ArrowArrayStream inner;
  int released;
} drop_last;

static void dl_release_schema(struct ArrowSchema *s) {
  struct ArrowSchema *real = s->private_data;
  real->release(real);
  free(real);
  s->release = NULL;
}

static void dl_release_array(struct ArrowArray *a) {
  struct ArrowArray *real = a->private_data;
  real->release(real);
  free(real);
  a->release = NULL;
}

static int dl_get_schema(struct ArrowArrayStream *st, struct ArrowSchema *out) {
  drop_last *d = st->private_data;
  struct ArrowSchema *real = malloc(sizeof *real);
  assert_non_null(real);
  int rc = d->inner.get_schema(&d->inner, real);
  assert_int_equal(rc, 0);
  *out = *real;
  out->n_children--;
  out->private_data = real;
  out->release = dl_release_schema;
  return 0;
}

static int dl_get_next(struct ArrowArrayStream *st, struct ArrowArray *out) {
  drop_last *d = st->private_data;
  struct ArrowArray *real = malloc(sizeof *real);
  assert_non_null(real);
  assert_int_equal(d->inner.get_next(&d->inner, real), 0);
  if (!real->release) {
    free(real);
    out->release = NULL;
    return 0;
  }
  *out = *real;
  out->n_children--;
  out->private_data = real;
  out->release = dl_release_array;
  return 0;
}

static void dl_release(struct ArrowArrayStream *st) {
  drop_last *d = st->private_data;
  d->inner.release(&d->inner);
  d->released++;
  st->release = NULL;
}

static void drop_last_init(drop_last *d, struct ArrowArrayStream *inner,
                           struct ArrowArrayStream *out) {
  d->inner = *inner;
  inner->release = NULL;
  d->released = 0;
  memset(out, 0, sizeof *out);
  out->get_schema = dl_get_schema;
  out->get_next = dl_get_next;
  out->release = dl_release;
  out->private_data = d;
}

static void test_predict_from_streams(void **state) {
  (void)state;
  eng_data();
  char path[512], store[512], out[512];
  tu_write_file(path, sizeof path, "engp.csv", eng_csv, strlen(eng_csv));
  tu_path(store, sizeof store, "engp.db");
  tu_path(out, sizeof out, "engp.out.csv");
  remove(store);
  myr_train_options o;
  memset(&o, 0, sizeof o);
  o.input = path;
  o.keys = ENG_KEYS;
  o.n_keys = 1;
  o.label = "y";
  o.store = store;
  struct ArrowArrayStream res;
  o.results = &res;
  myr_error err = {0};
  assert_int_equal(myr_train(&o, NULL, &err), MYR_OK);

  /* CSV in, store, CSV out: the reference */
  myr_predict_options p;
  memset(&p, 0, sizeof p);
  p.input = path;
  p.store = store;
  p.out = out;
  myr_predict_summary s1, s2;
  assert_int_equal(myr_predict(&p, &s1, &err), MYR_OK);
  FILE *f = fopen(out, "rb");
  assert_non_null(f);
  static char ref[8192];
  size_t n = fread(ref, 1, sizeof ref - 1, f);
  ref[n] = '\0';
  fclose(f);

  /* Arrow stream in, models from the results table, predictions as a stream */
  eng_stream e;
  eng_stream_init(&e);
  struct ArrowArrayStream preds;
  memset(&p, 0, sizeof p);
  p.stream = &e.st;
  p.models = &res;
  p.predictions = &preds;
  assert_int_equal(myr_predict(&p, &s2, &err), MYR_OK);
  assert_null(res.release);
  assert_int_equal(e.t.released, 1);
  assert_int_equal(s2.rows_total, ENG_ROWS);
  assert_int_equal(s2.rows_predicted, s1.rows_predicted);
  assert_int_equal(s2.missed[MYR_MISS_MISSING_KEY], 1);
  assert_int_equal(s2.first_missed_row[MYR_MISS_MISSING_KEY], 9);
  assert_string_equal(s2.first_missed_detail[MYR_MISS_MISSING_KEY],
                      "row 9: key column k is empty or NA");
  assert_int_equal(s2.missed[MYR_MISS_MISSING_FEATURE], 1);
  /* format the stream as the CSV and compare */
  static char got[8192];
  size_t o2 = (size_t)snprintf(got, sizeof got, "k,row,prediction,reason\n");
  struct ArrowSchema sc;
  assert_int_equal(preds.get_schema(&preds, &sc), 0);
  assert_int_equal(sc.n_children, 4);
  assert_string_equal(sc.children[2]->format, "g");
  sc.release(&sc);
  for (;;) {
    struct ArrowArray a;
    assert_int_equal(preds.get_next(&preds, &a), 0);
    if (!a.release)
      break;
    const struct ArrowArray *k = a.children[0], *r = a.children[1], *pr = a.children[2];
    const struct ArrowArray *re = a.children[3];
    for (int64_t i = 0; i < a.length; i++) {
      const int32_t *ko = k->buffers[1], *ro = re->buffers[1];
      int kvalid = !k->buffers[0] || myr__batch_valid(k->buffers[0], (size_t)i);
      int pvalid = !pr->buffers[0] || myr__batch_valid(pr->buffers[0], (size_t)i);
      int rvalid = !re->buffers[0] || myr__batch_valid(re->buffers[0], (size_t)i);
      char num[40] = "";
      if (pvalid)
        snprintf(num, sizeof num, "%.17g", ((const double *)pr->buffers[1])[i]);
      o2 += (size_t)snprintf(got + o2, sizeof got - o2, "%.*s,%lld,%s,%.*s\n",
                             kvalid ? (int)(ko[i + 1] - ko[i]) : 0,
                             (const char *)k->buffers[2] + ko[i],
                             (long long)((const int64_t *)r->buffers[1])[i], num,
                             rvalid ? (int)(ro[i + 1] - ro[i]) : 0,
                             (const char *)re->buffers[2] + ro[i]);
    }
    a.release(&a);
  }
  preds.release(&preds);
  compare_predictions(ref, got);

  /* a models table without the features column: found by the schema hash */
  o.store = NULL;
  assert_int_equal(myr_train(&o, NULL, &err), MYR_OK);
  drop_last dl;
  struct ArrowArrayStream models;
  drop_last_init(&dl, &res, &models);
  eng_stream_init(&e);
  memset(&p, 0, sizeof p);
  p.stream = &e.st;
  p.models = &models;
  p.predictions = &preds;
  assert_int_equal(myr_predict(&p, &s2, &err), MYR_OK);
  assert_int_equal(dl.released, 1);
  assert_int_equal(s2.rows_predicted, s1.rows_predicted);
  assert_int_equal(s2.models_loaded, 3);
  preds.release(&preds);

  /* the features do not match any of the input's columns */
  assert_int_equal(myr_train(&o, NULL, &err), MYR_OK);
  drop_last_init(&dl, &res, &models);
  static const char engq[] = "k,a,b,c,y\n1,2,3,4,5\n";
  tu_write_file(path, sizeof path, "engq.csv", engq, strlen(engq));
  memset(&p, 0, sizeof p);
  p.input = path;
  p.models = &models;
  p.out = out;
  assert_int_equal(myr_predict(&p, &s2, &err), MYR_ENOTFOUND);
  assert_non_null(strstr(err.message, "no model in the models table can score"));
  assert_non_null(strstr(err.message, "no 2 of the 4 non-key columns"));
  assert_int_equal(dl.released, 1);

  /* both a store and a table, and released streams, are refused; streams released */
  eng_stream_init(&e);
  memset(&p, 0, sizeof p);
  p.stream = &e.st;
  p.store = store;
  p.models = &res; /* released above */
  p.out = out;
  assert_int_equal(myr_predict(&p, NULL, &err), MYR_EINVAL);
  assert_string_equal(err.message, "the models Arrow stream is already released");
  assert_int_equal(e.t.released, 1);
}

int main(void) {
  tu_alloc_install();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_numbers_as_values),
      cmocka_unit_test(test_numbers_as_keys),
      cmocka_unit_test(test_float_specials_as_keys),
      cmocka_unit_test(test_dates_and_timestamps),
      cmocka_unit_test(test_nulls_and_offsets),
      cmocka_unit_test(test_struct_nulls),
      cmocka_unit_test(test_dictionary),
      cmocka_unit_test(test_string_views),
      cmocka_unit_test(test_bad_offsets),
      cmocka_unit_test(test_unsupported_type),
      cmocka_unit_test(test_stream_fails_half_way),
      cmocka_unit_test(test_windows),
      cmocka_unit_test(test_alloc_failures),
      cmocka_unit_test(test_train_from_stream),
      cmocka_unit_test(test_predict_from_streams),
      cmocka_unit_test(test_engine_alloc_failures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
