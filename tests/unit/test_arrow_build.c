/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for the Arrow column builders and the list stream (src/io/arrow_build.c):
 * the exported C Data Interface structs are checked directly (formats, names, flags,
 * lengths, null counts, offsets, value bytes, validity and bool bits), every release path
 * runs under ASan (children moved out, streams released before, during and after
 * consumption), and an allocation-failure loop fails every allocation in turn.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "io/arrow.h"
#include "myriad/alloc.h"
#include "testutil.h"

static const char *const NAMES[] = {"key", "blob", "x", "n", "u", "flag", "i"};
static const int TYPES[] = {MYR__ARROW_UTF8, MYR__ARROW_BINARY, MYR__ARROW_F64,
                            MYR__ARROW_I64,  MYR__ARROW_U64,    MYR__ARROW_BOOL,
                            MYR__ARROW_I32};
static const char *const FORMATS[] = {"u", "z", "g", "l", "L", "b", "i"};
#define NCOL 7

static int bit(const void *bits, int64_t i) {
  return (((const uint8_t *)bits)[i / 8] >> (i % 8)) & 1;
}

static double f64_at(const struct ArrowArray *a, int64_t i) {
  double v;
  memcpy(&v, (const uint8_t *)a->buffers[1] + 8 * (a->offset + i), 8);
  return v;
}

static int64_t i64_at(const struct ArrowArray *a, int64_t i) {
  int64_t v;
  memcpy(&v, (const uint8_t *)a->buffers[1] + 8 * (a->offset + i), 8);
  return v;
}

static int32_t i32_at(const struct ArrowArray *a, int64_t i) {
  int32_t v;
  memcpy(&v, (const uint8_t *)a->buffers[1] + 4 * (a->offset + i), 4);
  return v;
}

/* Value i of a utf8/binary child as "text" (copied into out), or "<null>". */
static const char *str_at(const struct ArrowArray *a, int64_t i, char *out, size_t cap) {
  if (a->buffers[0] && !bit(a->buffers[0], i)) {
    snprintf(out, cap, "<null>");
    return out;
  }
  const int32_t *off = a->buffers[1];
  int32_t n = off[i + 1] - off[i];
  assert_true(n >= 0 && (size_t)n < cap);
  memcpy(out, (const char *)a->buffers[2] + off[i], (size_t)n);
  out[n] = '\0';
  return out;
}

static myr__arrow_builder *new_builder(void) {
  myr__arrow_builder *b = NULL;
  myr_error err = {0};
  assert_int_equal(myr__arrow_builder_new(NCOL, NAMES, TYPES, &b, &err), MYR_OK);
  assert_non_null(b);
  return b;
}

/* Row r of the reference data: row 1 and every 5th row from 10 hold nulls in some
   columns. Returns MYR_OK or the first failing append's status. */
static int append_row(myr__arrow_builder *b, int r) {
  char key[32];
  int n = snprintf(key, sizeof key, "k%d", r);
  int null_row = r == 1 || (r >= 10 && r % 5 == 0);
  int rc;
  if ((rc = myr__arrow_append_bytes(b, 0, key, (size_t)n)) != MYR_OK)
    return rc;
  if (null_row)
    rc = myr__arrow_append_null(b, 1);
  else
    rc = myr__arrow_append_bytes(b, 1, "\0\1\2", (size_t)(r % 4));
  if (rc != MYR_OK)
    return rc;
  if ((rc = null_row ? myr__arrow_append_null(b, 2)
                     : myr__arrow_append_f64(b, 2, 0.5 * r - 3)) != MYR_OK)
    return rc;
  if ((rc = myr__arrow_append_i64(b, 3, (int64_t)r * -1000000007LL)) != MYR_OK)
    return rc;
  if ((rc = myr__arrow_append_i64(b, 4, -1 - r)) != MYR_OK) /* u64: 2^64 - 1 - r */
    return rc;
  if ((rc = null_row ? myr__arrow_append_null(b, 5)
                     : myr__arrow_append_i64(b, 5, r % 3 == 0 ? 7 : 0)) != MYR_OK)
    return rc;
  return myr__arrow_append_i64(b, 6, r - 5);
}

/* Check an exported batch of rows [r0, r0 + n) of the reference data. */
static void check_batch(const struct ArrowArray *a, int r0, int n) {
  char buf[64], want[64];
  assert_non_null(a->release);
  assert_int_equal(a->length, n);
  assert_int_equal(a->null_count, 0);
  assert_int_equal(a->offset, 0);
  assert_int_equal(a->n_buffers, 1);
  assert_null(a->buffers[0]);
  assert_int_equal(a->n_children, NCOL);
  assert_null(a->dictionary);
  int nulls = 0;
  for (int i = 0; i < n; i++)
    nulls += (r0 + i) == 1 || ((r0 + i) >= 10 && (r0 + i) % 5 == 0);
  for (int c = 0; c < NCOL; c++) {
    const struct ArrowArray *ch = a->children[c];
    assert_non_null(ch->release);
    assert_int_equal(ch->length, n);
    assert_int_equal(ch->offset, 0);
    assert_int_equal(ch->n_children, 0);
    assert_int_equal(ch->n_buffers, c < 2 ? 3 : 2);
    int nullable_col = c == 1 || c == 2 || c == 5;
    assert_int_equal(ch->null_count, nullable_col ? nulls : 0);
    if (!nullable_col || nulls == 0)
      assert_null(ch->buffers[0]); /* bitmaps only once a null appears */
    else
      assert_non_null(ch->buffers[0]);
    if (c < 2) {
      const int32_t *off = ch->buffers[1];
      assert_non_null(off);
      assert_int_equal(off[0], 0);
    }
  }
  for (int i = 0; i < n; i++) {
    int r = r0 + i;
    int null_row = r == 1 || (r >= 10 && r % 5 == 0);
    snprintf(want, sizeof want, "k%d", r);
    assert_string_equal(str_at(a->children[0], i, buf, sizeof buf), want);
    const struct ArrowArray *blob = a->children[1];
    const int32_t *off = blob->buffers[1];
    if (null_row) {
      assert_false(bit(blob->buffers[0], i));
      assert_int_equal(off[i + 1], off[i]);
    } else {
      if (blob->buffers[0])
        assert_true(bit(blob->buffers[0], i));
      assert_int_equal(off[i + 1] - off[i], r % 4);
      assert_memory_equal((const char *)blob->buffers[2] + off[i], "\0\1\2",
                          (size_t)(r % 4));
    }
    const struct ArrowArray *x = a->children[2];
    if (null_row) {
      assert_false(bit(x->buffers[0], i));
      assert_true(f64_at(x, i) == 0.0);
    } else {
      assert_true(x->buffers[0] == NULL || bit(x->buffers[0], i));
      assert_true(f64_at(x, i) == 0.5 * r - 3);
    }
    assert_int_equal(i64_at(a->children[3], i), (int64_t)r * -1000000007LL);
    assert_true((uint64_t)i64_at(a->children[4], i) == UINT64_MAX - (uint64_t)r);
    const struct ArrowArray *flag = a->children[5];
    if (null_row)
      assert_false(bit(flag->buffers[0], i));
    else
      assert_int_equal(bit(flag->buffers[1], i), r % 3 == 0);
    assert_int_equal(i32_at(a->children[6], i), r - 5);
  }
}

static void check_schema(const struct ArrowSchema *s) {
  assert_non_null(s->release);
  assert_string_equal(s->format, "+s");
  assert_int_equal(s->n_children, NCOL);
  assert_null(s->dictionary);
  for (int c = 0; c < NCOL; c++) {
    const struct ArrowSchema *ch = s->children[c];
    assert_non_null(ch->release);
    assert_string_equal(ch->format, FORMATS[c]);
    assert_string_equal(ch->name, NAMES[c]);
    assert_true(ch->name != NAMES[c]); /* a copy */
    assert_int_equal(ch->flags, ARROW_FLAG_NULLABLE);
    assert_int_equal(ch->n_children, 0);
    assert_null(ch->metadata);
  }
}

/* ---- builders ------------------------------------------------------------------------ */

static void test_build_and_export(void **state) {
  (void)state;
  myr__arrow_builder *b = new_builder();
  for (int r = 0; r < 9; r++)
    assert_int_equal(append_row(b, r), MYR_OK);
  assert_int_equal(myr__arrow_builder_rows(b), 9);
  struct ArrowSchema s;
  struct ArrowArray a;
  myr_error err = {0};
  assert_int_equal(myr__arrow_builder_finish(b, &s, &a, &err), MYR_OK);
  assert_int_equal(myr__arrow_builder_rows(b), 0);
  check_schema(&s);
  check_batch(&a, 0, 9);
  /* exact bytes of the utf8 column */
  const int32_t *off = a.children[0]->buffers[1];
  static const int32_t want_off[] = {0, 2, 4, 6, 8, 10, 12, 14, 16, 18};
  assert_memory_equal(off, want_off, sizeof want_off);
  assert_memory_equal(a.children[0]->buffers[2], "k0k1k2k3k4k5k6k7k8", 18);
  /* the only null is row 1: validity bits 0b11111101, then bit 8 */
  assert_int_equal(((const uint8_t *)a.children[2]->buffers[0])[0], 0xfd);
  assert_int_equal(((const uint8_t *)a.children[2]->buffers[0])[1] & 1, 1);
  s.release(&s);
  assert_null(s.release);
  a.release(&a);
  assert_null(a.release);
  myr__arrow_builder_free(b);
}

static void test_builder_reuse_and_growth(void **state) {
  (void)state;
  myr__arrow_builder *b = new_builder();
  myr_error err = {0};
  struct ArrowArray a1, a2, a3;
  for (int r = 0; r < 5; r++) /* first batch: no nulls after row 1 ... */
    assert_int_equal(append_row(b, r), MYR_OK);
  assert_int_equal(myr__arrow_builder_finish(b, NULL, &a1, &err), MYR_OK);
  for (int r = 5; r < 100005; r++) /* ... second batch: many rows, grows many times */
    assert_int_equal(append_row(b, r), MYR_OK);
  assert_int_equal(myr__arrow_builder_rows(b), 100000);
  assert_int_equal(myr__arrow_builder_finish(b, NULL, &a2, &err), MYR_OK);
  for (int r = 2; r < 9; r++) /* third batch: rows 2..8 hold no null at all */
    assert_int_equal(append_row(b, r), MYR_OK);
  assert_int_equal(myr__arrow_builder_finish(b, NULL, &a3, &err), MYR_OK);
  check_batch(&a1, 0, 5);
  check_batch(&a2, 5, 100000);
  check_batch(&a3, 2, 7);
  a2.release(&a2);
  a1.release(&a1);
  a3.release(&a3);
  myr__arrow_builder_free(b);
}

static void test_empty_batch(void **state) {
  (void)state;
  myr__arrow_builder *b = new_builder();
  myr_error err = {0};
  struct ArrowArray a;
  assert_int_equal(myr__arrow_builder_finish(b, NULL, &a, &err), MYR_OK);
  assert_int_equal(a.length, 0);
  for (int c = 0; c < NCOL; c++) {
    assert_int_equal(a.children[c]->length, 0);
    assert_null(a.children[c]->buffers[0]);
  }
  /* offsets always hold their first entry, even for zero rows */
  assert_int_equal(((const int32_t *)a.children[0]->buffers[1])[0], 0);
  assert_int_equal(((const int32_t *)a.children[1]->buffers[1])[0], 0);
  a.release(&a);
  /* a builder with no column at all */
  myr__arrow_builder *e = NULL;
  assert_int_equal(myr__arrow_builder_new(0, NULL, NULL, &e, &err), MYR_OK);
  struct ArrowSchema s;
  assert_int_equal(myr__arrow_builder_finish(e, &s, &a, &err), MYR_OK);
  assert_int_equal(s.n_children, 0);
  assert_int_equal(a.n_children, 0);
  assert_int_equal(myr__arrow_builder_rows(e), 0);
  s.release(&s);
  a.release(&a);
  myr__arrow_builder_free(e);
  myr__arrow_builder_free(b);
  myr__arrow_builder_free(NULL);
}

static void test_all_null_and_null_first(void **state) {
  (void)state;
  const char *names[] = {"s", "b", "g"};
  int types[] = {MYR__ARROW_UTF8, MYR__ARROW_BOOL, MYR__ARROW_F64};
  myr__arrow_builder *b = NULL;
  myr_error err = {0};
  assert_int_equal(myr__arrow_builder_new(3, names, types, &b, &err), MYR_OK);
  for (int r = 0; r < 20; r++) {
    for (size_t c = 0; c < 3; c++) {
      if (r == 0 || r == 17)
        assert_int_equal(myr__arrow_append_null(b, c), MYR_OK);
      else if (c == 0)
        assert_int_equal(myr__arrow_append_bytes(b, 0, "ab", 2), MYR_OK);
      else if (c == 1)
        assert_int_equal(myr__arrow_append_i64(b, 1, 1), MYR_OK);
      else
        assert_int_equal(myr__arrow_append_f64(b, 2, r), MYR_OK);
    }
  }
  struct ArrowArray a;
  assert_int_equal(myr__arrow_builder_finish(b, NULL, &a, &err), MYR_OK);
  for (int c = 0; c < 3; c++) {
    const struct ArrowArray *ch = a.children[c];
    assert_int_equal(ch->null_count, 2);
    for (int r = 0; r < 20; r++)
      assert_int_equal(bit(ch->buffers[0], r), r != 0 && r != 17);
  }
  const int32_t *off = a.children[0]->buffers[1];
  assert_int_equal(off[0], 0);
  assert_int_equal(off[1], 0);
  assert_int_equal(off[2], 2);
  assert_int_equal(off[20], 36);
  for (int r = 0; r < 20; r++)
    assert_int_equal(bit(a.children[1]->buffers[1], r), r != 0 && r != 17);
  a.release(&a);
  myr__arrow_builder_free(b);
}

static void test_bad_appends(void **state) {
  (void)state;
  myr__arrow_builder *b = new_builder();
  myr_error err = {0};
  char byte = 'x';
  assert_int_equal(myr__arrow_append_f64(b, 0, 1.0), MYR_EINVAL);   /* utf8 column */
  assert_int_equal(myr__arrow_append_i64(b, 2, 1), MYR_EINVAL);     /* f64 column */
  assert_int_equal(myr__arrow_append_bytes(b, 3, "a", 1), MYR_EINVAL); /* i64 column */
  assert_int_equal(myr__arrow_append_i64(b, 0, 1), MYR_EINVAL);
  assert_int_equal(myr__arrow_append_null(b, NCOL), MYR_EINVAL);    /* no such column */
  assert_int_equal(myr__arrow_append_f64(b, NCOL, 1.0), MYR_EINVAL);
  assert_int_equal(myr__arrow_append_i64(b, 6, (int64_t)INT32_MAX + 1), MYR_EINVAL);
  assert_int_equal(myr__arrow_append_i64(b, 6, (int64_t)INT32_MIN - 1), MYR_EINVAL);
  /* over the int32 offsets' limit: refused before anything is read or allocated */
  assert_int_equal(myr__arrow_append_bytes(b, 0, &byte, (size_t)INT32_MAX + 1), MYR_EINVAL);
  assert_int_equal(myr__arrow_builder_rows(b), 0);
  assert_int_equal(myr__arrow_builder_data_bytes(b, 0), 0);
  /* a ragged row: finish refuses, names the columns, and keeps the rows */
  assert_int_equal(myr__arrow_append_bytes(b, 0, "abc", 3), MYR_OK);
  assert_int_equal(myr__arrow_builder_data_bytes(b, 0), 3);
  assert_int_equal(myr__arrow_append_i64(b, 6, INT32_MIN), MYR_OK);
  assert_int_equal(myr__arrow_builder_data_bytes(b, 6), 4);
  assert_int_equal(myr__arrow_builder_data_bytes(b, 99), 0);
  struct ArrowSchema s;
  struct ArrowArray a;
  assert_int_equal(myr__arrow_builder_finish(b, &s, &a, &err), MYR_EINVAL);
  assert_null(s.release);
  assert_null(a.release);
  assert_non_null(strstr(err.message, "'blob'"));
  for (size_t c = 1; c < 6; c++)
    assert_int_equal(myr__arrow_append_null(b, c), MYR_OK);
  assert_int_equal(myr__arrow_builder_finish(b, &s, &a, &err), MYR_OK);
  assert_int_equal(a.length, 1);
  assert_int_equal(i32_at(a.children[6], 0), INT32_MIN);
  char buf[16];
  assert_string_equal(str_at(a.children[0], 0, buf, sizeof buf), "abc");
  s.release(&s);
  a.release(&a);
  myr__arrow_builder_free(b);
  /* unknown type at creation */
  const char *nm[] = {"q"};
  int bad[] = {99};
  assert_int_equal(myr__arrow_builder_new(1, nm, bad, &b, &err), MYR_EINVAL);
  assert_null(b);
  assert_non_null(strstr(err.message, "'q'"));
}

static void test_child_moved_out(void **state) {
  (void)state;
  myr__arrow_builder *b = new_builder();
  myr_error err = {0};
  for (int r = 0; r < 12; r++)
    assert_int_equal(append_row(b, r), MYR_OK);
  struct ArrowSchema s;
  struct ArrowArray a;
  assert_int_equal(myr__arrow_builder_finish(b, &s, &a, &err), MYR_OK);
  /* Move child 2 of both out (C Data Interface: then release the parent at once). */
  struct ArrowArray x = *a.children[2];
  a.children[2]->release = NULL;
  struct ArrowSchema xs = *s.children[2];
  s.children[2]->release = NULL;
  a.release(&a);
  s.release(&s);
  assert_string_equal(xs.format, "g");
  assert_string_equal(xs.name, "x");
  assert_int_equal(x.length, 12);
  assert_true(f64_at(&x, 11) == 0.5 * 11 - 3);
  x.release(&x);
  xs.release(&xs);
  myr__arrow_builder_free(b);
}

static void test_views_reuse_memory(void **state) {
  (void)state;
  myr__arrow_builder *b = new_builder();
  myr_error err = {0};
  struct ArrowArray v;
  assert_int_equal(myr__arrow_builder_view(b, &v, &err), MYR_OK); /* empty */
  assert_int_equal(v.length, 0);
  assert_int_equal(((const int32_t *)v.children[0]->buffers[1])[0], 0);
  v.release(&v);
  for (int r = 0; r < 300; r++)
    assert_int_equal(append_row(b, r), MYR_OK);
  assert_int_equal(myr__arrow_builder_view(b, &v, &err), MYR_OK);
  check_batch(&v, 0, 300);
  const void *x_values = v.children[2]->buffers[1];
  const void *key_bytes = v.children[0]->buffers[2];
  v.release(&v);
  assert_null(v.release);
  for (int c = 0; c < NCOL; c++)
    assert_null(v.children[c]->release); /* the children are marked released too */
  myr__arrow_builder_clear(b);
  assert_int_equal(myr__arrow_builder_rows(b), 0);
  for (int r = 2; r < 9; r++) /* no nulls this time: no bitmap either */
    assert_int_equal(append_row(b, r), MYR_OK);
  assert_int_equal(myr__arrow_builder_view(b, &v, &err), MYR_OK);
  check_batch(&v, 2, 7);
  assert_true(v.children[2]->buffers[1] == x_values); /* the same memory, reused */
  assert_true(v.children[0]->buffers[2] == key_bytes);
  v.release(&v);
  /* a ragged builder has no view */
  assert_int_equal(myr__arrow_append_f64(b, 2, 1.0), MYR_OK);
  assert_int_equal(myr__arrow_builder_view(b, &v, &err), MYR_EINVAL);
  assert_null(v.release);
  myr__arrow_builder_clear(b);
  /* and finish still works after views */
  for (int r = 0; r < 4; r++)
    assert_int_equal(append_row(b, r), MYR_OK);
  struct ArrowArray a;
  assert_int_equal(myr__arrow_builder_finish(b, NULL, &a, &err), MYR_OK);
  check_batch(&a, 0, 4);
  a.release(&a);
  myr__arrow_builder_free(b);
}

/* ---- list stream --------------------------------------------------------------------- */

static myr__arrow_list *make_list(int n_batches) {
  myr__arrow_builder *b = new_builder();
  myr_error err = {0};
  struct ArrowSchema s;
  assert_int_equal(myr__arrow_builder_schema(b, &s, &err), MYR_OK);
  myr__arrow_list *l = NULL;
  assert_int_equal(myr__arrow_list_new(&s, &l, &err), MYR_OK);
  assert_null(s.release); /* moved */
  for (int k = 0; k < n_batches; k++) {
    for (int r = 0; r < 10 + k; r++)
      assert_int_equal(append_row(b, 100 * k + r), MYR_OK);
    struct ArrowArray a;
    assert_int_equal(myr__arrow_builder_finish(b, NULL, &a, &err), MYR_OK);
    assert_int_equal(myr__arrow_list_push(l, &a, &err), MYR_OK);
    assert_null(a.release); /* moved */
  }
  myr__arrow_builder_free(b);
  return l;
}

static void test_list_stream_in_order(void **state) {
  (void)state;
  struct ArrowArrayStream st;
  myr__arrow_list_stream(make_list(40), &st); /* past the first growth of the list */
  assert_null(st.get_last_error(&st));
  struct ArrowSchema s1, s2;
  assert_int_equal(st.get_schema(&st, &s1), 0);
  assert_int_equal(st.get_schema(&st, &s2), 0);
  check_schema(&s1);
  check_schema(&s2);
  assert_true(s1.children != s2.children);       /* deep copies ... */
  assert_true(s1.children[0]->name != s2.children[0]->name);
  s1.release(&s1);                                /* ... released independently */
  check_schema(&s2);
  s2.release(&s2);
  for (int k = 0; k < 40; k++) {
    struct ArrowArray a;
    assert_int_equal(st.get_next(&st, &a), 0);
    assert_non_null(a.release);
    assert_int_equal(a.length, 10 + k);
    assert_int_equal(i64_at(a.children[3], 0), (int64_t)(100 * k) * -1000000007LL);
    a.release(&a);
  }
  for (int k = 0; k < 2; k++) { /* end of stream, and it stays there */
    struct ArrowArray a;
    memset(&a, 0xab, sizeof a);
    assert_int_equal(st.get_next(&st, &a), 0);
    assert_null(a.release);
  }
  st.release(&st);
  assert_null(st.release);
}

static void test_list_stream_release_paths(void **state) {
  (void)state;
  struct ArrowArrayStream st;
  /* released before taking anything */
  myr__arrow_list_stream(make_list(3), &st);
  st.release(&st);
  /* released in the middle: the taken array outlives the stream */
  myr__arrow_list_stream(make_list(3), &st);
  struct ArrowArray a;
  assert_int_equal(st.get_next(&st, &a), 0);
  st.release(&st);
  check_batch(&a, 0, 10);
  a.release(&a);
  /* schema taken, stream released, schema still valid */
  myr__arrow_list_stream(make_list(0), &st);
  struct ArrowSchema s;
  assert_int_equal(st.get_schema(&st, &s), 0);
  assert_int_equal(st.get_next(&st, &a), 0);
  assert_null(a.release);
  st.release(&st);
  check_schema(&s);
  s.release(&s);
  /* never streamed */
  myr__arrow_list_free(make_list(2));
  myr__arrow_list_free(NULL);
}

/* A hand-made schema with metadata, nested children and a dictionary, released by its
   own callback: the list's get_schema must copy all of it. */
static int g_foreign_released;

static void foreign_release(struct ArrowSchema *s) {
  g_foreign_released++;
  s->release = NULL;
}

static void test_list_copies_any_schema(void **state) {
  (void)state;
  /* metadata: 1 pair, key "k" (1 byte), value "vv" (2 bytes) */
  static const char meta[] = {1, 0, 0, 0, 1, 0, 0, 0, 'k', 2, 0, 0, 0, 'v', 'v'};
  struct ArrowSchema dict = {"u", NULL, NULL, 0, 0, NULL, NULL, foreign_release, NULL};
  struct ArrowSchema leaf = {"i", "codes", meta, ARROW_FLAG_NULLABLE, 0, NULL, &dict,
                             foreign_release, NULL};
  struct ArrowSchema *kids[] = {&leaf};
  struct ArrowSchema top = {"+s", "", NULL, 0, 1, kids, NULL, foreign_release, NULL};
  myr__arrow_list *l = NULL;
  myr_error err = {0};
  g_foreign_released = 0;
  assert_int_equal(myr__arrow_list_new(&top, &l, &err), MYR_OK);
  struct ArrowArrayStream st;
  myr__arrow_list_stream(l, &st);
  struct ArrowSchema c;
  assert_int_equal(st.get_schema(&st, &c), 0);
  assert_string_equal(c.format, "+s");
  assert_int_equal(c.n_children, 1);
  assert_string_equal(c.children[0]->name, "codes");
  assert_int_equal(c.children[0]->flags, ARROW_FLAG_NULLABLE);
  assert_memory_equal(c.children[0]->metadata, meta, sizeof meta);
  assert_true(c.children[0]->metadata != meta);
  assert_non_null(c.children[0]->dictionary);
  assert_string_equal(c.children[0]->dictionary->format, "u");
  assert_null(c.children[0]->dictionary->name);
  st.release(&st);
  assert_int_equal(g_foreign_released, 1); /* the list released what it owned */
  c.release(&c);
}

/* ---- allocation failures ------------------------------------------------------------- */

/* Everything, with each allocation failing in turn: builder, appends, finish, list,
   stream, get_schema, get_next. Returns MYR_OK when nothing failed. */
static int scenario(void) {
  myr__arrow_builder *b = NULL;
  myr__arrow_list *l = NULL;
  struct ArrowArrayStream st = {0};
  struct ArrowSchema s = {0};
  struct ArrowArray a = {0};
  myr_error err = {0};
  int rc = myr__arrow_builder_new(NCOL, NAMES, TYPES, &b, &err);
  if (rc != MYR_OK)
    goto done;
  if ((rc = myr__arrow_builder_schema(b, &s, &err)) != MYR_OK)
    goto done;
  if ((rc = myr__arrow_list_new(&s, &l, &err)) != MYR_OK)
    goto done;
  for (int k = 0; k < 3; k++) {
    for (int r = 0; r < 70 * (k + 1); r++) /* past the first reservation */
      if ((rc = append_row(b, r)) != MYR_OK)
        goto done;
    if ((rc = myr__arrow_builder_finish(b, NULL, &a, &err)) != MYR_OK) {
      assert_true(err.message[0] != '\0');
      assert_int_equal(myr__arrow_builder_rows(b), 70 * (k + 1)); /* rows kept */
      goto done;
    }
    check_batch(&a, 0, 70 * (k + 1));
    if ((rc = myr__arrow_list_push(l, &a, &err)) != MYR_OK)
      goto done;
    for (int r = 0; r < 3; r++) /* a view, then clear: the builder's own memory */
      if ((rc = append_row(b, r)) != MYR_OK)
        goto done;
    struct ArrowArray v;
    if ((rc = myr__arrow_builder_view(b, &v, &err)) != MYR_OK)
      goto done;
    check_batch(&v, 0, 3);
    v.release(&v);
    myr__arrow_builder_clear(b);
  }
  myr__arrow_list_stream(l, &st);
  l = NULL;
  if (st.get_schema(&st, &s) != 0) {
    assert_non_null(st.get_last_error(&st));
    rc = MYR_ENOMEM;
    goto done;
  }
  check_schema(&s);
  for (int k = 0; k < 3; k++) {
    assert_int_equal(st.get_next(&st, &a), 0);
    check_batch(&a, 0, 70 * (k + 1));
    a.release(&a);
  }
done:
  assert_null(a.release); /* never left owned on any path */
  if (s.release)
    s.release(&s);
  if (st.release)
    st.release(&st);
  myr__arrow_list_free(l);
  myr__arrow_builder_free(b);
  return rc;
}

static void test_allocation_failures_are_clean(void **state) {
  (void)state;
  tu_alloc_install();
  long baseline = tu_alloc_live();
  int sticky_modes[2] = {1, 0};
  for (int m = 0; m < 2; m++) {
    int succeeded = 0;
    long n;
    for (n = 1; n < 10000 && !succeeded; n++) {
      tu_alloc_fail_at(n, sticky_modes[m]);
      int rc = scenario();
      int failed = tu_alloc_failed();
      tu_alloc_fail_at(0, 0);
      assert_int_equal(tu_alloc_live(), baseline); /* nothing leaked */
      if (!failed) {
        assert_int_equal(rc, MYR_OK);
        succeeded = 1;
      } else {
        assert_int_equal(rc, MYR_ENOMEM);
      }
    }
    assert_true(succeeded);
    assert_true(n > 20); /* the scenario allocates; each allocation was failed once */
  }
  myr_set_allocator(NULL, NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_build_and_export),
      cmocka_unit_test(test_builder_reuse_and_growth),
      cmocka_unit_test(test_empty_batch),
      cmocka_unit_test(test_all_null_and_null_first),
      cmocka_unit_test(test_bad_appends),
      cmocka_unit_test(test_child_moved_out),
      cmocka_unit_test(test_views_reuse_memory),
      cmocka_unit_test(test_list_stream_in_order),
      cmocka_unit_test(test_list_stream_release_paths),
      cmocka_unit_test(test_list_copies_any_schema),
      cmocka_unit_test(test_allocation_failures_are_clean),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
