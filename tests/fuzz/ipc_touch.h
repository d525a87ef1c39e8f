/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shared by fuzz_ipc.c and the IPC reader's unit tests: read every batch of an
 * ArrowArrayStream as a consumer would and touch every value (validity bits, offsets,
 * data bytes, dictionary values), so that ASan sees any out-of-bounds buffer, and check
 * the invariants the reader promises (C Data Interface shapes, null counts, monotonic
 * offsets inside the data, dictionary indices inside the dictionary). Header-only (static
 * functions) so each test links it without a library of its own.
 */
#ifndef MYRIAD_TESTS_IPC_TOUCH_H
#define MYRIAD_TESTS_IPC_TOUCH_H

#include <stdint.h>
#include <string.h>

#include "myriad/arrow_abi.h"

/* Bytes per value of a fixed-width format, 0 for bool ("b"), -1 for null ("n"), -4 / -8
   for 32/64-bit offsets (u z / U Z), -100 for anything else. */
static int ipct_width(const char *f) {
  switch (f[0]) {
  case 'n': return -1;
  case 'b': return 0;
  case 'c': case 'C': return 1;
  case 's': case 'S': case 'e': return 2;
  case 'i': case 'I': case 'f': return 4;
  case 'l': case 'L': case 'g': return 8;
  case 'u': case 'z': return -4;
  case 'U': case 'Z': return -8;
  case 't':
    if (f[1] == 'd')
      return f[2] == 'D' ? 4 : 8;
    if (f[1] == 't')
      return f[2] == 's' || f[2] == 'm' ? 4 : 8;
    if (f[1] == 's' || f[1] == 'D')
      return 8;
    return -100;
  default: return -100;
  }
}

static int ipct_bit(const void *bm, int64_t i) {
  return (((const uint8_t *)bm)[i >> 3] >> (i & 7)) & 1;
}

static int64_t ipct_offset(const void *offs, int wide, int64_t i) {
  if (wide) {
    int64_t v;
    memcpy(&v, (const uint8_t *)offs + 8 * i, 8);
    return v;
  }
  int32_t v;
  memcpy(&v, (const uint8_t *)offs + 4 * i, 4);
  return v;
}

/* Value i of an array of format f: folded into *sum. 0, or -1 on a broken invariant. */
static int ipct_value(const struct ArrowArray *a, const char *f, int64_t i, uint64_t *sum) {
  int w = ipct_width(f);
  int64_t j = a->offset + i;
  if (w == -1)
    return 0;
  if (w == 0) {
    *sum += (uint64_t)ipct_bit(a->buffers[1], j);
    return 0;
  }
  if (w > 0) {
    const uint8_t *p = (const uint8_t *)a->buffers[1] + (size_t)j * (size_t)w;
    for (int k = 0; k < w; k++)
      *sum = *sum * 31 + p[k];
    return 0;
  }
  if (w == -4 || w == -8) {
    int64_t lo = ipct_offset(a->buffers[1], w == -8, j);
    int64_t hi = ipct_offset(a->buffers[1], w == -8, j + 1);
    if (lo < 0 || hi < lo)
      return -1;
    const uint8_t *d = a->buffers[2];
    for (int64_t k = lo; k < hi; k++)
      *sum = *sum * 31 + d[k];
    return 0;
  }
  return -1;
}

/* Check and touch one flat array of format f (dictionary: dict_format for its values). */
static int ipct_array(const struct ArrowArray *a, const char *f, const char *dict_format,
                      uint64_t *sum) {
  if (!a->release || a->length < 0 || a->offset < 0 || a->n_children != 0)
    return -1;
  int w = ipct_width(f);
  if (w == -100)
    return -1;
  int64_t want_buffers = w == -1 ? 0 : w == -4 || w == -8 ? 3 : 2;
  if (a->n_buffers != want_buffers)
    return -1;
  if (w == -1)
    return a->null_count == a->length ? 0 : -1;
  for (int64_t k = 1; k < want_buffers; k++)
    if (!a->buffers[k])
      return -1;
  int64_t nulls = 0;
  if (a->buffers[0]) {
    for (int64_t i = 0; i < a->length; i++)
      nulls += !ipct_bit(a->buffers[0], a->offset + i);
  }
  if (nulls != a->null_count)
    return -1;
  if (w == -4 || w == -8) {
    int64_t prev = ipct_offset(a->buffers[1], w == -8, a->offset);
    if (prev < 0)
      return -1;
    for (int64_t i = 1; i <= a->length; i++) {
      int64_t o = ipct_offset(a->buffers[1], w == -8, a->offset + i);
      if (o < prev)
        return -1;
      prev = o;
    }
    /* reading the last data byte: ASan reports a data buffer shorter than the offsets */
    if (prev > 0)
      *sum += ((const uint8_t *)a->buffers[2])[prev - 1];
  }
  const struct ArrowArray *dict = a->dictionary;
  if ((dict != NULL) != (dict_format != NULL))
    return -1;
  if (dict && ipct_array(dict, dict_format, NULL, sum) != 0)
    return -1;
  for (int64_t i = 0; i < a->length; i++) {
    int valid = !a->buffers[0] || ipct_bit(a->buffers[0], a->offset + i);
    if (ipct_value(a, f, i, sum) != 0)
      return -1;
    if (!dict || !valid)
      continue;
    int64_t ix;
    const uint8_t *p = (const uint8_t *)a->buffers[1] + (size_t)(a->offset + i) * (size_t)w;
    switch (f[0]) {
    case 'c': ix = (int8_t)p[0]; break;
    case 'C': ix = p[0]; break;
    case 's': { int16_t v; memcpy(&v, p, 2); ix = v; break; }
    case 'S': { uint16_t v; memcpy(&v, p, 2); ix = v; break; }
    case 'i': { int32_t v; memcpy(&v, p, 4); ix = v; break; }
    case 'I': { uint32_t v; memcpy(&v, p, 4); ix = v; break; }
    case 'l': { int64_t v; memcpy(&v, p, 8); ix = v; break; }
    case 'L': { uint64_t v; memcpy(&v, p, 8); ix = v > INT64_MAX ? -1 : (int64_t)v; break; }
    default: return -1;
    }
    if (ix < 0 || ix >= dict->length)
      return -1;
    if (ipct_value(dict, dict_format, ix, sum) != 0)
      return -1;
  }
  return 0;
}

/* Check and touch one record batch against its schema. */
static int ipct_batch(const struct ArrowSchema *s, const struct ArrowArray *b, uint64_t *sum) {
  if (!b->release || strcmp(s->format, "+s") != 0 || b->n_children != s->n_children ||
      b->n_buffers != 1 || b->length < 0)
    return -1;
  for (int64_t c = 0; c < b->n_children; c++) {
    const struct ArrowSchema *cs = s->children[c];
    const struct ArrowArray *ca = b->children[c];
    if (ca->length != b->length)
      return -1;
    if (ipct_array(ca, cs->format, cs->dictionary ? cs->dictionary->format : NULL, sum) != 0)
      return -1;
  }
  return 0;
}

/* Read the whole stream (not released here). Returns the number of batches (>= 0) when
   it ends cleanly, -1 when get_schema/get_next report an error, -2 on a broken
   invariant (a reader bug). */
static long ipct_stream(struct ArrowArrayStream *st, uint64_t *sum) {
  struct ArrowSchema s;
  memset(&s, 0, sizeof s);
  if (st->get_schema(st, &s) != 0)
    return st->get_last_error(st) ? -1 : -2;
  long n = 0;
  for (;;) {
    struct ArrowArray b;
    memset(&b, 0, sizeof b);
    int rc = st->get_next(st, &b);
    if (rc != 0) {
      s.release(&s);
      return b.release == NULL && st->get_last_error(st) ? -1 : -2;
    }
    if (!b.release)
      break;
    int bad = ipct_batch(&s, &b, sum);
    b.release(&b);
    if (bad || b.release)
      n = -2;
    if (n < 0)
      break;
    n++;
  }
  s.release(&s);
  return n;
}

#endif /* MYRIAD_TESTS_IPC_TOUCH_H */
