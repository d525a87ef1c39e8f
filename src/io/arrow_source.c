/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Import of Arrow record batches from an ArrowArrayStream (C Stream Interface) as
 * myr__batch views, written from the Arrow columnar format and C Data Interface specs.
 *
 * Each record batch (a struct array) is handed out in windows of at most WINDOW_ROWS
 * rows. float64 and int64 values are used in place (pointer + offset); other numbers,
 * bools, dates and timestamps are converted into per-column scratch; utf8, binary and
 * dictionary-encoded strings become text views of the producer's buffers (offsets into
 * scratch arrays). Key columns (MYR__WANT_TEXT) of other types are formatted as the text
 * a CSV of the same data holds (see format_cell). A record batch lives in a reference
 * counted holder (myr__kept) so that the engine can keep its float64 columns, read in
 * place, after the source moved on. Validity bitmaps are used in place when
 * the window starts on a byte boundary, else shifted into scratch; struct-level nulls
 * and null dictionary entries are folded into that scratch bitmap.
 *
 * The producer is not trusted: structure, offsets (non-negative, non-decreasing) and
 * dictionary indices are checked before use, and a failure names the column, its Arrow
 * format, the record batch and the row. Buffer sizes themselves are not part of the C
 * Data Interface and cannot be checked.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/text.h"
#include "io/arrow.h"
#include "io/source.h"

#define WINDOW_ROWS 65536
#define CELL_MAX 48 /* longest formatted key cell (a timestamp, a double) */

enum atype {
  AT_NONE = 0, /* a type we do not read */
  AT_I8, AT_U8, AT_I16, AT_U16, AT_I32, AT_U32, AT_I64, AT_U64,
  AT_F32, AT_F64, AT_BOOL,
  AT_UTF8, AT_LUTF8, AT_BIN, AT_LBIN, AT_VUTF8, AT_VBIN,
  AT_DATE32, AT_DATE64, AT_TS, AT_TIME32, AT_TIME64, AT_DUR,
  AT_NULL,
  AT_DICT,
};

typedef struct acol {
  int type;            /* enum atype */
  int idx;             /* AT_DICT: integer type of the indices (AT_I8 .. AT_U64) */
  int vals;            /* AT_DICT: AT_UTF8, AT_LUTF8, AT_BIN or AT_LBIN */
  int unit;            /* AT_TS, AT_TIME*, AT_DUR: 0 = s, 1 = ms, 2 = us, 3 = ns */
  int tz;              /* AT_TS: has a time zone (written in UTC with a 'Z') */
  int mode;            /* enum myr__want */
  const char *name;    /* borrowed from the schema */
  const char *format;  /* borrowed from the schema */
  const char *vformat; /* AT_DICT: the dictionary's format */
  double *f64;         /* WINDOW_ROWS converted values */
  uint32_t *off, *len; /* WINDOW_ROWS text views */
  uint8_t *valid;      /* WINDOW_ROWS / 8 + 1 bytes of shifted or combined validity */
  char *text;          /* formatted cells, text_cap bytes */
  size_t text_cap;
  uint64_t dict_checked; /* record batch number whose dictionary was validated */
  int in_place;        /* the current window's f64 points into the batch's buffer */
} acol;

/* A record batch and its references: the source's, while it is current, and the
   engine's (myr__source_keep). */
struct myr__kept {
  struct ArrowArray arr; /* released with the last reference */
  long refs;
};

struct myr__arrow_source {
  struct ArrowArrayStream stream; /* owned; release == NULL once released */
  struct ArrowSchema schema;      /* owned */
  char *name;                     /* for messages */
  size_t ncol;
  acol *cols;                     /* ncol */
  myr__column *views;             /* ncol, what batches point to */
  myr__batch batch;
  myr__kept *cur;                 /* current record batch, NULL when none */
  struct ArrowArray arr;          /* cur->arr's fields (read only), zeroed when none */
  int64_t pos;                    /* next row of arr to hand out */
  size_t window;                  /* most rows per window: 1..WINDOW_ROWS */
  uint64_t rows;                  /* rows handed out */
  uint64_t n_batches;             /* record batches received */
  int eof;                        /* the stream ended */
  int failed;                     /* an earlier error: no more batches */
};

/* ------------------------------------------------------------------ types */

static int simple_type(const char *f) {
  static const struct {
    const char *f;
    int t;
  } map[] = {{"c", AT_I8},    {"C", AT_U8},     {"s", AT_I16},    {"S", AT_U16},
             {"i", AT_I32},   {"I", AT_U32},    {"l", AT_I64},    {"L", AT_U64},
             {"f", AT_F32},   {"g", AT_F64},    {"b", AT_BOOL},   {"u", AT_UTF8},
             {"U", AT_LUTF8}, {"z", AT_BIN},    {"Z", AT_LBIN},   {"vu", AT_VUTF8},
             {"vz", AT_VBIN}, {"tdD", AT_DATE32}, {"tdm", AT_DATE64}, {"n", AT_NULL}};
  for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
    if (strcmp(f, map[i].f) == 0)
      return map[i].t;
  return AT_NONE;
}

static int is_int_type(int t) { return t >= AT_I8 && t <= AT_U64; }

/* Fill c's type from its schema; AT_NONE when unsupported. */
static void parse_type(acol *c, const struct ArrowSchema *sc) {
  const char *f = sc->format ? sc->format : "";
  c->format = f;
  c->type = AT_NONE;
  if (sc->dictionary) {
    const char *vf = sc->dictionary->format ? sc->dictionary->format : "";
    int it = simple_type(f), vt = simple_type(vf);
    c->vformat = vf;
    if (is_int_type(it) && (vt == AT_UTF8 || vt == AT_LUTF8 || vt == AT_BIN || vt == AT_LBIN)) {
      c->type = AT_DICT;
      c->idx = it;
      c->vals = vt;
    }
    return;
  }
  const char *units = "smun", *u = f[0] == 't' && f[1] && f[2] ? strchr(units, f[2]) : NULL;
  if (u && f[1] == 's' && f[3] == ':') {
    c->type = AT_TS;
    c->unit = (int)(u - units);
    c->tz = f[4] != '\0';
    return;
  }
  if (u && (f[1] == 't' || f[1] == 'D') && f[3] == '\0') {
    c->unit = (int)(u - units);
    c->type = f[1] == 'D' ? AT_DUR : c->unit < 2 ? AT_TIME32 : AT_TIME64;
    return;
  }
  c->type = simple_type(f);
}

/* Buffers the C Data Interface gives an array of type t (views: at least). */
static int64_t n_buffers_of(int t) {
  switch (t) {
  case AT_UTF8: case AT_LUTF8: case AT_BIN: case AT_LBIN: return 3;
  case AT_VUTF8: case AT_VBIN: return 3; /* validity, views, sizes (+ data buffers) */
  case AT_NULL: return 0;
  default: return 2;
  }
}

/* The kind column c is materialized as under its mode. */
static int kind_of(const acol *c) {
  if (c->mode == MYR__WANT_NONE || c->type == AT_NONE)
    return MYR__COL_ABSENT;
  if (c->mode == MYR__WANT_TEXT)
    return MYR__COL_TEXT;
  switch (c->type) {
  case AT_I64: return MYR__COL_I64;
  case AT_UTF8: case AT_LUTF8: case AT_BIN: case AT_LBIN: case AT_VUTF8: case AT_VBIN:
  case AT_DICT:
    return MYR__COL_TEXT;
  default: return MYR__COL_F64;
  }
}

/* ------------------------------------------------------------------ bitmaps */

static inline int bit_at(const uint8_t *b, int64_t i) { return (b[i >> 3] >> (i & 7)) & 1; }

/* dst bit i = src bit (bit + i), i < n; reads only the bytes those bits are in. */
static void bits_copy(uint8_t *dst, const uint8_t *src, int64_t bit, size_t n) {
  const uint8_t *p = src + (bit >> 3);
  unsigned sh = (unsigned)(bit & 7);
  size_t nb = (n + 7) / 8, touched = (sh + n + 7) / 8;
  if (sh == 0) {
    memcpy(dst, p, nb);
    return;
  }
  for (size_t k = 0; k < nb; k++) {
    unsigned v = (unsigned)p[k] >> sh;
    if (k + 1 < touched)
      v |= (unsigned)p[k + 1] << (8 - sh);
    dst[k] = (uint8_t)v;
  }
}

static void bits_and(uint8_t *dst, const uint8_t *src, int64_t bit, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!bit_at(src, bit + (int64_t)i))
      dst[i >> 3] &= (uint8_t) ~(1u << (i & 7));
}

/* ------------------------------------------------------------------ text of cells */

static size_t put_uint(char *out, uint64_t u) {
  char tmp[24];
  size_t k = 0, o = 0;
  do {
    tmp[k++] = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  while (k)
    out[o++] = tmp[--k];
  return o;
}

static size_t put_int(char *out, int64_t v) {
  if (v >= 0)
    return put_uint(out, (uint64_t)v);
  out[0] = '-';
  return 1 + put_uint(out + 1, 0ULL - (uint64_t)v);
}

static size_t put_2(char *out, unsigned v) {
  out[0] = (char)('0' + v / 10 % 10);
  out[1] = (char)('0' + v % 10);
  return 2;
}

/* q = floor(v / d), r = v - q * d in [0, d); no overflow for any v. */
static inline void floor_div(int64_t v, int64_t d, int64_t *q, int64_t *r) {
  int64_t qq = v / d, rr = v % d;
  if (rr < 0) {
    qq -= 1;
    rr += d;
  }
  *q = qq;
  *r = rr;
}

/* Proleptic Gregorian date of days since 1970-01-01, as YYYY-MM-DD (years below 1000
   zero-padded to 4 digits, before year 0 with a '-'). Days are counted in 400-year eras
   of 146097 days, starting each year on March 1 so that the leap day ends the year. */
static size_t put_date(char *out, int64_t days) {
  int64_t z = days + 719468; /* days from 0000-03-01 */
  int64_t era, doe;
  floor_div(z, 146097, &era, &doe);
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);                 /* [0, 365] */
  int64_t mp = (5 * doy + 2) / 153;                                      /* March = 0 */
  unsigned d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
  unsigned m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
  int64_t y = yoe + era * 400 + (m <= 2);
  size_t o = 0;
  uint64_t ay = y < 0 ? 0ULL - (uint64_t)y : (uint64_t)y;
  if (y < 0)
    out[o++] = '-';
  if (ay < 1000) {
    out[o++] = (char)('0' + ay / 1000);
    out[o++] = (char)('0' + ay / 100 % 10);
    o += put_2(out + o, (unsigned)(ay % 100));
  } else {
    o += put_uint(out + o, ay);
  }
  out[o++] = '-';
  o += put_2(out + o, m);
  out[o++] = '-';
  o += put_2(out + o, d);
  return o;
}

/* As pyarrow's CSV writer: "HH:MM:SS", then for ms/us/ns a '.' and 3/6/9 digits. */
static size_t put_time(char *out, int64_t v, int unit) {
  static const int64_t per[4] = {1, 1000, 1000000, 1000000000};
  int64_t secs, frac, days, sod;
  floor_div(v, per[unit], &secs, &frac);
  floor_div(secs, 86400, &days, &sod);
  size_t o = put_2(out, (unsigned)(sod / 3600));
  out[o++] = ':';
  o += put_2(out + o, (unsigned)(sod / 60 % 60));
  out[o++] = ':';
  o += put_2(out + o, (unsigned)(sod % 60));
  if (unit > 0) {
    out[o++] = '.';
    int digits = 3 * unit;
    for (int k = digits - 1; k >= 0; k--) {
      out[o + (size_t)k] = (char)('0' + frac % 10);
      frac /= 10;
    }
    o += (size_t)digits;
  }
  return o;
}

/* As pyarrow's CSV writer: "YYYY-MM-DD HH:MM:SS", then for ms/us/ns a '.' and 3/6/9
   digits, then 'Z' when the type has a time zone (the value is UTC). */
static size_t put_timestamp(char *out, int64_t v, int unit, int tz) {
  static const int64_t per[4] = {1, 1000, 1000000, 1000000000};
  int64_t secs, frac, days, sod;
  floor_div(v, per[unit], &secs, &frac);
  floor_div(secs, 86400, &days, &sod);
  size_t o = put_date(out, days);
  out[o++] = ' ';
  o += put_time(out + o, v, unit); /* the time of day of v, as a time column */
  if (tz)
    out[o++] = 'Z';
  return o;
}

static size_t put_double(char *out, double v) {
  if (isnan(v)) {
    memcpy(out, "NaN", 3); /* a missing-value token, as in a CSV */
    return 3;
  }
  if (isinf(v)) {
    memcpy(out, v < 0 ? "-inf" : "inf", v < 0 ? 4 : 3);
    return v < 0 ? 4 : 3;
  }
  return myr__fmt_double(out, v);
}

/* The shortest %g of a float32 that reads back as the same float32 (as a CSV writer
   prints float32), integers without a fraction. */
static size_t put_float(char *out, float f) {
  double v = f;
  if (isnan(v) || isinf(v) || (v == floor(v) && fabs(v) < 1e15))
    return put_double(out, v);
  int w = 0;
  for (int prec = 6; prec <= 9; prec++) {
    w = snprintf(out, CELL_MAX, "%.*g", prec, v);
    if (strtof(out, NULL) == f)
      break;
  }
  return w > 0 ? (size_t)w : 0;
}

/* ------------------------------------------------------------------ errors */

static int fail(myr__arrow_source *s, int rc) {
  s->failed = rc;
  return rc;
}

static int col_error(myr__arrow_source *s, const acol *c, uint64_t row, myr_error *err,
                     const char *what) {
  return fail(s, myr_error_set(err, MYR_EPARSE,
                               "%s: column '%s' (Arrow format '%s'), record batch %llu, "
                               "row %llu: %s",
                               s->name, c->name, c->format, (unsigned long long)s->n_batches,
                               (unsigned long long)row, what));
}

static int unsupported(const myr__arrow_source *s, const acol *c, myr_error *err) {
  if (c->vformat)
    return myr_error_set(err, MYR_EUNSUPPORTED,
                         "%s: column '%s' is dictionary-encoded with indices of Arrow "
                         "format '%s' and values of format '%s'; myriad reads dictionaries "
                         "of integer indices and utf8/binary values",
                         s->name, c->name, c->format, c->vformat);
  return myr_error_set(err, MYR_EUNSUPPORTED,
                       "%s: column '%s' has Arrow format '%s', which myriad cannot read "
                       "(it reads integers, float32/64, bool, utf8, large_utf8, binary, "
                       "string views, dictionary-encoded strings, date32/64, timestamps, "
                       "times, durations and nulls)",
                       s->name, c->name, c->format);
}

/* ------------------------------------------------------------------ scratch */

static int col_scratch(acol *c, int need_f64, int need_text) {
  if (!c->valid && !(c->valid = myr__malloc(WINDOW_ROWS / 8 + 8)))
    return 0;
  if (need_f64 && !c->f64 && !(c->f64 = myr__reallocarray(NULL, WINDOW_ROWS, sizeof *c->f64)))
    return 0;
  if (need_text && !c->off) {
    c->off = myr__reallocarray(NULL, WINDOW_ROWS, sizeof *c->off);
    c->len = myr__reallocarray(NULL, WINDOW_ROWS, sizeof *c->len);
    if (!c->off || !c->len) {
      myr__free(c->off);
      myr__free(c->len);
      c->off = c->len = NULL;
      return 0;
    }
  }
  return 1;
}

static int text_reserve(acol *c, size_t bytes) {
  if (bytes <= c->text_cap)
    return 1;
  size_t cap = c->text_cap ? c->text_cap : 65536;
  while (cap < bytes)
    cap *= 2;
  char *t = myr__realloc(c->text, cap);
  if (!t)
    return 0;
  c->text = t;
  c->text_cap = cap;
  return 1;
}

/* ------------------------------------------------------------------ one column */

static int64_t int_at(int t, const void *p, int64_t i) {
  switch (t) {
  case AT_I8: return ((const int8_t *)p)[i];
  case AT_U8: return ((const uint8_t *)p)[i];
  case AT_I16: return ((const int16_t *)p)[i];
  case AT_U16: return ((const uint16_t *)p)[i];
  case AT_I32: return ((const int32_t *)p)[i];
  case AT_U32: return ((const uint32_t *)p)[i];
  case AT_U64: {
    uint64_t u = ((const uint64_t *)p)[i];
    return u > (uint64_t)INT64_MAX ? -1 : (int64_t)u; /* only used as an index */
  }
  default: return ((const int64_t *)p)[i];
  }
}

/* Values of non-text types as doubles into c->f64. */
static void convert_f64(const acol *c, const void *p, int64_t st, size_t n, double *out) {
#define CONVERT(T)                          \
  do {                                      \
    const T *v = (const T *)p + st;         \
    for (size_t i = 0; i < n; i++)          \
      out[i] = (double)v[i];                \
  } while (0)
  switch (c->type) {
  case AT_I8: CONVERT(int8_t); break;
  case AT_U8: CONVERT(uint8_t); break;
  case AT_I16: CONVERT(int16_t); break;
  case AT_U16: CONVERT(uint16_t); break;
  case AT_I32: case AT_DATE32: case AT_TIME32: CONVERT(int32_t); break;
  case AT_U32: CONVERT(uint32_t); break;
  case AT_I64: case AT_TS: case AT_TIME64: case AT_DUR: CONVERT(int64_t); break;
  case AT_U64: CONVERT(uint64_t); break;
  case AT_F32: CONVERT(float); break;
  case AT_F64: CONVERT(double); break;
  case AT_BOOL:
    for (size_t i = 0; i < n; i++)
      out[i] = bit_at(p, st + (int64_t)i);
    break;
  case AT_DATE64: {
    const int64_t *v = (const int64_t *)p + st;
    for (size_t i = 0; i < n; i++) {
      int64_t d, r;
      floor_div(v[i], 86400000, &d, &r);
      out[i] = (double)d;
    }
    break;
  }
  default: break;
  }
#undef CONVERT
}

/* Cell i (a valid one) of a non-text type as CSV text into out; returns its length. */
static size_t format_cell(const acol *c, const void *p, int64_t i, char *out) {
  switch (c->type) {
  case AT_I8: case AT_I16: case AT_I32: case AT_I64:
    return put_int(out, int_at(c->type, p, i));
  case AT_U8: case AT_U16: case AT_U32:
    return put_uint(out, (uint64_t)int_at(c->type, p, i));
  case AT_U64: return put_uint(out, ((const uint64_t *)p)[i]);
  case AT_F32: return put_float(out, ((const float *)p)[i]);
  case AT_F64: return put_double(out, ((const double *)p)[i]);
  case AT_BOOL:
    if (bit_at(p, i)) {
      memcpy(out, "true", 4);
      return 4;
    }
    memcpy(out, "false", 5);
    return 5;
  case AT_DATE32: return put_date(out, ((const int32_t *)p)[i]);
  case AT_DATE64: {
    int64_t d, r;
    floor_div(((const int64_t *)p)[i], 86400000, &d, &r);
    return put_date(out, d);
  }
  case AT_TS: return put_timestamp(out, ((const int64_t *)p)[i], c->unit, c->tz);
  case AT_TIME32: return put_time(out, ((const int32_t *)p)[i], c->unit);
  case AT_TIME64: return put_time(out, ((const int64_t *)p)[i], c->unit);
  case AT_DUR: return put_int(out, ((const int64_t *)p)[i]);
  default: return 0;
  }
}

/* Text views of a utf8/binary array (offsets of width 4 or 8) over rows [st, st + n). */
static int text_views(myr__arrow_source *s, acol *c, const struct ArrowArray *a, int large,
                      int64_t st, size_t n, myr__column *v, myr_error *err) {
  const void *ob = a->buffers[1];
  const char *data = a->buffers[2];
  if (!ob)
    return col_error(s, c, s->rows + 1, err, "the offsets buffer is NULL");
  int64_t base = large ? ((const int64_t *)ob)[st] : ((const int32_t *)ob)[st];
  if (base < 0)
    return col_error(s, c, s->rows + 1, err, "a negative value offset");
  int64_t prev = base;
  for (size_t i = 0; i < n; i++) {
    int64_t next = large ? ((const int64_t *)ob)[st + (int64_t)i + 1]
                         : ((const int32_t *)ob)[st + (int64_t)i + 1];
    if (next < prev)
      return col_error(s, c, s->rows + i + 1, err, "value offsets decrease");
    if (next - base > (int64_t)UINT32_MAX)
      return col_error(s, c, s->rows + i + 1, err,
                       "more than 4 GiB of text in 65536 rows");
    c->off[i] = (uint32_t)(prev - base);
    c->len[i] = (uint32_t)(next - prev);
    prev = next;
  }
  if (!data && prev > base)
    return col_error(s, c, s->rows + 1, err, "the data buffer is NULL");
  v->text = data ? data + base : "";
  v->text_off = c->off;
  v->text_len = c->len;
  return MYR_OK;
}

/* Binary/string views (16-byte views, variadic data buffers): copied into c->text. */
static int view_views(myr__arrow_source *s, acol *c, const struct ArrowArray *a, int64_t st,
                      size_t n, const uint8_t *valid, myr__column *v, myr_error *err) {
  const uint8_t *views = a->buffers[1];
  int64_t n_data = a->n_buffers - 3;
  const int64_t *sizes = a->buffers[a->n_buffers - 1];
  if (!views || (n_data > 0 && !sizes))
    return col_error(s, c, s->rows + 1, err, "the views or buffer sizes buffer is NULL");
  size_t total = 0;
  for (size_t i = 0; i < n; i++) {
    if (valid && !bit_at(valid, (int64_t)i))
      continue; /* the view of a null slot is undefined */
    int32_t len;
    memcpy(&len, views + (st + (int64_t)i) * 16, 4);
    if (len < 0)
      return col_error(s, c, s->rows + i + 1, err, "a negative view length");
    total += (size_t)len;
  }
  if (total > UINT32_MAX)
    return col_error(s, c, s->rows + 1, err, "more than 4 GiB of text in 65536 rows");
  if (!text_reserve(c, total + 1))
    return fail(s, myr_error_set(err, MYR_ENOMEM, "out of memory reading %s", s->name));
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    const uint8_t *w = views + (st + (int64_t)i) * 16;
    int32_t len;
    memcpy(&len, w, 4);
    c->off[i] = (uint32_t)o;
    c->len[i] = 0;
    if (valid && !bit_at(valid, (int64_t)i))
      continue;
    const uint8_t *src;
    if (len <= 12) {
      src = w + 4;
    } else {
      int32_t bi, off;
      memcpy(&bi, w + 8, 4);
      memcpy(&off, w + 12, 4);
      if (bi < 0 || bi >= n_data || off < 0 || (int64_t)off + len > sizes[bi] ||
          !a->buffers[2 + bi])
        return col_error(s, c, s->rows + i + 1, err,
                         "a view points outside its data buffer");
      src = (const uint8_t *)a->buffers[2 + bi] + off;
    }
    memcpy(c->text + o, src, (size_t)len);
    c->len[i] = (uint32_t)len;
    o += (size_t)len;
  }
  v->text = c->text;
  v->text_off = c->off;
  v->text_len = c->len;
  return MYR_OK;
}

/* Check the dictionary of record batch s->n_batches once: structure and offsets. */
static int dict_check(myr__arrow_source *s, acol *c, const struct ArrowArray *d,
                      myr_error *err) {
  if (c->dict_checked == s->n_batches)
    return MYR_OK;
  int large = c->vals == AT_LUTF8 || c->vals == AT_LBIN;
  if (d->length < 0 || d->offset < 0 || d->n_buffers != 3 || !d->buffers ||
      (d->length > 0 && !d->buffers[1]))
    return col_error(s, c, s->rows + 1, err, "the dictionary is malformed");
  const void *ob = d->buffers[1];
  int64_t prev = 0;
  for (int64_t i = 0; i <= d->length && ob; i++) {
    int64_t o = large ? ((const int64_t *)ob)[d->offset + i]
                      : ((const int32_t *)ob)[d->offset + i];
    if (o < (i ? prev : 0))
      return col_error(s, c, s->rows + 1, err,
                       i ? "dictionary value offsets decrease" : "a negative dictionary "
                                                                 "offset");
    prev = o;
  }
  if (ob && prev > (int64_t)UINT32_MAX)
    return col_error(s, c, s->rows + 1, err, "a dictionary of more than 4 GiB");
  if (ob && prev > 0 && !d->buffers[2])
    return col_error(s, c, s->rows + 1, err, "the dictionary data buffer is NULL");
  c->dict_checked = s->n_batches;
  return MYR_OK;
}

/* Dictionary-encoded strings: views into the dictionary's data. valid is c->valid when
   the dictionary has nulls (rows pointing at them are cleared there). */
static int dict_views(myr__arrow_source *s, acol *c, const struct ArrowArray *a, int64_t st,
                      size_t n, uint8_t *valid, myr__column *v, myr_error *err) {
  const struct ArrowArray *d = a->dictionary;
  MYR_RETURN_NOT_OK(dict_check(s, c, d, err));
  int large = c->vals == AT_LUTF8 || c->vals == AT_LBIN;
  const void *ob = d->buffers[1];
  const void *ib = a->buffers[1];
  const uint8_t *dvalid = d->null_count != 0 ? d->buffers[0] : NULL;
  int64_t base = 0;
  if (ob && d->length >= 0)
    base = large ? ((const int64_t *)ob)[d->offset] : ((const int32_t *)ob)[d->offset];
  for (size_t i = 0; i < n; i++) {
    c->off[i] = 0;
    c->len[i] = 0;
    if (valid && !bit_at(valid, (int64_t)i))
      continue; /* the index of a null slot is undefined */
    int64_t k = int_at(c->idx, ib, st + (int64_t)i);
    if (k < 0 || k >= d->length) {
      char what[96];
      snprintf(what, sizeof what, "dictionary index %lld is outside [0, %lld)",
               (long long)k, (long long)d->length);
      return col_error(s, c, s->rows + i + 1, err, what);
    }
    if (dvalid && !bit_at(dvalid, d->offset + k)) {
      valid[i >> 3] &= (uint8_t) ~(1u << (i & 7)); /* valid == c->valid here */
      continue;
    }
    int64_t o0 = large ? ((const int64_t *)ob)[d->offset + k]
                       : ((const int32_t *)ob)[d->offset + k];
    int64_t o1 = large ? ((const int64_t *)ob)[d->offset + k + 1]
                       : ((const int32_t *)ob)[d->offset + k + 1];
    c->off[i] = (uint32_t)(o0 - base);
    c->len[i] = (uint32_t)(o1 - o0);
  }
  v->text = d->buffers[2] ? (const char *)d->buffers[2] + base : "";
  v->text_off = c->off;
  v->text_len = c->len;
  return MYR_OK;
}

/* Materialize column j of the current record batch, window rows [s->pos, s->pos + n). */
static int col_window(myr__arrow_source *s, size_t j, size_t n, myr_error *err) {
  acol *c = &s->cols[j];
  myr__column *v = &s->views[j];
  memset(v, 0, sizeof *v);
  c->in_place = 0;
  int kind = kind_of(c);
  if (kind == MYR__COL_ABSENT)
    return MYR_OK;
  const struct ArrowArray *a = s->arr.children[j];
  if (!a || a->length < 0 || a->offset < 0 || (!a->buffers && a->n_buffers > 0) ||
      a->n_buffers < n_buffers_of(c->type) ||
      (c->type != AT_VUTF8 && c->type != AT_VBIN && a->n_buffers != n_buffers_of(c->type)))
    return col_error(s, c, s->rows + 1, err, "the array is malformed (buffers)");
  if (a->length < s->arr.offset + s->arr.length)
    return col_error(s, c, s->rows + 1, err, "the array is shorter than its record batch");
  if ((c->type == AT_DICT) != (a->dictionary != NULL))
    return col_error(s, c, s->rows + 1, err,
                     "the array's dictionary does not match the schema's");
  if (c->type != AT_VUTF8 && c->type != AT_VBIN && c->type != AT_UTF8 &&
      c->type != AT_LUTF8 && c->type != AT_BIN && c->type != AT_LBIN &&
      c->type != AT_NULL && !a->buffers[1])
    return col_error(s, c, s->rows + 1, err, "the values buffer is NULL");
  int need_text = kind == MYR__COL_TEXT;
  if (!col_scratch(c, kind == MYR__COL_F64, need_text))
    return fail(s, myr_error_set(err, MYR_ENOMEM, "out of memory reading %s", s->name));
  int64_t st = a->offset + s->arr.offset + s->pos; /* buffer index of window row 0 */
  if (c->type == AT_NULL) { /* no buffers: every value is null */
    memset(c->valid, 0, (n + 7) / 8);
    v->validity = c->valid;
    v->kind = kind;
    if (kind == MYR__COL_F64) {
      memset(c->f64, 0, n * sizeof *c->f64);
      v->f64 = c->f64;
    } else {
      memset(c->off, 0, n * sizeof *c->off);
      memset(c->len, 0, n * sizeof *c->len);
      v->text = "";
      v->text_off = c->off;
      v->text_len = c->len;
    }
    return MYR_OK;
  }

  /* validity: in place, shifted, or combined with struct nulls and dictionary nulls */
  const uint8_t *vb = a->null_count != 0 ? a->buffers[0] : NULL;
  const uint8_t *sv = s->arr.null_count != 0 && s->arr.n_buffers > 0 && s->arr.buffers
                          ? s->arr.buffers[0]
                          : NULL;
  const struct ArrowArray *d = a->dictionary;
  int dict_nulls = d && d->null_count != 0 && d->n_buffers > 0 && d->buffers &&
                   d->buffers[0] != NULL;
  const uint8_t *valid = NULL;
  if (vb && !sv && !dict_nulls && (st & 7) == 0) {
    valid = vb + (st >> 3);
  } else if (vb || sv || dict_nulls) {
    if (vb)
      bits_copy(c->valid, vb, st, n);
    else
      memset(c->valid, 0xff, (n + 7) / 8);
    if (sv)
      bits_and(c->valid, sv, s->arr.offset + s->pos, n);
    valid = c->valid;
  }
  v->validity = valid;
  v->kind = kind;

  const void *p = a->buffers[1];
  switch (c->type) {
  case AT_UTF8: case AT_BIN:
    return text_views(s, c, a, 0, st, n, v, err);
  case AT_LUTF8: case AT_LBIN:
    return text_views(s, c, a, 1, st, n, v, err);
  case AT_VUTF8: case AT_VBIN:
    return view_views(s, c, a, st, n, valid, v, err);
  case AT_DICT:
    if (dict_nulls && valid != c->valid) {
      memset(c->valid, 0xff, (n + 7) / 8);
      valid = v->validity = c->valid;
    }
    return dict_views(s, c, a, st, n, (uint8_t *)valid, v, err);
  default: break;
  }
  if (kind == MYR__COL_F64 && c->type == AT_F64) {
    v->f64 = (const double *)p + st;
    c->in_place = 1;
    return MYR_OK;
  }
  if (kind == MYR__COL_I64) {
    v->i64 = (const int64_t *)p + st;
    return MYR_OK;
  }
  if (kind == MYR__COL_F64) {
    convert_f64(c, p, st, n, c->f64);
    v->f64 = c->f64;
    return MYR_OK;
  }
  /* a key of a non-text type: the text a CSV of the same data holds */
  if (!text_reserve(c, n * CELL_MAX))
    return fail(s, myr_error_set(err, MYR_ENOMEM, "out of memory reading %s", s->name));
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    c->off[i] = (uint32_t)o;
    if (valid && !bit_at(valid, (int64_t)i)) {
      c->len[i] = 0;
      continue;
    }
    size_t w = format_cell(c, p, st + (int64_t)i, c->text + o);
    c->len[i] = (uint32_t)w;
    o += w;
  }
  v->text = c->text;
  v->text_off = c->off;
  v->text_len = c->len;
  return MYR_OK;
}

/* ------------------------------------------------------------------ the stream */

static const char *stream_message(struct ArrowArrayStream *st, int code, char *buf,
                                  size_t cap) {
  const char *m = st->get_last_error ? st->get_last_error(st) : NULL;
  if (m && *m)
    return m;
  snprintf(buf, cap, "%s (errno %d)", strerror(code), code);
  return buf;
}

void myr__kept_ref(myr__kept *k) {
  if (k)
    k->refs++;
}

void myr__kept_release(myr__kept *k) {
  if (!k || --k->refs > 0)
    return;
  if (k->arr.release)
    k->arr.release(&k->arr);
  myr__free(k);
}

static void release_batch(myr__arrow_source *s) {
  myr__kept_release(s->cur);
  s->cur = NULL;
  memset(&s->arr, 0, sizeof s->arr);
}

int myr__arrow_source_keep(myr__arrow_source *s, unsigned char *in_place,
                           myr__kept **kept_out, myr_error *err) {
  (void)err;
  int any = 0;
  for (size_t j = 0; j < s->ncol; j++) {
    in_place[j] = (unsigned char)(s->cur && s->cols[j].in_place);
    any |= in_place[j];
  }
  *kept_out = any ? s->cur : NULL;
  myr__kept_ref(*kept_out);
  return MYR_OK;
}

/* The next non-empty record batch into s->arr, or s->eof. */
static int fetch(myr__arrow_source *s, myr_error *err) {
  release_batch(s);
  for (;;) {
    struct ArrowArray a;
    memset(&a, 0, sizeof a);
    int e = s->stream.get_next(&s->stream, &a);
    if (e != 0) {
      char buf[96];
      const char *m = stream_message(&s->stream, e, buf, sizeof buf);
      if (a.release)
        a.release(&a);
      return fail(s, myr_error_set(err, MYR_EIO, "%s: reading record batch %llu failed: %s",
                                   s->name, (unsigned long long)s->n_batches + 1, m));
    }
    if (!a.release) {
      s->eof = 1;
      return MYR_OK;
    }
    s->cur = myr__malloc(sizeof *s->cur);
    if (!s->cur) {
      a.release(&a);
      return fail(s, myr_error_set(err, MYR_ENOMEM, "out of memory reading %s", s->name));
    }
    s->cur->arr = a;
    s->cur->refs = 1;
    s->arr = a; /* a copy to read from; the holder releases */
    s->n_batches++;
    if (a.length < 0 || a.offset < 0 || a.n_children != (int64_t)s->ncol ||
        (s->ncol && !a.children) || (a.null_count != 0 && a.n_buffers > 0 && !a.buffers))
      return fail(s, myr_error_set(err, MYR_EPARSE,
                                   "%s: record batch %llu is malformed: %lld columns, "
                                   "length %lld, offset %lld (the schema has %zu columns)",
                                   s->name, (unsigned long long)s->n_batches,
                                   (long long)a.n_children, (long long)a.length,
                                   (long long)a.offset, s->ncol));
    if (a.length > 0) {
      s->pos = 0;
      return MYR_OK;
    }
    release_batch(s);
  }
}

int myr__arrow_source_next(myr__arrow_source *s, const myr__batch **batch_out,
                           myr_error *err) {
  *batch_out = NULL;
  if (s->failed)
    return myr_error_set(err, s->failed, "%s: the reader stopped after an earlier error",
                         s->name);
  if (s->eof)
    return MYR_OK;
  if (!s->cur || s->pos >= s->arr.length) {
    MYR_RETURN_NOT_OK(fetch(s, err));
    if (s->eof)
      return MYR_OK;
  }
  int64_t left = s->arr.length - s->pos;
  size_t n = left < (int64_t)s->window ? (size_t)left : s->window;
  for (size_t j = 0; j < s->ncol; j++)
    MYR_RETURN_NOT_OK(col_window(s, j, n, err));
  myr__batch *b = &s->batch;
  b->n_rows = n;
  b->first_row = s->rows;
  b->line = NULL;
  b->skip = NULL;
  b->skip_arg = NULL;
  b->n_columns = s->ncol;
  b->columns = s->views;
  s->pos += (int64_t)n;
  s->rows += n;
  *batch_out = b;
  return MYR_OK;
}

int myr__arrow_source_select(myr__arrow_source *s, const unsigned char *want,
                             myr_error *err) {
  for (size_t j = 0; j < s->ncol; j++) {
    int m = want ? want[j] : MYR__WANT_PROBE;
    if (m > MYR__WANT_PROBE)
      return myr_error_set(err, MYR_EINVAL, "bad column selection %d", m);
    if (m != MYR__WANT_NONE && m != MYR__WANT_PROBE && s->cols[j].type == AT_NONE)
      return unsupported(s, &s->cols[j], err);
  }
  for (size_t j = 0; j < s->ncol; j++)
    s->cols[j].mode = want ? want[j] : MYR__WANT_PROBE;
  return MYR_OK;
}

/* ------------------------------------------------------------------ open, close */

void myr__arrow_source_close(myr__arrow_source *s) {
  if (!s)
    return;
  release_batch(s);
  if (s->schema.release)
    s->schema.release(&s->schema);
  if (s->stream.release)
    s->stream.release(&s->stream);
  if (s->cols)
    for (size_t j = 0; j < s->ncol; j++) {
      acol *c = &s->cols[j];
      myr__free(c->f64);
      myr__free(c->off);
      myr__free(c->len);
      myr__free(c->valid);
      myr__free(c->text);
    }
  myr__free(s->cols);
  myr__free(s->views);
  myr__free(s->name);
  myr__free(s);
}

void myr__arrow_source_set_window(myr__arrow_source *s, size_t rows) {
  s->window = rows && rows < WINDOW_ROWS ? rows : WINDOW_ROWS;
}

int myr__arrow_source_open(struct ArrowArrayStream *stream, const char *name,
                           myr__arrow_source **out, myr_error *err) {
  *out = NULL;
  if (!name)
    name = "<arrow stream>";
  if (!stream || !stream->release)
    return myr_error_set(err, MYR_EINVAL, "%s: the Arrow stream is NULL or released", name);
  myr__arrow_source *s = myr__calloc(1, sizeof *s);
  if (!s) {
    stream->release(stream);
    stream->release = NULL;
    return myr_error_set(err, MYR_ENOMEM, "out of memory opening %s", name);
  }
  s->stream = *stream;
  stream->release = NULL;
  s->window = WINDOW_ROWS;
  int rc = MYR_OK;
  if (!(s->name = myr__strdup(name))) {
    rc = myr_error_set(err, MYR_ENOMEM, "out of memory opening %s", name);
    goto done;
  }
  if (!s->stream.get_schema || !s->stream.get_next) {
    rc = myr_error_set(err, MYR_EINVAL, "%s: the Arrow stream has no get_schema/get_next",
                       name);
    goto done;
  }
  int e = s->stream.get_schema(&s->stream, &s->schema);
  if (e != 0) {
    char buf[96];
    const char *m = stream_message(&s->stream, e, buf, sizeof buf);
    memset(&s->schema, 0, sizeof s->schema); /* not ours to release */
    rc = myr_error_set(err, MYR_EIO, "%s: reading the schema failed: %s", name, m);
    goto done;
  }
  if (!s->schema.release || !s->schema.format || strcmp(s->schema.format, "+s") != 0 ||
      s->schema.n_children < 0 || (s->schema.n_children > 0 && !s->schema.children)) {
    rc = myr_error_set(err, MYR_EUNSUPPORTED,
                       "%s: the stream's schema is not a record batch (struct, format "
                       "'+s'), but format '%s'",
                       name, s->schema.format ? s->schema.format : "(null)");
    goto done;
  }
  s->ncol = (size_t)s->schema.n_children;
  s->cols = myr__calloc(s->ncol ? s->ncol : 1, sizeof *s->cols);
  s->views = myr__calloc(s->ncol ? s->ncol : 1, sizeof *s->views);
  if (!s->cols || !s->views) {
    rc = myr_error_set(err, MYR_ENOMEM, "out of memory opening %s", name);
    goto done;
  }
  for (size_t j = 0; j < s->ncol; j++) {
    const struct ArrowSchema *cs = s->schema.children[j];
    if (!cs) {
      rc = myr_error_set(err, MYR_EPARSE, "%s: the schema's column %zu is NULL", name, j);
      goto done;
    }
    acol *c = &s->cols[j];
    c->name = cs->name ? cs->name : "";
    parse_type(c, cs);
    c->mode = MYR__WANT_PROBE;
  }
done:
  if (rc != MYR_OK) {
    myr__arrow_source_close(s);
    return rc;
  }
  *out = s;
  return MYR_OK;
}

/* ------------------------------------------------------------------ accessors */

const char *myr__arrow_source_name(const myr__arrow_source *s) { return s->name; }

size_t myr__arrow_source_n_columns(const myr__arrow_source *s) { return s->ncol; }

const char *myr__arrow_source_column_name(const myr__arrow_source *s, size_t i) {
  return i < s->ncol ? s->cols[i].name : "";
}

const char *myr__arrow_source_column_format(const myr__arrow_source *s, size_t i) {
  return i < s->ncol ? s->cols[i].format : "";
}

struct ArrowArrayStream *myr__arrow_source_stream(myr__arrow_source *s) {
  return &s->stream;
}
