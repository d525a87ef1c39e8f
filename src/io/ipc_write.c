/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Arrow IPC writer, stream and file formats (see arrow.h for the contract), written from
 * the Arrow columnar format specification. Input: record batches as C Data Interface
 * struct arrays of flat columns.
 *
 * DESIGN. Output layout (all integers little-endian):
 *
 *   file only:   "ARROW1\0\0"
 *   message:     int32 0xFFFFFFFF | int32 L | Message flatbuffer + zero padding (L bytes,
 *                so that 8 + L is a multiple of 8) | body (bodyLength bytes)
 *                first the Schema message (no body), then one RecordBatch per batch
 *   end:         int32 0xFFFFFFFF | int32 0
 *   file only:   Footer flatbuffer | int32 its length | "ARROW1"
 *
 * A body holds each column's buffers in schema order (validity, [offsets,] values), each
 * starting at a multiple of 8 from the body start and zero-padded to one; RecordBatch
 * lists a FieldNode {length, null_count} per column and a Buffer {offset, length} per
 * buffer. A validity buffer with no null in the batch is written with length 0. Sliced
 * inputs (ArrowArray.offset on the batch or a column) are written from their first
 * value: offsets rebased to 0, bitmaps shifted to bit 0. With compression each non-empty
 * buffer is an int64 uncompressed length followed by the LZ4 frame or ZSTD frame, or by
 * -1 and the raw bytes when compressing does not make it smaller.
 *
 * The FlatBuffers are built front to back: a table is written with placeholders for its
 * references, then the objects it refers to after it, and the placeholders are patched
 * with forward offsets (FlatBuffers uoffsets are unsigned: referenced objects must lie
 * after the reference). Every scalar sits at a multiple of its size from the buffer start,
 * which the message framing keeps 8-aligned in the file, so verifiers that check
 * alignment accept it. Buffers are written straight from the caller's memory when no
 * rebasing, shifting or compression is needed.
 */
#include "io/arrow.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <lz4frame.h>
#include <zstd.h>

#include "core/alloc.h"
#include "io/ipc_format.h"

#define ZSTD_LEVEL 1   /* the level Arrow's own writers default to: fast */
#define MAX_BUFFERS 3  /* per flat column: validity, offsets, values */
#define NO_PREFIX INT64_MIN /* piece without an uncompressed-length prefix */

/* ---- a minimal FlatBuffers builder --------------------------------------------------- */

typedef struct fbb {
  uint8_t *p;  /* the buffer under construction (owned) */
  size_t len;  /* bytes used */
  size_t cap;  /* bytes allocated */
  int failed;  /* an allocation failed: the contents are incomplete */
} fbb;

/* n zeroed bytes at the next multiple of align (zero padding before); their position.
   After a failure, returns 0 and writes nothing. */
static size_t fb_alloc(fbb *b, size_t n, size_t align) {
  if (b->failed)
    return 0;
  size_t at = (b->len + align - 1) / align * align;
  if (at + n > b->cap) {
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < at + n)
      cap *= 2;
    uint8_t *q = myr__realloc(b->p, cap);
    if (!q) {
      b->failed = 1;
      return 0;
    }
    b->p = q;
    b->cap = cap;
  }
  memset(b->p + b->len, 0, at + n - b->len);
  b->len = at + n;
  return at;
}

static void put_u16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

/* Point the uoffset at position at to target (which lies after it). */
static void fb_patch(fbb *b, size_t at, size_t target) {
  if (!b->failed)
    put_u32(b->p + at, (uint32_t)(target - at));
}

/* A vector of count elements of elem bytes, elements aligned to align (>= 4): returns the
   vector's position (its uint32 count); the elements follow at +4. */
static size_t fb_vector(fbb *b, size_t count, size_t elem, size_t align) {
  if (b->failed)
    return 0;
  /* pad so that the elements after the 4-byte count land on align */
  size_t at = (b->len + 4 + align - 1) / align * align - 4;
  fb_alloc(b, at - b->len, 1);
  if (b->failed)
    return 0;
  size_t pos = fb_alloc(b, 4 + count * elem, 4);
  if (!b->failed)
    put_u32(b->p + pos, (uint32_t)count);
  return pos;
}

static size_t fb_string(fbb *b, const char *s) {
  size_t n = strlen(s);
  size_t pos = fb_vector(b, n + 1, 1, 4); /* the NUL terminator is not counted */
  if (!b->failed) {
    put_u32(b->p + pos, (uint32_t)n);
    memcpy(b->p + pos + 4, s, n);
  }
  return pos;
}

/* A table under construction: its vtable (all slots, absent = 0) right before it. */
typedef struct fbt {
  fbb *b;
  size_t vt;    /* vtable position */
  size_t pos;   /* table position (its soffset) */
  int n_slots;  /* fields in the vtable */
} fbt;

static void fbt_begin(fbt *t, fbb *b, int n_slots) {
  t->b = b;
  t->n_slots = n_slots;
  t->vt = fb_alloc(b, 4 + 2 * (size_t)n_slots, 2);
  t->pos = fb_alloc(b, 4, 4);
}

/* Room for a field of size bytes (aligned to its size) in slot; its position. */
static size_t fbt_field(fbt *t, int slot, size_t size) {
  size_t at = fb_alloc(t->b, size, size);
  if (!t->b->failed)
    put_u16(t->b->p + t->vt + 4 + 2 * (size_t)slot, (uint16_t)(at - t->pos));
  return at;
}

static void fbt_i64(fbt *t, int slot, int64_t v) {
  size_t at = fbt_field(t, slot, 8);
  if (!t->b->failed)
    put_u64(t->b->p + at, (uint64_t)v);
}

static void fbt_i32(fbt *t, int slot, int32_t v) {
  size_t at = fbt_field(t, slot, 4);
  if (!t->b->failed)
    put_u32(t->b->p + at, (uint32_t)v);
}

static void fbt_i16(fbt *t, int slot, int16_t v) {
  size_t at = fbt_field(t, slot, 2);
  if (!t->b->failed)
    put_u16(t->b->p + at, (uint16_t)v);
}

static void fbt_u8(fbt *t, int slot, uint8_t v) {
  size_t at = fbt_field(t, slot, 1);
  if (!t->b->failed)
    t->b->p[at] = v;
}

/* A reference field: its position, to fb_patch once the target is written. */
static size_t fbt_ref(fbt *t, int slot) {
  return fbt_field(t, slot, 4);
}

/* Close the table (nothing else may have been allocated since fbt_begin); returns the
   table position, the target for references to it. */
static size_t fbt_end(fbt *t) {
  fbb *b = t->b;
  if (b->failed)
    return 0;
  put_u16(b->p + t->vt, (uint16_t)(4 + 2 * t->n_slots));
  put_u16(b->p + t->vt + 2, (uint16_t)(b->len - t->pos));
  put_u32(b->p + t->pos, (uint32_t)(int32_t)(t->pos - t->vt)); /* soffset: table - vtable */
  return t->pos;
}

/* ---- columns ------------------------------------------------------------------------- */

enum layout {
  LAY_FIXED = 1, /* validity + values of width bytes */
  LAY_BOOL = 2,  /* validity + value bits */
  LAY_VAR32 = 3, /* validity + int32 offsets + bytes */
  LAY_VAR64 = 4, /* validity + int64 offsets + bytes */
};

typedef struct wcol {
  char *name;       /* owned copy, NULL when the field has none */
  int nullable;     /* schema flag */
  int layout;       /* enum layout */
  size_t width;     /* LAY_FIXED: bytes per value */
  uint8_t type_id;  /* MYR__IPC_TYPE_* */
  int bits;         /* Int and Time: bit width */
  int is_signed;    /* Int */
  int16_t unit;     /* FloatingPoint precision, Date/Time/Timestamp/Duration unit */
  char *tz;         /* Timestamp time zone (owned), NULL when none */
  char format[16];  /* the C Data Interface format, cut, for messages */
} wcol;

typedef struct block {
  int64_t offset;    /* of the message from the file start */
  int32_t meta_len;  /* prefix + flatbuffer + padding */
  int64_t body_len;  /* body bytes */
} block;

/* One buffer of a body: bytes from the caller's memory (ext) or from scratch. */
typedef struct piece {
  const uint8_t *ext;  /* external bytes, or NULL: scratch + off */
  size_t off;          /* position in the scratch buffer */
  size_t n;            /* bytes (after the prefix, if any) */
  int64_t prefix;      /* uncompressed-length prefix, or NO_PREFIX */
} piece;

struct myr__ipc_writer {
  FILE *f;              /* output */
  int owned;            /* whether f is ours to close (not stdout) */
  char *path;           /* for messages ("stdout" for "-") */
  int file_format;      /* 1: IPC file, 0: stream */
  int compression;      /* enum myr__ipc_compression */
  int finished;         /* end marker (and footer) written */
  int failed;           /* a write failed: nothing more is written */
  uint64_t pos;         /* bytes written */
  size_t n_cols;        /* columns */
  wcol *cols;           /* owned, n_cols */
  block *blocks;        /* file format: record batches written */
  size_t n_blocks, cap_blocks;
  fbb fb;               /* metadata under construction, reused */
  uint8_t *scratch;     /* rebased offsets, shifted bitmaps, compressed buffers */
  size_t scratch_len, scratch_cap;
  piece *pieces;        /* buffers of the batch being written */
  size_t cap_pieces;
  ZSTD_CCtx *zstd;      /* reused ZSTD context, created on first use */
};

/* ---- output -------------------------------------------------------------------------- */

static int out_write(myr__ipc_writer *w, const void *p, size_t n, myr_error *err) {
  if (w->failed)
    return myr_error_set(err, MYR_EIO, "cannot write '%s': an earlier write failed",
                         w->path);
  if (n && fwrite(p, 1, n, w->f) != n) {
    w->failed = 1;
    return myr_error_set(err, MYR_EIO, "cannot write '%s' at byte %llu: %s", w->path,
                         (unsigned long long)w->pos, strerror(errno));
  }
  w->pos += n;
  return MYR_OK;
}

static int out_pad(myr__ipc_writer *w, size_t n, myr_error *err) {
  static const uint8_t zeros[MYR__IPC_ALIGN];
  return out_write(w, zeros, n, err);
}

/* ---- schema -------------------------------------------------------------------------- */

static int set_type(wcol *c, const char *fmt) {
  static const struct {
    const char *fmt;
    int layout;
    size_t width;
    uint8_t type_id;
    int bits, is_signed;
    int16_t unit;
  } simple[] = {
      {"c", LAY_FIXED, 1, MYR__IPC_TYPE_INT, 8, 1, 0},
      {"C", LAY_FIXED, 1, MYR__IPC_TYPE_INT, 8, 0, 0},
      {"s", LAY_FIXED, 2, MYR__IPC_TYPE_INT, 16, 1, 0},
      {"S", LAY_FIXED, 2, MYR__IPC_TYPE_INT, 16, 0, 0},
      {"i", LAY_FIXED, 4, MYR__IPC_TYPE_INT, 32, 1, 0},
      {"I", LAY_FIXED, 4, MYR__IPC_TYPE_INT, 32, 0, 0},
      {"l", LAY_FIXED, 8, MYR__IPC_TYPE_INT, 64, 1, 0},
      {"L", LAY_FIXED, 8, MYR__IPC_TYPE_INT, 64, 0, 0},
      {"e", LAY_FIXED, 2, MYR__IPC_TYPE_FLOATING_POINT, 0, 0, MYR__IPC_HALF},
      {"f", LAY_FIXED, 4, MYR__IPC_TYPE_FLOATING_POINT, 0, 0, MYR__IPC_SINGLE},
      {"g", LAY_FIXED, 8, MYR__IPC_TYPE_FLOATING_POINT, 0, 0, MYR__IPC_DOUBLE},
      {"b", LAY_BOOL, 0, MYR__IPC_TYPE_BOOL, 0, 0, 0},
      {"u", LAY_VAR32, 0, MYR__IPC_TYPE_UTF8, 0, 0, 0},
      {"z", LAY_VAR32, 0, MYR__IPC_TYPE_BINARY, 0, 0, 0},
      {"U", LAY_VAR64, 0, MYR__IPC_TYPE_LARGE_UTF8, 0, 0, 0},
      {"Z", LAY_VAR64, 0, MYR__IPC_TYPE_LARGE_BINARY, 0, 0, 0},
      {"tdD", LAY_FIXED, 4, MYR__IPC_TYPE_DATE, 0, 0, MYR__IPC_DATE_DAY},
      {"tdm", LAY_FIXED, 8, MYR__IPC_TYPE_DATE, 0, 0, MYR__IPC_DATE_MILLISECOND},
      {"tts", LAY_FIXED, 4, MYR__IPC_TYPE_TIME, 32, 0, MYR__IPC_SECOND},
      {"ttm", LAY_FIXED, 4, MYR__IPC_TYPE_TIME, 32, 0, MYR__IPC_MILLISECOND},
      {"ttu", LAY_FIXED, 8, MYR__IPC_TYPE_TIME, 64, 0, MYR__IPC_MICROSECOND},
      {"ttn", LAY_FIXED, 8, MYR__IPC_TYPE_TIME, 64, 0, MYR__IPC_NANOSECOND},
      {"tDs", LAY_FIXED, 8, MYR__IPC_TYPE_DURATION, 0, 0, MYR__IPC_SECOND},
      {"tDm", LAY_FIXED, 8, MYR__IPC_TYPE_DURATION, 0, 0, MYR__IPC_MILLISECOND},
      {"tDu", LAY_FIXED, 8, MYR__IPC_TYPE_DURATION, 0, 0, MYR__IPC_MICROSECOND},
      {"tDn", LAY_FIXED, 8, MYR__IPC_TYPE_DURATION, 0, 0, MYR__IPC_NANOSECOND},
  };
  for (size_t k = 0; k < sizeof simple / sizeof simple[0]; k++) {
    if (strcmp(fmt, simple[k].fmt) == 0) {
      c->layout = simple[k].layout;
      c->width = simple[k].width;
      c->type_id = simple[k].type_id;
      c->bits = simple[k].bits;
      c->is_signed = simple[k].is_signed;
      c->unit = simple[k].unit;
      return MYR_OK;
    }
  }
  /* timestamps: "ts" + unit + ':' + time zone (possibly empty) */
  static const char units[] = "smun";
  const char *u = fmt[0] == 't' && fmt[1] == 's' && fmt[2] ? strchr(units, fmt[2]) : NULL;
  if (u && fmt[3] == ':') {
    c->layout = LAY_FIXED;
    c->width = 8;
    c->type_id = MYR__IPC_TYPE_TIMESTAMP;
    c->unit = (int16_t)(u - units);
    if (fmt[4] && !(c->tz = myr__strdup(fmt + 4)))
      return MYR_ENOMEM;
    return MYR_OK;
  }
  return MYR_EUNSUPPORTED;
}

static void free_cols(myr__ipc_writer *w) {
  for (size_t c = 0; w->cols && c < w->n_cols; c++) {
    myr__free(w->cols[c].name);
    myr__free(w->cols[c].tz);
  }
  myr__free(w->cols);
  w->cols = NULL;
}

static int read_schema(myr__ipc_writer *w, const struct ArrowSchema *s, myr_error *err) {
  if (!s || !s->release || !s->format)
    return myr_error_set(err, MYR_EINVAL, "arrow writer '%s': no schema", w->path);
  if (strcmp(s->format, "+s") != 0)
    return myr_error_set(err, MYR_EUNSUPPORTED,
                         "arrow writer '%s': the schema must be a struct ('+s') of columns, "
                         "got format '%.32s'", w->path, s->format);
  if (s->n_children < 0 || (s->n_children > 0 && !s->children))
    return myr_error_set(err, MYR_EINVAL, "arrow writer '%s': bad schema children",
                         w->path);
  w->n_cols = (size_t)s->n_children;
  if (w->n_cols && !(w->cols = myr__calloc(w->n_cols, sizeof *w->cols)))
    return myr_error_set(err, MYR_ENOMEM, "arrow writer: out of memory");
  for (size_t c = 0; c < w->n_cols; c++) {
    const struct ArrowSchema *ch = s->children[c];
    wcol *col = &w->cols[c];
    const char *name = ch && ch->name ? ch->name : "";
    if (!ch || !ch->format)
      return myr_error_set(err, MYR_EINVAL, "arrow writer '%s': column %zu has no format",
                           w->path, c);
    snprintf(col->format, sizeof col->format, "%s", ch->format);
    if (ch->dictionary)
      return myr_error_set(err, MYR_EUNSUPPORTED,
                           "arrow writer '%s': column %zu ('%s') is dictionary-encoded, "
                           "which the writer does not support", w->path, c, name);
    int rc = set_type(col, ch->format);
    if (rc == MYR_ENOMEM)
      return myr_error_set(err, MYR_ENOMEM, "arrow writer: out of memory");
    if (rc != MYR_OK)
      return myr_error_set(err, MYR_EUNSUPPORTED,
                           "arrow writer '%s': column %zu ('%s') has type '%.32s', which the "
                           "writer does not support", w->path, c, name, ch->format);
    col->nullable = (ch->flags & ARROW_FLAG_NULLABLE) != 0;
    if (ch->name && !(col->name = myr__strdup(ch->name)))
      return myr_error_set(err, MYR_ENOMEM, "arrow writer: out of memory");
  }
  return MYR_OK;
}

/* The Type union value of col (a table), written now; its position. */
static size_t put_type(fbb *b, const wcol *col) {
  fbt t;
  size_t tz = 0;
  switch (col->type_id) {
  case MYR__IPC_TYPE_INT:
    fbt_begin(&t, b, 2);
    fbt_i32(&t, MYR__IPC_INT_BIT_WIDTH, col->bits);
    fbt_u8(&t, MYR__IPC_INT_IS_SIGNED, (uint8_t)col->is_signed);
    return fbt_end(&t);
  case MYR__IPC_TYPE_FLOATING_POINT:
    fbt_begin(&t, b, 1);
    fbt_i16(&t, MYR__IPC_FLOATING_POINT_PRECISION, col->unit);
    return fbt_end(&t);
  case MYR__IPC_TYPE_DATE:
    fbt_begin(&t, b, 1);
    fbt_i16(&t, MYR__IPC_DATE_UNIT, col->unit);
    return fbt_end(&t);
  case MYR__IPC_TYPE_TIME:
    fbt_begin(&t, b, 2);
    fbt_i16(&t, MYR__IPC_TIME_UNIT, col->unit);
    fbt_i32(&t, MYR__IPC_TIME_BIT_WIDTH, col->bits);
    return fbt_end(&t);
  case MYR__IPC_TYPE_DURATION:
    fbt_begin(&t, b, 1);
    fbt_i16(&t, MYR__IPC_DURATION_UNIT, col->unit);
    return fbt_end(&t);
  case MYR__IPC_TYPE_TIMESTAMP: {
    fbt_begin(&t, b, 2);
    fbt_i16(&t, MYR__IPC_TIMESTAMP_UNIT, col->unit);
    if (col->tz)
      tz = fbt_ref(&t, MYR__IPC_TIMESTAMP_TIMEZONE);
    size_t pos = fbt_end(&t);
    if (col->tz)
      fb_patch(b, tz, fb_string(b, col->tz));
    return pos;
  }
  default: /* Utf8, Binary, LargeUtf8, LargeBinary, Bool: empty tables */
    fbt_begin(&t, b, 0);
    return fbt_end(&t);
  }
}

/* A Schema table referenced from ref_at, and everything under it. */
static void put_schema(fbb *b, size_t ref_at, const myr__ipc_writer *w) {
  fbt t;
  fbt_begin(&t, b, 4);
  fbt_i16(&t, MYR__IPC_SCHEMA_ENDIANNESS, MYR__IPC_LITTLE);
  size_t fields_ref = fbt_ref(&t, MYR__IPC_SCHEMA_FIELDS);
  fb_patch(b, ref_at, fbt_end(&t));
  size_t vec = fb_vector(b, w->n_cols, 4, 4);
  fb_patch(b, fields_ref, vec);
  for (size_t c = 0; c < w->n_cols && !b->failed; c++) {
    const wcol *col = &w->cols[c];
    fbt f;
    fbt_begin(&f, b, 7);
    size_t name_ref = col->name ? fbt_ref(&f, MYR__IPC_FIELD_NAME) : 0;
    fbt_u8(&f, MYR__IPC_FIELD_NULLABLE, (uint8_t)col->nullable);
    fbt_u8(&f, MYR__IPC_FIELD_TYPE_TYPE, col->type_id);
    size_t type_ref = fbt_ref(&f, MYR__IPC_FIELD_TYPE);
    size_t kids_ref = fbt_ref(&f, MYR__IPC_FIELD_CHILDREN);
    fb_patch(b, vec + 4 + 4 * c, fbt_end(&f));
    if (col->name)
      fb_patch(b, name_ref, fb_string(b, col->name));
    fb_patch(b, type_ref, put_type(b, col));
    fb_patch(b, kids_ref, fb_vector(b, 0, 4, 4)); /* flat columns: no children */
  }
}

/* A Message table as the root of w->fb: version V5, the header's type, bodyLength;
   returns the position of the header reference. */
static size_t put_message(myr__ipc_writer *w, uint8_t header_type, int64_t body_len) {
  fbb *b = &w->fb;
  b->len = 0;
  b->failed = 0;
  size_t root = fb_alloc(b, 4, 4);
  fbt t;
  fbt_begin(&t, b, 5);
  fbt_i64(&t, MYR__IPC_MESSAGE_BODY_LENGTH, body_len);
  fbt_i16(&t, MYR__IPC_MESSAGE_VERSION, MYR__IPC_V5);
  fbt_u8(&t, MYR__IPC_MESSAGE_HEADER_TYPE, header_type);
  size_t header = fbt_ref(&t, MYR__IPC_MESSAGE_HEADER);
  fb_patch(b, root, fbt_end(&t));
  return header;
}

/* Write w->fb as an encapsulated message: marker, length, flatbuffer, padding. */
static int write_message(myr__ipc_writer *w, int32_t *meta_len_out, myr_error *err) {
  if (w->fb.failed)
    return myr_error_set(err, MYR_ENOMEM, "arrow writer: out of memory for metadata");
  size_t padded = (w->fb.len + 8 + MYR__IPC_ALIGN - 1) / MYR__IPC_ALIGN * MYR__IPC_ALIGN - 8;
  if (padded > (size_t)INT32_MAX - 8)
    return myr_error_set(err, MYR_EINVAL, "arrow writer '%s': metadata too large", w->path);
  uint8_t head[8];
  put_u32(head, MYR__IPC_CONTINUATION);
  put_u32(head + 4, (uint32_t)padded);
  MYR_RETURN_NOT_OK(out_write(w, head, 8, err));
  MYR_RETURN_NOT_OK(out_write(w, w->fb.p, w->fb.len, err));
  MYR_RETURN_NOT_OK(out_pad(w, padded - w->fb.len, err));
  if (meta_len_out)
    *meta_len_out = (int32_t)(8 + padded);
  return MYR_OK;
}

int myr__ipc_writer_open(const char *path, int file_format, int compression,
                         const struct ArrowSchema *schema, myr__ipc_writer **out,
                         myr_error *err) {
  *out = NULL;
  if (!path || !*path)
    return myr_error_set(err, MYR_EINVAL, "arrow writer: no output path");
  if (compression != MYR__IPC_NONE && compression != MYR__IPC_LZ4 &&
      compression != MYR__IPC_ZSTD)
    return myr_error_set(err, MYR_EINVAL, "arrow writer: unknown compression %d",
                         compression);
  myr__ipc_writer *w = myr__calloc(1, sizeof *w);
  if (!w)
    return myr_error_set(err, MYR_ENOMEM, "arrow writer: out of memory");
  int to_stdout = strcmp(path, "-") == 0;
  w->file_format = file_format != 0;
  w->compression = compression;
  w->path = myr__strdup(to_stdout ? "stdout" : path);
  int rc;
  if (!w->path) {
    rc = myr_error_set(err, MYR_ENOMEM, "arrow writer: out of memory");
    goto fail;
  }
  if ((rc = read_schema(w, schema, err)) != MYR_OK)
    goto fail;
  /* Everything that allocates comes before the file exists: a failure after it is an
     I/O error, and then the file made here is removed. */
  size_t header = put_message(w, MYR__IPC_HEADER_SCHEMA, 0);
  put_schema(&w->fb, header, w);
  if (w->fb.failed) {
    rc = myr_error_set(err, MYR_ENOMEM, "arrow writer: out of memory for the schema");
    goto fail;
  }
  if (to_stdout) {
    w->f = stdout;
  } else {
    if (!(w->f = fopen(path, "wb"))) {
      rc = myr_error_set(err, MYR_EIO, "cannot open output '%s': %s", path, strerror(errno));
      goto fail;
    }
    w->owned = 1;
  }
  if (w->file_format) {
    static const uint8_t magic[MYR__IPC_FILE_HEAD] = {'A', 'R', 'R', 'O', 'W', '1', 0, 0};
    rc = out_write(w, magic, sizeof magic, err);
  }
  if (rc == MYR_OK)
    rc = write_message(w, NULL, err);
  if (rc != MYR_OK) {
    if (w->owned) {
      fclose(w->f);
      w->f = NULL;
      remove(path);
    }
    goto fail;
  }
  *out = w;
  return MYR_OK;
fail:
  myr__ipc_writer_abort(w);
  return rc;
}

/* ---- record batches ------------------------------------------------------------------ */

/* n bytes of scratch (8-aligned); returns their offset, or SIZE_MAX out of memory. */
static size_t scratch_take(myr__ipc_writer *w, size_t n) {
  size_t at = (w->scratch_len + 7) / 8 * 8;
  if (at + n > w->scratch_cap) {
    size_t cap = w->scratch_cap ? w->scratch_cap : 65536;
    while (cap < at + n)
      cap *= 2;
    uint8_t *q = myr__realloc(w->scratch, cap);
    if (!q)
      return SIZE_MAX;
    w->scratch = q;
    w->scratch_cap = cap;
  }
  w->scratch_len = at + n;
  return at;
}

static const uint8_t *piece_bytes(const myr__ipc_writer *w, const piece *p) {
  if (p->ext || p->n == 0)
    return p->ext; /* an empty piece may have no bytes at all */
  return w->scratch + p->off;
}

/* Bits [start, start + n) of a bitmap as a bitmap starting at bit 0: the caller's bytes
   when start is a multiple of 8, else a shifted copy in scratch. */
static int slice_bits(myr__ipc_writer *w, const uint8_t *bits, int64_t start, int64_t n,
                      piece *p) {
  size_t bytes = (size_t)(n + 7) / 8;
  p->n = bytes;
  p->prefix = NO_PREFIX;
  if (start % 8 == 0) {
    p->ext = bits + start / 8;
    return MYR_OK;
  }
  size_t at = scratch_take(w, bytes);
  if (at == SIZE_MAX)
    return MYR_ENOMEM;
  p->ext = NULL;
  p->off = at;
  uint8_t *dst = w->scratch + at;
  const uint8_t *src = bits + start / 8;
  unsigned sh = (unsigned)(start % 8);
  size_t src_bytes = (size_t)(start % 8 + n + 7) / 8; /* never read past the last bit */
  for (size_t i = 0; i < bytes; i++) {
    unsigned lo = src[i] >> sh;
    unsigned hi = i + 1 < src_bytes ? (unsigned)src[i + 1] << (8 - sh) : 0;
    dst[i] = (uint8_t)(lo | hi);
  }
  return MYR_OK;
}

static int64_t count_nulls(const uint8_t *bits, int64_t start, int64_t n) {
  int64_t valid = 0, i = start, end = start + n;
  for (; i < end && i % 8; i++)
    valid += (bits[i / 8] >> (i % 8)) & 1;
  for (; i + 64 <= end; i += 64) {
    uint64_t word;
    memcpy(&word, bits + i / 8, 8);
    valid += __builtin_popcountll(word);
  }
  for (; i < end; i++)
    valid += (bits[i / 8] >> (i % 8)) & 1;
  return n - valid;
}

/* Offsets [start, start + n] rebased to start at 0 (the caller's when already), and the
   byte range of the values they cover. */
static int slice_offsets(myr__ipc_writer *w, const wcol *col, const void *offs,
                         int64_t start, int64_t n, piece *p, int64_t *first, int64_t *last) {
  size_t esz = col->layout == LAY_VAR32 ? 4 : 8;
  const uint8_t *src = (const uint8_t *)offs + (size_t)start * esz;
  int64_t o0, o1;
  if (esz == 4) {
    int32_t a, b;
    memcpy(&a, src, 4);
    memcpy(&b, src + (size_t)n * 4, 4);
    o0 = a;
    o1 = b;
  } else {
    memcpy(&o0, src, 8);
    memcpy(&o1, src + (size_t)n * 8, 8);
  }
  if (o0 < 0 || o1 < o0)
    return MYR_EINVAL;
  *first = o0;
  *last = o1;
  p->n = ((size_t)n + 1) * esz;
  p->prefix = NO_PREFIX;
  if (o0 == 0) {
    p->ext = src;
    return MYR_OK;
  }
  size_t at = scratch_take(w, p->n);
  if (at == SIZE_MAX)
    return MYR_ENOMEM;
  p->ext = NULL;
  p->off = at;
  uint8_t *dst = w->scratch + at;
  for (int64_t i = 0; i <= n; i++) {
    if (esz == 4) {
      int32_t v;
      memcpy(&v, src + (size_t)i * 4, 4);
      v = (int32_t)(v - o0);
      memcpy(dst + (size_t)i * 4, &v, 4);
    } else {
      int64_t v;
      memcpy(&v, src + (size_t)i * 8, 8);
      v -= o0;
      memcpy(dst + (size_t)i * 8, &v, 8);
    }
  }
  return MYR_OK;
}

/* Compress piece p in place of itself (into scratch) when it gets smaller; otherwise
   keep the raw bytes behind a -1 prefix. Empty pieces stay empty, without prefix. */
static int compress_piece(myr__ipc_writer *w, piece *p, myr_error *err) {
  if (p->n == 0)
    return MYR_OK;
  size_t bound = w->compression == MYR__IPC_LZ4 ? LZ4F_compressFrameBound(p->n, NULL)
                                                : ZSTD_compressBound(p->n);
  size_t at = scratch_take(w, bound);
  if (at == SIZE_MAX)
    return myr_error_set(err, MYR_ENOMEM, "arrow writer: out of memory compressing");
  const uint8_t *src = piece_bytes(w, p); /* after scratch_take: scratch may have moved */
  size_t got;
  if (w->compression == MYR__IPC_LZ4) {
    got = LZ4F_compressFrame(w->scratch + at, bound, src, p->n, NULL);
    if (LZ4F_isError(got))
      return myr_error_set(err, MYR_EINTERNAL, "arrow writer '%s': LZ4 compression failed: "
                           "%s", w->path, LZ4F_getErrorName(got));
  } else {
    if (!w->zstd && !(w->zstd = ZSTD_createCCtx()))
      return myr_error_set(err, MYR_ENOMEM, "arrow writer: out of memory for ZSTD");
    got = ZSTD_compressCCtx(w->zstd, w->scratch + at, bound, src, p->n, ZSTD_LEVEL);
    if (ZSTD_isError(got))
      return myr_error_set(err, MYR_EINTERNAL, "arrow writer '%s': ZSTD compression "
                           "failed: %s", w->path, ZSTD_getErrorName(got));
  }
  if (got < p->n) {
    p->prefix = (int64_t)p->n;
    p->ext = NULL;
    p->off = at;
    p->n = got;
  } else {
    p->prefix = MYR__IPC_NOT_COMPRESSED;
    w->scratch_len = at; /* give the unused room back */
  }
  return MYR_OK;
}

static int grow_pieces(myr__ipc_writer *w, size_t n) {
  if (n <= w->cap_pieces)
    return MYR_OK;
  piece *p = myr__reallocarray(w->pieces, n, sizeof *p);
  if (!p)
    return MYR_ENOMEM;
  w->pieces = p;
  w->cap_pieces = n;
  return MYR_OK;
}

int myr__ipc_writer_write(myr__ipc_writer *w, const struct ArrowArray *batch,
                          myr_error *err) {
  if (w->finished)
    return myr_error_set(err, MYR_EINVAL, "arrow writer '%s': already finished", w->path);
  if (w->failed)
    return myr_error_set(err, MYR_EIO, "cannot write '%s': an earlier write failed",
                         w->path);
  if (!batch || !batch->release)
    return myr_error_set(err, MYR_EINVAL, "arrow writer '%s': released batch", w->path);
  if (batch->n_children != (int64_t)w->n_cols || batch->length < 0 || batch->offset < 0 ||
      (w->n_cols && !batch->children))
    return myr_error_set(err, MYR_EINVAL,
                         "arrow writer '%s': batch has %lld columns and %lld rows, the "
                         "schema %zu columns", w->path, (long long)batch->n_children,
                         (long long)batch->length, w->n_cols);
  if (batch->null_count != 0 && batch->n_buffers > 0 && batch->buffers && batch->buffers[0])
    return myr_error_set(err, MYR_EUNSUPPORTED,
                         "arrow writer '%s': the batch's struct array has null rows",
                         w->path);
  const int64_t rows = batch->length;
  int rc = MYR_OK;
  if (grow_pieces(w, w->n_cols * MAX_BUFFERS + 1) != MYR_OK)
    return myr_error_set(err, MYR_ENOMEM, "arrow writer: out of memory");
  w->scratch_len = 0;
  size_t n_pieces = 0;
  int64_t *nulls = NULL;
  if (w->n_cols && !(nulls = myr__calloc(w->n_cols, sizeof *nulls)))
    return myr_error_set(err, MYR_ENOMEM, "arrow writer: out of memory");

  /* -- each column's buffers, sliced to [start, start + rows) -- */
  for (size_t c = 0; c < w->n_cols; c++) {
    const struct ArrowArray *a = batch->children[c];
    const wcol *col = &w->cols[c];
    const char *name = col->name ? col->name : "";
    int64_t want = col->layout == LAY_FIXED || col->layout == LAY_BOOL ? 2 : 3;
    if (!a || !a->release || a->n_buffers != want || !a->buffers || a->offset < 0 ||
        a->dictionary) {
      rc = myr_error_set(err, MYR_EINVAL, "arrow writer '%s': column %zu ('%s', '%s') is "
                         "not a valid array of its type (%lld buffers)", w->path, c, name,
                         col->format, a ? (long long)a->n_buffers : 0LL);
      goto done;
    }
    if (a->length - batch->offset < rows) {
      rc = myr_error_set(err, MYR_EINVAL, "arrow writer '%s': column %zu ('%s') has %lld "
                         "values, the batch %lld rows from %lld", w->path, c, name,
                         (long long)a->length, (long long)rows, (long long)batch->offset);
      goto done;
    }
    const int64_t start = a->offset + batch->offset;
    const uint8_t *validity = a->buffers[0];
    piece *pv = &w->pieces[n_pieces++];
    memset(pv, 0, sizeof *pv);
    pv->prefix = NO_PREFIX;
    if (!validity) {
      if (a->null_count > 0) {
        rc = myr_error_set(err, MYR_EINVAL, "arrow writer '%s': column %zu ('%s') counts "
                           "%lld nulls but has no validity bitmap", w->path, c, name,
                           (long long)a->null_count);
        goto done;
      }
    } else if (rows > 0 && (nulls[c] = count_nulls(validity, start, rows)) > 0) {
      if (slice_bits(w, validity, start, rows, pv) != MYR_OK)
        goto oom;
    }
    if (rows > 0 && !a->buffers[1]) {
      rc = myr_error_set(err, MYR_EINVAL, "arrow writer '%s': column %zu ('%s') has no "
                         "data buffer", w->path, c, name);
      goto done;
    }
    piece *pd = &w->pieces[n_pieces++];
    memset(pd, 0, sizeof *pd);
    pd->prefix = NO_PREFIX;
    if (col->layout == LAY_FIXED) {
      if (rows > 0)
        pd->ext = (const uint8_t *)a->buffers[1] + (size_t)start * col->width;
      pd->n = (size_t)rows * col->width;
    } else if (col->layout == LAY_BOOL) {
      if (rows > 0 && slice_bits(w, a->buffers[1], start, rows, pd) != MYR_OK)
        goto oom;
    } else {
      piece *pb = &w->pieces[n_pieces++];
      memset(pb, 0, sizeof *pb);
      pb->prefix = NO_PREFIX;
      if (rows == 0 && !a->buffers[1]) {
        /* zero rows: an offsets buffer holding 0 */
        size_t at = scratch_take(w, 8);
        if (at == SIZE_MAX)
          goto oom;
        memset(w->scratch + at, 0, 8);
        pd->off = at;
        pd->n = col->layout == LAY_VAR32 ? 4 : 8;
        continue;
      }
      int64_t first, last;
      int st = slice_offsets(w, col, a->buffers[1], start, rows, pd, &first, &last);
      if (st == MYR_ENOMEM)
        goto oom;
      if (st != MYR_OK) {
        rc = myr_error_set(err, MYR_EINVAL, "arrow writer '%s': column %zu ('%s') has bad "
                           "offsets at value %lld", w->path, c, name, (long long)start);
        goto done;
      }
      if (last > first && !a->buffers[2]) {
        rc = myr_error_set(err, MYR_EINVAL, "arrow writer '%s': column %zu ('%s') has no "
                           "value bytes", w->path, c, name);
        goto done;
      }
      pb->ext = last > first ? (const uint8_t *)a->buffers[2] + first : NULL;
      pb->n = (size_t)(last - first);
    }
  }
  /* -- compression, then the body layout -- */
  for (size_t i = 0; i < n_pieces && w->compression != MYR__IPC_NONE; i++)
    if ((rc = compress_piece(w, &w->pieces[i], err)) != MYR_OK)
      goto done;
  int64_t body_len = 0;
  for (size_t i = 0; i < n_pieces; i++) {
    const piece *p = &w->pieces[i];
    size_t n = p->n + (p->prefix != NO_PREFIX ? 8 : 0);
    body_len += (int64_t)((n + MYR__IPC_ALIGN - 1) / MYR__IPC_ALIGN * MYR__IPC_ALIGN);
  }

  /* -- metadata: Message { RecordBatch { length, nodes, buffers, compression } } -- */
  fbb *b = &w->fb;
  size_t header = put_message(w, MYR__IPC_HEADER_RECORD_BATCH, body_len);
  fbt t;
  fbt_begin(&t, b, 4);
  fbt_i64(&t, MYR__IPC_RECORD_BATCH_LENGTH, rows);
  size_t nodes_ref = fbt_ref(&t, MYR__IPC_RECORD_BATCH_NODES);
  size_t bufs_ref = fbt_ref(&t, MYR__IPC_RECORD_BATCH_BUFFERS);
  size_t comp_ref = w->compression ? fbt_ref(&t, MYR__IPC_RECORD_BATCH_COMPRESSION) : 0;
  fb_patch(b, header, fbt_end(&t));
  size_t vec = fb_vector(b, w->n_cols, MYR__IPC_FIELD_NODE_SIZE, 8);
  fb_patch(b, nodes_ref, vec);
  for (size_t c = 0; c < w->n_cols && !b->failed; c++) {
    put_u64(b->p + vec + 4 + MYR__IPC_FIELD_NODE_SIZE * c, (uint64_t)rows);
    put_u64(b->p + vec + 4 + MYR__IPC_FIELD_NODE_SIZE * c + 8, (uint64_t)nulls[c]);
  }
  vec = fb_vector(b, n_pieces, MYR__IPC_BUFFER_SIZE, 8);
  fb_patch(b, bufs_ref, vec);
  int64_t at = 0;
  for (size_t i = 0; i < n_pieces && !b->failed; i++) {
    const piece *p = &w->pieces[i];
    size_t n = p->n + (p->prefix != NO_PREFIX ? 8 : 0);
    put_u64(b->p + vec + 4 + MYR__IPC_BUFFER_SIZE * i, (uint64_t)at);
    put_u64(b->p + vec + 4 + MYR__IPC_BUFFER_SIZE * i + 8, (uint64_t)n);
    at += (int64_t)((n + MYR__IPC_ALIGN - 1) / MYR__IPC_ALIGN * MYR__IPC_ALIGN);
  }
  if (w->compression) {
    fbt_begin(&t, b, 2);
    fbt_u8(&t, MYR__IPC_BODY_COMPRESSION_CODEC, w->compression == MYR__IPC_LZ4
                                                    ? MYR__IPC_CODEC_LZ4_FRAME
                                                    : MYR__IPC_CODEC_ZSTD);
    fbt_u8(&t, MYR__IPC_BODY_COMPRESSION_METHOD, MYR__IPC_METHOD_BUFFER);
    fb_patch(b, comp_ref, fbt_end(&t));
  }

  /* -- write: message, then the body -- */
  block blk = {(int64_t)w->pos, 0, body_len};
  if (w->file_format && w->n_blocks == w->cap_blocks) {
    size_t cap = w->cap_blocks ? 2 * w->cap_blocks : 64;
    block *nb = myr__reallocarray(w->blocks, cap, sizeof *nb);
    if (!nb)
      goto oom;
    w->blocks = nb;
    w->cap_blocks = cap;
  }
  if ((rc = write_message(w, &blk.meta_len, err)) != MYR_OK)
    goto done;
  for (size_t i = 0; i < n_pieces; i++) {
    const piece *p = &w->pieces[i];
    size_t n = p->n;
    if (p->prefix != NO_PREFIX) {
      uint8_t pre[8];
      put_u64(pre, (uint64_t)p->prefix);
      if ((rc = out_write(w, pre, 8, err)) != MYR_OK)
        goto done;
      n += 8;
    }
    if ((rc = out_write(w, piece_bytes(w, p), p->n, err)) != MYR_OK)
      goto done;
    if ((rc = out_pad(w, (MYR__IPC_ALIGN - n % MYR__IPC_ALIGN) % MYR__IPC_ALIGN, err)) !=
        MYR_OK)
      goto done;
  }
  if (w->file_format)
    w->blocks[w->n_blocks++] = blk;
  goto done;
oom:
  rc = myr_error_set(err, MYR_ENOMEM, "arrow writer: out of memory writing a batch");
done:
  myr__free(nulls);
  if (w->scratch_cap > ((size_t)64 << 20)) { /* do not keep a huge scratch between batches */
    myr__free(w->scratch);
    w->scratch = NULL;
    w->scratch_cap = 0;
  }
  w->scratch_len = 0;
  return rc;
}

/* ---- end ----------------------------------------------------------------------------- */

static int write_footer(myr__ipc_writer *w, myr_error *err) {
  fbb *b = &w->fb;
  b->len = 0;
  b->failed = 0;
  size_t root = fb_alloc(b, 4, 4);
  fbt t;
  fbt_begin(&t, b, 5);
  fbt_i16(&t, MYR__IPC_FOOTER_VERSION, MYR__IPC_V5);
  size_t schema_ref = fbt_ref(&t, MYR__IPC_FOOTER_SCHEMA);
  size_t dict_ref = fbt_ref(&t, MYR__IPC_FOOTER_DICTIONARIES);
  size_t batches_ref = fbt_ref(&t, MYR__IPC_FOOTER_RECORD_BATCHES);
  fb_patch(b, root, fbt_end(&t));
  put_schema(b, schema_ref, w);
  fb_patch(b, dict_ref, fb_vector(b, 0, MYR__IPC_BLOCK_SIZE, 8));
  size_t vec = fb_vector(b, w->n_blocks, MYR__IPC_BLOCK_SIZE, 8);
  fb_patch(b, batches_ref, vec);
  for (size_t i = 0; i < w->n_blocks && !b->failed; i++) {
    uint8_t *e = b->p + vec + 4 + MYR__IPC_BLOCK_SIZE * i;
    put_u64(e + MYR__IPC_BLOCK_OFFSET, (uint64_t)w->blocks[i].offset);
    put_u32(e + MYR__IPC_BLOCK_META_DATA_LENGTH, (uint32_t)w->blocks[i].meta_len);
    put_u64(e + MYR__IPC_BLOCK_BODY_LENGTH, (uint64_t)w->blocks[i].body_len);
  }
  if (b->failed)
    return myr_error_set(err, MYR_ENOMEM, "arrow writer: out of memory for the footer");
  if (b->len > (size_t)INT32_MAX)
    return myr_error_set(err, MYR_EINVAL, "arrow writer '%s': footer too large", w->path);
  uint8_t tail[MYR__IPC_FILE_TAIL];
  put_u32(tail, (uint32_t)b->len);
  memcpy(tail + 4, MYR__IPC_MAGIC, MYR__IPC_MAGIC_LEN);
  MYR_RETURN_NOT_OK(out_write(w, b->p, b->len, err));
  return out_write(w, tail, sizeof tail, err);
}

int myr__ipc_writer_finish(myr__ipc_writer *w, myr_error *err) {
  if (w->finished)
    return MYR_OK;
  uint8_t eos[8];
  put_u32(eos, MYR__IPC_CONTINUATION);
  put_u32(eos + 4, 0);
  MYR_RETURN_NOT_OK(out_write(w, eos, sizeof eos, err));
  if (w->file_format)
    MYR_RETURN_NOT_OK(write_footer(w, err));
  if (fflush(w->f) != 0) {
    w->failed = 1;
    return myr_error_set(err, MYR_EIO, "cannot write '%s': %s", w->path, strerror(errno));
  }
  w->finished = 1;
  return MYR_OK;
}

uint64_t myr__ipc_writer_bytes(const myr__ipc_writer *w) {
  return w ? w->pos : 0;
}

static void writer_free(myr__ipc_writer *w) {
  free_cols(w);
  myr__free(w->blocks);
  myr__free(w->fb.p);
  myr__free(w->scratch);
  myr__free(w->pieces);
  ZSTD_freeCCtx(w->zstd);
  myr__free(w->path);
  myr__free(w);
}

int myr__ipc_writer_close(myr__ipc_writer *w, myr_error *err) {
  if (!w)
    return MYR_OK;
  int rc = myr__ipc_writer_finish(w, err);
  if (w->owned && fclose(w->f) != 0 && rc == MYR_OK)
    rc = myr_error_set(err, MYR_EIO, "cannot write '%s': %s", w->path, strerror(errno));
  writer_free(w);
  return rc;
}

void myr__ipc_writer_abort(myr__ipc_writer *w) {
  if (!w)
    return;
  if (w->owned && w->f)
    fclose(w->f);
  else if (w->f)
    fflush(w->f);
  writer_free(w);
}
