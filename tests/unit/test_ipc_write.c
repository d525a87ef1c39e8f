/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for the Arrow IPC writer (src/io/ipc_write.c). The bytes are checked with a
 * few lines of FlatBuffers reading written here from the specification: file magic,
 * continuation markers, 8-byte framing, message types and body lengths, the end-of-stream
 * marker, the footer's length and record batch blocks, and the body buffers themselves
 * (values, rebased offsets, shifted bitmaps, LZ4/ZSTD prefixes). Error paths: unwritable
 * paths, a full disk, unsupported types, bad batches, failing allocations. When
 * MYR_PYTHON names a Python with pyarrow, pyarrow also reads a file of every supported
 * type, sliced and with nulls, in both formats and all three compressions.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <lz4frame.h>
#include <zstd.h>

#include <unistd.h>

#include "io/arrow.h"
#include "myriad/alloc.h"
#include "myriad/gen.h"
#include "testutil.h"

/* ---- reading what was written ------------------------------------------------------- */

static uint8_t *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *p = malloc((size_t)n + 1);
  assert_non_null(p);
  assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
  fclose(f);
  *len = (size_t)n;
  return p;
}

static uint32_t rd32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int64_t rd64(const uint8_t *p) {
  return (int64_t)((uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32);
}

/* Position of field slot of the table at t, or 0 when absent. */
static size_t fb_field(const uint8_t *b, size_t t, int slot) {
  size_t vt = t - (size_t)(int32_t)rd32(b + t);
  uint16_t vsize = (uint16_t)(b[vt] | b[vt + 1] << 8);
  if (4 + 2 * (size_t)slot >= vsize)
    return 0;
  uint16_t off = (uint16_t)(b[vt + 4 + 2 * slot] | b[vt + 5 + 2 * slot] << 8);
  return off ? t + off : 0;
}

static size_t fb_deref(const uint8_t *b, size_t at) {
  assert_true(at != 0);
  return at + rd32(b + at);
}

typedef struct msg {
  size_t pos;       /* of the continuation marker */
  uint32_t meta;    /* metadata length after the 8-byte prefix */
  int type;         /* MessageHeader type */
  int64_t body_len; /* bodyLength */
  size_t fb;        /* flatbuffer start */
  size_t header;    /* header table position in the flatbuffer */
} msg;

typedef struct walk {
  msg m[64];
  int n;
} walk;

/* Check the framing of a whole stream or file and list its messages. */
static void walk_bytes(const uint8_t *b, size_t len, int file_format, walk *w) {
  size_t pos = 0;
  w->n = 0;
  if (file_format) {
    assert_true(len >= 8 + 8 + 10);
    assert_memory_equal(b, "ARROW1\0\0", 8);
    pos = 8;
  }
  for (;;) {
    assert_true(pos + 8 <= len);
    assert_int_equal(pos % 8, 0);
    assert_int_equal(rd32(b + pos), 0xFFFFFFFFu); /* continuation marker */
    uint32_t meta = rd32(b + pos + 4);
    if (meta == 0)
      break; /* end of stream */
    assert_int_equal((8 + meta) % 8, 0);
    assert_true(w->n < 64);
    msg *m = &w->m[w->n++];
    m->pos = pos;
    m->meta = meta;
    m->fb = pos + 8;
    const uint8_t *fb = b + m->fb;
    size_t root = rd32(fb); /* the root table's uoffset */
    size_t at = fb_field(fb, root, 0);
    assert_true(at != 0);
    assert_int_equal(fb[at] | fb[at + 1] << 8, 4); /* MetadataVersion V5 */
    at = fb_field(fb, root, 1);
    m->type = at ? fb[at] : 0;
    at = fb_field(fb, root, 3);
    m->body_len = at ? rd64(fb + at) : 0;
    m->header = fb_deref(fb, fb_field(fb, root, 2));
    assert_int_equal(m->body_len % 8, 0);
    pos += 8 + meta + (size_t)m->body_len;
  }
  pos += 8;
  if (!file_format) {
    assert_int_equal(pos, len);
    return;
  }
  /* footer: flatbuffer, int32 length, "ARROW1" */
  assert_memory_equal(b + len - 6, "ARROW1", 6);
  uint32_t flen = rd32(b + len - 10);
  assert_int_equal(pos + flen + 10, len);
  const uint8_t *fb = b + pos;
  size_t root = rd32(fb); /* the root table's uoffset */
  size_t at = fb_field(fb, root, 0);
  assert_int_equal(fb[at] | fb[at + 1] << 8, 4);
  assert_true(fb_field(fb, root, 1) != 0); /* schema */
  size_t vec = fb_deref(fb, fb_field(fb, root, 3));
  int batches = 0;
  for (int i = 0; i < w->n; i++) {
    if (w->m[i].type != 3)
      continue;
    assert_true(batches < (int)rd32(fb + vec));
    const uint8_t *e = fb + vec + 4 + 24 * (size_t)batches++;
    assert_int_equal(rd64(e), (int64_t)w->m[i].pos);
    assert_int_equal(rd32(e + 8), 8 + w->m[i].meta);
    assert_int_equal(rd64(e + 16), w->m[i].body_len);
  }
  assert_int_equal(rd32(fb + vec), batches);
}

/* Buffer k of record batch message m: its bytes in the file and length. */
static const uint8_t *batch_buffer(const uint8_t *b, const msg *m, int k, int64_t *n) {
  const uint8_t *fb = b + m->fb;
  size_t vec = fb_deref(fb, fb_field(fb, m->header, 2));
  assert_true((uint32_t)k < rd32(fb + vec));
  const uint8_t *e = fb + vec + 4 + 16 * (size_t)k;
  int64_t off = rd64(e);
  *n = rd64(e + 8);
  assert_int_equal(off % 8, 0);
  assert_true(off + *n <= m->body_len);
  return b + m->pos + 8 + m->meta + off;
}

static int64_t batch_rows(const uint8_t *b, const msg *m) {
  const uint8_t *fb = b + m->fb;
  return rd64(fb + fb_field(fb, m->header, 0));
}

/* FieldNode c of record batch message m. */
static void batch_node(const uint8_t *b, const msg *m, int c, int64_t *len, int64_t *nulls) {
  const uint8_t *fb = b + m->fb;
  size_t vec = fb_deref(fb, fb_field(fb, m->header, 1));
  const uint8_t *e = fb + vec + 4 + 16 * (size_t)c;
  *len = rd64(e);
  *nulls = rd64(e + 8);
}

/* ---- batches ------------------------------------------------------------------------- */

static const char *const NAMES[] = {"key", "x", "flag", "n"};
static const int TYPES[] = {MYR__ARROW_UTF8, MYR__ARROW_F64, MYR__ARROW_BOOL,
                            MYR__ARROW_I64};

/* Rows [r0, r0 + n) of the reference data: x is null on rows divisible by 7. */
static void build(myr__arrow_builder *b, int r0, int n, struct ArrowArray *out) {
  for (int r = r0; r < r0 + n; r++) {
    char key[16];
    int k = snprintf(key, sizeof key, "k%d", r);
    assert_int_equal(myr__arrow_append_bytes(b, 0, key, (size_t)k), MYR_OK);
    if (r % 7 == 0)
      assert_int_equal(myr__arrow_append_null(b, 1), MYR_OK);
    else
      assert_int_equal(myr__arrow_append_f64(b, 1, r * 0.25), MYR_OK);
    assert_int_equal(myr__arrow_append_i64(b, 2, r % 3 == 0), MYR_OK);
    assert_int_equal(myr__arrow_append_i64(b, 3, (int64_t)r * 1000003), MYR_OK);
  }
  myr_error err = {0};
  assert_int_equal(myr__arrow_builder_finish(b, NULL, out, &err), MYR_OK);
}

static myr__arrow_builder *new_builder(struct ArrowSchema *schema) {
  myr__arrow_builder *b = NULL;
  myr_error err = {0};
  assert_int_equal(myr__arrow_builder_new(4, NAMES, TYPES, &b, &err), MYR_OK);
  assert_int_equal(myr__arrow_builder_schema(b, schema, &err), MYR_OK);
  return b;
}

static int bit(const uint8_t *bits, int64_t i) {
  return (bits[i / 8] >> (i % 8)) & 1;
}

/* Check the uncompressed body buffers of message m against rows [r0, r0 + n). */
static void check_body(const uint8_t *b, const msg *m, int r0, int n) {
  int64_t len, nulls, blen;
  assert_int_equal(batch_rows(b, m), n);
  int want_nulls = 0;
  for (int r = r0; r < r0 + n; r++)
    want_nulls += r % 7 == 0;
  for (int c = 0; c < 4; c++) {
    batch_node(b, m, c, &len, &nulls);
    assert_int_equal(len, n);
    assert_int_equal(nulls, c == 1 ? want_nulls : 0);
  }
  /* buffers: key validity, offsets, bytes; x validity, values; flag validity, bits;
     n validity, values */
  batch_buffer(b, m, 0, &blen);
  assert_int_equal(blen, 0);
  const uint8_t *off = batch_buffer(b, m, 1, &blen);
  assert_int_equal(blen, 4 * (n + 1));
  const uint8_t *bytes = batch_buffer(b, m, 2, &blen);
  assert_int_equal(rd32(off), 0);
  for (int i = 0; i < n; i++) {
    char key[16];
    int k = snprintf(key, sizeof key, "k%d", r0 + i);
    assert_int_equal((int)(rd32(off + 4 * (i + 1)) - rd32(off + 4 * i)), k);
    assert_memory_equal(bytes + rd32(off + 4 * i), key, (size_t)k);
  }
  assert_int_equal((int64_t)rd32(off + 4 * n), blen);
  const uint8_t *xv = batch_buffer(b, m, 3, &blen);
  assert_int_equal(blen, want_nulls ? (n + 7) / 8 : 0);
  const uint8_t *x = batch_buffer(b, m, 4, &blen);
  assert_int_equal(blen, 8 * n);
  const uint8_t *flag = batch_buffer(b, m, 6, &blen);
  assert_int_equal(blen, (n + 7) / 8);
  const uint8_t *nn = batch_buffer(b, m, 8, &blen);
  assert_int_equal(blen, 8 * n);
  for (int i = 0; i < n; i++) {
    int r = r0 + i;
    if (want_nulls)
      assert_int_equal(bit(xv, i), r % 7 != 0);
    if (r % 7) {
      double v;
      memcpy(&v, x + 8 * i, 8);
      assert_true(v == r * 0.25);
    }
    assert_int_equal(bit(flag, i), r % 3 == 0);
    assert_int_equal(rd64(nn + 8 * i), (int64_t)r * 1000003);
  }
}

static void write_file(const char *path, int file_format, int compression,
                       struct ArrowArray *batches, int n_batches,
                       const struct ArrowSchema *schema) {
  myr__ipc_writer *w = NULL;
  myr_error err = {0};
  assert_int_equal(myr__ipc_writer_open(path, file_format, compression, schema, &w, &err),
                   MYR_OK);
  for (int i = 0; i < n_batches; i++)
    assert_int_equal(myr__ipc_writer_write(w, &batches[i], &err), MYR_OK);
  assert_int_equal(myr__ipc_writer_finish(w, &err), MYR_OK);
  uint64_t bytes = myr__ipc_writer_bytes(w);
  assert_int_equal(myr__ipc_writer_close(w, &err), MYR_OK);
  size_t len;
  free(slurp(path, &len));
  assert_int_equal(bytes, len);
}

/* ---- tests --------------------------------------------------------------------------- */

static void test_stream_and_file_framing(void **state) {
  (void)state;
  struct ArrowSchema s;
  myr__arrow_builder *b = new_builder(&s);
  struct ArrowArray a[3];
  build(b, 0, 3, &a[0]);
  build(b, 3, 70, &a[1]);
  build(b, 73, 0, &a[2]); /* an empty batch is a valid batch */
  for (int ff = 0; ff < 2; ff++) {
    char path[512];
    tu_path(path, sizeof path, ff ? "frame.arrow" : "frame.arrows");
    write_file(path, ff, MYR__IPC_NONE, a, 3, &s);
    size_t len;
    uint8_t *bytes = slurp(path, &len);
    walk w;
    walk_bytes(bytes, len, ff, &w);
    assert_int_equal(w.n, 4);
    assert_int_equal(w.m[0].type, 1); /* Schema, no body */
    assert_int_equal(w.m[0].body_len, 0);
    for (int i = 1; i < 4; i++)
      assert_int_equal(w.m[i].type, 3); /* RecordBatch */
    check_body(bytes, &w.m[1], 0, 3);
    check_body(bytes, &w.m[2], 3, 70);
    assert_int_equal(batch_rows(bytes, &w.m[3]), 0);
    /* the schema message names the columns */
    assert_non_null(memmem(bytes, len, "flag", 4));
    free(bytes);
  }
  /* a schema with no batch at all */
  char path[512];
  tu_path(path, sizeof path, "empty.arrow");
  write_file(path, 1, MYR__IPC_ZSTD, NULL, 0, &s);
  size_t len;
  uint8_t *bytes = slurp(path, &len);
  walk w;
  walk_bytes(bytes, len, 1, &w);
  assert_int_equal(w.n, 1);
  free(bytes);
  for (int i = 0; i < 3; i++)
    a[i].release(&a[i]);
  s.release(&s);
  myr__arrow_builder_free(b);
}

static void test_slices_are_rebased(void **state) {
  (void)state;
  struct ArrowSchema s;
  myr__arrow_builder *b = new_builder(&s);
  struct ArrowArray a;
  build(b, 0, 40, &a);
  /* rows 5..25 of the batch: the struct starts at 3, every child 2 further on */
  a.offset = 3;
  a.length = 21;
  for (int c = 0; c < 4; c++) {
    a.children[c]->offset = 2;
    a.children[c]->length = 38;
    a.children[c]->null_count = -1; /* unknown: the writer counts */
  }
  char path[512];
  tu_path(path, sizeof path, "slice.arrows");
  write_file(path, 0, MYR__IPC_NONE, &a, 1, &s);
  size_t len;
  uint8_t *bytes = slurp(path, &len);
  walk w;
  walk_bytes(bytes, len, 0, &w);
  assert_int_equal(w.n, 2);
  check_body(bytes, &w.m[1], 5, 21);
  free(bytes);
  /* a slice holding no null writes no bitmap: rows 8..13 */
  a.offset = 3;
  a.length = 6;
  for (int c = 0; c < 4; c++)
    a.children[c]->offset = 5;
  write_file(path, 0, MYR__IPC_NONE, &a, 1, &s);
  bytes = slurp(path, &len);
  walk_bytes(bytes, len, 0, &w);
  check_body(bytes, &w.m[1], 8, 6);
  free(bytes);
  a.release(&a);
  s.release(&s);
  myr__arrow_builder_free(b);
}

static void test_compressed_buffers(void **state) {
  (void)state;
  const char *names[] = {"zeros", "s"};
  int types[] = {MYR__ARROW_F64, MYR__ARROW_UTF8};
  myr__arrow_builder *b = NULL;
  myr_error err = {0};
  assert_int_equal(myr__arrow_builder_new(2, names, types, &b, &err), MYR_OK);
  for (int r = 0; r < 10000; r++) {
    assert_int_equal(myr__arrow_append_f64(b, 0, 0.0), MYR_OK);
    assert_int_equal(myr__arrow_append_bytes(b, 1, r == 0 ? "q" : "", r == 0), MYR_OK);
  }
  struct ArrowSchema s;
  struct ArrowArray a;
  assert_int_equal(myr__arrow_builder_finish(b, &s, &a, &err), MYR_OK);
  for (int codec = MYR__IPC_LZ4; codec <= MYR__IPC_ZSTD; codec++) {
    char path[512];
    tu_path(path, sizeof path, codec == MYR__IPC_LZ4 ? "c.lz4.arrow" : "c.zstd.arrow");
    write_file(path, 1, codec, &a, 1, &s);
    size_t len;
    uint8_t *bytes = slurp(path, &len);
    walk w;
    walk_bytes(bytes, len, 1, &w);
    assert_int_equal(w.n, 2);
    const msg *m = &w.m[1];
    const uint8_t *fb = bytes + m->fb;
    size_t comp = fb_deref(fb, fb_field(fb, m->header, 3)); /* BodyCompression */
    assert_int_equal(fb[fb_field(fb, comp, 0)], codec == MYR__IPC_LZ4 ? 0 : 1);
    int64_t n;
    /* validity buffers: empty, no prefix */
    batch_buffer(bytes, m, 0, &n);
    assert_int_equal(n, 0);
    /* 80000 bytes of zeros: compressed, prefixed with the uncompressed length */
    const uint8_t *z = batch_buffer(bytes, m, 1, &n);
    assert_int_equal(rd64(z), 80000);
    assert_true(n < 1000);
    uint8_t *plain = calloc(1, 80000 + 16);
    uint8_t *zero = calloc(1, 80000);
    size_t got = 80000 + 16;
    if (codec == MYR__IPC_LZ4) {
      LZ4F_dctx *d;
      assert_false(LZ4F_isError(LZ4F_createDecompressionContext(&d, LZ4F_VERSION)));
      size_t src = (size_t)n - 8;
      size_t rc = LZ4F_decompress(d, plain, &got, z + 8, &src, NULL);
      assert_int_equal(rc, 0); /* the frame is complete */
      assert_int_equal(src, (size_t)n - 8);
      LZ4F_freeDecompressionContext(d);
    } else {
      got = ZSTD_decompress(plain, got, z + 8, (size_t)n - 8);
      assert_false(ZSTD_isError(got));
    }
    assert_int_equal(got, 80000);
    assert_memory_equal(plain, zero, 80000);
    free(plain);
    free(zero);
    /* 4 bytes of the offsets of a 1-byte string buffer do not shrink: -1, raw bytes */
    const uint8_t *q = batch_buffer(bytes, m, 4, &n);
    assert_int_equal(n, 8 + 1);
    assert_int_equal(rd64(q), -1);
    assert_int_equal(q[8], 'q');
    free(bytes);
  }
  a.release(&a);
  s.release(&s);
  myr__arrow_builder_free(b);
}

static void noop_release_schema(struct ArrowSchema *s) {
  s->release = NULL;
}

static void test_unsupported_and_bad_input(void **state) {
  (void)state;
  char path[512];
  tu_path(path, sizeof path, "bad.arrow");
  myr__ipc_writer *w = NULL;
  myr_error err = {0};
  struct ArrowSchema list = {"+l", "items", NULL, 2, 0, NULL, NULL, noop_release_schema,
                             NULL};
  struct ArrowSchema dict = {"u", NULL, NULL, 0, 0, NULL, NULL, noop_release_schema, NULL};
  struct ArrowSchema coded = {"i", "codes", NULL, 2, 0, NULL, &dict, noop_release_schema,
                              NULL};
  struct ArrowSchema *kids1[] = {&list}, *kids2[] = {&coded};
  struct ArrowSchema top = {"+s", "", NULL, 0, 1, kids1, NULL, noop_release_schema, NULL};
  assert_int_equal(myr__ipc_writer_open(path, 1, 0, &top, &w, &err), MYR_EUNSUPPORTED);
  assert_null(w);
  assert_non_null(strstr(err.message, "'items'"));
  assert_non_null(strstr(err.message, "+l"));
  top.children = kids2;
  assert_int_equal(myr__ipc_writer_open(path, 1, 0, &top, &w, &err), MYR_EUNSUPPORTED);
  assert_non_null(strstr(err.message, "'codes'"));
  assert_non_null(strstr(err.message, "dictionary"));
  assert_int_equal(myr__ipc_writer_open(path, 1, 0, &list, &w, &err), MYR_EUNSUPPORTED);
  assert_int_equal(myr__ipc_writer_open(path, 1, 7, &top, &w, &err), MYR_EINVAL);

  /* a batch that does not match the schema */
  struct ArrowSchema s;
  myr__arrow_builder *b = new_builder(&s);
  struct ArrowArray a;
  build(b, 0, 10, &a);
  assert_int_equal(myr__ipc_writer_open(path, 1, 0, &s, &w, &err), MYR_OK);
  a.n_children = 3;
  assert_int_equal(myr__ipc_writer_write(w, &a, &err), MYR_EINVAL);
  a.n_children = 4;
  a.length = 11; /* more rows than the columns hold */
  assert_int_equal(myr__ipc_writer_write(w, &a, &err), MYR_EINVAL);
  assert_non_null(strstr(err.message, "'key'"));
  a.length = 10;
  a.children[1]->buffers[0] = NULL; /* nulls counted, no bitmap */
  assert_int_equal(myr__ipc_writer_write(w, &a, &err), MYR_EINVAL);
  assert_non_null(strstr(err.message, "'x'"));
  a.children[1]->null_count = 0;
  assert_int_equal(myr__ipc_writer_write(w, &a, &err), MYR_OK);
  assert_int_equal(myr__ipc_writer_finish(w, &err), MYR_OK);
  assert_int_equal(myr__ipc_writer_write(w, &a, &err), MYR_EINVAL); /* after the end */
  assert_int_equal(myr__ipc_writer_close(w, &err), MYR_OK);
  assert_int_equal(myr__ipc_writer_close(NULL, &err), MYR_OK);
  myr__ipc_writer_abort(NULL);
  a.release(&a);
  s.release(&s);
  myr__arrow_builder_free(b);
}

static void test_write_errors(void **state) {
  (void)state;
  struct ArrowSchema s;
  myr__arrow_builder *b = new_builder(&s);
  myr__ipc_writer *w = NULL;
  myr_error err = {0};
  char path[512];
  tu_path(path, sizeof path, "no-such-dir/out.arrow");
  assert_int_equal(myr__ipc_writer_open(path, 1, 0, &s, &w, &err), MYR_EIO);
  assert_null(w);
  assert_non_null(strstr(err.message, path));
  assert_non_null(strstr(err.message, strerror(ENOENT)));
  /* a full disk: the error comes from write, finish or close, names the path and the
     reason, and the writer refuses to go on */
  FILE *probe = fopen("/dev/full", "wb");
  if (!probe) {
    s.release(&s);
    myr__arrow_builder_free(b);
    skip();
  }
  fclose(probe);
  struct ArrowArray a;
  build(b, 0, 20000, &a);
  assert_int_equal(myr__ipc_writer_open("/dev/full", 0, 0, &s, &w, &err), MYR_OK);
  int rc = myr__ipc_writer_write(w, &a, &err);
  if (rc == MYR_OK)
    rc = myr__ipc_writer_close(w, &err);
  else
    myr__ipc_writer_abort(w);
  assert_int_equal(rc, MYR_EIO);
  assert_non_null(strstr(err.message, "/dev/full"));
  assert_non_null(strstr(err.message, strerror(ENOSPC)));
  a.release(&a);
  s.release(&s);
  myr__arrow_builder_free(b);
}

static int write_once(const char *path, int compression, const struct ArrowSchema *s,
                      const struct ArrowArray *a) {
  myr__ipc_writer *w = NULL;
  myr_error err = {0};
  int rc = myr__ipc_writer_open(path, 1, compression, s, &w, &err);
  for (int i = 0; rc == MYR_OK && i < 3; i++)
    rc = myr__ipc_writer_write(w, a, &err);
  if (rc != MYR_OK) {
    assert_true(err.message[0] != '\0');
    myr__ipc_writer_abort(w);
    return rc;
  }
  rc = myr__ipc_writer_close(w, &err);
  if (rc != MYR_OK)
    assert_true(err.message[0] != '\0');
  return rc;
}

static void test_allocation_failures_are_clean(void **state) {
  (void)state;
  struct ArrowSchema s;
  myr__arrow_builder *b = new_builder(&s);
  struct ArrowArray a;
  build(b, 0, 100, &a);
  a.offset = 1; /* so that offsets are rebased and bitmaps shifted in scratch memory */
  a.length = 99;
  char path[512];
  tu_path(path, sizeof path, "oom.arrow");
  tu_alloc_install();
  long baseline = tu_alloc_live();
  for (int codec = MYR__IPC_NONE; codec <= MYR__IPC_ZSTD; codec++) {
    int succeeded = 0;
    long n;
    for (n = 1; n < 1000 && !succeeded; n++) {
      tu_alloc_fail_at(n, 0);
      int rc = write_once(path, codec, &s, &a);
      int failed = tu_alloc_failed();
      tu_alloc_fail_at(0, 0);
      assert_int_equal(tu_alloc_live(), baseline);
      if (!failed) {
        assert_int_equal(rc, MYR_OK);
        succeeded = 1;
      } else {
        assert_int_equal(rc, MYR_ENOMEM);
      }
    }
    assert_true(succeeded);
    assert_true(n > 5);
  }
  myr_set_allocator(NULL, NULL);
  size_t len;
  uint8_t *bytes = slurp(path, &len);
  walk w;
  walk_bytes(bytes, len, 1, &w);
  assert_int_equal(w.n, 4);
  free(bytes);
  a.release(&a);
  s.release(&s);
  myr__arrow_builder_free(b);
}

/* `myriad gen` to Arrow (builders per slot, the writer) with each allocation failing in
   turn: a clean error, nothing leaked, no output left behind. */
static void test_gen_arrow_allocation_failures(void **state) {
  (void)state;
  char path[512], test[512];
  tu_path(path, sizeof path, "gen-oom.arrow");
  tu_path(test, sizeof test, "gen-oom.test.arrow");
  myr_gen_options o;
  myr_gen_options_init(&o);
  o.out = path;
  o.n_groups = 30;
  o.rows_per_group = 20;
  o.n_features = 3;
  o.holdout = 0.3;
  o.n_threads = 2;
  o.format = MYR_GEN_FORMAT_ARROW_FILE;
  o.compression = MYR_GEN_COMPRESSION_LZ4;
  tu_alloc_install();
  long live = tu_alloc_live();
  int succeeded = 0, failures = 0;
  for (long n = 1; n < 2000 && !succeeded; n++) {
    unlink(path);
    unlink(test);
    tu_alloc_fail_at(n, 0);
    myr_error err = {0};
    myr_gen_summary sum;
    int rc = myr_gen_csv(&o, &sum, &err);
    if (tu_alloc_failed()) {
      assert_int_equal(rc, MYR_ENOMEM);
      assert_true(err.message[0] != '\0');
      failures++;
      assert_int_not_equal(access(path, F_OK), 0);
      assert_int_not_equal(access(test, F_OK), 0);
    } else {
      assert_int_equal(rc, MYR_OK);
      assert_int_equal(sum.rows_train + sum.rows_test, 600);
      succeeded = 1;
    }
    assert_int_equal(tu_alloc_live(), live);
  }
  tu_alloc_fail_at(0, 0);
  myr_set_allocator(NULL, NULL);
  assert_true(succeeded);
  assert_true(failures >= 20);
  size_t len;
  uint8_t *bytes = slurp(path, &len);
  walk w;
  walk_bytes(bytes, len, 1, &w);
  assert_int_equal(w.n, 2); /* schema, one batch of the 70% of rows */
  free(bytes);
  /* the format an extension asks for */
  assert_int_equal(myr_gen_format_of_path("a/b.arrow"), MYR_GEN_FORMAT_ARROW_FILE);
  assert_int_equal(myr_gen_format_of_path("b.feather"), MYR_GEN_FORMAT_ARROW_FILE);
  assert_int_equal(myr_gen_format_of_path("b.ipc"), MYR_GEN_FORMAT_ARROW_FILE);
  assert_int_equal(myr_gen_format_of_path("b.arrows"), MYR_GEN_FORMAT_ARROW_STREAM);
  assert_int_equal(myr_gen_format_of_path("x.arrow/b.csv"), MYR_GEN_FORMAT_CSV);
  assert_int_equal(myr_gen_format_of_path(".arrow"), MYR_GEN_FORMAT_CSV);
  assert_int_equal(myr_gen_format_of_path("-"), MYR_GEN_FORMAT_CSV);
  assert_int_equal(myr_gen_format_of_path(NULL), MYR_GEN_FORMAT_CSV);
}

/* ---- pyarrow reads every type -------------------------------------------------------- */

static void noop_release_array(struct ArrowArray *a) {
  a->release = NULL;
}

#define N_TYPES 21
static const char *const TYPE_FORMATS[N_TYPES] = {
    "c", "C", "s", "S", "i", "I", "l", "L", "e", "f", "g",
    "b", "u", "z", "U", "Z", "tdD", "tdm", "tsu:UTC", "tsn:", "tDm"};

/* Prints each file's schema, then its columns as JSON lists: temporal values as their
   stored integers, binary values in hex, so the dump does not depend on Python's time
   zone or pandas. */
static const char PY_DUMP[] =
    "import json, sys, pyarrow as pa, pyarrow.ipc as ipc\n"
    "def plain(a):\n"
    "    if pa.types.is_temporal(a.type):\n"
    "        a = a.view(pa.int32() if a.type.bit_width == 32 else pa.int64())\n"
    "    if pa.types.is_binary(a.type) or pa.types.is_large_binary(a.type):\n"
    "        return [None if v is None else v.hex() for v in a.to_pylist()]\n"
    "    return a.to_pylist()\n"
    "for path in sys.argv[1:]:\n"
    "    with open(path, 'rb') as f:\n"
    "        r = ipc.open_file(f) if path.endswith('.arrow') else ipc.open_stream(f)\n"
    "        t = r.read_all()\n"
    "    t.validate(full=True)\n"
    "    print(str(t.schema).replace('\\n', '; '))\n"
    "    print(json.dumps([plain(c.combine_chunks()) for c in t.columns]))\n";

static void test_pyarrow_reads_every_type(void **state) {
  (void)state;
  const char *py = getenv("MYR_PYTHON");
  if (!py || !*py)
    skip();
  /* 6 physical values per column, value 2 null. The batch is the struct's rows 1..4
     (offset 1); columns 12 and up have an offset of their own (1), so their rows are
     physical values 2..5 while the others' are 1..4. */
  static const uint8_t validity[] = {0x3B}; /* 1,1,0,1,1,1 */
  static const int8_t i8[] = {1, -2, 3, -4, 5, -128};
  static const int16_t i16[] = {1, -2, 3, -4, 5, -32768};
  static const int32_t i32[] = {1, -2, 3, -4, 5, INT32_MIN};
  static const int64_t i64[] = {1, -2, 3, -4, 5, INT64_MIN};
  static const uint16_t f16[] = {0x3C00, 0xC000, 0, 0x3800, 0x7BFF, 0}; /* 1,-2,.,.5,65504 */
  static const float f32[] = {1.5f, -2.25f, 0, 3e38f, -0.0f, 1};
  static const double f64[] = {0.1, -1e300, 0, 2.5, 5e-324, 1};
  static const uint8_t bools[] = {0x29}; /* 1,0,0,1,0,1 */
  static const int32_t off32[] = {0, 1, 3, 3, 6, 6, 10};
  static const int64_t off64[] = {0, 1, 3, 3, 6, 6, 10};
  static const char chars[] = "a\xc3\xa9xyz0123"; /* a, \u00e9, "", xyz, "", 0123 */
  static const int32_t days[] = {0, 1, 2, -1, 19000, 3};
  static const int64_t ms[] = {0, 86400000, 0, -86400000, 172800000, 0};
  static const int64_t ts[] = {0, 1, 2, 1700000000000000LL, -1, 5};
  static const void *const data[N_TYPES] = {i8, i8, i16, i16, i32, i32, i64, i64, f16,
                                            f32, f64, bools, off32, off32, off64, off64,
                                            days, ms, ts, ts, ms};
  struct ArrowArray kids[N_TYPES];
  struct ArrowArray *kid_ptrs[N_TYPES];
  const void *bufs[N_TYPES][3];
  struct ArrowSchema fields[N_TYPES];
  struct ArrowSchema *field_ptrs[N_TYPES];
  char names[N_TYPES][16];
  for (int c = 0; c < N_TYPES; c++) {
    int var = c >= 12 && c <= 15;
    int shifted = c >= 12;
    bufs[c][0] = validity;
    bufs[c][1] = data[c];
    bufs[c][2] = chars;
    kids[c] = (struct ArrowArray){shifted ? 5 : 6, -1, shifted ? 1 : 0, var ? 3 : 2, 0,
                                  bufs[c], NULL, NULL, noop_release_array, NULL};
    kid_ptrs[c] = &kids[c];
    snprintf(names[c], sizeof names[c], "c%d", c);
    fields[c] = (struct ArrowSchema){TYPE_FORMATS[c], names[c], NULL, ARROW_FLAG_NULLABLE,
                                     0, NULL, NULL, noop_release_schema, NULL};
    field_ptrs[c] = &fields[c];
  }
  const void *top_bufs[1] = {NULL};
  struct ArrowArray top = {4, 0, 1, 1, N_TYPES, top_bufs, kid_ptrs, NULL,
                           noop_release_array, NULL};
  struct ArrowSchema schema = {"+s", "", NULL, 0, N_TYPES, field_ptrs, NULL,
                               noop_release_schema, NULL};
  char paths[6][512], cmd[4096];
  int len = snprintf(cmd, sizeof cmd, "'%s' -c \"$MYR_PY_DUMP\"", py);
  for (int k = 0; k < 6; k++) {
    char name[32];
    snprintf(name, sizeof name, "types%d.%s", k, k % 2 ? "arrow" : "arrows");
    tu_path(paths[k], sizeof paths[k], name);
    write_file(paths[k], k % 2, k / 2, &top, 1, &schema);
    len += snprintf(cmd + len, sizeof cmd - (size_t)len, " '%s'", paths[k]);
  }
  setenv("MYR_PY_DUMP", PY_DUMP, 1);
  FILE *p = popen(cmd, "r");
  assert_non_null(p);
  static char out[65536];
  size_t n = fread(out, 1, sizeof out - 1, p);
  out[n] = '\0';
  assert_int_equal(pclose(p), 0);
  static const char want_schema[] =
      "c0: int8; c1: uint8; c2: int16; c3: uint16; c4: int32; c5: uint32; c6: int64; "
      "c7: uint64; c8: halffloat; c9: float; c10: double; c11: bool; c12: string; "
      "c13: binary; c14: large_string; c15: large_binary; c16: date32[day]; "
      "c17: date64[ms]; c18: timestamp[us, tz=UTC]; c19: timestamp[ns]; "
      "c20: duration[ms]\n";
  static const char want_rows[] =
      "[[-2, null, -4, 5], [254, null, 252, 5], [-2, null, -4, 5], [65534, null, 65532, 5], "
      "[-2, null, -4, 5], [4294967294, null, 4294967292, 5], [-2, null, -4, 5], "
      "[18446744073709551614, null, 18446744073709551612, 5], [-2.0, null, 0.5, 65504.0], "
      "[-2.25, null, 3.0000000054977558e+38, -0.0], [-1e+300, null, 2.5, 5e-324], "
      "[false, null, true, false], [null, \"xyz\", \"\", \"0123\"], "
      "[null, \"78797a\", \"\", \"30313233\"], [null, \"xyz\", \"\", \"0123\"], "
      "[null, \"78797a\", \"\", \"30313233\"], [null, -1, 19000, 3], "
      "[null, -86400000, 172800000, 0], [null, 1700000000000000, -1, 5], "
      "[null, 1700000000000000, -1, 5], [null, -86400000, 172800000, 0]]\n";
  char want[8192];
  int wl = 0;
  for (int k = 0; k < 6; k++)
    wl += snprintf(want + wl, sizeof want - (size_t)wl, "%s%s", want_schema, want_rows);
  assert_string_equal(out, want);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_stream_and_file_framing),
      cmocka_unit_test(test_slices_are_rebased),
      cmocka_unit_test(test_compressed_buffers),
      cmocka_unit_test(test_unsupported_and_bad_input),
      cmocka_unit_test(test_write_errors),
      cmocka_unit_test(test_allocation_failures_are_clean),
      cmocka_unit_test(test_gen_arrow_allocation_failures),
      cmocka_unit_test(test_pyarrow_reads_every_type),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
