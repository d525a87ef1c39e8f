/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A small bounds-checked FlatBuffers reader for the Arrow IPC metadata (ipc_read.c).
 * Buffers come from files, so nothing is trusted: every table, vtable, field, vector and
 * string position is checked against the buffer before it is read, and table nesting is
 * bounded (myr__fb_table.depth), so a hostile buffer gets a failed lookup, never an
 * out-of-bounds read. Reads are byte-wise little-endian, so alignment does not matter.
 *
 * Wire format (FlatBuffers): the buffer starts with a uoffset (uint32) to the root table.
 * A table starts with an soffset (int32): vtable position = table position - soffset. A
 * vtable is uint16 [vtable size in bytes, table inline size in bytes, field offsets...];
 * field offset 0 means absent (use the default). A table-, vector- or string-valued
 * field holds a uoffset relative to the field's own position; a vector is a uint32 count
 * followed by its elements (a string: its bytes, then a NUL not counted).
 *
 * Functions return 1 when the value is present and valid, 0 when the field is absent
 * (the out value is left at the default given), -1 when the buffer is malformed.
 */
#ifndef MYRIAD_IO_FLATBUF_H
#define MYRIAD_IO_FLATBUF_H

#include <stddef.h>
#include <stdint.h>

#define MYR__FB_MAX_DEPTH 32 /* deepest table nesting followed from the root */

typedef struct myr__fb_table {
  const uint8_t *buf; /* the whole flatbuffer */
  size_t len;         /* its size in bytes */
  size_t pos;         /* table start (its soffset) */
  size_t vt;          /* vtable start */
  size_t vt_size;     /* vtable size in bytes (>= 4, even) */
  size_t size;        /* table inline size in bytes (>= 4) */
  int depth;          /* 0 for the root table */
} myr__fb_table;

typedef struct myr__fb_vec {
  const uint8_t *buf; /* the whole flatbuffer */
  size_t len;         /* its size in bytes */
  size_t pos;         /* first element */
  size_t n;           /* element count */
  int depth;          /* depth of the table holding the vector */
} myr__fb_vec;

static inline uint16_t myr__le16(const uint8_t *p) {
  return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t myr__le32(const uint8_t *p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
         ((uint32_t)p[3] << 24);
}
static inline uint64_t myr__le64(const uint8_t *p) {
  return (uint64_t)myr__le32(p) | ((uint64_t)myr__le32(p + 4) << 32);
}

/* Set up the table at pos of buf; -1 when it or its vtable is out of bounds. */
static inline int myr__fb_table_init(const uint8_t *buf, size_t len, size_t pos, int depth,
                                     myr__fb_table *out) {
  if (depth > MYR__FB_MAX_DEPTH || len < 4 || pos > len - 4)
    return -1;
  int64_t vt = (int64_t)pos - (int64_t)(int32_t)myr__le32(buf + pos);
  if (vt < 0 || (uint64_t)vt > len - 4)
    return -1;
  size_t vt_size = myr__le16(buf + vt), size = myr__le16(buf + vt + 2);
  if (vt_size < 4 || (vt_size & 1) || vt_size > len - (size_t)vt || size < 4 ||
      size > len - pos)
    return -1;
  out->buf = buf;
  out->len = len;
  out->pos = pos;
  out->vt = (size_t)vt;
  out->vt_size = vt_size;
  out->size = size;
  out->depth = depth;
  return 1;
}

/* The root table of a flatbuffer of len bytes. */
static inline int myr__fb_root(const uint8_t *buf, size_t len, myr__fb_table *out) {
  if (len < 4)
    return -1;
  return myr__fb_table_init(buf, len, myr__le32(buf), 0, out);
}

/* Position of field slot's bytes (width bytes) in the buffer: 1 present, 0 absent, -1 bad. */
static inline int myr__fb_field(const myr__fb_table *t, int slot, size_t width,
                                size_t *pos_out) {
  size_t at = 4 + 2 * (size_t)slot;
  if (slot < 0 || at + 2 > t->vt_size)
    return 0;
  size_t off = myr__le16(t->buf + t->vt + at);
  if (off == 0)
    return 0;
  if (off < 4 || width > t->size || off > t->size - width)
    return -1;
  *pos_out = t->pos + off;
  return 1;
}

static inline int myr__fb_u8(const myr__fb_table *t, int slot, uint8_t *v) {
  size_t p;
  int rc = myr__fb_field(t, slot, 1, &p);
  if (rc == 1)
    *v = t->buf[p];
  return rc;
}
static inline int myr__fb_i16(const myr__fb_table *t, int slot, int16_t *v) {
  size_t p;
  int rc = myr__fb_field(t, slot, 2, &p);
  if (rc == 1)
    *v = (int16_t)myr__le16(t->buf + p);
  return rc;
}
static inline int myr__fb_i32(const myr__fb_table *t, int slot, int32_t *v) {
  size_t p;
  int rc = myr__fb_field(t, slot, 4, &p);
  if (rc == 1)
    *v = (int32_t)myr__le32(t->buf + p);
  return rc;
}
static inline int myr__fb_i64(const myr__fb_table *t, int slot, int64_t *v) {
  size_t p;
  int rc = myr__fb_field(t, slot, 8, &p);
  if (rc == 1)
    *v = (int64_t)myr__le64(t->buf + p);
  return rc;
}

/* Follow the uoffset of an offset-valued field: the target position, checked to lie in
   the buffer with at least `need` bytes. */
static inline int myr__fb_deref(const myr__fb_table *t, int slot, size_t need,
                                size_t *target_out) {
  size_t p;
  int rc = myr__fb_field(t, slot, 4, &p);
  if (rc != 1)
    return rc;
  uint64_t target = (uint64_t)p + myr__le32(t->buf + p);
  if (target > t->len || need > t->len - target)
    return -1;
  *target_out = (size_t)target;
  return 1;
}

static inline int myr__fb_table_field(const myr__fb_table *t, int slot, myr__fb_table *out) {
  size_t target;
  int rc = myr__fb_deref(t, slot, 4, &target);
  if (rc != 1)
    return rc;
  return myr__fb_table_init(t->buf, t->len, target, t->depth + 1, out);
}

/* A vector of elem_size-byte elements (4 for tables and strings, the struct size for
   struct vectors); the whole vector is checked to lie in the buffer. */
static inline int myr__fb_vector(const myr__fb_table *t, int slot, size_t elem_size,
                                 myr__fb_vec *out) {
  size_t target;
  int rc = myr__fb_deref(t, slot, 4, &target);
  if (rc != 1)
    return rc;
  size_t n = myr__le32(t->buf + target), room = t->len - target - 4;
  if (elem_size && n > room / elem_size)
    return -1;
  out->buf = t->buf;
  out->len = t->len;
  out->pos = target + 4;
  out->n = n;
  out->depth = t->depth;
  return 1;
}

/* String bytes (not NUL-terminated in the result; n excludes the terminator). */
static inline int myr__fb_string(const myr__fb_table *t, int slot, const char **s,
                                 size_t *n) {
  myr__fb_vec v;
  int rc = myr__fb_vector(t, slot, 1, &v);
  if (rc != 1)
    return rc;
  *s = (const char *)v.buf + v.pos;
  *n = v.n;
  return 1;
}

/* Element i of a vector of tables. */
static inline int myr__fb_vec_table(const myr__fb_vec *v, size_t i, myr__fb_table *out) {
  if (i >= v->n)
    return -1;
  size_t p = v->pos + 4 * i;
  uint64_t target = (uint64_t)p + myr__le32(v->buf + p);
  if (target > v->len)
    return -1;
  return myr__fb_table_init(v->buf, v->len, (size_t)target, v->depth + 1, out);
}

/* Pointer to element i of a struct vector of elem_size-byte elements. */
static inline const uint8_t *myr__fb_vec_struct(const myr__fb_vec *v, size_t i,
                                                size_t elem_size) {
  return i < v->n ? v->buf + v->pos + i * elem_size : NULL;
}

#endif /* MYRIAD_IO_FLATBUF_H */
