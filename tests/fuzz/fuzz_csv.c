/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the CSV reader. The first input byte picks the options (delimiter,
 * chunk size, batch size, max_record); the rest is the file. The input is parsed twice,
 * with the chosen chunk size and with one large chunk, and the two runs must agree on
 * every row, line, skip reason and field byte: chunk boundaries must never change the
 * result. Every field byte is read (so ASan sees any overrun) and the batch invariants
 * are checked with __builtin_trap().
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "io/csv.h"
#include "myriad/train.h"

#define CHECK(cond)                                                                      \
  do {                                                                                   \
    if (!(cond))                                                                         \
      __builtin_trap();                                                                  \
  } while (0)

typedef struct run_result {
  int open_rc;   /* status of open */
  int next_rc;   /* status of the last next */
  uint64_t rows; /* rows seen */
  uint64_t hash; /* FNV-1a over everything a consumer can see */
} run_result;

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
  const unsigned char *s = p;
  for (size_t i = 0; i < n; i++) {
    h ^= s[i];
    h *= 1099511628211ull;
  }
  return h;
}

static run_result run(const char *data, size_t size, const myr__csv_options *o,
                      int select_some) {
  run_result r = {0, 0, 0, 14695981039346656037ull};
  myr__csv *c = NULL;
  myr_error err = {0};
  r.open_rc = myr__csv_open_mem(data, size, "fuzz.csv", o, &c, &err);
  if (r.open_rc != MYR_OK) {
    CHECK(c == NULL && r.open_rc < 0 && err.code == r.open_rc && err.message[0]);
    return r;
  }
  size_t ncol = myr__csv_n_columns(c);
  CHECK(ncol >= 1);
  for (size_t j = 0; j < ncol; j++) {
    const char *name = myr__csv_column_name(c, j);
    CHECK(name && name[0]);
    r.hash = fnv(r.hash, name, strlen(name) + 1);
  }
  char d = myr__csv_delimiter(c);
  CHECK(d == ',' || d == '\t' || d == ';');
  if (select_some) { /* every other column */
    unsigned char want[64];
    size_t n = ncol < 64 ? ncol : 64;
    for (size_t j = 0; j < n; j++)
      want[j] = (unsigned char)(j % 2 == 0);
    if (n == ncol)
      CHECK(myr__csv_select(c, want, &err) == MYR_OK);
  }
  uint64_t last_line = 0;
  size_t batch_rows = o->batch_rows ? o->batch_rows : 65536;
  for (;;) {
    const myr__batch *b = NULL;
    r.next_rc = myr__csv_next(c, &b, &err);
    if (r.next_rc != MYR_OK) {
      CHECK(b == NULL && r.next_rc < 0);
      break;
    }
    if (!b)
      break;
    CHECK(b->n_rows >= 1 && b->n_rows <= batch_rows);
    CHECK(b->first_row == r.rows);
    CHECK(b->n_columns == ncol && b->line && b->skip && b->skip_arg);
    for (size_t i = 0; i < b->n_rows; i++) {
      CHECK(b->line[i] > last_line && b->line[i] >= 2);
      last_line = b->line[i];
      CHECK(b->skip[i] <= MYR_SKIP_BLANK_LINE + 1);
      uint64_t meta[3] = {b->line[i], b->skip[i], b->skip_arg[i]};
      r.hash = fnv(r.hash, meta, sizeof meta);
      if (b->skip[i] == MYR_SKIP_FIELD_COUNT + 1)
        CHECK(b->skip_arg[i] != ncol);
      if (b->skip[i] == MYR_SKIP_BAD_QUOTING + 1 || b->skip[i] == MYR_SKIP_NUL_BYTE + 1)
        CHECK(b->skip_arg[i] >= 1);
      if (b->skip[i] == MYR_SKIP_BLANK_LINE + 1)
        CHECK(ncol > 1);
      if (b->skip[i])
        continue;
      for (size_t j = 0; j < ncol; j++) {
        const myr__column *col = &b->columns[j];
        CHECK(col->validity == NULL);
        if (col->kind == MYR__COL_ABSENT) {
          CHECK(select_some && j % 2 == 1);
          continue;
        }
        CHECK(col->kind == MYR__COL_TEXT && col->text && col->text_off && col->text_len);
        uint64_t off = col->text_off[i], len = col->text_len[i];
        CHECK(off + len <= size); /* the buffer never holds more than the input */
        const char *t = col->text + off;
        unsigned sum = 0;
        for (uint64_t k = 0; k < len; k++) {
          CHECK(t[k] != '\0'); /* rows with a NUL byte are skipped */
          sum += (unsigned char)t[k];
        }
        r.hash = fnv(r.hash, &len, sizeof len);
        r.hash = fnv(r.hash, t, (size_t)len);
        r.hash ^= sum;
      }
    }
    r.rows += b->n_rows;
  }
  CHECK(r.next_rc != MYR_OK || myr__csv_bytes_read(c) == size);
  CHECK(myr__csv_bytes_total(c) == size);
  myr__csv_close(c);
  return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const size_t chunks[8] = {1, 2, 3, 7, 16, 64, 4096, 0};
  static const size_t batches[4] = {0, 1, 3, 64};
  static const char delims[4] = {0, 0, ',', ';'};
  if (size == 0)
    return 0;
  unsigned sel = data[0];
  const char *text = (const char *)data + 1;
  size_t n = size - 1;
  myr__csv_options o;
  memset(&o, 0, sizeof o);
  o.delimiter = delims[sel & 3];
  o.chunk_size = chunks[(sel >> 2) & 7];
  o.batch_rows = batches[(sel >> 5) & 3];
  o.max_record = (sel & 0x80) ? 64 : 0;
  run_result a = run(text, n, &o, (sel >> 5) & 1);
  /* The reference: the whole input in one chunk, large batches. */
  myr__csv_options ref = o;
  ref.chunk_size = n + 16;
  ref.batch_rows = 0;
  run_result b = run(text, n, &ref, (sel >> 5) & 1);
  CHECK(a.open_rc == b.open_rc);
  CHECK(a.next_rc == b.next_rc);
  if (a.open_rc == MYR_OK && a.next_rc == MYR_OK)
    CHECK(a.rows == b.rows && a.hash == b.hash);
  return 0;
}
