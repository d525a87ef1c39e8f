/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Streaming RFC 4180 CSV reader (see csv.h for the contract).
 *
 * DESIGN. buf[0, len) holds bytes read from the source; pos is where the next unparsed
 * record begins. buf[len] is always '\n', a sentinel that stops every scan, so the hot
 * loops carry no bounds check: a stop at buf + len means "end of data". A record is
 * parsed in one pass (SSE2 or SWAR search for the next special byte), writing field
 * offsets straight into per-column arrays; unselected columns and surplus fields go to a
 * dummy array. A record that runs into the end of data before EOF commits nothing: the
 * batch ends there and the next call moves that tail to the front, refills (growing the
 * buffer when the tail fills it) and parses the record again from its start. Since a
 * record may be scanned twice, "" escapes are unescaped only once the record is complete
 * and usable.
 */
#include "io/csv.h"

#include "core/text.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "myriad/train.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define CSV_DEFAULT_CHUNK ((size_t)1 << 20)
#define CSV_MAX_CHUNK ((size_t)1 << 30)
#define CSV_DEFAULT_MAX_RECORD ((size_t)256 << 20)
#define CSV_MAX_MAX_RECORD ((size_t)2 << 30) /* keeps every offset within uint32_t */
#define CSV_DEFAULT_BATCH_ROWS ((size_t)65536)
#define CSV_PAD 16 /* bytes allocated after the sentinel, for whole-vector loads */

/* ---- scanning for stop bytes ----------------------------------------------------------
   find_stop(p, s) returns the first byte at or after p that is one of the four stop bytes
   of s. The '\n' sentinel at buf[len] is a stop byte of both sets used, so the scan
   always ends within the data, and loading a whole vector or word that straddles the
   sentinel stays inside the CSV_PAD bytes allocated after it. */
#if defined(__SSE2__)
typedef struct stopset {
  __m128i a, b, c, d; /* each stop byte broadcast to 16 lanes */
} stopset;

static stopset make_stops(unsigned char a, unsigned char b, unsigned char c,
                          unsigned char d) {
  stopset s;
  s.a = _mm_set1_epi8((char)a);
  s.b = _mm_set1_epi8((char)b);
  s.c = _mm_set1_epi8((char)c);
  s.d = _mm_set1_epi8((char)d);
  return s;
}

static inline unsigned char *find_stop(unsigned char *p, const stopset *s) {
  for (;;) {
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
    __m128i m =
        _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, s->a), _mm_cmpeq_epi8(v, s->b)),
                     _mm_or_si128(_mm_cmpeq_epi8(v, s->c), _mm_cmpeq_epi8(v, s->d)));
    unsigned mask = (unsigned)_mm_movemask_epi8(m);
    if (mask)
      return p + __builtin_ctz(mask);
    p += 16;
  }
}
#elif defined(__GNUC__) && defined(__BYTE_ORDER__) &&                                    \
    __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
typedef struct stopset {
  uint64_t a, b, c, d; /* each stop byte broadcast to 8 bytes */
} stopset;

static stopset make_stops(unsigned char a, unsigned char b, unsigned char c,
                          unsigned char d) {
  const uint64_t ones = 0x0101010101010101ull;
  stopset s = {a * ones, b * ones, c * ones, d * ones};
  return s;
}

/* High bit set in each zero byte of x; the lowest set bit is exact (borrows only create
   false positives above a true zero byte). */
static inline uint64_t zero_bytes(uint64_t x) {
  return (x - 0x0101010101010101ull) & ~x & 0x8080808080808080ull;
}

static inline unsigned char *find_stop(unsigned char *p, const stopset *s) {
  for (;;) {
    uint64_t w;
    memcpy(&w, p, sizeof w);
    uint64_t m = zero_bytes(w ^ s->a) | zero_bytes(w ^ s->b) | zero_bytes(w ^ s->c) |
                 zero_bytes(w ^ s->d);
    if (m)
      return p + (__builtin_ctzll(m) >> 3);
    p += 8;
  }
}
#else
typedef struct stopset {
  unsigned char is_stop[256]; /* 1 for the stop bytes */
} stopset;

static stopset make_stops(unsigned char a, unsigned char b, unsigned char c,
                          unsigned char d) {
  stopset s;
  memset(&s, 0, sizeof s);
  s.is_stop[a] = s.is_stop[b] = s.is_stop[c] = s.is_stop[d] = 1;
  return s;
}

static inline unsigned char *find_stop(unsigned char *p, const stopset *s) {
  while (!s->is_stop[*p])
    p++;
  return p;
}
#endif

struct myr__csv {
  char *name;           /* file name for messages (owned copy) */
  int fd;               /* source file, -1 for a memory source */
  const char *mem;      /* memory source (borrowed), NULL for a file */
  size_t mem_len;       /* bytes in mem */
  size_t mem_off;       /* next byte of mem to copy into buf */
  char delim;           /* field delimiter */
  size_t chunk;         /* most bytes per read() */
  size_t max_record;    /* longest record content accepted */
  size_t batch_rows;    /* most rows per batch */
  char *buf;            /* work buffer, cap + 1 bytes (room for the sentinel) */
  size_t cap;           /* usable bytes in buf */
  size_t len;           /* bytes of buf holding data; buf[len] == '\n' */
  size_t pos;           /* first byte of the next unparsed record */
  int eof;              /* the source is exhausted: len is final */
  int need_more;        /* the last batch stopped at an incomplete record */
  int failed;           /* sticky status after a hard error, MYR_OK otherwise */
  uint64_t bytes_in;    /* bytes read from the source so far */
  uint64_t bytes_total; /* source size, 0 if unknown */
  uint64_t line;        /* 1-based physical line where the record at pos starts */
  uint64_t rows;        /* data rows returned so far */
  size_t ncol;          /* columns in the header */
  char **names;         /* ncol pointers into name_block */
  char *name_block;     /* the NUL-terminated column names, back to back */
  unsigned char *want;  /* ncol flags: column selected */
  int sel_dirty;        /* want changed since the column arrays were set up */
  size_t rows_cap;      /* rows every per-row array holds */
  uint64_t *row_line;   /* rows_cap: line of each row */
  uint8_t *row_skip;    /* rows_cap: skip reason + 1, or 0 */
  uint32_t *row_arg;    /* rows_cap: skip argument */
  uint32_t **col_off;   /* ncol: offsets of a selected column, NULL when unselected */
  uint32_t **col_len;   /* ncol: lengths of a selected column, NULL when unselected */
  uint32_t *dummy_off;  /* rows_cap: sink for fields nobody asked for */
  uint32_t *dummy_len;  /* rows_cap: likewise */
  uint32_t **w_off;     /* ncol + 1 write targets: col_off[j] or dummy; [ncol] = dummy */
  uint32_t **w_len;     /* ncol + 1 write targets for lengths */
  myr__column *cols;    /* ncol column views handed out in the batch */
  myr__batch batch;     /* the batch handed out by myr__csv_next */
};

static size_t min_size(size_t a, size_t b) {
  return a < b ? a : b;
}

static int fail(myr__csv *c, int code) {
  c->failed = code;
  return code;
}

/* Append source bytes until buf is full or the source ends; keeps the sentinel. */
static int fill(myr__csv *c, myr_error *err) {
  while (c->len < c->cap && !c->eof) {
    size_t want = min_size(c->cap - c->len, c->chunk);
    size_t got;
    if (c->mem) {
      got = min_size(want, c->mem_len - c->mem_off);
      memcpy(c->buf + c->len, c->mem + c->mem_off, got);
      c->mem_off += got;
    } else {
      ssize_t r = read(c->fd, c->buf + c->len, want);
      if (r < 0) {
        if (errno == EINTR)
          continue;
        int e = errno;
        c->buf[c->len] = '\n';
        return myr_error_set(err, MYR_EIO, "%s: read failed: %s", c->name, strerror(e));
      }
      got = (size_t)r;
    }
    if (got == 0)
      c->eof = 1;
    c->len += got;
    c->bytes_in += got;
  }
  c->buf[c->len] = '\n';
  return MYR_OK;
}

/* The record at pos is incomplete and no view into buf is live: move it to the front,
   grow the buffer when it fills it, and read more. */
static int refill(myr__csv *c, myr_error *err) {
  size_t tail = c->len - c->pos;
  if (c->pos > 0) {
    memmove(c->buf, c->buf + c->pos, tail);
    c->pos = 0;
    c->len = tail;
  }
  /* A complete record is at least tail - 1 content bytes (a trailing '\r' may precede
     the '\n' still to come). */
  if (tail > c->max_record + 1)
    return myr_error_set(err, MYR_EPARSE,
                         "%s:%llu: record longer than the limit of %zu bytes", c->name,
                         (unsigned long long)c->line, c->max_record);
  if (c->len == c->cap) {
    size_t limit = c->max_record + 2, ncap = c->cap * 2;
    if (ncap > limit)
      ncap = limit; /* cap < limit here since len == cap == tail <= max_record + 1 */
    char *nb = myr__realloc(c->buf, ncap + 1 + CSV_PAD);
    if (!nb)
      return myr_error_set(err, MYR_ENOMEM,
                           "%s: out of memory growing the read buffer "
                           "to %zu bytes",
                           c->name, ncap);
    memset(nb + c->cap + 1, 0, ncap - c->cap + CSV_PAD); /* every byte a scan may load */
    c->buf = nb;
    c->cap = ncap;
  }
  return fill(c, err);
}

/* Point the write targets and column views at the arrays for the current selection. */
static void wire_columns(myr__csv *c) {
  for (size_t j = 0; j < c->ncol; j++) {
    int sel = c->col_off[j] != NULL;
    c->w_off[j] = sel ? c->col_off[j] : c->dummy_off;
    c->w_len[j] = sel ? c->col_len[j] : c->dummy_len;
    myr__column *col = &c->cols[j];
    memset(col, 0, sizeof *col);
    col->kind = sel ? MYR__COL_TEXT : MYR__COL_ABSENT;
    col->text_off = c->col_off[j];
    col->text_len = c->col_len[j];
  }
  c->w_off[c->ncol] = c->dummy_off;
  c->w_len[c->ncol] = c->dummy_len;
}

/* Grow every per-row array to n rows. On failure the arrays that did grow keep their new
   size (harmless) and rows_cap is unchanged. */
static int grow_rows(myr__csv *c, size_t n) {
#define GROW(ptr)                                                                        \
  do {                                                                                   \
    void *np_ = myr__reallocarray((ptr), n, sizeof *(ptr));                              \
    if (!np_)                                                                            \
      return MYR_ENOMEM;                                                                 \
    (ptr) = np_;                                                                         \
  } while (0)
  GROW(c->row_line);
  GROW(c->row_skip);
  GROW(c->row_arg);
  GROW(c->dummy_off);
  GROW(c->dummy_len);
  for (size_t j = 0; j < c->ncol; j++) {
    if (c->col_off[j]) {
      GROW(c->col_off[j]);
      GROW(c->col_len[j]);
    }
  }
#undef GROW
  c->rows_cap = n;
  wire_columns(c);
  return MYR_OK;
}

/* Allocate arrays for newly selected columns and free those of dropped ones. */
static int apply_selection(myr__csv *c, myr_error *err) {
  for (size_t j = 0; j < c->ncol; j++) {
    if (c->want[j] && !c->col_off[j]) {
      uint32_t *o = myr__reallocarray(NULL, c->rows_cap, sizeof *o);
      uint32_t *l = myr__reallocarray(NULL, c->rows_cap, sizeof *l);
      if (!o || !l) {
        myr__free(o);
        myr__free(l);
        wire_columns(c);
        return myr_error_set(err, MYR_ENOMEM, "%s: out of memory for column arrays",
                             c->name);
      }
      c->col_off[j] = o;
      c->col_len[j] = l;
    } else if (!c->want[j] && c->col_off[j]) {
      myr__free(c->col_off[j]);
      myr__free(c->col_len[j]);
      c->col_off[j] = c->col_len[j] = NULL;
    }
  }
  wire_columns(c);
  c->sel_dirty = 0;
  return MYR_OK;
}

/* Replace "" by " in the selected fields of usable row n. Only quoted fields can hold a
   quote in a usable row, and there every quote is half of a "" pair. */
static void unescape_row(myr__csv *c, size_t n) {
  for (size_t j = 0; j < c->ncol; j++) {
    if (!c->col_off[j])
      continue;
    char *s = c->buf + c->col_off[j][n];
    char *e = s + c->col_len[j][n];
    char *r = memchr(s, '"', (size_t)(e - s));
    if (!r)
      continue;
    char *w = r;
    while (r < e) {
      if (*r == '"') {
        *w++ = '"';
        r += 2;
      } else {
        *w++ = *r++;
      }
    }
    c->col_len[j][n] = (uint32_t)(w - s);
  }
}

enum { PR_FULL = 1, PR_MORE = 2, PR_END = 3 };

/* Parse records from pos into rows *n_io onward until the batch is full (PR_FULL), the
   data in buf ends inside a record before EOF (PR_MORE) or the source is done (PR_END).
   A hard error returns its (negative) status with err set. */
static int parse_rows(myr__csv *c, size_t *n_io, myr_error *err) {
  unsigned char *const base = (unsigned char *)c->buf;
  const unsigned char *const end = base + c->len;
  const unsigned char delim = (unsigned char)c->delim;
  const stopset ustop = make_stops(delim, '\n', '"', 0); /* unquoted field */
  const stopset qstop = make_stops('"', '\n', 0, '"');   /* quoted field */
  const size_t ncol = c->ncol;
  const int eof = c->eof;
  unsigned char *p = base + c->pos;
  uint64_t line = c->line;
  size_t n = *n_io;
  int rc;

  for (;;) {
    if (p == end) {
      rc = eof ? PR_END : PR_MORE;
      break;
    }
    if (n == c->rows_cap) {
      if (n >= c->batch_rows) {
        rc = PR_FULL;
        break;
      }
      size_t ncap = c->rows_cap * 2 < c->batch_rows ? c->rows_cap * 2 : c->batch_rows;
      if (grow_rows(c, ncap) != MYR_OK) {
        rc = myr_error_set(err, MYR_ENOMEM,
                           "%s: out of memory growing a batch to %zu "
                           "rows",
                           c->name, ncap);
        break;
      }
    }
    uint32_t **const w_off = c->w_off;
    uint32_t **const w_len = c->w_len;
    unsigned char *const rs = p; /* record start */
    unsigned char *fs, *fe;      /* field content */
    unsigned char *re;           /* record end: its '\n', or end at EOF */
    unsigned char *next;         /* start of the following record */
    uint64_t nl = 0;             /* newlines inside quoted fields */
    size_t f = 0;                /* fields so far */
    uint32_t badq = 0, nul = 0;  /* 1-based column of the first problem, 0 = none */
    int esc = 0;                 /* a "" was seen */

#define STORE_FIELD()                                                                    \
  do {                                                                                   \
    size_t k_ = f < ncol ? f : ncol;                                                     \
    w_off[k_][n] = (uint32_t)(fs - base);                                                \
    w_len[k_][n] = (uint32_t)(fe - fs);                                                  \
    f++;                                                                                 \
  } while (0)

    for (;;) { /* one field per iteration */
      fs = p;
      if (*p == '"') {
        fs = ++p;
        for (;;) {
          p = find_stop(p, &qstop);
          if (*p == '"') {
            if (p[1] == '"') { /* p < end, so p[1] is data or the sentinel */
              esc = 1;
              p += 2;
              continue;
            }
            break;
          }
          if (*p == '\n') {
            if (p == end) {
              if (!eof)
                goto incomplete;
              /* unterminated quoted field: the record runs to EOF */
              if (!badq)
                badq = (uint32_t)(f + 1);
              fe = p;
              re = next = p;
              STORE_FIELD();
              goto finish;
            }
            nl++;
            p++;
            continue;
          }
          if (!nul)
            nul = (uint32_t)(f + 1);
          p++;
        }
        fe = p++; /* the closing quote */
        if (*p == delim) {
          STORE_FIELD();
          p++;
          continue;
        }
        if (*p == '\n') {
          if (p == end) {
            if (!eof)
              goto incomplete;
            re = next = p;
          } else {
            re = p;
            next = p + 1;
          }
          STORE_FIELD();
          goto finish;
        }
        if (*p == '\r' && p[1] == '\n') {
          if (p + 1 == end) {
            if (!eof)
              goto incomplete;
            re = next = p + 1; /* "\r" then EOF ends the record too */
          } else {
            re = p + 1;
            next = p + 2;
          }
          STORE_FIELD();
          goto finish;
        }
        if (!badq) /* junk after the closing quote: read on as an unquoted field */
          badq = (uint32_t)(f + 1);
      }
      for (;;) { /* unquoted field (or the rest of a broken quoted one) */
        p = find_stop(p, &ustop);
        if (*p == delim || *p == '\n')
          break;
        if (*p == '"') {
          if (!badq)
            badq = (uint32_t)(f + 1);
        } else if (!nul) {
          nul = (uint32_t)(f + 1);
        }
        p++;
      }
      fe = p;
      if (*p == delim) {
        STORE_FIELD();
        p++;
        continue;
      }
      if (p == end) {
        if (!eof)
          goto incomplete;
        next = p;
      } else {
        next = p + 1;
      }
      re = p;
      if (fe > fs && fe[-1] == '\r')
        fe--;
      STORE_FIELD();
      goto finish;
    }
#undef STORE_FIELD

  finish : {
    size_t rl = (size_t)(re - rs);
    if (rl > c->max_record && !(rl == c->max_record + 1 && re[-1] == '\r')) {
      rc = myr_error_set(err, MYR_EPARSE,
                         "%s:%llu: record longer than the limit of %zu "
                         "bytes",
                         c->name, (unsigned long long)line, c->max_record);
      p = rs;
      break;
    }
    uint8_t sk = 0;
    uint32_t arg = 0;
    if (badq) {
      sk = MYR_SKIP_BAD_QUOTING + 1;
      arg = badq;
    } else if (nul) {
      sk = MYR_SKIP_NUL_BYTE + 1;
      arg = nul;
    } else if (f != ncol) {
      if (f == 1 && (rl == 0 || (rl == 1 && rs[0] == '\r'))) {
        sk = MYR_SKIP_BLANK_LINE + 1;
      } else {
        sk = MYR_SKIP_FIELD_COUNT + 1;
        arg = (uint32_t)f;
      }
    } else if (esc) {
      unescape_row(c, n);
    }
    c->row_skip[n] = sk;
    c->row_arg[n] = arg;
    c->row_line[n] = line;
    line += nl + 1;
    n++;
    p = next;
    continue;
  }
  incomplete:
    p = rs;
    rc = PR_MORE;
    break;
  }
  c->pos = (size_t)(p - base);
  c->line = line;
  *n_io = n;
  return rc;
}

/* ---- header ---------------------------------------------------------------------- */

static int cmp_name_idx(const void *a, const void *b, void *names) {
  size_t i = *(const size_t *)a, j = *(const size_t *)b;
  char **nm = names;
  int r = strcmp(nm[i], nm[j]);
  if (r)
    return r;
  return i < j ? -1 : i > j;
}

/* Merge sort of column indexes by (name, index); qsort has no context argument in C11. */
static void sort_idx(size_t *idx, size_t *tmp, size_t n, char **names) {
  if (n < 2)
    return;
  size_t h = n / 2;
  sort_idx(idx, tmp, h, names);
  sort_idx(idx + h, tmp, n - h, names);
  size_t a = 0, b = h, k = 0;
  while (a < h && b < n)
    tmp[k++] = cmp_name_idx(&idx[a], &idx[b], names) <= 0 ? idx[a++] : idx[b++];
  while (a < h)
    tmp[k++] = idx[a++];
  while (b < n)
    tmp[k++] = idx[b++];
  memcpy(idx, tmp, n * sizeof *idx);
}

static int check_duplicates(myr__csv *c, myr_error *err) {
  size_t n = c->ncol;
  if (n < 2)
    return MYR_OK;
  size_t *idx = myr__reallocarray(NULL, n, sizeof *idx);
  size_t *tmp = myr__reallocarray(NULL, n, sizeof *tmp);
  int rc = MYR_OK;
  if (!idx || !tmp) {
    rc = myr_error_set(err, MYR_ENOMEM, "%s: out of memory checking the header", c->name);
    goto done;
  }
  for (size_t i = 0; i < n; i++)
    idx[i] = i;
  sort_idx(idx, tmp, n, c->names);
  /* Report the duplicate whose second occurrence comes first in the header. */
  size_t best_a = 0, best_b = 0;
  int found = 0;
  for (size_t i = 1; i < n; i++) {
    if (strcmp(c->names[idx[i - 1]], c->names[idx[i]]) == 0 &&
        (!found || idx[i] < best_b)) {
      best_a = idx[i - 1];
      best_b = idx[i];
      found = 1;
    }
  }
  if (found)
    rc = myr_error_set(err, MYR_EPARSE,
                       "%s:1: duplicate column name '%s' (columns %zu and %zu)", c->name,
                       c->names[best_b], best_a + 1, best_b + 1);
done:
  myr__free(idx);
  myr__free(tmp);
  return rc;
}

/* Split the header content [hs, he) into names. */
static int parse_header(myr__csv *c, const unsigned char *hs, const unsigned char *he,
                        myr_error *err) {
  const unsigned char delim = (unsigned char)c->delim;
  size_t ncol = 0, col = 1;
  char *blk = myr__malloc((size_t)(he - hs) + 1);
  if (!blk)
    return myr_error_set(err, MYR_ENOMEM, "%s: out of memory reading the header",
                         c->name);
  c->name_block = blk;
  char *w = blk;
  const unsigned char *p = hs;
  for (;;) {
    char *start = w;
    if (p < he && *p == '"') {
      p++;
      for (;;) {
        if (p >= he)
          return myr_error_set(err, MYR_EPARSE,
                               "%s:1: malformed header: column %zu has an unterminated "
                               "quoted name",
                               c->name, col);
        if (*p == '"') {
          if (p + 1 < he && p[1] == '"') {
            *w++ = '"';
            p += 2;
            continue;
          }
          p++;
          break;
        }
        if (*p == 0)
          return myr_error_set(err, MYR_EPARSE,
                               "%s:1: malformed header: column %zu name has a NUL byte",
                               c->name, col);
        *w++ = (char)*p++;
      }
      if (p < he && *p != delim)
        return myr_error_set(err, MYR_EPARSE,
                             "%s:1: malformed header: unexpected character after the "
                             "closing quote of column %zu",
                             c->name, col);
    } else {
      while (p < he && *p != delim) {
        if (*p == '"')
          return myr_error_set(err, MYR_EPARSE,
                               "%s:1: malformed header: quote inside the unquoted name "
                               "of column %zu",
                               c->name, col);
        if (*p == 0)
          return myr_error_set(err, MYR_EPARSE,
                               "%s:1: malformed header: column %zu name has a NUL byte",
                               c->name, col);
        *w++ = (char)*p++;
      }
    }
    if (w == start)
      return myr_error_set(err, MYR_EPARSE, "%s:1: column %zu has an empty name", c->name,
                           col);
    *w++ = '\0';
    ncol++;
    if (p >= he)
      break;
    p++; /* the delimiter */
    col++;
  }
  c->names = myr__reallocarray(NULL, ncol, sizeof *c->names);
  if (!c->names)
    return myr_error_set(err, MYR_ENOMEM, "%s: out of memory reading the header",
                         c->name);
  c->ncol = ncol;
  char *s = blk;
  for (size_t i = 0; i < ncol; i++) {
    c->names[i] = s;
    s += strlen(s) + 1;
  }
  return check_duplicates(c, err);
}

/* Read the optional BOM and the header record, pick the delimiter, set up columns. */
static int read_header(myr__csv *c, myr_error *err) {
  int rc = fill(c, err);
  if (rc != MYR_OK)
    return rc;
  while (c->len < 3 && !c->eof) {
    rc = refill(c, err);
    if (rc != MYR_OK)
      return rc;
  }
  if (c->len >= 3 && memcmp(c->buf, "\xEF\xBB\xBF", 3) == 0)
    c->pos = 3;
  while (c->pos == c->len && !c->eof) { /* is there anything after the BOM? */
    rc = refill(c, err);
    if (rc != MYR_OK)
      return rc;
  }
  if (c->pos == c->len && c->eof)
    return myr_error_set(err, MYR_ENODATA, "%s: empty file, no header row", c->name);

  /* Find the header's end: the first '\n' outside quotes (quote parity is exact for a
     well-formed header; a malformed one is rejected by parse_header). */
  size_t t, scan = c->pos;
  int inq = 0;
  for (;;) {
    for (t = scan; t < c->len; t++) {
      unsigned char ch = (unsigned char)c->buf[t];
      if (ch == '"')
        inq = !inq;
      else if (ch == '\n' && !inq)
        break;
    }
    if (t < c->len || c->eof)
      break;
    size_t old_pos = c->pos;
    rc = refill(c, err);
    if (rc != MYR_OK)
      return rc;
    scan = t - old_pos; /* resume where the scan stopped; refill moved pos to 0 */
  }
  const unsigned char *hs = (const unsigned char *)c->buf + c->pos;
  const unsigned char *he = (const unsigned char *)c->buf + t;
  size_t rl = (size_t)(he - hs);
  if (rl > c->max_record && !(rl == c->max_record + 1 && he[-1] == '\r'))
    return myr_error_set(err, MYR_EPARSE,
                         "%s:1: header longer than the limit of %zu bytes", c->name,
                         c->max_record);
  if (he > hs && he[-1] == '\r')
    he--;

  uint64_t nl = 0;
  if (c->delim == 0) {
    size_t n_comma = 0, n_tab = 0, n_semi = 0;
    inq = 0;
    for (const unsigned char *p = hs; p < he; p++) {
      if (*p == '"')
        inq = !inq;
      else if (!inq && *p == ',')
        n_comma++;
      else if (!inq && *p == '\t')
        n_tab++;
      else if (!inq && *p == ';')
        n_semi++;
    }
    c->delim = ',';
    if (n_tab > n_comma && n_tab > n_semi)
      c->delim = '\t';
    else if (n_semi > n_comma && n_semi > n_tab)
      c->delim = ';';
  }
  for (const unsigned char *p = hs; p < he; p++)
    nl += *p == '\n';
  rc = parse_header(c, hs, he, err);
  if (rc != MYR_OK)
    return rc;
  c->pos = t < c->len ? t + 1 : t;
  c->line = 2 + nl;
  return MYR_OK;
}

static int setup_columns(myr__csv *c, myr_error *err) {
  size_t n = c->ncol;
  c->want = myr__malloc(n);
  c->col_off = myr__calloc(n, sizeof *c->col_off);
  c->col_len = myr__calloc(n, sizeof *c->col_len);
  c->w_off = myr__calloc(n + 1, sizeof *c->w_off);
  c->w_len = myr__calloc(n + 1, sizeof *c->w_len);
  c->cols = myr__calloc(n, sizeof *c->cols);
  if (!c->want || !c->col_off || !c->col_len || !c->w_off || !c->w_len || !c->cols)
    return myr_error_set(err, MYR_ENOMEM, "%s: out of memory for %zu columns", c->name,
                         n);
  memset(c->want, 1, n);
  /* Start small (wide files get few rows per buffer anyway) and double as needed. */
  size_t rows = ((size_t)1 << 18) / (n + 1);
  rows = rows < 16 ? 16 : rows > 4096 ? 4096 : rows;
  if (rows > c->batch_rows)
    rows = c->batch_rows;
  if (grow_rows(c, rows) != MYR_OK)
    return myr_error_set(err, MYR_ENOMEM, "%s: out of memory for batch arrays", c->name);
  return apply_selection(c, err);
}

static int csv_open(int fd, const char *mem, size_t mem_len, const char *name,
                    const myr__csv_options *opt, myr__csv **out, myr_error *err) {
  int rc = MYR_OK;
  myr__csv *c = NULL;
  char delim = opt ? opt->delimiter : 0;
  if (delim != 0 && delim != ',' && delim != '\t' && delim != ';') {
    rc = myr_error_set(err, MYR_EINVAL,
                       "%s: unsupported delimiter 0x%02x (use ',', tab "
                       "or ';')",
                       name, (unsigned)(unsigned char)delim);
    goto done;
  }
  c = myr__calloc(1, sizeof *c);
  if (!c) {
    rc = myr_error_set(err, MYR_ENOMEM, "%s: out of memory", name);
    goto done;
  }
  c->fd = fd;
  fd = -1;
  c->mem = mem;
  c->mem_len = mem_len;
  c->delim = delim;
  c->chunk = opt && opt->chunk_size ? opt->chunk_size : CSV_DEFAULT_CHUNK;
  if (c->chunk > CSV_MAX_CHUNK)
    c->chunk = CSV_MAX_CHUNK;
  c->max_record = opt && opt->max_record ? opt->max_record : CSV_DEFAULT_MAX_RECORD;
  if (c->max_record > CSV_MAX_MAX_RECORD)
    c->max_record = CSV_MAX_MAX_RECORD;
  c->batch_rows = opt && opt->batch_rows ? opt->batch_rows : CSV_DEFAULT_BATCH_ROWS;
  c->line = 1;
  c->name = myr__strdup(name);
  if (!c->name) {
    rc = myr_error_set(err, MYR_ENOMEM, "%s: out of memory", name);
    goto done;
  }
  if (mem) {
    c->bytes_total = mem_len;
  } else {
    struct stat st;
    if (fstat(c->fd, &st) == 0 && S_ISREG(st.st_mode))
      c->bytes_total = (uint64_t)st.st_size;
  }
  c->cap = c->chunk;
  c->buf = myr__calloc(1, c->cap + 1 + CSV_PAD);
  if (!c->buf) {
    rc = myr_error_set(err, MYR_ENOMEM, "%s: out of memory for the read buffer", name);
    goto done;
  }
  c->buf[0] = '\n';
  rc = read_header(c, err);
  if (rc != MYR_OK)
    goto done;
  rc = setup_columns(c, err);
done:
  if (fd >= 0)
    close(fd);
  if (rc != MYR_OK) {
    myr__csv_close(c);
    c = NULL;
  }
  *out = c;
  return rc;
}

int myr__csv_open(const char *path, const myr__csv_options *opt, myr__csv **out,
                  myr_error *err) {
  *out = NULL;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return myr_error_set(err, MYR_EIO, "%s: cannot open: %s", path, strerror(errno));
  return csv_open(fd, NULL, 0, path, opt, out, err);
}

int myr__csv_open_mem(const char *data, size_t len, const char *name,
                      const myr__csv_options *opt, myr__csv **out, myr_error *err) {
  *out = NULL;
  if (!name)
    name = "<memory>";
  if (!data && len)
    return myr_error_set(err, MYR_EINVAL, "%s: NULL data", name);
  return csv_open(-1, data ? data : "", len, name, opt, out, err);
}

void myr__csv_set_batch_rows(myr__csv *c, size_t rows) {
  c->batch_rows = rows && rows < CSV_DEFAULT_BATCH_ROWS ? rows : CSV_DEFAULT_BATCH_ROWS;
}

void myr__csv_close(myr__csv *c) {
  if (!c)
    return;
  if (c->fd >= 0)
    close(c->fd);
  for (size_t j = 0; j < c->ncol; j++) {
    if (c->col_off)
      myr__free(c->col_off[j]);
    if (c->col_len)
      myr__free(c->col_len[j]);
  }
  myr__free(c->col_off);
  myr__free(c->col_len);
  myr__free(c->w_off);
  myr__free(c->w_len);
  myr__free(c->cols);
  myr__free(c->dummy_off);
  myr__free(c->dummy_len);
  myr__free(c->row_line);
  myr__free(c->row_skip);
  myr__free(c->row_arg);
  myr__free(c->want);
  myr__free(c->names);
  myr__free(c->name_block);
  myr__free(c->buf);
  myr__free(c->name);
  myr__free(c);
}

size_t myr__csv_n_columns(const myr__csv *c) {
  return c->ncol;
}

const char *myr__csv_column_name(const myr__csv *c, size_t i) {
  return i < c->ncol ? c->names[i] : NULL;
}

char myr__csv_delimiter(const myr__csv *c) {
  return c->delim;
}

const char *myr__csv_name(const myr__csv *c) {
  return c->name;
}

uint64_t myr__csv_bytes_read(const myr__csv *c) {
  return c->bytes_in - (uint64_t)(c->len - c->pos);
}

uint64_t myr__csv_bytes_total(const myr__csv *c) {
  return c->bytes_total;
}

int myr__csv_select(myr__csv *c, const unsigned char *want, myr_error *err) {
  for (size_t j = 0; j < c->ncol; j++)
    c->want[j] = want ? want[j] != 0 : 1;
  c->sel_dirty = 1;
  return MYR_OK;
}

int myr__csv_next(myr__csv *c, const myr__batch **batch_out, myr_error *err) {
  *batch_out = NULL;
  if (c->failed)
    return myr_error_set(err, c->failed, "%s: the reader stopped after an earlier error",
                         c->name);
  int rc;
  if (c->sel_dirty && (rc = apply_selection(c, err)) != MYR_OK)
    return rc;
  if (c->need_more) {
    c->need_more = 0;
    if ((rc = refill(c, err)) != MYR_OK)
      return fail(c, rc);
  }
  size_t n = 0;
  for (;;) {
    int pr = parse_rows(c, &n, err);
    if (pr < 0)
      return fail(c, pr);
    if (pr != PR_MORE)
      break;
    if (n > 0) { /* views into buf are live: finish this batch first */
      c->need_more = 1;
      break;
    }
    if ((rc = refill(c, err)) != MYR_OK)
      return fail(c, rc);
  }
  if (n == 0)
    return MYR_OK;
  for (size_t j = 0; j < c->ncol; j++)
    if (c->col_off[j])
      c->cols[j].text = c->buf;
  myr__batch *b = &c->batch;
  b->n_rows = n;
  b->first_row = c->rows;
  b->line = c->row_line;
  b->skip = c->row_skip;
  b->skip_arg = c->row_arg;
  b->n_columns = c->ncol;
  b->columns = c->cols;
  c->rows += n;
  *batch_out = b;
  return MYR_OK;
}

int myr__csv_find(const myr__csv *csv, const char *name, size_t *index_out) {
  size_t n = myr__csv_n_columns(csv);
  for (size_t i = 0; i < n; i++)
    if (strcmp(myr__csv_column_name(csv, i), name) == 0) {
      *index_out = i;
      return 1;
    }
  return 0;
}

void myr__csv_list(const myr__csv *csv, char *out, size_t cap) {
  const char *names[64] = {0};
  size_t n = myr__csv_n_columns(csv);
  size_t shown = n < 64 ? n : 64;
  for (size_t i = 0; i < shown; i++)
    names[i] = myr__csv_column_name(csv, i);
  myr__join_names(out, cap, names, shown);
  if (n > shown && cap > 4) { /* more columns than listed: say so */
    size_t len = strlen(out);
    if (len + 5 < cap)
      memcpy(out + len, ", ...", 6);
  }
}
