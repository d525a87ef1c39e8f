/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Arrow IPC reader (stream and file formats), written from the Arrow specification
 * (Columnar format, IPC, C Data Interface). It hands out an ArrowArrayStream whose
 * get_next gives one struct array per record batch.
 *
 * DESIGN
 * - The input bytes (a read-only mmap of the file, a read() copy, or the caller's memory)
 *   live in a reference-counted ipc_mem. Every batch gets its own ipc_mem for what had
 *   to be allocated (decompressed or realigned buffers) holding a reference to the
 *   input; every ArrowArray handed out (batch, column, dictionary) holds one reference to
 *   the ipc_mem its buffers live in, so arrays and the stream are released in any order.
 * - Uncompressed buffers point straight into the input when aligned for their type;
 *   otherwise they are copied. Nothing is written to the input.
 * - Metadata is read through flatbuf.h, which checks every position; the reader then
 *   checks node and buffer counts against the schema, buffer ranges against the body,
 *   body ranges against the input, bitmap sizes, null counts (by counting), utf8/binary
 *   offsets (monotonic, inside the data) and dictionary indices (below the dictionary
 *   length) before a batch is handed out: a consumer may read any value it is given.
 * - Only flat types are read; a schema with any other type fails at open, naming the
 *   column and the type. Dictionaries are kept per id, replaced (stream) or extended
 *   (deltas) as dictionary batches arrive, and shared by the batches handed out.
 * - Decompression is bounded: the buffers of one message may not claim more than
 *   16 x the input size + 64 MiB uncompressed, nor the dictionaries held together.
 *
 * Threads: a stream is used by one thread at a time; the arrays it hands out may be
 * read and released from any thread (reference counts are atomic).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lz4frame.h>
#include <zstd.h>

#include "core/alloc.h"
#include "io/arrow.h"
#include "io/flatbuf.h"
#include "io/ipc_format.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the IPC reader hands out little-endian buffers as they are; port it first"
#endif

#define MAX_ROWS ((int64_t)1 << 48)    /* longest array accepted (keeps sizes from overflow) */
#define SNIFF_BYTES ((size_t)64 << 10) /* bytes myr__format_of_path looks at */
#define INFLATE_BASE ((uint64_t)64 << 20) /* decompression budget: 16 x input + this */

/* Zero bytes for empty buffers, which the C Data Interface wants non-NULL. */
static const int64_t k_zeros[2];

/* ------------------------------------------------------------------ reference-counted memory */

typedef struct ipc_mem {
  atomic_long refs;       /* owners: the reader, arrays, child ipc_mems */
  struct ipc_mem *parent; /* a reference to the input this memory derives from, or NULL */
  void *map;              /* mmap of the file (munmap at the end), or NULL */
  size_t map_len;         /* its length */
  void *owned;            /* read() copy of the file (myr__free at the end), or NULL */
  void **blocks;          /* allocations made for buffers */
  size_t n_blocks;        /* used entries of blocks */
  size_t cap_blocks;      /* allocated entries of blocks */
  const uint8_t *body;    /* a batch's body in the parent's mmap, or NULL: its pages */
  size_t body_len;        /*   leave the process's memory when the batch is freed */
} ipc_mem;

static ipc_mem *mem_new(ipc_mem *parent) {
  ipc_mem *m = myr__calloc(1, sizeof *m);
  if (!m)
    return NULL;
  atomic_init(&m->refs, 1);
  m->parent = parent;
  if (parent)
    atomic_fetch_add_explicit(&parent->refs, 1, memory_order_relaxed);
  return m;
}

static void mem_ref(ipc_mem *m) {
  if (m)
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
}

/* A read-only file mapping's pages [p, p + n) (those wholly inside) no longer count
   as the process's memory: MADV_DONTNEED on a private mapping that was never written
   only drops them, and a later read faults them in again from the file. Batches read
   once and released (a run over its memory limit) so keep the mapped file from
   growing the resident set to the file's size. */
static void drop_pages(const uint8_t *p, size_t n) {
  static size_t page;
  if (!page) {
    long ps = sysconf(_SC_PAGESIZE);
    page = ps > 0 ? (size_t)ps : 4096;
  }
  uintptr_t lo = ((uintptr_t)p + page - 1) & ~(uintptr_t)(page - 1);
  uintptr_t hi = ((uintptr_t)p + n) & ~(uintptr_t)(page - 1);
  if (hi > lo)
    (void)madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

static void mem_unref(ipc_mem *m) {
  while (m && atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1) {
    ipc_mem *parent = m->parent;
    if (m->body)
      drop_pages(m->body, m->body_len);
    for (size_t i = 0; i < m->n_blocks; i++)
      myr__free(m->blocks[i]);
    myr__free(m->blocks);
    if (m->map)
      munmap(m->map, m->map_len);
    myr__free(m->owned);
    myr__free(m);
    m = parent;
  }
}

/* n > 0 bytes owned by m (aligned as malloc aligns), or NULL when out of memory. */
static void *mem_alloc(ipc_mem *m, size_t n) {
  if (m->n_blocks == m->cap_blocks) {
    size_t cap = m->cap_blocks ? 2 * m->cap_blocks : 8;
    void **b = myr__reallocarray(m->blocks, cap, sizeof *b);
    if (!b)
      return NULL;
    m->blocks = b;
    m->cap_blocks = cap;
  }
  void *p = myr__malloc(n);
  if (p)
    m->blocks[m->n_blocks++] = p;
  return p;
}

/* ------------------------------------------------------------------ reader state */

enum { K_NULL, K_BOOL, K_FIXED, K_VAR32, K_VAR64 }; /* physical layouts read */

typedef struct ipc_type {
  int kind;     /* K_* */
  int width;    /* bytes per value (K_FIXED) */
  char *format; /* C Data Interface format string, owned */
} ipc_type;

typedef struct ipc_field {
  char *name;      /* owned, NUL-terminated ("" when the schema has none) */
  ipc_type type;   /* the values' type (the dictionary's when dictionary-encoded) */
  int nullable;    /* Field.nullable */
  long dict;       /* index into the reader's dicts, -1 when not dictionary-encoded */
  int64_t dict_id; /* DictionaryEncoding.id, when dict >= 0 (set by link_dictionaries) */
  int has_dict;    /* the field is dictionary-encoded */
  int index_width; /* bytes per dictionary index */
  int ordered;     /* DictionaryEncoding.isOrdered */
  char index_format[2]; /* C Data Interface format of the index type */
} ipc_field;

/* A decoded flat array. */
typedef struct ipc_col {
  int64_t length;
  int64_t null_count;
  const void *buf[3]; /* validity (NULL when no nulls), then data or offsets + data */
  size_t data_len;    /* bytes of the last buffer (var-size types) */
} ipc_col;

typedef struct ipc_dict {
  int64_t id;               /* DictionaryEncoding.id */
  const ipc_field *field;   /* first field using it: value type and a name for messages */
  int defined;              /* a dictionary batch has been read */
  ipc_mem *mem;             /* a reference to the memory of col's buffers, or NULL */
  ipc_col col;              /* the dictionary values */
  uint64_t bytes;           /* their size, counted in the reader's dict_bytes */
} ipc_dict;

typedef struct ipc_reader {
  ipc_mem *src;          /* a reference to the input */
  const uint8_t *data;   /* the input bytes */
  size_t len;            /* their number */
  char *name;            /* for messages */
  int is_file;           /* IPC file format (footer blocks) rather than stream */
  size_t pos;            /* stream: offset of the next message */
  uint64_t done;         /* bytes consumed (progress) */
  long n_msg;            /* messages read so far (numbering in messages) */
  ipc_field *fields;     /* the schema */
  size_t n_fields;
  ipc_dict *dicts;       /* one per dictionary id of the schema, sorted by id */
  size_t n_dicts;
  myr__fb_vec batches;   /* file: Footer.recordBatches (Blocks) */
  size_t next_batch;     /* file: next block to read */
  int state;             /* 0 reading, 1 at the end, 2 failed */
  int fail_errno;        /* get_next's answer once failed */
  uint64_t max_inflate;  /* bytes a message may decompress to */
  uint64_t dict_bytes;   /* bytes held by dictionaries, bounded by max_inflate */
  LZ4F_dctx *lz4;        /* created on first use */
  ZSTD_DCtx *zstd;       /* created on first use */
  size_t md_left;        /* custom_metadata entries the schema may still hold */
  char last_error[MYR_ERROR_MESSAGE_MAX]; /* get_last_error */
} ipc_reader;

/* One framed message. */
typedef struct ipc_msg {
  size_t start;           /* offset of its prefix in the input */
  long no;                /* 1-based message number, for messages */
  uint8_t header_type;    /* MessageHeader union type */
  myr__fb_table header;   /* the header table */
  const uint8_t *body;    /* body bytes */
  size_t body_len;
  size_t body_start;      /* offset of the body in the input */
  size_t end;             /* offset after the body */
} ipc_msg;

static const char *header_name(int t) {
  switch (t) {
  case MYR__IPC_HEADER_SCHEMA: return "schema";
  case MYR__IPC_HEADER_DICTIONARY_BATCH: return "dictionary batch";
  case MYR__IPC_HEADER_RECORD_BATCH: return "record batch";
  case MYR__IPC_HEADER_TENSOR: return "tensor";
  case MYR__IPC_HEADER_SPARSE_TENSOR: return "sparse tensor";
  default: return "unknown";
  }
}

/* ------------------------------------------------------------------ framing */

/* Read the message framed at pos (stream framing, with or without the continuation
   marker). body_at: where the body starts (file blocks say so), 0 = right after the
   metadata. Returns 1 with *m set, 0 at an end-of-stream marker or the end of the input
   (stream only), or an error. */
static int read_message(ipc_reader *r, size_t pos, size_t body_at, ipc_msg *m,
                        myr_error *err) {
  const uint8_t *d = r->data;
  size_t len = r->len;
  long no = r->n_msg + 1;
  if (pos == len && !body_at)
    return 0;
  if (pos > len || len - pos < 4)
    return myr_error_set(err, MYR_EPARSE,
                         "%s: message %ld at byte %zu: truncated (%zu bytes left, need a "
                         "4-byte length)", r->name, no, pos, pos > len ? 0 : len - pos);
  size_t prefix = 4;
  uint32_t w = myr__le32(d + pos);
  if (w == MYR__IPC_CONTINUATION) {
    if (len - pos < 8)
      return myr_error_set(err, MYR_EPARSE,
                           "%s: message %ld at byte %zu: truncated after the continuation "
                           "marker", r->name, no, pos);
    w = myr__le32(d + pos + 4);
    prefix = 8;
  }
  int32_t meta_len = (int32_t)w;
  if (meta_len == 0) {
    if (body_at)
      return myr_error_set(err, MYR_EPARSE,
                           "%s: message %ld at byte %zu: end-of-stream marker where a "
                           "file block points", r->name, no, pos);
    return 0;
  }
  if (meta_len < 0 || (size_t)meta_len > len - pos - prefix)
    return myr_error_set(err, MYR_EPARSE,
                         "%s: message %ld at byte %zu: metadata length %" PRId32
                         " exceeds the %zu bytes left", r->name, no, pos, meta_len,
                         len - pos - prefix);
  const uint8_t *meta = d + pos + prefix;
  size_t meta_end = pos + prefix + (size_t)meta_len;
  myr__fb_table msg = {0};
  if (myr__fb_root(meta, (size_t)meta_len, &msg) != 1)
    return myr_error_set(err, MYR_EPARSE,
                         "%s: message %ld at byte %zu: malformed Message flatbuffer",
                         r->name, no, pos);
  int16_t version = MYR__IPC_V1;
  uint8_t htype = MYR__IPC_HEADER_NONE;
  int64_t body_len = 0;
  if (myr__fb_i16(&msg, MYR__IPC_MESSAGE_VERSION, &version) < 0 ||
      myr__fb_u8(&msg, MYR__IPC_MESSAGE_HEADER_TYPE, &htype) < 0 ||
      myr__fb_i64(&msg, MYR__IPC_MESSAGE_BODY_LENGTH, &body_len) < 0)
    return myr_error_set(err, MYR_EPARSE,
                         "%s: message %ld at byte %zu: malformed Message table", r->name,
                         no, pos);
  if (version < MYR__IPC_V4 || version > MYR__IPC_V5)
    return myr_error_set(err, MYR_EUNSUPPORTED,
                         "%s: message %ld at byte %zu: metadata version V%d is not "
                         "supported (V4 and V5 are: Arrow 0.8 and later)", r->name, no, pos,
                         version + 1);
  if (myr__fb_table_field(&msg, MYR__IPC_MESSAGE_HEADER, &m->header) != 1)
    return myr_error_set(err, MYR_EPARSE,
                         "%s: message %ld at byte %zu: missing or malformed header (type %d)",
                         r->name, no, pos, htype);
  size_t bstart = meta_end;
  if (body_at) {
    if (body_at < meta_end || body_at > len)
      return myr_error_set(err, MYR_EPARSE,
                           "%s: message %ld at byte %zu: the block's metadata length does not "
                           "cover the message's %zu bytes of metadata", r->name, no, pos,
                           meta_end - pos);
    bstart = body_at;
  }
  if (body_len < 0 || (uint64_t)body_len > len - bstart)
    return myr_error_set(err, MYR_EPARSE,
                         "%s: message %ld (%s) at byte %zu: body length %" PRId64
                         " exceeds the %zu bytes left", r->name, no, header_name(htype), pos,
                         body_len, len - bstart);
  m->start = pos;
  m->no = no;
  m->header_type = htype;
  m->body = d + bstart;
  m->body_len = (size_t)body_len;
  m->body_start = bstart;
  m->end = bstart + (size_t)body_len;
  return 1;
}

/* ------------------------------------------------------------------ schema */

static int field_fail(ipc_reader *r, int code, size_t i, const char *name, myr_error *err,
                      const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static int field_fail(ipc_reader *r, int code, size_t i, const char *name, myr_error *err,
                      const char *fmt, ...) {
  char what[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  return myr_error_set(err, code, "%s: schema: column %zu '%s': %s", r->name, i + 1,
                       name ? name : "", what);
}

static const char *unsupported_name(int t) {
  switch (t) {
  case MYR__IPC_TYPE_DECIMAL: return "decimal";
  case MYR__IPC_TYPE_INTERVAL: return "interval";
  case MYR__IPC_TYPE_LIST: return "list";
  case MYR__IPC_TYPE_STRUCT: return "struct";
  case MYR__IPC_TYPE_UNION: return "union";
  case MYR__IPC_TYPE_FIXED_SIZE_BINARY: return "fixed_size_binary";
  case MYR__IPC_TYPE_FIXED_SIZE_LIST: return "fixed_size_list";
  case MYR__IPC_TYPE_MAP: return "map";
  case MYR__IPC_TYPE_LARGE_LIST: return "large_list";
  case MYR__IPC_TYPE_RUN_END_ENCODED: return "run_end_encoded";
  case MYR__IPC_TYPE_BINARY_VIEW: return "binary_view";
  case MYR__IPC_TYPE_UTF8_VIEW: return "utf8_view";
  case MYR__IPC_TYPE_LIST_VIEW: return "list_view";
  case MYR__IPC_TYPE_LARGE_LIST_VIEW: return "large_list_view";
  default: return NULL;
  }
}

static const char *const k_unit_letter = "smun"; /* TimeUnit SECOND .. NANOSECOND */

/* The value type of field i (table f) into *t. */
static int parse_type(ipc_reader *r, size_t i, const char *name, const myr__fb_table *f,
                      ipc_type *t, myr_error *err) {
  uint8_t tt = MYR__IPC_TYPE_NONE;
  myr__fb_table ty = {0};
  if (myr__fb_u8(f, MYR__IPC_FIELD_TYPE_TYPE, &tt) < 0)
    return field_fail(r, MYR_EPARSE, i, name, err, "malformed Field table");
  int have = myr__fb_table_field(f, MYR__IPC_FIELD_TYPE, &ty);
  if (have < 0)
    return field_fail(r, MYR_EPARSE, i, name, err, "malformed type table");
  const char *un = unsupported_name(tt);
  if (un)
    return field_fail(r, MYR_EUNSUPPORTED, i, name, err,
                      "unsupported type %s (myriad reads null, bool, integers, floats, "
                      "utf8, binary, date, time, timestamp, duration and dictionaries of "
                      "these)", un);
  char fmt[16] = "";
  int kind = K_FIXED, width = 0, rc = 0;
  int16_t unit = 0;
  int32_t bits = 0;
  uint8_t flag = 0;
  const char *tz = NULL;
  size_t tz_len = 0;
  switch (tt) {
  case MYR__IPC_TYPE_NULL: kind = K_NULL; snprintf(fmt, sizeof fmt, "n"); break;
  case MYR__IPC_TYPE_BOOL: kind = K_BOOL; snprintf(fmt, sizeof fmt, "b"); break;
  case MYR__IPC_TYPE_BINARY: kind = K_VAR32; snprintf(fmt, sizeof fmt, "z"); break;
  case MYR__IPC_TYPE_UTF8: kind = K_VAR32; snprintf(fmt, sizeof fmt, "u"); break;
  case MYR__IPC_TYPE_LARGE_BINARY: kind = K_VAR64; snprintf(fmt, sizeof fmt, "Z"); break;
  case MYR__IPC_TYPE_LARGE_UTF8: kind = K_VAR64; snprintf(fmt, sizeof fmt, "U"); break;
  case MYR__IPC_TYPE_INT:
    if (have == 1 && (myr__fb_i32(&ty, MYR__IPC_INT_BIT_WIDTH, &bits) < 0 ||
                      myr__fb_u8(&ty, MYR__IPC_INT_IS_SIGNED, &flag) < 0))
      rc = -1;
    if (bits != 8 && bits != 16 && bits != 32 && bits != 64)
      return field_fail(r, MYR_EPARSE, i, name, err, "Int with bit width %" PRId32,
                        bits);
    width = bits / 8;
    fmt[0] = "cCsSiIlL"[2 * (bits == 16) + 4 * (bits == 32) + 6 * (bits == 64) + !flag];
    break;
  case MYR__IPC_TYPE_FLOATING_POINT:
    if (have == 1 && myr__fb_i16(&ty, MYR__IPC_FLOATING_POINT_PRECISION, &unit) < 0)
      rc = -1;
    if (unit < MYR__IPC_HALF || unit > MYR__IPC_DOUBLE)
      return field_fail(r, MYR_EPARSE, i, name, err, "FloatingPoint with precision %d",
                        unit);
    width = 2 << unit;
    fmt[0] = "efg"[unit];
    break;
  case MYR__IPC_TYPE_DATE:
    unit = MYR__IPC_DATE_MILLISECOND;
    if (have == 1 && myr__fb_i16(&ty, MYR__IPC_DATE_UNIT, &unit) < 0)
      rc = -1;
    if (unit != MYR__IPC_DATE_DAY && unit != MYR__IPC_DATE_MILLISECOND)
      return field_fail(r, MYR_EPARSE, i, name, err, "Date with unit %d", unit);
    width = unit == MYR__IPC_DATE_DAY ? 4 : 8;
    snprintf(fmt, sizeof fmt, "td%c", unit == MYR__IPC_DATE_DAY ? 'D' : 'm');
    break;
  case MYR__IPC_TYPE_TIME:
    unit = MYR__IPC_MILLISECOND;
    bits = 32;
    if (have == 1 && (myr__fb_i16(&ty, MYR__IPC_TIME_UNIT, &unit) < 0 ||
                      myr__fb_i32(&ty, MYR__IPC_TIME_BIT_WIDTH, &bits) < 0))
      rc = -1;
    if (unit < MYR__IPC_SECOND || unit > MYR__IPC_NANOSECOND ||
        bits != (unit <= MYR__IPC_MILLISECOND ? 32 : 64))
      return field_fail(r, MYR_EPARSE, i, name, err, "Time with unit %d and bit width %"
                        PRId32, unit, bits);
    width = bits / 8;
    snprintf(fmt, sizeof fmt, "tt%c", k_unit_letter[unit]);
    break;
  case MYR__IPC_TYPE_DURATION:
    unit = MYR__IPC_MILLISECOND;
    if (have == 1 && myr__fb_i16(&ty, MYR__IPC_DURATION_UNIT, &unit) < 0)
      rc = -1;
    if (unit < MYR__IPC_SECOND || unit > MYR__IPC_NANOSECOND)
      return field_fail(r, MYR_EPARSE, i, name, err, "Duration with unit %d", unit);
    width = 8;
    snprintf(fmt, sizeof fmt, "tD%c", k_unit_letter[unit]);
    break;
  case MYR__IPC_TYPE_TIMESTAMP:
    unit = MYR__IPC_SECOND;
    if (have == 1 && (myr__fb_i16(&ty, MYR__IPC_TIMESTAMP_UNIT, &unit) < 0 ||
                      myr__fb_string(&ty, MYR__IPC_TIMESTAMP_TIMEZONE, &tz, &tz_len) < 0))
      rc = -1;
    if (unit < MYR__IPC_SECOND || unit > MYR__IPC_NANOSECOND)
      return field_fail(r, MYR_EPARSE, i, name, err, "Timestamp with unit %d", unit);
    if (tz && memchr(tz, '\0', tz_len))
      return field_fail(r, MYR_EPARSE, i, name, err, "time zone holds a NUL byte");
    width = 8;
    snprintf(fmt, sizeof fmt, "ts%c:", k_unit_letter[unit]);
    break;
  default:
    return field_fail(r, MYR_EUNSUPPORTED, i, name, err, "unsupported type (Type union id %d)",
                      tt);
  }
  if (rc < 0)
    return field_fail(r, MYR_EPARSE, i, name, err, "malformed type table");
  size_t n = strlen(fmt);
  t->format = myr__malloc(n + tz_len + 1);
  if (!t->format)
    return myr_error_set(err, MYR_ENOMEM, "%s: out of memory reading the schema", r->name);
  memcpy(t->format, fmt, n);
  if (tz_len)
    memcpy(t->format + n, tz, tz_len);
  t->format[n + tz_len] = '\0';
  t->kind = kind;
  t->width = width;
  return MYR_OK;
}

/* Refuse extension types: their meaning is not the storage type's. */
static int check_extension(ipc_reader *r, size_t i, const char *name, const myr__fb_table *f,
                           myr_error *err) {
  static const char key[] = "ARROW:extension:name";
  myr__fb_vec md = {0};
  int rc = myr__fb_vector(f, MYR__IPC_FIELD_CUSTOM_METADATA, 4, &md);
  if (rc < 0)
    return field_fail(r, MYR_EPARSE, i, name, err, "malformed custom_metadata");
  /* Fields may share one vector: bound the total work by the metadata's size. */
  if (rc == 1 && md.n > r->md_left)
    return field_fail(r, MYR_EPARSE, i, name, err, "more custom_metadata entries than the "
                      "schema's bytes can hold");
  if (rc == 1)
    r->md_left -= md.n;
  for (size_t k = 0; rc == 1 && k < md.n; k++) {
    myr__fb_table kv = {0};
    const char *s = NULL, *v = NULL;
    size_t n = 0, vn = 0;
    if (myr__fb_vec_table(&md, k, &kv) != 1 ||
        myr__fb_string(&kv, MYR__IPC_KEY_VALUE_KEY, &s, &n) < 0 ||
        myr__fb_string(&kv, MYR__IPC_KEY_VALUE_VALUE, &v, &vn) < 0)
      return field_fail(r, MYR_EPARSE, i, name, err, "malformed custom_metadata entry");
    if (s && n == sizeof key - 1 && memcmp(s, key, n) == 0)
      return field_fail(r, MYR_EUNSUPPORTED, i, name, err,
                        "unsupported type extension<%.*s>", (int)(vn > 200 ? 200 : vn),
                        v ? v : "");
  }
  return MYR_OK;
}

static int parse_dictionary(ipc_reader *r, size_t i, ipc_field *fd, const myr__fb_table *de,
                            myr_error *err) {
  int64_t id = 0;
  uint8_t ordered = 0;
  int16_t kind = MYR__IPC_DENSE_ARRAY;
  int32_t bits = 32;
  uint8_t is_signed = 1;
  myr__fb_table it = {0};
  int have = myr__fb_table_field(de, MYR__IPC_DICTIONARY_INDEX_TYPE, &it);
  if (have == 1) { /* an explicit Int table: its own defaults (0 bits, unsigned) apply */
    bits = 0;
    is_signed = 0;
  }
  if (myr__fb_i64(de, MYR__IPC_DICTIONARY_ID, &id) < 0 ||
      myr__fb_u8(de, MYR__IPC_DICTIONARY_IS_ORDERED, &ordered) < 0 ||
      myr__fb_i16(de, MYR__IPC_DICTIONARY_KIND, &kind) < 0 || have < 0 ||
      (have == 1 && (myr__fb_i32(&it, MYR__IPC_INT_BIT_WIDTH, &bits) < 0 ||
                     myr__fb_u8(&it, MYR__IPC_INT_IS_SIGNED, &is_signed) < 0)))
    return field_fail(r, MYR_EPARSE, i, fd->name, err, "malformed DictionaryEncoding");
  if (kind != MYR__IPC_DENSE_ARRAY)
    return field_fail(r, MYR_EUNSUPPORTED, i, fd->name, err, "dictionary kind %d", kind);
  if (bits != 8 && bits != 16 && bits != 32 && bits != 64)
    return field_fail(r, MYR_EPARSE, i, fd->name, err,
                      "dictionary index type with bit width %" PRId32, bits);
  fd->index_width = bits / 8;
  fd->index_format[0] = "cCsSiIlL"[2 * (bits == 16) + 4 * (bits == 32) + 6 * (bits == 64) +
                                   !is_signed];
  fd->ordered = ordered != 0;
  fd->dict_id = id;
  fd->has_dict = 1;
  return MYR_OK;
}

typedef struct dict_use {
  int64_t id;   /* DictionaryEncoding.id */
  size_t field; /* index of a field using it */
} dict_use;

static int cmp_dict_use(const void *pa, const void *pb) {
  const dict_use *a = pa, *b = pb;
  if (a->id != b->id)
    return a->id < b->id ? -1 : 1;
  return a->field < b->field ? -1 : a->field > b->field;
}

/* One ipc_dict per dictionary id (sorted by id, found by binary search); fields sharing
   an id must agree on the value type. */
static int link_dictionaries(ipc_reader *r, myr_error *err) {
  size_t n = 0;
  for (size_t i = 0; i < r->n_fields; i++)
    n += r->fields[i].has_dict != 0;
  if (n == 0)
    return MYR_OK;
  dict_use *u = myr__calloc(n, sizeof *u);
  if (!u)
    return myr_error_set(err, MYR_ENOMEM, "%s: out of memory reading the schema", r->name);
  for (size_t i = 0, k = 0; i < r->n_fields; i++)
    if (r->fields[i].has_dict)
      u[k++] = (dict_use){r->fields[i].dict_id, i};
  qsort(u, n, sizeof *u, cmp_dict_use);
  int rc = MYR_OK;
  for (size_t k = 0; k < n && rc == MYR_OK; k++) {
    ipc_field *fd = &r->fields[u[k].field];
    if (k == 0 || u[k].id != u[k - 1].id) {
      ipc_dict *d = &r->dicts[r->n_dicts++];
      d->id = u[k].id;
      d->field = fd;
      d->col.buf[1] = k_zeros;
      d->col.buf[2] = k_zeros;
    }
    const ipc_dict *d = &r->dicts[r->n_dicts - 1];
    fd->dict = (long)(r->n_dicts - 1);
    if (strcmp(d->field->type.format, fd->type.format) != 0)
      rc = field_fail(r, MYR_EPARSE, u[k].field, fd->name, err,
                      "dictionary id %" PRId64 " is shared with column '%s' of another "
                      "value type (%s, not %s)", d->id, d->field->name,
                      d->field->type.format, fd->type.format);
  }
  myr__free(u);
  return rc;
}

static int parse_schema(ipc_reader *r, const myr__fb_table *sc, myr_error *err) {
  int16_t endian = MYR__IPC_LITTLE;
  myr__fb_vec fv = {0};
  int have_fields = myr__fb_vector(sc, MYR__IPC_SCHEMA_FIELDS, 4, &fv);
  if (myr__fb_i16(sc, MYR__IPC_SCHEMA_ENDIANNESS, &endian) < 0 || have_fields < 0)
    return myr_error_set(err, MYR_EPARSE, "%s: schema: malformed Schema table", r->name);
  if (endian != MYR__IPC_LITTLE)
    return myr_error_set(err, MYR_EUNSUPPORTED,
                         "%s: schema: big-endian data (Schema.endianness = %s) is not "
                         "supported; rewrite the file as little-endian", r->name,
                         endian == MYR__IPC_BIG ? "Big" : "unknown");
  if (have_fields != 1 || fv.n == 0)
    return MYR_OK;
  r->md_left = sc->len / 4;
  r->fields = myr__calloc(fv.n, sizeof *r->fields);
  r->dicts = myr__calloc(fv.n, sizeof *r->dicts);
  if (!r->fields || !r->dicts)
    return myr_error_set(err, MYR_ENOMEM, "%s: out of memory reading the schema", r->name);
  for (size_t i = 0; i < fv.n; i++) {
    ipc_field *fd = &r->fields[i];
    fd->dict = -1;
    r->n_fields = i + 1;
    myr__fb_table f = {0}, de = {0};
    const char *nm = NULL;
    size_t nn = 0;
    uint8_t nullable = 0;
    myr__fb_vec kids = {0};
    if (myr__fb_vec_table(&fv, i, &f) != 1 ||
        myr__fb_string(&f, MYR__IPC_FIELD_NAME, &nm, &nn) < 0 ||
        myr__fb_u8(&f, MYR__IPC_FIELD_NULLABLE, &nullable) < 0)
      return field_fail(r, MYR_EPARSE, i, "", err, "malformed Field table");
    fd->name = myr__strndup(nm ? nm : "", nm ? nn : 0);
    if (!fd->name)
      return myr_error_set(err, MYR_ENOMEM, "%s: out of memory reading the schema", r->name);
    fd->nullable = nullable != 0;
    MYR_RETURN_NOT_OK(check_extension(r, i, fd->name, &f, err));
    MYR_RETURN_NOT_OK(parse_type(r, i, fd->name, &f, &fd->type, err));
    int rc = myr__fb_vector(&f, MYR__IPC_FIELD_CHILDREN, 4, &kids);
    if (rc < 0 || (rc == 1 && kids.n != 0))
      return field_fail(r, MYR_EPARSE, i, fd->name, err, "type %s with child fields",
                        fd->type.format);
    rc = myr__fb_table_field(&f, MYR__IPC_FIELD_DICTIONARY, &de);
    if (rc < 0)
      return field_fail(r, MYR_EPARSE, i, fd->name, err, "malformed DictionaryEncoding");
    if (rc == 1)
      MYR_RETURN_NOT_OK(parse_dictionary(r, i, fd, &de, err));
  }
  return link_dictionaries(r, err);
}

/* ------------------------------------------------------------------ record batch bodies */

typedef struct bctx {
  ipc_reader *r;
  const ipc_msg *m;     /* the message whose body is read */
  myr__fb_vec nodes;    /* RecordBatch.nodes (FieldNode structs) */
  myr__fb_vec buffers;  /* RecordBatch.buffers (Buffer structs) */
  size_t next_node;     /* nodes consumed */
  size_t next_buf;      /* buffers consumed */
  int codec;            /* CompressionType, or -1 when not compressed */
  ipc_mem *mem;         /* receives the allocations */
  uint64_t inflated;    /* bytes decompressed so far for this message */
  const char *col;      /* the column being read, for messages */
  myr_error *err;
} bctx;

static int col_fail(bctx *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int col_fail(bctx *c, int code, const char *fmt, ...) {
  char what[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  return myr_error_set(c->err, code, "%s: message %ld (%s) at byte %zu: column '%s': %s",
                       c->r->name, c->m->no, header_name(c->m->header_type), c->m->start,
                       c->col, what);
}

static int oom(bctx *c) { return col_fail(c, MYR_ENOMEM, "out of memory"); }

static int inflate_lz4(bctx *c, const uint8_t *src, size_t n, uint8_t *dst, size_t cap) {
  ipc_reader *r = c->r;
  if (!r->lz4) {
    if (LZ4F_isError(LZ4F_createDecompressionContext(&r->lz4, LZ4F_VERSION)))
      return oom(c);
  } else {
    LZ4F_resetDecompressionContext(r->lz4);
  }
  size_t in = 0, out = 0, ret = 1;
  while (in < n) {
    size_t dn = cap - out, sn = n - in;
    ret = LZ4F_decompress(r->lz4, dst + out, &dn, src + in, &sn, NULL);
    if (LZ4F_isError(ret))
      return col_fail(c, MYR_EPARSE, "LZ4 frame: %s", LZ4F_getErrorName(ret));
    in += sn;
    out += dn;
    if (sn == 0 && dn == 0)
      break;
  }
  if (ret != 0 || out != cap || in != n)
    return col_fail(c, MYR_EPARSE,
                    "LZ4 frame of %zu bytes does not decompress to the %zu bytes announced",
                    n, cap);
  return MYR_OK;
}

static int inflate_zstd(bctx *c, const uint8_t *src, size_t n, uint8_t *dst, size_t cap) {
  ipc_reader *r = c->r;
  if (!r->zstd && !(r->zstd = ZSTD_createDCtx()))
    return oom(c);
  size_t got = ZSTD_decompressDCtx(r->zstd, dst, cap, src, n);
  if (ZSTD_isError(got))
    return col_fail(c, MYR_EPARSE, "ZSTD frame: %s", ZSTD_getErrorName(got));
  if (got != cap)
    return col_fail(c, MYR_EPARSE,
                    "ZSTD frame decompresses to %zu bytes, not the %zu announced", got, cap);
  return MYR_OK;
}

/* The next buffer of the body: *p and *n (p is NULL when n is 0), decompressed when the
   batch is compressed, and aligned to `align` bytes (copied when the input is not). */
static int next_buffer(bctx *c, const char *what, size_t align, const uint8_t **p,
                       size_t *n) {
  size_t k = c->next_buf++;
  const uint8_t *b = myr__fb_vec_struct(&c->buffers, k, MYR__IPC_BUFFER_SIZE);
  if (!b)
    return col_fail(c, MYR_EPARSE, "the batch has %zu buffers, fewer than the schema needs",
                    c->buffers.n);
  int64_t off = (int64_t)myr__le64(b), len = (int64_t)myr__le64(b + 8);
  size_t blen = c->m->body_len;
  if (off < 0 || len < 0 || (uint64_t)off > blen || (uint64_t)len > blen - (size_t)off)
    return col_fail(c, MYR_EPARSE,
                    "%s buffer (buffer %zu) at body offset %" PRId64 ", length %" PRId64
                    " lies outside the %zu-byte body at byte %zu", what, k, off, len, blen,
                    c->m->body_start);
  const uint8_t *src = c->m->body + off;
  size_t sn = (size_t)len;
  if (c->codec >= 0 && sn > 0) {
    if (sn < 8)
      return col_fail(c, MYR_EPARSE,
                      "compressed %s buffer (buffer %zu) of %zu bytes has no 8-byte length",
                      what, k, sn);
    int64_t ulen = (int64_t)myr__le64(src);
    src += 8;
    sn -= 8;
    if (ulen != MYR__IPC_NOT_COMPRESSED) {
      if (ulen < 0 || (uint64_t)ulen > c->r->max_inflate - c->inflated)
        return col_fail(c, MYR_EPARSE,
                        "compressed %s buffer (buffer %zu, body offset %" PRId64 ") claims "
                        "%" PRId64 " bytes uncompressed; the limit for this file is %" PRIu64
                        " per message", what, k, off, ulen, c->r->max_inflate);
      c->inflated += (uint64_t)ulen;
      *n = (size_t)ulen;
      if (ulen == 0) {
        *p = NULL;
        return MYR_OK;
      }
      uint8_t *dst = mem_alloc(c->mem, (size_t)ulen);
      if (!dst)
        return oom(c);
      int rc = c->codec == MYR__IPC_CODEC_LZ4_FRAME ? inflate_lz4(c, src, sn, dst, *n)
                                                    : inflate_zstd(c, src, sn, dst, *n);
      if (rc != MYR_OK)
        return rc;
      *p = dst;
      return MYR_OK;
    }
  }
  *n = sn;
  *p = sn ? src : NULL;
  if (sn && ((uintptr_t)src & (align - 1))) {
    uint8_t *dst = mem_alloc(c->mem, sn);
    if (!dst)
      return oom(c);
    memcpy(dst, src, sn);
    *p = dst;
  }
  return MYR_OK;
}

/* Zero bits among the first n bits of a bitmap (n / 8 rounded up bytes available). */
static int64_t count_zero_bits(const uint8_t *bm, int64_t n) {
  int64_t ones = 0, full = n / 64;
  for (int64_t i = 0; i < full; i++) {
    uint64_t w;
    memcpy(&w, bm + 8 * i, 8);
    ones += __builtin_popcountll(w);
  }
  for (int64_t i = full * 64; i < n; i++)
    ones += (bm[i >> 3] >> (i & 7)) & 1;
  return n - ones;
}

/* Check offsets o[0..n] (width 4 or 8): o[0] >= 0, non-decreasing, o[n] <= data_len.
   Returns -1 when good, else the first bad index. */
static int64_t bad_offset(const void *offs, int wide, int64_t n, uint64_t data_len) {
  if (wide) {
    const int64_t *o = offs;
    int bad = o[0] < 0 || (uint64_t)o[n] > data_len;
    for (int64_t i = 0; i < n; i++)
      bad |= o[i + 1] < o[i];
    if (!bad)
      return -1;
    if (o[0] < 0)
      return 0;
    for (int64_t i = 0; i < n; i++)
      if (o[i + 1] < o[i])
        return i + 1;
    return n;
  }
  const int32_t *o = offs;
  int bad = o[0] < 0 || (uint64_t)(int64_t)o[n] > data_len;
  for (int64_t i = 0; i < n; i++)
    bad |= o[i + 1] < o[i];
  if (!bad)
    return -1;
  if (o[0] < 0)
    return 0;
  for (int64_t i = 0; i < n; i++)
    if (o[i + 1] < o[i])
      return i + 1;
  return n;
}

/* Read the next field node and its buffers as a flat array of the given layout. */
static int read_column(bctx *c, int kind, int width, int64_t want_len, ipc_col *out) {
  const uint8_t *node = myr__fb_vec_struct(&c->nodes, c->next_node, MYR__IPC_FIELD_NODE_SIZE);
  if (!node)
    return col_fail(c, MYR_EPARSE, "the batch has %zu field nodes, fewer than the schema needs",
                    c->nodes.n);
  c->next_node++;
  int64_t length = (int64_t)myr__le64(node), nulls = (int64_t)myr__le64(node + 8);
  if (length < 0 || length > MAX_ROWS || nulls < 0 || nulls > length)
    return col_fail(c, MYR_EPARSE, "field node length %" PRId64 ", null count %" PRId64
                    " is impossible", length, nulls);
  if (length != want_len)
    return col_fail(c, MYR_EPARSE, "field node length %" PRId64 " differs from the batch "
                    "length %" PRId64, length, want_len);
  memset(out, 0, sizeof *out);
  out->length = length;
  out->null_count = nulls;
  if (kind == K_NULL) {
    out->null_count = length;
    return MYR_OK;
  }
  const uint8_t *p;
  size_t n;
  uint64_t bitmap = ((uint64_t)length + 7) / 8;
  MYR_RETURN_NOT_OK(next_buffer(c, "validity", 1, &p, &n));
  if (nulls > 0) {
    if (n < bitmap)
      return col_fail(c, MYR_EPARSE,
                      "validity bitmap of %zu bytes is shorter than the %" PRIu64
                      " bytes %" PRId64 " rows need", n, bitmap, length);
    int64_t zeros = count_zero_bits(p, length);
    if (zeros != nulls)
      return col_fail(c, MYR_EPARSE,
                      "null count %" PRId64 " differs from the %" PRId64
                      " nulls in the validity bitmap", nulls, zeros);
    out->buf[0] = p;
  }
  if (kind == K_BOOL || kind == K_FIXED) {
    uint64_t need = kind == K_BOOL ? bitmap : (uint64_t)length * (uint64_t)width;
    MYR_RETURN_NOT_OK(next_buffer(c, "data", kind == K_BOOL ? 1 : (size_t)width, &p, &n));
    if (n < need)
      return col_fail(c, MYR_EPARSE,
                      "data buffer of %zu bytes is shorter than the %" PRIu64
                      " bytes %" PRId64 " rows need", n, need, length);
    out->buf[1] = p ? (const void *)p : (const void *)k_zeros;
    return MYR_OK;
  }
  int wide = kind == K_VAR64;
  size_t ow = wide ? 8 : 4;
  const uint8_t *offs, *data;
  size_t on, dn;
  MYR_RETURN_NOT_OK(next_buffer(c, "offsets", ow, &offs, &on));
  MYR_RETURN_NOT_OK(next_buffer(c, "data", 1, &data, &dn));
  if (length == 0 && on == 0) {
    offs = (const uint8_t *)k_zeros;
  } else {
    uint64_t need = ((uint64_t)length + 1) * ow;
    if (on < need)
      return col_fail(c, MYR_EPARSE,
                      "offsets buffer of %zu bytes is shorter than the %" PRIu64
                      " bytes %" PRId64 " rows need", on, need, length);
    int64_t bad = bad_offset(offs, wide, length, dn);
    if (bad >= 0) {
      int64_t v = wide ? ((const int64_t *)(const void *)offs)[bad]
                       : ((const int32_t *)(const void *)offs)[bad];
      return col_fail(c, MYR_EPARSE,
                      "offset %" PRId64 " at row %" PRId64 " is negative, decreasing or "
                      "past the %zu-byte data buffer", v, bad, dn);
    }
  }
  out->buf[1] = offs;
  out->buf[2] = data ? (const void *)data : (const void *)k_zeros;
  out->data_len = dn;
  return MYR_OK;
}

/* Dictionary indices must address the dictionary (checked on valid slots only: null
   slots may hold anything). Returns -1 when good, else the first bad row. */
static int64_t bad_index(const ipc_col *ix, int width, int is_signed, uint64_t dict_len) {
  const uint8_t *v = ix->buf[0];
  const void *d = ix->buf[1];
  int64_t n = ix->length;
  uint64_t bad = 0;
#define VALID(i) ((uint64_t)((v[(i) >> 3] >> ((i) & 7)) & 1))
#define IDX(T)                                                                    \
  do {                                                                            \
    const T *x = d;                                                               \
    if (v)                                                                        \
      for (int64_t i = 0; i < n; i++)                                             \
        bad |= VALID(i) & ((uint64_t)(int64_t)x[i] >= dict_len);                  \
    else                                                                          \
      for (int64_t i = 0; i < n; i++)                                             \
        bad |= (uint64_t)(int64_t)x[i] >= dict_len;                               \
    if (bad)                                                                      \
      for (int64_t i = 0; i < n; i++)                                             \
        if ((!v || VALID(i)) && (uint64_t)(int64_t)x[i] >= dict_len)              \
          return i;                                                               \
  } while (0)
  switch (width * 2 + !is_signed) {
  case 2: IDX(int8_t); break;
  case 3: IDX(uint8_t); break;
  case 4: IDX(int16_t); break;
  case 5: IDX(uint16_t); break;
  case 8: IDX(int32_t); break;
  case 9: IDX(uint32_t); break;
  case 16: IDX(int64_t); break;
  default: IDX(uint64_t); break;
  }
#undef VALID
#undef IDX
  return -1;
}

/* Set up c over the RecordBatch table rb of message m; checks node and buffer counts. */
static int batch_begin(bctx *c, ipc_reader *r, const ipc_msg *m, const myr__fb_table *rb,
                       size_t want_nodes, size_t want_buffers, int64_t *length_out,
                       myr_error *err) {
  memset(c, 0, sizeof *c);
  c->r = r;
  c->m = m;
  c->err = err;
  c->codec = -1;
  c->col = "";
  int64_t length = 0;
  myr__fb_table comp = {0};
  int rn = myr__fb_vector(rb, MYR__IPC_RECORD_BATCH_NODES, MYR__IPC_FIELD_NODE_SIZE,
                          &c->nodes);
  int rb_ = myr__fb_vector(rb, MYR__IPC_RECORD_BATCH_BUFFERS, MYR__IPC_BUFFER_SIZE,
                           &c->buffers);
  int rc = myr__fb_table_field(rb, MYR__IPC_RECORD_BATCH_COMPRESSION, &comp);
  if (myr__fb_i64(rb, MYR__IPC_RECORD_BATCH_LENGTH, &length) < 0 || rn < 0 || rb_ < 0 ||
      rc < 0)
    return col_fail(c, MYR_EPARSE, "malformed RecordBatch table");
  if (rn == 0)
    c->nodes.n = 0;
  if (rb_ == 0)
    c->buffers.n = 0;
  if (length < 0 || length > MAX_ROWS)
    return col_fail(c, MYR_EPARSE, "batch length %" PRId64 " is impossible", length);
  if (rc == 1) {
    int8_t codec = MYR__IPC_CODEC_LZ4_FRAME, method = MYR__IPC_METHOD_BUFFER;
    if (myr__fb_u8(&comp, MYR__IPC_BODY_COMPRESSION_CODEC, (uint8_t *)&codec) < 0 ||
        myr__fb_u8(&comp, MYR__IPC_BODY_COMPRESSION_METHOD, (uint8_t *)&method) < 0)
      return col_fail(c, MYR_EPARSE, "malformed BodyCompression table");
    if (codec != MYR__IPC_CODEC_LZ4_FRAME && codec != MYR__IPC_CODEC_ZSTD)
      return col_fail(c, MYR_EUNSUPPORTED, "unknown compression codec %d", codec);
    if (method != MYR__IPC_METHOD_BUFFER)
      return col_fail(c, MYR_EUNSUPPORTED, "unknown body compression method %d", method);
    c->codec = codec;
  }
  if (c->nodes.n != want_nodes || c->buffers.n != want_buffers)
    return col_fail(c, MYR_EPARSE,
                    "%zu field nodes and %zu buffers where the schema needs %zu and %zu",
                    c->nodes.n, c->buffers.n, want_nodes, want_buffers);
  c->mem = mem_new(r->src);
  if (!c->mem)
    return oom(c);
  if (r->src->map) {
    c->mem->body = m->body;
    c->mem->body_len = m->body_len;
  }
  *length_out = length;
  return MYR_OK;
}

static size_t kind_buffers(int kind) {
  return kind == K_NULL ? 0 : kind == K_VAR32 || kind == K_VAR64 ? 3 : 2;
}

/* ------------------------------------------------------------------ output arrays */

typedef struct arr_priv {
  ipc_mem *mem;                 /* one reference to the memory of the buffers */
  const void *buffers[3];       /* the array's buffer pointers */
  struct ArrowArray dict;       /* storage of the dictionary array, when any */
  struct ArrowArray **children; /* struct arrays: n_children pointers into kids */
  struct ArrowArray *kids;      /* struct arrays: the children's storage (same block) */
} arr_priv;

static void arr_release(struct ArrowArray *a) {
  if (!a || !a->release)
    return;
  arr_priv *p = a->private_data;
  for (int64_t i = 0; i < a->n_children; i++)
    if (a->children[i]->release)
      a->children[i]->release(a->children[i]);
  if (a->dictionary && a->dictionary->release)
    a->dictionary->release(a->dictionary);
  mem_unref(p->mem);
  myr__free(p);
  a->release = NULL;
}

static int make_leaf(ipc_mem *mem, const ipc_col *col, int kind, struct ArrowArray *out) {
  arr_priv *p = myr__calloc(1, sizeof *p);
  if (!p)
    return MYR_ENOMEM;
  mem_ref(mem);
  p->mem = mem;
  memcpy(p->buffers, col->buf, sizeof p->buffers);
  memset(out, 0, sizeof *out);
  out->length = col->length;
  out->null_count = col->null_count;
  out->n_buffers = (int64_t)kind_buffers(kind);
  out->buffers = p->buffers;
  out->release = arr_release;
  out->private_data = p;
  return MYR_OK;
}

/* ------------------------------------------------------------------ dictionaries */

/* Append bits [0, nb) of b after na bits in dst (dst zeroed beyond na bits). b NULL:
   all set. */
static void append_bits(uint8_t *dst, int64_t na, const uint8_t *b, int64_t nb) {
  for (int64_t i = 0; i < nb; i++) {
    int bit = b ? (b[i >> 3] >> (i & 7)) & 1 : 1;
    int64_t j = na + i;
    dst[j >> 3] = (uint8_t)(dst[j >> 3] | (bit << (j & 7)));
  }
}

/* Concatenate dictionary values a and b of field f's type into fresh buffers of mem. */
static int concat_cols(bctx *c, const ipc_type *t, const ipc_col *a, const ipc_col *b,
                       ipc_col *out) {
  int64_t n = a->length + b->length;
  if (n > MAX_ROWS)
    return col_fail(c, MYR_EPARSE, "dictionary grows past %" PRId64 " values", MAX_ROWS);
  memset(out, 0, sizeof *out);
  out->length = n;
  out->null_count = a->null_count + b->null_count;
  if (t->kind == K_NULL) {
    out->null_count = n;
    return MYR_OK;
  }
  size_t bitmap = (size_t)(n + 7) / 8 + 1;
  if (out->null_count) {
    uint8_t *v = mem_alloc(c->mem, bitmap);
    if (!v)
      return oom(c);
    memset(v, 0, bitmap);
    append_bits(v, 0, a->buf[0], a->length);
    append_bits(v, a->length, b->buf[0], b->length);
    out->buf[0] = v;
  }
  if (t->kind == K_BOOL || t->kind == K_FIXED) {
    size_t an = t->kind == K_BOOL ? 0 : (size_t)a->length * (size_t)t->width;
    size_t bn = t->kind == K_BOOL ? 0 : (size_t)b->length * (size_t)t->width;
    size_t total = t->kind == K_BOOL ? bitmap : an + bn + 1;
    uint8_t *d = mem_alloc(c->mem, total);
    if (!d)
      return oom(c);
    if (t->kind == K_BOOL) {
      memset(d, 0, total);
      append_bits(d, 0, a->buf[1], a->length);
      append_bits(d, a->length, b->buf[1], b->length);
    } else {
      memcpy(d, a->buf[1], an);
      memcpy(d + an, b->buf[1], bn);
    }
    out->buf[1] = d;
    return MYR_OK;
  }
  int wide = t->kind == K_VAR64;
  size_t ow = wide ? 8 : 4;
  const ipc_col *part[2] = {a, b};
  int64_t lo[2], hi[2];
  for (int k = 0; k < 2; k++) {
    const void *o = part[k]->buf[1];
    int64_t m = part[k]->length;
    lo[k] = wide ? ((const int64_t *)o)[0] : ((const int32_t *)o)[0];
    hi[k] = wide ? ((const int64_t *)o)[m] : ((const int32_t *)o)[m];
  }
  uint64_t bytes = (uint64_t)(hi[0] - lo[0]) + (uint64_t)(hi[1] - lo[1]);
  if (!wide && bytes > INT32_MAX)
    return col_fail(c, MYR_EPARSE, "dictionary grows past 2 GiB of utf8/binary data");
  uint8_t *offs = mem_alloc(c->mem, (size_t)(n + 1) * ow);
  uint8_t *data = mem_alloc(c->mem, (size_t)bytes + 1);
  if (!offs || !data)
    return oom(c);
  int64_t row = 0, pos = 0;
  for (int k = 0; k < 2; k++) {
    const void *o = part[k]->buf[1];
    for (int64_t i = 0; i < part[k]->length; i++, row++) {
      int64_t v = wide ? ((const int64_t *)o)[i] : ((const int32_t *)o)[i];
      v = v - lo[k] + pos;
      if (wide)
        ((int64_t *)(void *)offs)[row] = v;
      else
        ((int32_t *)(void *)offs)[row] = (int32_t)v;
    }
    memcpy(data + pos, (const uint8_t *)part[k]->buf[2] + lo[k], (size_t)(hi[k] - lo[k]));
    pos += hi[k] - lo[k];
  }
  if (wide)
    ((int64_t *)(void *)offs)[n] = pos;
  else
    ((int32_t *)(void *)offs)[n] = (int32_t)pos;
  out->buf[1] = offs;
  out->buf[2] = data;
  out->data_len = (size_t)bytes;
  return MYR_OK;
}

/* Bytes of a decoded column's values (for the dictionary memory bound). */
static uint64_t col_bytes(const ipc_type *t, const ipc_col *col) {
  uint64_t n = (uint64_t)col->length;
  switch (t->kind) {
  case K_NULL: return 0;
  case K_BOOL: return n / 8 + 1;
  case K_FIXED: return n * (uint64_t)t->width;
  default: return col->data_len + n * (t->kind == K_VAR64 ? 8 : 4);
  }
}

static int apply_dictionary(ipc_reader *r, const ipc_msg *m, myr_error *err) {
  const myr__fb_table *db = &m->header;
  int64_t id = 0;
  uint8_t delta = 0;
  myr__fb_table rb = {0};
  bctx c;
  memset(&c, 0, sizeof c);
  c.r = r;
  c.m = m;
  c.err = err;
  c.col = "";
  int rc = myr__fb_table_field(db, MYR__IPC_DICTIONARY_BATCH_DATA, &rb);
  if (myr__fb_i64(db, MYR__IPC_DICTIONARY_BATCH_ID, &id) < 0 ||
      myr__fb_u8(db, MYR__IPC_DICTIONARY_BATCH_IS_DELTA, &delta) < 0 || rc != 1)
    return col_fail(&c, MYR_EPARSE, "malformed DictionaryBatch table");
  ipc_dict *d = NULL;
  for (size_t lo = 0, hi = r->n_dicts; lo < hi && !d;) {
    size_t mid = lo + (hi - lo) / 2;
    if (r->dicts[mid].id == id)
      d = &r->dicts[mid];
    else if (r->dicts[mid].id < id)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (!d)
    return col_fail(&c, MYR_EPARSE, "dictionary id %" PRId64 " is not used by the schema",
                    id);
  const ipc_type *t = &d->field->type;
  int64_t length;
  MYR_RETURN_NOT_OK(batch_begin(&c, r, m, &rb, 1, kind_buffers(t->kind), &length, err));
  c.col = d->field->name;
  ipc_col col;
  rc = read_column(&c, t->kind, t->width, length, &col);
  if (rc == MYR_OK && r->is_file && d->defined && !delta)
    rc = col_fail(&c, MYR_EPARSE, "dictionary id %" PRId64 " is defined twice; the file "
                  "format does not allow replacing a dictionary", id);
  /* Dictionaries stay in memory: their total size is bounded like a message's. */
  uint64_t piece = col_bytes(t, &col), held = r->dict_bytes - (delta ? 0 : d->bytes);
  if (rc == MYR_OK && piece > r->max_inflate - held)
    rc = col_fail(&c, MYR_EPARSE, "dictionaries grow past %" PRIu64 " bytes",
                  r->max_inflate);
  if (rc == MYR_OK && delta && d->defined) {
    ipc_col joined;
    rc = concat_cols(&c, t, &d->col, &col, &joined);
    col = joined;
  }
  if (rc != MYR_OK) {
    mem_unref(c.mem);
    return rc;
  }
  r->dict_bytes = held + piece;
  d->bytes = delta ? d->bytes + piece : piece;
  mem_unref(d->mem);
  d->mem = c.mem;
  d->col = col;
  d->defined = 1;
  return MYR_OK;
}

/* ------------------------------------------------------------------ record batches */

static int decode_batch(ipc_reader *r, const ipc_msg *m, struct ArrowArray *out,
                        myr_error *err) {
  size_t want_buffers = 0;
  for (size_t i = 0; i < r->n_fields; i++)
    want_buffers += r->fields[i].dict >= 0 ? 2 : kind_buffers(r->fields[i].type.kind);
  bctx c;
  int64_t length;
  MYR_RETURN_NOT_OK(batch_begin(&c, r, m, &m->header, r->n_fields, want_buffers, &length,
                                err));
  size_t n = r->n_fields;
  arr_priv *p = myr__calloc(1, sizeof *p + n * (sizeof(struct ArrowArray *) +
                                                sizeof(struct ArrowArray)));
  if (!p) {
    int rc = oom(&c);
    mem_unref(c.mem);
    return rc;
  }
  p->mem = c.mem; /* the batch's reference */
  p->children = (struct ArrowArray **)(void *)(p + 1);
  p->kids = (struct ArrowArray *)(void *)(p->children + n);
  memset(out, 0, sizeof *out);
  out->length = length;
  out->n_buffers = 1;
  out->buffers = p->buffers;
  out->n_children = (int64_t)n;
  out->children = n ? p->children : NULL;
  out->release = arr_release;
  out->private_data = p;
  for (size_t i = 0; i < n; i++)
    p->children[i] = &p->kids[i];
  int rc = MYR_OK;
  for (size_t i = 0; i < n && rc == MYR_OK; i++) {
    const ipc_field *f = &r->fields[i];
    c.col = f->name;
    ipc_col col;
    if (f->dict < 0) {
      rc = read_column(&c, f->type.kind, f->type.width, length, &col);
      if (rc == MYR_OK && make_leaf(c.mem, &col, f->type.kind, &p->kids[i]) != MYR_OK)
        rc = oom(&c);
      continue;
    }
    const ipc_dict *d = &r->dicts[f->dict];
    rc = read_column(&c, K_FIXED, f->index_width, length, &col);
    if (rc != MYR_OK)
      break;
    if (!d->defined && col.length > col.null_count) {
      rc = col_fail(&c, MYR_EPARSE, "dictionary id %" PRId64 " is used before any "
                    "dictionary batch defines it", d->id);
      break;
    }
    int64_t bad = bad_index(&col, f->index_width, f->index_format[0] >= 'a',
                            (uint64_t)d->col.length);
    if (bad >= 0) {
      rc = col_fail(&c, MYR_EPARSE, "dictionary index at row %" PRId64 " is outside the "
                    "dictionary of %" PRId64 " values (id %" PRId64 ")", bad, d->col.length,
                    d->id);
      break;
    }
    struct ArrowArray *kid = &p->kids[i];
    if (make_leaf(c.mem, &col, K_FIXED, kid) != MYR_OK) {
      rc = oom(&c);
      break;
    }
    arr_priv *kp = kid->private_data;
    if (make_leaf(d->mem, &d->col, f->type.kind, &kp->dict) != MYR_OK) {
      rc = oom(&c);
      break;
    }
    kid->dictionary = &kp->dict;
  }
  if (rc != MYR_OK)
    arr_release(out);
  return rc;
}

/* ------------------------------------------------------------------ schema export */

typedef struct sch_priv {
  char *format;                  /* owned */
  char *name;                    /* owned, or NULL */
  struct ArrowSchema dict;       /* storage of the dictionary's schema, when any */
  struct ArrowSchema **children; /* the struct: pointers into kids (same block) */
  struct ArrowSchema *kids;
} sch_priv;

static void sch_release(struct ArrowSchema *s) {
  if (!s || !s->release)
    return;
  sch_priv *p = s->private_data;
  for (int64_t i = 0; i < s->n_children; i++)
    if (s->children[i]->release)
      s->children[i]->release(s->children[i]);
  if (s->dictionary && s->dictionary->release)
    s->dictionary->release(s->dictionary);
  myr__free(p->format);
  myr__free(p->name);
  myr__free(p);
  s->release = NULL;
}

static int sch_init(struct ArrowSchema *s, const char *format, const char *name,
                    int64_t flags, size_t n_children) {
  memset(s, 0, sizeof *s);
  sch_priv *p = myr__calloc(1, sizeof *p + n_children * (sizeof(struct ArrowSchema *) +
                                                         sizeof(struct ArrowSchema)));
  if (!p)
    return MYR_ENOMEM;
  s->release = sch_release;
  s->private_data = p;
  p->children = (struct ArrowSchema **)(void *)(p + 1);
  p->kids = (struct ArrowSchema *)(void *)(p->children + n_children);
  p->format = myr__strdup(format);
  p->name = name ? myr__strdup(name) : NULL;
  if (!p->format || (name && !p->name))
    return MYR_ENOMEM;
  s->format = p->format;
  s->name = p->name;
  s->flags = flags;
  s->n_children = (int64_t)n_children;
  s->children = n_children ? p->children : NULL;
  for (size_t i = 0; i < n_children; i++)
    p->children[i] = &p->kids[i];
  return MYR_OK;
}

static int export_schema(const ipc_reader *r, struct ArrowSchema *out) {
  int rc = sch_init(out, "+s", "", 0, r->n_fields);
  sch_priv *p = out->private_data;
  for (size_t i = 0; i < r->n_fields && rc == MYR_OK; i++) {
    const ipc_field *f = &r->fields[i];
    int64_t flags = f->nullable ? ARROW_FLAG_NULLABLE : 0;
    if (f->dict < 0) {
      rc = sch_init(&p->kids[i], f->type.format, f->name, flags, 0);
      continue;
    }
    if (f->ordered)
      flags |= ARROW_FLAG_DICTIONARY_ORDERED;
    rc = sch_init(&p->kids[i], f->index_format, f->name, flags, 0);
    if (rc == MYR_OK) {
      sch_priv *kp = p->kids[i].private_data;
      rc = sch_init(&kp->dict, f->type.format, NULL, 0, 0);
      p->kids[i].dictionary = &kp->dict;
    }
  }
  if (rc != MYR_OK)
    sch_release(out);
  return rc;
}

/* ------------------------------------------------------------------ the stream */

static void reader_free(ipc_reader *r) {
  if (!r)
    return;
  for (size_t i = 0; i < r->n_fields; i++) {
    myr__free(r->fields[i].name);
    myr__free(r->fields[i].type.format);
  }
  for (size_t i = 0; i < r->n_dicts; i++)
    mem_unref(r->dicts[i].mem);
  myr__free(r->fields);
  myr__free(r->dicts);
  if (r->lz4)
    LZ4F_freeDecompressionContext(r->lz4);
  ZSTD_freeDCtx(r->zstd);
  mem_unref(r->src);
  myr__free(r->name);
  myr__free(r);
}

static int to_errno(int code) {
  switch (code) {
  case MYR_ENOMEM: return ENOMEM;
  case MYR_EIO: return EIO;
  case MYR_EUNSUPPORTED: return ENOTSUP;
  default: return EINVAL;
  }
}

static int fail(ipc_reader *r, const myr_error *e) {
  r->state = 2;
  r->fail_errno = to_errno(e->code);
  memcpy(r->last_error, e->message, sizeof r->last_error);
  return r->fail_errno;
}

/* The next record batch of a file, through the footer's blocks. */
static int next_file_batch(ipc_reader *r, struct ArrowArray *out, myr_error *err) {
  if (r->next_batch >= r->batches.n) {
    r->state = 1;
    return MYR_OK;
  }
  size_t k = r->next_batch++;
  const uint8_t *b = myr__fb_vec_struct(&r->batches, k, MYR__IPC_BLOCK_SIZE);
  int64_t off = (int64_t)myr__le64(b + MYR__IPC_BLOCK_OFFSET);
  int32_t meta = (int32_t)myr__le32(b + MYR__IPC_BLOCK_META_DATA_LENGTH);
  if (off < 0 || (uint64_t)off >= r->len || meta <= 0 ||
      (uint64_t)meta > r->len - (uint64_t)off)
    return myr_error_set(err, MYR_EPARSE,
                         "%s: footer record batch block %zu (offset %" PRId64 ", metadata "
                         "length %" PRId32 ") lies outside the %zu-byte file", r->name, k,
                         off, meta, r->len);
  ipc_msg m;
  int rc = read_message(r, (size_t)off, (size_t)off + (size_t)meta, &m, err);
  if (rc < 0)
    return rc;
  r->n_msg++;
  if (m.end > r->done)
    r->done = m.end;
  if (m.header_type != MYR__IPC_HEADER_RECORD_BATCH)
    return myr_error_set(err, MYR_EPARSE,
                         "%s: footer record batch block %zu points at a %s message (byte %"
                         PRId64 ")", r->name, k, header_name(m.header_type), off);
  return decode_batch(r, &m, out, err);
}

static int next_stream_batch(ipc_reader *r, struct ArrowArray *out, myr_error *err) {
  for (;;) {
    ipc_msg m;
    int rc = read_message(r, r->pos, 0, &m, err);
    if (rc < 0)
      return rc;
    if (rc == 0) {
      r->state = 1;
      r->done = r->len;
      return MYR_OK;
    }
    r->n_msg++;
    r->pos = m.end;
    r->done = m.end;
    switch (m.header_type) {
    case MYR__IPC_HEADER_DICTIONARY_BATCH:
      MYR_RETURN_NOT_OK(apply_dictionary(r, &m, err));
      continue;
    case MYR__IPC_HEADER_RECORD_BATCH:
      return decode_batch(r, &m, out, err);
    default:
      return myr_error_set(err, MYR_EPARSE,
                           "%s: message %ld at byte %zu: unexpected %s message (type %d) "
                           "after the schema", r->name, m.no, m.start,
                           header_name(m.header_type), m.header_type);
    }
  }
}

static int s_get_schema(struct ArrowArrayStream *s, struct ArrowSchema *out) {
  ipc_reader *r = s->private_data;
  if (export_schema(r, out) != MYR_OK) {
    snprintf(r->last_error, sizeof r->last_error, "%s: out of memory exporting the schema",
             r->name);
    return ENOMEM;
  }
  return 0;
}

static int s_get_next(struct ArrowArrayStream *s, struct ArrowArray *out) {
  ipc_reader *r = s->private_data;
  out->release = NULL;
  if (r->state == 2)
    return r->fail_errno;
  if (r->state == 1)
    return 0;
  myr_error e = {0};
  int rc = r->is_file ? next_file_batch(r, out, &e) : next_stream_batch(r, out, &e);
  if (rc != MYR_OK) {
    out->release = NULL;
    return fail(r, &e);
  }
  return 0;
}

static const char *s_get_last_error(struct ArrowArrayStream *s) {
  ipc_reader *r = s->private_data;
  return r->last_error[0] ? r->last_error : NULL;
}

static void s_release(struct ArrowArrayStream *s) {
  if (!s || !s->release)
    return;
  reader_free(s->private_data);
  s->private_data = NULL;
  s->release = NULL;
}

/* ------------------------------------------------------------------ opening */

static int open_file_format(ipc_reader *r, myr_error *err) {
  const uint8_t *d = r->data;
  size_t len = r->len;
  if (len < MYR__IPC_FILE_HEAD + MYR__IPC_FILE_TAIL ||
      memcmp(d + len - MYR__IPC_MAGIC_LEN, MYR__IPC_MAGIC, MYR__IPC_MAGIC_LEN) != 0)
    return myr_error_set(err, MYR_EPARSE,
                         "%s: Arrow file of %zu bytes has no ARROW1 magic at its end "
                         "(truncated?)", r->name, len);
  int32_t flen = (int32_t)myr__le32(d + len - MYR__IPC_FILE_TAIL);
  if (flen <= 0 || (size_t)flen > len - MYR__IPC_FILE_TAIL - MYR__IPC_FILE_HEAD)
    return myr_error_set(err, MYR_EPARSE,
                         "%s: footer length %" PRId32 " does not fit the %zu-byte file",
                         r->name, flen, len);
  size_t fpos = len - MYR__IPC_FILE_TAIL - (size_t)flen;
  myr__fb_table footer = {0}, schema = {0};
  myr__fb_vec dicts = {0};
  if (myr__fb_root(d + fpos, (size_t)flen, &footer) != 1)
    return myr_error_set(err, MYR_EPARSE, "%s: malformed footer at byte %zu", r->name, fpos);
  int rs = myr__fb_table_field(&footer, MYR__IPC_FOOTER_SCHEMA, &schema);
  int rd = myr__fb_vector(&footer, MYR__IPC_FOOTER_DICTIONARIES, MYR__IPC_BLOCK_SIZE, &dicts);
  int rb = myr__fb_vector(&footer, MYR__IPC_FOOTER_RECORD_BATCHES, MYR__IPC_BLOCK_SIZE,
                          &r->batches);
  if (rs != 1 || rd < 0 || rb < 0)
    return myr_error_set(err, MYR_EPARSE, "%s: malformed footer at byte %zu (%s)", r->name,
                         fpos, rs != 1 ? "no schema" : "bad block vector");
  if (rd == 0)
    dicts.n = 0;
  if (rb == 0)
    r->batches.n = 0;
  /* Blocks of a file do not overlap: their sizes add up to less than the file, which
     also keeps a footer from naming one big message many times over. */
  uint64_t sum = 0;
  for (size_t k = 0; k < dicts.n + r->batches.n; k++) {
    const uint8_t *b = k < dicts.n ? myr__fb_vec_struct(&dicts, k, MYR__IPC_BLOCK_SIZE)
                                   : myr__fb_vec_struct(&r->batches, k - dicts.n,
                                                        MYR__IPC_BLOCK_SIZE);
    int32_t meta = (int32_t)myr__le32(b + MYR__IPC_BLOCK_META_DATA_LENGTH);
    int64_t body = (int64_t)myr__le64(b + MYR__IPC_BLOCK_BODY_LENGTH);
    if (meta < 0 || body < 0 || (uint64_t)body > len || (sum += (uint64_t)meta +
                                                                 (uint64_t)body) > len)
      return myr_error_set(err, MYR_EPARSE,
                           "%s: footer blocks (%zu dictionary, %zu record batch) describe "
                           "more bytes than the %zu-byte file holds (block %zu)", r->name,
                           dicts.n, r->batches.n, len, k);
  }
  MYR_RETURN_NOT_OK(parse_schema(r, &schema, err));
  for (size_t k = 0; k < dicts.n; k++) {
    const uint8_t *b = myr__fb_vec_struct(&dicts, k, MYR__IPC_BLOCK_SIZE);
    int64_t off = (int64_t)myr__le64(b + MYR__IPC_BLOCK_OFFSET);
    int32_t meta = (int32_t)myr__le32(b + MYR__IPC_BLOCK_META_DATA_LENGTH);
    if (off < 0 || (uint64_t)off >= len || meta <= 0 || (uint64_t)meta > len - (uint64_t)off)
      return myr_error_set(err, MYR_EPARSE,
                           "%s: footer dictionary block %zu (offset %" PRId64 ", metadata "
                           "length %" PRId32 ") lies outside the %zu-byte file", r->name, k,
                           off, meta, len);
    ipc_msg m;
    int rc = read_message(r, (size_t)off, (size_t)off + (size_t)meta, &m, err);
    if (rc < 0)
      return rc;
    r->n_msg++;
    if (m.header_type != MYR__IPC_HEADER_DICTIONARY_BATCH)
      return myr_error_set(err, MYR_EPARSE,
                           "%s: footer dictionary block %zu points at a %s message (byte %"
                           PRId64 ")", r->name, k, header_name(m.header_type), off);
    MYR_RETURN_NOT_OK(apply_dictionary(r, &m, err));
  }
  return MYR_OK;
}

static int open_stream_format(ipc_reader *r, myr_error *err) {
  ipc_msg m;
  int rc = read_message(r, 0, 0, &m, err);
  if (rc < 0)
    return rc;
  if (rc == 0)
    return myr_error_set(err, MYR_EPARSE, "%s: empty Arrow stream (no schema message)",
                         r->name);
  r->n_msg++;
  if (m.header_type != MYR__IPC_HEADER_SCHEMA)
    return myr_error_set(err, MYR_EPARSE,
                         "%s: the stream starts with a %s message, not a schema", r->name,
                         header_name(m.header_type));
  MYR_RETURN_NOT_OK(parse_schema(r, &m.header, err));
  r->pos = m.end;
  r->done = m.end;
  return MYR_OK;
}

/* Takes a reference to src. */
static int open_common(ipc_mem *src, const uint8_t *data, size_t len, const char *name,
                       struct ArrowArrayStream *out, myr_error *err) {
  memset(out, 0, sizeof *out);
  const char *nm = name ? name : "<memory>";
  int fmt = myr__format_sniff(data, len);
  if (fmt == MYR__FMT_CSV)
    return myr_error_set(err, MYR_EPARSE,
                         "%s: not an Arrow IPC file or stream (no ARROW1 magic, no message "
                         "framing at byte 0)", nm);
  ipc_reader *r = myr__calloc(1, sizeof *r);
  if (!r)
    return myr_error_set(err, MYR_ENOMEM, "%s: out of memory", nm);
  r->name = myr__strdup(nm);
  if (!r->name) {
    myr__free(r);
    return myr_error_set(err, MYR_ENOMEM, "%s: out of memory", nm);
  }
  mem_ref(src);
  r->src = src;
  r->data = data;
  r->len = len;
  r->max_inflate = len > (UINT64_MAX - INFLATE_BASE) / 16 ? UINT64_MAX
                                                          : 16 * (uint64_t)len + INFLATE_BASE;
  r->is_file = fmt == MYR__FMT_ARROW_FILE;
  int rc = r->is_file ? open_file_format(r, err) : open_stream_format(r, err);
  if (rc != MYR_OK) {
    reader_free(r);
    return rc;
  }
  out->get_schema = s_get_schema;
  out->get_next = s_get_next;
  out->get_last_error = s_get_last_error;
  out->release = s_release;
  out->private_data = r;
  return MYR_OK;
}

int myr__ipc_open_mem(const uint8_t *data, size_t len, const char *name,
                      struct ArrowArrayStream *out, myr_error *err) {
  memset(out, 0, sizeof *out);
  if (!data && len)
    return myr_error_set(err, MYR_EINVAL, "%s: no data", name ? name : "<memory>");
  ipc_mem *src = mem_new(NULL);
  if (!src)
    return myr_error_set(err, MYR_ENOMEM, "%s: out of memory", name ? name : "<memory>");
  int rc = open_common(src, data ? data : (const uint8_t *)k_zeros, len, name, out, err);
  mem_unref(src);
  return rc;
}

/* Read all of fd (a pipe or a file mmap refused) into *buf_out. */
static int read_all(int fd, const char *path, uint8_t **buf_out, size_t *len_out,
                    myr_error *err) {
  size_t cap = 1 << 16, len = 0;
  uint8_t *buf = myr__malloc(cap);
  if (!buf)
    return myr_error_set(err, MYR_ENOMEM, "%s: out of memory reading the file", path);
  for (;;) {
    if (len == cap) {
      uint8_t *nb = cap > SIZE_MAX / 2 ? NULL : myr__realloc(buf, cap * 2);
      if (!nb) {
        myr__free(buf);
        return myr_error_set(err, MYR_ENOMEM, "%s: out of memory reading the file", path);
      }
      buf = nb;
      cap *= 2;
    }
    ssize_t got = read(fd, buf + len, cap - len);
    if (got < 0 && errno == EINTR)
      continue;
    if (got < 0) {
      int e = errno;
      myr__free(buf);
      return myr_error_set(err, MYR_EIO, "%s: read failed: %s", path, strerror(e));
    }
    if (got == 0)
      break;
    len += (size_t)got;
  }
  *buf_out = buf;
  *len_out = len;
  return MYR_OK;
}

int myr__ipc_open(const char *path, struct ArrowArrayStream *out, myr_error *err) {
  memset(out, 0, sizeof *out);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return myr_error_set(err, MYR_EIO, "%s: cannot open: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    close(fd);
    return myr_error_set(err, MYR_EIO, "%s: cannot stat: %s", path, strerror(e));
  }
  ipc_mem *src = mem_new(NULL);
  if (!src) {
    close(fd);
    return myr_error_set(err, MYR_ENOMEM, "%s: out of memory", path);
  }
  const uint8_t *data = NULL;
  size_t len = 0;
  if (S_ISREG(st.st_mode) && st.st_size > 0 && (uint64_t)st.st_size <= SIZE_MAX) {
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map != MAP_FAILED) {
      src->map = map;
      src->map_len = (size_t)st.st_size;
      data = map;
      len = (size_t)st.st_size;
    }
  }
  if (!data) {
    uint8_t *buf = NULL;
    int rc = read_all(fd, path, &buf, &len, err);
    if (rc != MYR_OK) {
      close(fd);
      mem_unref(src);
      return rc;
    }
    src->owned = buf;
    data = buf;
  }
  close(fd);
  int rc = len == 0 ? myr_error_set(err, MYR_EPARSE, "%s: empty file", path)
                    : open_common(src, data, len, path, out, err);
  mem_unref(src);
  return rc;
}

void myr__ipc_progress(struct ArrowArrayStream *s, uint64_t *done, uint64_t *total) {
  const ipc_reader *r = s && s->release == s_release ? s->private_data : NULL;
  if (done)
    *done = r ? r->done : 0;
  if (total)
    *total = r ? r->len : 0;
}

/* ------------------------------------------------------------------ sniffing */

int myr__format_sniff(const uint8_t *head, size_t n) {
  if (!head || n < 4)
    return MYR__FMT_CSV;
  if (n >= MYR__IPC_MAGIC_LEN && memcmp(head, MYR__IPC_MAGIC, MYR__IPC_MAGIC_LEN) == 0)
    return MYR__FMT_ARROW_FILE;
  /* The continuation marker: text never holds 0xFF bytes, so this is a stream (a
     damaged one gets a precise error from the reader rather than "not Arrow"). */
  uint32_t w = myr__le32(head);
  if (w == MYR__IPC_CONTINUATION)
    return MYR__FMT_ARROW_STREAM;
  /* A pre-0.15 stream starts with its metadata length; text never has the zero high
     byte a plausible length has. */
  if (w < 8 || w >= (1u << 24))
    return MYR__FMT_CSV;
  size_t prefix = 4;
  /* Check that a Message table with a known header type starts there. */
  size_t avail = n - prefix < w ? n - prefix : w;
  myr__fb_table msg = {0};
  uint8_t ht = 0;
  if (myr__fb_root(head + prefix, avail, &msg) != 1 ||
      myr__fb_u8(&msg, MYR__IPC_MESSAGE_HEADER_TYPE, &ht) < 0 ||
      ht == MYR__IPC_HEADER_NONE || ht > MYR__IPC_HEADER_SPARSE_TENSOR)
    return MYR__FMT_CSV;
  return MYR__FMT_ARROW_STREAM;
}

int myr__format_of_path(const char *path, int *format_out, myr_error *err) {
  *format_out = MYR__FMT_CSV;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return myr_error_set(err, MYR_EIO, "%s: cannot open: %s", path, strerror(errno));
  uint8_t *head = myr__malloc(SNIFF_BYTES);
  if (!head) {
    close(fd);
    return myr_error_set(err, MYR_ENOMEM, "%s: out of memory", path);
  }
  size_t n = 0;
  while (n < SNIFF_BYTES) {
    ssize_t got = read(fd, head + n, SNIFF_BYTES - n);
    if (got < 0 && errno == EINTR)
      continue;
    if (got < 0) {
      int e = errno;
      myr__free(head);
      close(fd);
      return myr_error_set(err, MYR_EIO, "%s: read failed: %s", path, strerror(e));
    }
    if (got == 0)
      break;
    n += (size_t)got;
  }
  close(fd);
  *format_out = myr__format_sniff(head, n);
  myr__free(head);
  return MYR_OK;
}
