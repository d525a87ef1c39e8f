/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for the Arrow IPC reader (src/io/ipc_read.c) on files pyarrow wrote
 * (tests/data/arrow/, see make.py there): every supported type, stream and file formats,
 * uncompressed / LZ4 / ZSTD, pre-0.15 framing, V4 metadata, dictionary deltas and
 * replacement, refused types, truncated and corrupted inputs, allocation failures, and
 * the C Data Interface lifetime rules (arrays outliving the stream, moved children).
 * Values are compared as text, one string per row ("null" for a null slot).
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
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "../fuzz/ipc_touch.h"
#include "io/arrow.h"
#include "testutil.h"

/* ---- helpers ----------------------------------------------------------------------- */

typedef struct blob {
  uint8_t *p;
  size_t n;
} blob;

static void data_path(char *out, size_t cap, const char *name) {
  const char *dir = getenv("MYR_TEST_DATA");
  assert_non_null(dir);
  snprintf(out, cap, "%s/arrow/%s", dir, name);
}

static blob load(const char *name) {
  char path[1024];
  data_path(path, sizeof path, name);
  FILE *f = fopen(path, "rb");
  if (!f)
    fail_msg("cannot open %s", path);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  blob b = {malloc((size_t)n + 1), (size_t)n};
  assert_non_null(b.p);
  assert_int_equal(fread(b.p, 1, (size_t)n, f), (size_t)n);
  fclose(f);
  return b;
}

static double half_to_double(uint16_t h) {
  int e = (h >> 10) & 31, m = h & 1023;
  double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(1024 + m, e - 25);
  return (h & 0x8000) ? -v : v;
}

/* Value i of a flat array of format f as text ("null" when not valid). */
static void render(const struct ArrowArray *a, const char *f, int64_t i, char *out,
                   size_t cap) {
  int64_t j = a->offset + i;
  if (f[0] == 'n' || (a->buffers[0] && !ipct_bit(a->buffers[0], j))) {
    snprintf(out, cap, "null");
    return;
  }
  const uint8_t *d = a->n_buffers > 1 ? a->buffers[1] : NULL;
  int w = ipct_width(f);
  if (w > 0) {
    uint64_t u = 0;
    memcpy(&u, d + (size_t)j * (size_t)w, (size_t)w);
    int64_t s = w == 8 ? (int64_t)u : (int64_t)(u << (64 - 8 * w)) >> (64 - 8 * w);
    if (f[0] == 'e')
      snprintf(out, cap, "%g", half_to_double((uint16_t)u));
    else if (f[0] == 'f') {
      float x;
      memcpy(&x, d + 4 * j, 4);
      snprintf(out, cap, "%.9g", x);
    } else if (f[0] == 'g') {
      double x;
      memcpy(&x, d + 8 * j, 8);
      snprintf(out, cap, "%.17g", x);
    } else if (f[0] == 'C' || f[0] == 'S' || f[0] == 'I' || f[0] == 'L')
      snprintf(out, cap, "%llu", (unsigned long long)u);
    else
      snprintf(out, cap, "%lld", (long long)s);
    return;
  }
  if (w == 0) {
    snprintf(out, cap, "%d", ipct_bit(d, j));
    return;
  }
  int64_t lo = ipct_offset(d, w == -8, j), hi = ipct_offset(d, w == -8, j + 1);
  const uint8_t *v = (const uint8_t *)a->buffers[2] + lo;
  size_t k = 0;
  for (int64_t x = 0; x < hi - lo && k + 3 < cap; x++) {
    if (f[0] == 'z' || f[0] == 'Z')
      k += (size_t)snprintf(out + k, cap - k, "%02x", v[x]);
    else
      out[k++] = (char)v[x];
  }
  out[k] = '\0';
}

/* Rows [0, n) of column a (schema s) joined with '|'; dictionaries are looked up. */
static void render_col(const struct ArrowSchema *s, const struct ArrowArray *a, char *out,
                       size_t cap) {
  size_t k = 0;
  out[0] = '\0';
  for (int64_t i = 0; i < a->length; i++) {
    char v[256];
    if (s->dictionary && !(a->buffers[0] && !ipct_bit(a->buffers[0], a->offset + i))) {
      char ix[64];
      render(a, s->format, i, ix, sizeof ix);
      render(a->dictionary, s->dictionary->format, strtoll(ix, NULL, 10), v, sizeof v);
    } else {
      render(a, s->format, i, v, sizeof v);
    }
    k += (size_t)snprintf(out + k, cap - k, "%s%s", i ? "|" : "", v);
  }
}

/* ---- the "all types" files ----------------------------------------------------------- */

typedef struct col_want {
  const char *name;
  const char *format;
  const char *dict_format; /* NULL when not dictionary-encoded */
  int64_t flags;
  const char *rows; /* the 5 rows of the first batch */
} col_want;

#define N ARROW_FLAG_NULLABLE
static const col_want k_all[] = {
    {"n", "n", NULL, N, "null|null|null|null|null"},
    {"b", "b", NULL, N, "1|0|null|1|0"},
    {"i8", "c", NULL, N, "1|-2|null|127|-128"},
    {"i16", "s", NULL, N, "1000|-2|null|32767|-32768"},
    {"i32", "i", NULL, N, "100000|-2|null|2147483647|-2147483648"},
    {"i64", "l", NULL, N, "1000000000000|-2|null|9223372036854775807|-9223372036854775808"},
    {"u8", "C", NULL, N, "1|2|null|255|0"},
    {"u16", "S", NULL, N, "1|2|null|65535|0"},
    {"u32", "I", NULL, N, "1|2|null|4294967295|0"},
    {"u64", "L", NULL, N, "1|2|null|18446744073709551615|0"},
    {"f16", "e", NULL, N, "1.5|-2|null|0.25|65504"},
    {"f32", "f", NULL, N, "1.5|-2.25|null|3.00000001e+38|0"},
    {"f64", "g", NULL, N, "1.5|-2.25|null|1.0000000000000001e+300|-0"},
    {"s", "u", NULL, N, "a||null|h\xc3\xa9llo|xyz"},
    {"ls", "U", NULL, N, "a||null|h\xc3\xa9llo|xyz"},
    {"bin", "z", NULL, N, "0001||null|ff|616263"},
    {"lbin", "Z", NULL, N, "0001||null|ff|616263"},
    {"d32", "tdD", NULL, N, "0|19000|null|-1|365"},
    {"d64", "tdm", NULL, N, "0|86400000|null|-86400000|1"},
    {"ts_s", "tss:", NULL, N, "0|1|null|-1|1700000000"},
    {"ts_ms", "tsm:", NULL, N, "0|1|null|-1|1700000000"},
    {"ts_us", "tsu:", NULL, N, "0|1|null|-1|1700000000"},
    {"ts_ns", "tsn:", NULL, N, "0|1|null|-1|1700000000"},
    {"ts_us_utc", "tsu:UTC", NULL, N, "0|1|null|-1|1700000000"},
    {"ts_ns_ny", "tsn:America/New_York", NULL, N, "0|1|null|-1|1700000000"},
    {"t32_s", "tts", NULL, N, "0|1|null|86399|3600"},
    {"t32_ms", "ttm", NULL, N, "0|1|null|86399999|5"},
    {"t64_us", "ttu", NULL, N, "0|1|null|86399999999|5"},
    {"t64_ns", "ttn", NULL, N, "0|1|null|86399999999999|5"},
    {"dur_s", "tDs", NULL, N, "0|1|null|-1|1000000000000"},
    {"dur_ms", "tDm", NULL, N, "0|1|null|-1|1000000000000"},
    {"dur_us", "tDu", NULL, N, "0|1|null|-1|1000000000000"},
    {"dur_ns", "tDn", NULL, N, "0|1|null|-1|1000000000000"},
    {"dict_s", "c", "u", N | ARROW_FLAG_DICTIONARY_ORDERED, "x|y|null|x|zz"},
    {"dict_i", "S", "l", N, "20|10|20|null|30"},
    {"dict_ls", "l", "U", N, "rr|null|q|null|p"},
    {"nn", "i", NULL, 0, "5|6|7|8|9"},
};
#undef N
#define N_ALL (sizeof k_all / sizeof k_all[0])

/* Rows [from, from + n) of a '|'-joined row string. */
static void rows_slice(const char *rows, int from, int n, char *out, size_t cap) {
  int row = 0;
  size_t k = 0;
  out[0] = '\0';
  for (const char *p = rows;; p++) {
    if (*p == '|' || *p == '\0') {
      row++;
      if (*p == '\0')
        break;
      if (row > from && row < from + n && k + 1 < cap)
        out[k++] = '|';
      continue;
    }
    if (row >= from && row < from + n && k + 1 < cap)
      out[k++] = *p;
  }
  out[k] = '\0';
}

static void check_all_schema(const struct ArrowSchema *s) {
  assert_string_equal(s->format, "+s");
  assert_int_equal(s->n_children, N_ALL);
  for (size_t c = 0; c < N_ALL; c++) {
    const struct ArrowSchema *k = s->children[c];
    assert_string_equal(k->name, k_all[c].name);
    assert_string_equal(k->format, k_all[c].format);
    assert_int_equal(k->flags, k_all[c].flags);
    assert_int_equal(k->n_children, 0);
    assert_non_null(k->release);
    if (k_all[c].dict_format) {
      assert_non_null(k->dictionary);
      assert_string_equal(k->dictionary->format, k_all[c].dict_format);
    } else {
      assert_null(k->dictionary);
    }
  }
}

/* Check the three batches of an all* file (5 rows, 0 rows, rows 2..4). zero_copy: 1 when
   uncompressed buffers must point into [base, base + len), 0 when they must not (the
   input is misaligned), -1 when not checked. */
static void check_all_stream(struct ArrowArrayStream *st, const uint8_t *base, size_t len,
                             int zero_copy) {
  struct ArrowSchema s;
  assert_int_equal(st->get_schema(st, &s), 0);
  check_all_schema(&s);
  const int from[3] = {0, 0, 2}, count[3] = {5, 0, 3};
  for (int bi = 0; bi < 3; bi++) {
    struct ArrowArray b;
    assert_int_equal(st->get_next(st, &b), 0);
    assert_non_null(b.release);
    assert_int_equal(b.length, count[bi]);
    assert_int_equal(b.n_children, N_ALL);
    uint64_t sum = 0;
    assert_int_equal(ipct_batch(&s, &b, &sum), 0);
    for (size_t c = 0; c < N_ALL; c++) {
      char want[512], got[512];
      rows_slice(k_all[c].rows, from[bi], count[bi], want, sizeof want);
      render_col(s.children[c], b.children[c], got, sizeof got);
      if (strcmp(want, got) != 0)
        fail_msg("batch %d column %s: want '%s', got '%s'", bi, k_all[c].name, want, got);
      int64_t nulls = 0;
      for (int i = 0; i < count[bi]; i++) {
        char one[64];
        rows_slice(k_all[c].rows, from[bi] + i, 1, one, sizeof one);
        nulls += strcmp(one, "null") == 0 && !s.children[c]->dictionary;
      }
      if (!s.children[c]->dictionary)
        assert_int_equal(b.children[c]->null_count, nulls);
    }
    if (zero_copy >= 0 && count[bi] > 0) {
      /* i32 (index 4): 4-byte values; pyarrow aligns buffers to 8 bytes in the file. */
      const uint8_t *p = b.children[4]->buffers[1];
      int inside = p >= base && p < base + len;
      assert_int_equal(inside, zero_copy);
      assert_int_equal((uintptr_t)p % 4, 0);
      const uint8_t *q = b.children[5]->buffers[1]; /* i64 */
      assert_int_equal((uintptr_t)q % 8, 0);
    }
    b.release(&b);
    assert_null(b.release);
  }
  struct ArrowArray end;
  assert_int_equal(st->get_next(st, &end), 0);
  assert_null(end.release);
  assert_int_equal(st->get_next(st, &end), 0); /* stays at the end */
  assert_null(end.release);
  s.release(&s);
  assert_null(s.release);
}

static void check_all_file(const char *name, int compressed) {
  char path[1024];
  data_path(path, sizeof path, name);
  struct ArrowArrayStream st;
  myr_error err = {0};
  assert_int_equal(myr__ipc_open(path, &st, &err), MYR_OK);
  uint64_t done = 1, total = 0;
  myr__ipc_progress(&st, &done, &total);
  check_all_stream(&st, NULL, 0, -1);
  myr__ipc_progress(&st, &done, &total);
  assert_true(done > 0 && done <= total);
  struct stat sb;
  assert_int_equal(stat(path, &sb), 0);
  assert_int_equal(total, (uint64_t)sb.st_size);
  st.release(&st);
  assert_null(st.release);

  /* From memory: aligned (zero copy unless compressed) and misaligned by one byte (every
     buffer of a wider type is copied). */
  blob b = load(name);
  assert_int_equal(myr__ipc_open_mem(b.p, b.n, name, &st, &err), MYR_OK);
  check_all_stream(&st, b.p, b.n, compressed ? 0 : 1);
  st.release(&st);
  uint8_t *odd = malloc(b.n + 1);
  assert_non_null(odd);
  memcpy(odd + 1, b.p, b.n);
  assert_int_equal(myr__ipc_open_mem(odd + 1, b.n, name, &st, &err), MYR_OK);
  check_all_stream(&st, odd + 1, b.n, 0);
  st.release(&st);
  free(odd);
  free(b.p);
}

static void test_all_stream(void **state) {
  (void)state;
  check_all_file("all.stream", 0);
}
static void test_all_file(void **state) {
  (void)state;
  check_all_file("all.arrow", 0);
}
static void test_all_lz4(void **state) {
  (void)state;
  check_all_file("all_lz4.stream", 1);
  check_all_file("all_lz4.arrow", 1);
}
static void test_all_zstd(void **state) {
  (void)state;
  check_all_file("all_zstd.stream", 1);
  check_all_file("all_zstd.arrow", 1);
}
static void test_all_legacy_and_v4(void **state) {
  (void)state;
  check_all_file("all_legacy.stream", 0);
  check_all_file("all_v4.arrow", 0);
}

static void test_empty(void **state) {
  (void)state;
  const char *names[] = {"empty.stream", "empty.arrow"};
  for (int k = 0; k < 2; k++) {
    char path[1024];
    data_path(path, sizeof path, names[k]);
    struct ArrowArrayStream st;
    myr_error err = {0};
    assert_int_equal(myr__ipc_open(path, &st, &err), MYR_OK);
    struct ArrowSchema s;
    assert_int_equal(st.get_schema(&st, &s), 0);
    check_all_schema(&s);
    s.release(&s);
    struct ArrowArray b;
    assert_int_equal(st.get_next(&st, &b), 0);
    assert_null(b.release);
    assert_null(st.get_last_error(&st));
    st.release(&st);
  }
}

/* ---- formats and sniffing ------------------------------------------------------------ */

static void test_sniff(void **state) {
  (void)state;
  const char *files[] = {"all.arrow", "all.stream", "all_legacy.stream", "all_zstd.stream"};
  const int want[] = {MYR__FMT_ARROW_FILE, MYR__FMT_ARROW_STREAM, MYR__FMT_ARROW_STREAM,
                      MYR__FMT_ARROW_STREAM};
  for (int k = 0; k < 4; k++) {
    char path[1024];
    data_path(path, sizeof path, files[k]);
    int fmt = -1;
    myr_error err = {0};
    assert_int_equal(myr__format_of_path(path, &fmt, &err), MYR_OK);
    assert_int_equal(fmt, want[k]);
    blob b = load(files[k]);
    assert_int_equal(myr__format_sniff(b.p, b.n), want[k]);
    /* the head alone is enough */
    assert_int_equal(myr__format_sniff(b.p, 64), want[k]);
    free(b.p);
  }
  const char *csv = "key,x,y\n1,2,3\n";
  assert_int_equal(myr__format_sniff((const uint8_t *)csv, strlen(csv)), MYR__FMT_CSV);
  assert_int_equal(myr__format_sniff((const uint8_t *)"", 0), MYR__FMT_CSV);
  assert_int_equal(myr__format_sniff(NULL, 0), MYR__FMT_CSV);
  const uint8_t tiny[4] = {1, 0, 0, 0};
  assert_int_equal(myr__format_sniff(tiny, 4), MYR__FMT_CSV);
  char path[512];
  tu_write_file(path, sizeof path, "sniff.csv", csv, strlen(csv));
  int fmt = -1;
  myr_error err = {0};
  assert_int_equal(myr__format_of_path(path, &fmt, &err), MYR_OK);
  assert_int_equal(fmt, MYR__FMT_CSV);
  tu_path(path, sizeof path, "no-such-file.arrow");
  assert_int_equal(myr__format_of_path(path, &fmt, &err), MYR_EIO);
  assert_non_null(strstr(err.message, "no-such-file.arrow"));
}

static void test_open_errors(void **state) {
  (void)state;
  struct ArrowArrayStream st;
  myr_error err = {0};
  char path[512];
  tu_path(path, sizeof path, "missing.arrows");
  assert_int_equal(myr__ipc_open(path, &st, &err), MYR_EIO);
  assert_non_null(strstr(err.message, "missing.arrows"));
  assert_null(st.release);
  tu_write_file(path, sizeof path, "empty.arrows", "", 0);
  assert_int_not_equal(myr__ipc_open(path, &st, &err), MYR_OK);
  assert_non_null(strstr(err.message, "empty"));
  const char *csv = "a,b\n1,2\n";
  tu_write_file(path, sizeof path, "text.csv", csv, strlen(csv));
  assert_int_equal(myr__ipc_open(path, &st, &err), MYR_EPARSE);
  assert_non_null(strstr(err.message, "text.csv"));
  assert_non_null(strstr(err.message, "not an Arrow IPC"));
  assert_int_equal(myr__ipc_open_mem((const uint8_t *)csv, strlen(csv), "mem.csv", &st, &err),
                   MYR_EPARSE);
  assert_non_null(strstr(err.message, "mem.csv"));
  /* A file cut before its footer. */
  blob b = load("all.arrow");
  assert_int_equal(myr__ipc_open_mem(b.p, b.n - 3, "cut.arrow", &st, &err), MYR_EPARSE);
  assert_non_null(strstr(err.message, "cut.arrow"));
  assert_non_null(strstr(err.message, "magic"));
  free(b.p);
}

/* A FIFO cannot be mapped: the reader reads it into memory. */
static void test_pipe(void **state) {
  (void)state;
  char path[512];
  tu_path(path, sizeof path, "pipe.arrows");
  unlink(path);
  assert_int_equal(mkfifo(path, 0600), 0);
  blob b = load("delta.stream");
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    FILE *f = fopen(path, "wb");
    size_t put = f ? fwrite(b.p, 1, b.n, f) : 0;
    if (f)
      fclose(f);
    _exit(put == b.n ? 0 : 1);
  }
  struct ArrowArrayStream st;
  myr_error err = {0};
  assert_int_equal(myr__ipc_open(path, &st, &err), MYR_OK);
  uint64_t sum = 0;
  assert_int_equal(ipct_stream(&st, &sum), 3);
  uint64_t done, total;
  myr__ipc_progress(&st, &done, &total);
  assert_int_equal(total, b.n);
  assert_int_equal(done, b.n);
  st.release(&st);
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  free(b.p);
}

/* ---- dictionaries ---------------------------------------------------------------------- */

static void dict_text(const struct ArrowSchema *s, const struct ArrowArray *a, char *out,
                      size_t cap) {
  size_t k = 0;
  out[0] = '\0';
  for (int64_t i = 0; i < a->dictionary->length; i++) {
    char v[64];
    render(a->dictionary, s->dictionary->format, i, v, sizeof v);
    k += (size_t)snprintf(out + k, cap - k, "%s%s", i ? "|" : "", v);
  }
}

static void check_delta(const char *name) {
  char path[1024];
  data_path(path, sizeof path, name);
  struct ArrowArrayStream st;
  myr_error err = {0};
  assert_int_equal(myr__ipc_open(path, &st, &err), MYR_OK);
  struct ArrowSchema s;
  assert_int_equal(st.get_schema(&st, &s), 0);
  assert_int_equal(s.n_children, 3);
  assert_string_equal(s.children[0]->format, "s");
  assert_string_equal(s.children[0]->dictionary->format, "u");
  assert_string_equal(s.children[1]->format, "c");
  assert_string_equal(s.children[1]->dictionary->format, "i");
  assert_string_equal(s.children[2]->format, "i");
  assert_string_equal(s.children[2]->dictionary->format, "b");
  static const char *const want_rows[3][3] = {
      {"a|b|b", "7|null|null", "1|1|1"},
      {"d|null|c|a", "7|null|9|7", "1|null|0|1"},
      {"e", "null", "null"},
  };
  static const char *const want_dict[3][3] = {
      {"a|b", "7|null", "1"},
      {"a|b|c|d", "7|null|9", "1|null|0"},
      {"a|b|c|d|e", "7|null|9", "1|null|0"},
  };
  struct ArrowArray kept[3];
  for (int bi = 0; bi < 3; bi++) {
    assert_int_equal(st.get_next(&st, &kept[bi]), 0);
    assert_non_null(kept[bi].release);
    uint64_t sum = 0;
    assert_int_equal(ipct_batch(&s, &kept[bi], &sum), 0);
  }
  struct ArrowArray end;
  assert_int_equal(st.get_next(&st, &end), 0);
  assert_null(end.release);
  st.release(&st); /* the batches outlive the stream */
  for (int bi = 0; bi < 3; bi++) {
    for (int c = 0; c < 3; c++) {
      char got[256];
      render_col(s.children[c], kept[bi].children[c], got, sizeof got);
      if (strcmp(got, want_rows[bi][c]) != 0)
        fail_msg("%s batch %d column %d: want '%s', got '%s'", name, bi, c,
                 want_rows[bi][c], got);
      /* a file's dictionaries (deltas included) are all read at open */
      int di = strstr(name, ".arrow") ? 2 : bi;
      dict_text(s.children[c], kept[bi].children[c], got, sizeof got);
      if (strcmp(got, want_dict[di][c]) != 0)
        fail_msg("%s batch %d dictionary %d: want '%s', got '%s'", name, bi, c,
                 want_dict[di][c], got);
    }
    kept[bi].release(&kept[bi]);
  }
  s.release(&s);
}

static void test_dictionary_deltas(void **state) {
  (void)state;
  check_delta("delta.stream");
  check_delta("delta_zstd.arrow");
}

static void test_dictionary_delta_large(void **state) {
  (void)state;
  char path[1024];
  data_path(path, sizeof path, "delta_large.stream");
  struct ArrowArrayStream st;
  myr_error err = {0};
  assert_int_equal(myr__ipc_open(path, &st, &err), MYR_OK);
  struct ArrowSchema s;
  assert_int_equal(st.get_schema(&st, &s), 0);
  assert_string_equal(s.children[0]->format, "i");
  assert_string_equal(s.children[0]->dictionary->format, "U");
  struct ArrowArray b1, b2;
  assert_int_equal(st.get_next(&st, &b1), 0);
  assert_int_equal(st.get_next(&st, &b2), 0);
  st.release(&st);
  char got[128];
  dict_text(s.children[0], b1.children[0], got, sizeof got);
  assert_string_equal(got, "\xce\xb1\xce\xb2|null");
  dict_text(s.children[0], b2.children[0], got, sizeof got);
  assert_string_equal(got, "\xce\xb1\xce\xb2|null||xyz");
  render_col(s.children[0], b2.children[0], got, sizeof got);
  assert_string_equal(got, "xyz||\xce\xb1\xce\xb2");
  /* the null value of the dictionary (index 1) reads as null through the lookup */
  render_col(s.children[0], b1.children[0], got, sizeof got);
  assert_string_equal(got, "null|\xce\xb1\xce\xb2|null");
  b1.release(&b1);
  b2.release(&b2);
  s.release(&s);
}

/* 1000 rows: validity bitmaps of full 64-bit words. */
static void test_long(void **state) {
  (void)state;
  char path[1024];
  data_path(path, sizeof path, "long.stream");
  struct ArrowArrayStream st;
  myr_error err = {0};
  assert_int_equal(myr__ipc_open(path, &st, &err), MYR_OK);
  struct ArrowSchema s;
  assert_int_equal(st.get_schema(&st, &s), 0);
  struct ArrowArray b;
  assert_int_equal(st.get_next(&st, &b), 0);
  assert_int_equal(b.length, 1000);
  assert_int_equal(b.children[0]->null_count, 334);
  assert_int_equal(b.children[1]->null_count, 200);
  for (int64_t i = 0; i < 1000; i++) {
    char got[64], want[64];
    render(b.children[0], "l", i, got, sizeof got);
    if (i % 3 == 0)
      snprintf(want, sizeof want, "null");
    else
      snprintf(want, sizeof want, "%lld", (long long)(7 * i - 3000));
    assert_string_equal(got, want);
    render(b.children[1], "u", i, got, sizeof got);
    if (i % 5 == 0)
      snprintf(want, sizeof want, "null");
    else
      snprintf(want, sizeof want, "%lld", (long long)i);
    assert_string_equal(got, want);
  }
  b.release(&b);
  s.release(&s);
  st.release(&st);
}

static void test_dictionary_replacement(void **state) {
  (void)state;
  blob b = load("replace.stream");
  struct ArrowArrayStream st;
  myr_error err = {0};
  assert_int_equal(myr__ipc_open_mem(b.p, b.n, "replace.stream", &st, &err), MYR_OK);
  struct ArrowSchema s;
  assert_int_equal(st.get_schema(&st, &s), 0);
  struct ArrowArray b1, b2;
  assert_int_equal(st.get_next(&st, &b1), 0);
  assert_int_equal(st.get_next(&st, &b2), 0);
  char got[128];
  render_col(s.children[0], b2.children[0], got, sizeof got);
  assert_string_equal(got, "s|r|s");
  render_col(s.children[0], b1.children[0], got, sizeof got); /* the old dictionary */
  assert_string_equal(got, "p|q");
  b2.release(&b2);
  st.release(&st);
  render_col(s.children[0], b1.children[0], got, sizeof got);
  assert_string_equal(got, "p|q");
  b1.release(&b1);
  s.release(&s);
  free(b.p);
}

/* ---- refused types ------------------------------------------------------------------- */

static void test_unsupported(void **state) {
  (void)state;
  static const char *const cases[][2] = {
      {"list", "list"},       {"decimal", "decimal"}, {"struct", "struct"},
      {"fsb", "fixed_size_binary"}, {"ext", "extension"}, {"view", "utf8_view"},
      {"dictlist", "list"},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    char name[64], path[1024], col[64];
    snprintf(name, sizeof name, "unsup_%s.stream", cases[k][0]);
    snprintf(col, sizeof col, "'bad_%s'", cases[k][0]);
    data_path(path, sizeof path, name);
    struct ArrowArrayStream st;
    myr_error err = {0};
    assert_int_equal(myr__ipc_open(path, &st, &err), MYR_EUNSUPPORTED);
    assert_null(st.release);
    if (!strstr(err.message, col) || !strstr(err.message, cases[k][1]) ||
        !strstr(err.message, name))
      fail_msg("%s: message lacks the column, type or file: %s", name, err.message);
  }
}

/* ---- lifetimes --------------------------------------------------------------------- */

static void test_lifetimes(void **state) {
  (void)state;
  blob b = load("all_zstd.stream");
  struct ArrowArrayStream st;
  myr_error err = {0};
  assert_int_equal(myr__ipc_open_mem(b.p, b.n, "z", &st, &err), MYR_OK);
  struct ArrowSchema s;
  assert_int_equal(st.get_schema(&st, &s), 0);
  struct ArrowArray batch;
  assert_int_equal(st.get_next(&st, &batch), 0);
  st.release(&st);
  assert_null(st.release);
  /* Move a child and a dictionary child out, then release the parent first. */
  struct ArrowArray s_col = *batch.children[13], dict_col = *batch.children[33];
  batch.children[13]->release = NULL;
  batch.children[33]->release = NULL;
  struct ArrowSchema s_sch = *s.children[33];
  s.children[33]->release = NULL;
  batch.release(&batch);
  s.release(&s);
  char got[256];
  render_col(&s_sch, &dict_col, got, sizeof got);
  assert_string_equal(got, "x|y|null|x|zz");
  /* the dictionary moved out of its column, which is released first */
  struct ArrowArray dict_only = *dict_col.dictionary;
  dict_col.dictionary->release = NULL;
  dict_col.release(&dict_col);
  assert_int_equal(dict_only.length, 3);
  render(&dict_only, "u", 2, got, sizeof got);
  assert_string_equal(got, "zz");
  dict_only.release(&dict_only);
  s_sch.release(&s_sch);
  struct ArrowSchema one = {.format = "u"};
  render_col(&one, &s_col, got, sizeof got);
  assert_string_equal(got, "a||null|h\xc3\xa9llo|xyz");
  s_col.release(&s_col);
  free(b.p);
}

/* ---- hostile input ------------------------------------------------------------------ */

/* Open a copy of bytes and read everything; a broken invariant fails the test. Returns
   the batch count, or -1 for an error (whose message must name the input). */
static long read_copy(const uint8_t *p, size_t n) {
  uint8_t *copy = malloc(n ? n : 1);
  assert_non_null(copy);
  memcpy(copy, p, n);
  struct ArrowArrayStream st;
  myr_error err = {0};
  long got = -1;
  if (myr__ipc_open_mem(copy, n, "hostile", &st, &err) == MYR_OK) {
    uint64_t sum = 0;
    got = ipct_stream(&st, &sum);
    if (got == -1)
      assert_non_null(strstr(st.get_last_error(&st), "hostile"));
    st.release(&st);
  } else {
    assert_non_null(strstr(err.message, "hostile"));
  }
  if (got == -2)
    fail_msg("broken invariant on an accepted input of %zu bytes", n);
  free(copy);
  return got;
}

static void test_truncations(void **state) {
  (void)state;
  const char *names[] = {"all.stream", "all.arrow", "all_lz4.stream", "delta.stream",
                         "delta_zstd.arrow"};
  for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
    blob b = load(names[k]);
    long full = read_copy(b.p, b.n);
    assert_int_equal(full, 3);
    long ok = 0;
    for (size_t n = 0; n < b.n; n++)
      ok += read_copy(b.p, n) >= 0;
    /* streams cut at a message boundary read as shorter streams; files never do */
    if (strstr(names[k], ".arrow"))
      assert_int_equal(ok, 0);
    else
      assert_true(ok > 0);
    free(b.p);
  }
}

static void test_corruptions(void **state) {
  (void)state;
  const char *names[] = {"all.stream", "all.arrow", "all_lz4.stream", "all_zstd.arrow",
                         "delta.stream", "all_legacy.stream"};
  /* a low bit, a sign bit, every bit: one of them per position, in turn */
  const uint8_t xors[] = {0x01, 0x80, 0xff};
  for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
    blob b = load(names[k]);
    size_t step = b.n > 4096 ? 2 : 1;
    long errors = 0;
    for (size_t pos = 0; pos < b.n; pos += step) {
      uint8_t save = b.p[pos];
      b.p[pos] = (uint8_t)(save ^ xors[(pos / step) % sizeof xors]);
      errors += read_copy(b.p, b.n) < 0;
      b.p[pos] = save;
    }
    assert_true(errors > 0);
    free(b.p);
  }
}

/* Patch the input behind a zero-copy buffer of the first batch and expect an error that
   names the column and what is wrong. */
static void expect_patched_error(const char *column, int buffer, size_t at, const void *val,
                                 size_t n, const char *what) {
  blob b = load("all.stream");
  struct ArrowArrayStream st;
  myr_error err = {0};
  assert_int_equal(myr__ipc_open_mem(b.p, b.n, "patched", &st, &err), MYR_OK);
  struct ArrowSchema s;
  assert_int_equal(st.get_schema(&st, &s), 0);
  struct ArrowArray batch;
  assert_int_equal(st.get_next(&st, &batch), 0);
  size_t c = 0;
  while (strcmp(s.children[c]->name, column) != 0)
    c++;
  const uint8_t *p = batch.children[c]->buffers[buffer];
  assert_true(p >= b.p && p < b.p + b.n);
  size_t off = (size_t)(p - b.p) + at;
  batch.release(&batch);
  s.release(&s);
  st.release(&st);
  memcpy(b.p + off, val, n);
  assert_int_equal(myr__ipc_open_mem(b.p, b.n, "patched", &st, &err), MYR_OK);
  struct ArrowArray out;
  assert_int_equal(st.get_next(&st, &out), EINVAL);
  assert_null(out.release);
  const char *msg = st.get_last_error(&st);
  assert_non_null(msg);
  char col[64];
  snprintf(col, sizeof col, "column '%s'", column);
  if (!strstr(msg, col) || !strstr(msg, what) || !strstr(msg, "patched") ||
      !strstr(msg, "message"))
    fail_msg("unexpected message: %s", msg);
  /* a failed stream keeps failing the same way */
  assert_int_equal(st.get_next(&st, &out), EINVAL);
  assert_string_equal(st.get_last_error(&st), msg);
  st.release(&st);
  free(b.p);
}

static void test_validation(void **state) {
  (void)state;
  int32_t big = 1000000, neg = -1;
  int8_t bad_ix = 3;
  uint8_t no_nulls = 0xff;
  expect_patched_error("s", 1, 4, &big, 4, "offset");   /* past the data */
  expect_patched_error("s", 1, 8, &neg, 4, "offset");   /* decreasing */
  expect_patched_error("s", 1, 0, &neg, 4, "offset");   /* negative start */
  expect_patched_error("dict_s", 1, 4, &bad_ix, 1, "dictionary index at row 4");
  expect_patched_error("i32", 0, 0, &no_nulls, 1, "null count");
}

/* Open bytes that must fail at the first get_next with a message holding each of what. */
static void expect_next_error(const uint8_t *p, size_t n, const char *what1,
                              const char *what2) {
  struct ArrowArrayStream st;
  myr_error err = {0};
  assert_int_equal(myr__ipc_open_mem(p, n, "bomb", &st, &err), MYR_OK);
  struct ArrowArray b;
  assert_int_not_equal(st.get_next(&st, &b), 0);
  assert_null(b.release);
  const char *msg = st.get_last_error(&st);
  if (!strstr(msg, what1) || !strstr(msg, what2) || !strstr(msg, "bomb"))
    fail_msg("unexpected message: %s", msg);
  st.release(&st);
}

/* The first compressed frame of a body: its magic, preceded by the 8-byte length. */
static size_t find_frame(const blob *b, const uint8_t magic[4]) {
  for (size_t i = 8; i + 4 <= b->n; i++)
    if (memcmp(b->p + i, magic, 4) == 0)
      return i;
  fail_msg("no compressed frame");
  return 0;
}

static void test_compression_errors(void **state) {
  (void)state;
  static const uint8_t zstd_magic[4] = {0x28, 0xb5, 0x2f, 0xfd};
  static const uint8_t lz4_magic[4] = {0x04, 0x22, 0x4d, 0x18};
  blob b = load("all_zstd.stream");
  size_t at = find_frame(&b, zstd_magic);
  int64_t was, v;
  memcpy(&was, b.p + at - 8, 8);
  v = (int64_t)1 << 40; /* a decompression bomb: refused before allocating */
  memcpy(b.p + at - 8, &v, 8);
  expect_next_error(b.p, b.n, "claims 1099511627776 bytes", "limit");
  v = was + 1;
  memcpy(b.p + at - 8, &v, 8);
  expect_next_error(b.p, b.n, "ZSTD", "announced");
  v = -5;
  memcpy(b.p + at - 8, &v, 8);
  expect_next_error(b.p, b.n, "claims -5 bytes", "column");
  free(b.p);
  b = load("all_lz4.stream");
  at = find_frame(&b, lz4_magic);
  memcpy(&was, b.p + at - 8, 8);
  v = was - 1;
  memcpy(b.p + at - 8, &v, 8);
  expect_next_error(b.p, b.n, "LZ4", "column");
  memcpy(b.p + at - 8, &was, 8);
  b.p[at + 4] ^= 0x40; /* frame descriptor flags: version bits */
  expect_next_error(b.p, b.n, "LZ4", "column");
  free(b.p);
}

/* ---- allocation failures ------------------------------------------------------------- */

static int alloc_run(const char *name, const blob *b, int from_path) {
  struct ArrowArrayStream st;
  myr_error err = {0};
  char path[1024];
  data_path(path, sizeof path, name);
  int rc = from_path ? myr__ipc_open(path, &st, &err)
                     : myr__ipc_open_mem(b->p, b->n, name, &st, &err);
  if (rc != MYR_OK) {
    assert_null(st.release);
    assert_int_equal(rc, MYR_ENOMEM);
    return rc;
  }
  uint64_t sum = 0;
  long n = ipct_stream(&st, &sum);
  if (n < 0) {
    assert_int_equal(n, -1);
    assert_non_null(strstr(st.get_last_error(&st), "out of memory"));
    rc = MYR_ENOMEM;
  } else {
    assert_int_equal(n, 3);
  }
  st.release(&st);
  return rc;
}

static void test_alloc_failures(void **state) {
  (void)state;
  const char *names[] = {"all.stream", "delta.stream", "all_lz4.arrow", "delta_zstd.arrow"};
  for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
    blob b = load(names[k]);
    for (int from_path = 0; from_path < 2; from_path++) {
      long n;
      for (n = 1; n < 100000; n++) {
        long live = tu_alloc_live();
        tu_alloc_fail_at(n, 0);
        int rc = alloc_run(names[k], &b, from_path);
        int failed = tu_alloc_failed();
        tu_alloc_fail_at(0, 0);
        assert_int_equal(tu_alloc_live(), live);
        if (!failed) {
          assert_int_equal(rc, MYR_OK);
          break;
        }
      }
      assert_true(n > 5 && n < 100000);
    }
    free(b.p);
  }
}

int main(void) {
  tu_alloc_install();
  if (getenv("IPC_TEST_FILTER")) /* e.g. IPC_TEST_FILTER='test_all_*' */
    cmocka_set_test_filter(getenv("IPC_TEST_FILTER"));
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_all_stream),
      cmocka_unit_test(test_all_file),
      cmocka_unit_test(test_all_lz4),
      cmocka_unit_test(test_all_zstd),
      cmocka_unit_test(test_all_legacy_and_v4),
      cmocka_unit_test(test_empty),
      cmocka_unit_test(test_sniff),
      cmocka_unit_test(test_open_errors),
      cmocka_unit_test(test_pipe),
      cmocka_unit_test(test_dictionary_deltas),
      cmocka_unit_test(test_dictionary_delta_large),
      cmocka_unit_test(test_long),
      cmocka_unit_test(test_dictionary_replacement),
      cmocka_unit_test(test_unsupported),
      cmocka_unit_test(test_lifetimes),
      cmocka_unit_test(test_truncations),
      cmocka_unit_test(test_corruptions),
      cmocka_unit_test(test_validation),
      cmocka_unit_test(test_compression_errors),
      cmocka_unit_test(test_alloc_failures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
