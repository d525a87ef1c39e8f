/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Model blob codec, format v1 (docs/internals/model-format.md). Encoding writes a fixed
 * 48-byte little-endian header, the family's payload and a CRC32C trailer. Parsing treats
 * the blob as hostile: it checks the total length before reading any field, every field
 * against the remaining length, and the checksum before the payload is handed to a family.
 */
#include "store/blob.h"

#include <string.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/hash.h"

/* CRC32C (Castagnoli, reflected polynomial 0x82F63B78), slicing-by-8 tables built once. */
static uint32_t crc_table[8][256];
static int crc_ready;

static void crc_init(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++)
      c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));
    crc_table[0][i] = c;
  }
  for (uint32_t i = 0; i < 256; i++)
    for (int t = 1; t < 8; t++)
      crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
  __atomic_store_n(&crc_ready, 1, __ATOMIC_RELEASE);
}

#if defined(__x86_64__) && defined(__GNUC__)
/* SSE4.2 has a CRC32C instruction: 8 bytes per step, several times the table speed on
   the large blobs of forests. Chosen at run time, so the build needs no -msse4.2. */
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc,
                                                            const unsigned char *p,
                                                            size_t len) {
  uint64_t c = ~crc;
  while (len >= 8) {
    uint64_t w;
    memcpy(&w, p, 8);
    c = __builtin_ia32_crc32di(c, w);
    p += 8;
    len -= 8;
  }
  uint32_t c32 = (uint32_t)c;
  while (len--)
    c32 = __builtin_ia32_crc32qi(c32, *p++);
  return ~c32;
}
#endif

uint32_t myr_crc32c(uint32_t crc, const void *data, size_t len) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (__builtin_cpu_supports("sse4.2"))
    return crc32c_hw(crc, data, len);
#endif
  return myr__crc32c_portable(crc, data, len);
}

uint32_t myr__crc32c_portable(uint32_t crc, const void *data, size_t len) {
  if (!__atomic_load_n(&crc_ready, __ATOMIC_ACQUIRE))
    crc_init(); /* idempotent: racing threads compute identical tables */
  const unsigned char *p = data;
  crc = ~crc;
  while (len >= 8) {
    uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                         (uint32_t)p[3] << 24);
    crc = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
          crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^ crc_table[3][p[4]] ^
          crc_table[2][p[5]] ^ crc_table[1][p[6]] ^ crc_table[0][p[7]];
    p += 8;
    len -= 8;
  }
  while (len--)
    crc = (crc >> 8) ^ crc_table[0][(crc ^ *p++) & 0xff];
  return ~crc;
}

static void put16(unsigned char *p, uint16_t v) {
  p[0] = (unsigned char)v;
  p[1] = (unsigned char)(v >> 8);
}
static void put32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (unsigned char)(v >> (8 * i));
}
static void put64(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (unsigned char)(v >> (8 * i));
}
static uint16_t get16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t get32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get64(const unsigned char *p) {
  return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

uint64_t myr_feature_schema_hash(const char *const *names, size_t n) {
  uint64_t h = myr__mix64(n + 0x736368656d61ULL);
  for (size_t i = 0; i < n; i++)
    h = myr__hash64(names[i], strlen(names[i]), h);
  return h;
}

int myr__blob_encode(const myr_model_family *f, const void *model, size_t n_features,
                     uint64_t schema_hash, unsigned char **blob_out, size_t *len_out,
                     myr_error *err) {
  *blob_out = NULL;
  *len_out = 0;
  size_t payload = f->encoded_size(model);
  if (payload > SIZE_MAX - MYR_BLOB_HEADER_SIZE - MYR_BLOB_TRAILER_SIZE ||
      n_features > UINT32_MAX)
    return myr_error_set(err, MYR_EINVAL, "model too large to encode");
  size_t total = MYR_BLOB_HEADER_SIZE + payload + MYR_BLOB_TRAILER_SIZE;
  unsigned char *b = myr__malloc(total);
  if (!b)
    return myr_error_set(err, MYR_ENOMEM, "out of memory encoding a %s model", f->name);
  memset(b, 0, MYR_BLOB_HEADER_SIZE);
  memcpy(b, MYR_BLOB_MAGIC, 4);
  put16(b + 4, MYR_BLOB_FORMAT_VERSION);
  put16(b + 6, MYR_BLOB_HEADER_SIZE);
  memcpy(b + 8, f->name, strlen(f->name)); /* <= 15 bytes, checked at registration */
  put32(b + 24, f->payload_version);
  put32(b + 28, (uint32_t)n_features);
  put64(b + 32, schema_hash);
  put64(b + 40, (uint64_t)payload);
  int rc = f->encode(model, b + MYR_BLOB_HEADER_SIZE, payload, err);
  if (rc != MYR_OK) {
    myr__free(b);
    return rc;
  }
  put32(b + MYR_BLOB_HEADER_SIZE + payload, myr_crc32c(0, b, MYR_BLOB_HEADER_SIZE + payload));
  *blob_out = b;
  *len_out = total;
  return MYR_OK;
}

int myr_blob_parse(const unsigned char *blob, size_t len, myr_blob_view *out,
                   myr_error *err) {
  memset(out, 0, sizeof *out);
  if (!blob || len < MYR_BLOB_HEADER_SIZE + MYR_BLOB_TRAILER_SIZE)
    return myr_error_set(err, MYR_ECORRUPT, "model blob truncated: %zu bytes, need at least %u",
                         len, MYR_BLOB_HEADER_SIZE + MYR_BLOB_TRAILER_SIZE);
  if (memcmp(blob, MYR_BLOB_MAGIC, 4) != 0)
    return myr_error_set(err, MYR_ECORRUPT, "not a myriad model blob (bad magic)");
  uint16_t version = get16(blob + 4);
  if (version != MYR_BLOB_FORMAT_VERSION)
    return myr_error_set(err, MYR_EUNSUPPORTED,
                         "model blob format version %u is not supported (this build reads %u)",
                         version, MYR_BLOB_FORMAT_VERSION);
  uint16_t header = get16(blob + 6);
  if (header != MYR_BLOB_HEADER_SIZE)
    return myr_error_set(err, MYR_ECORRUPT, "model blob header size %u, expected %u", header,
                         MYR_BLOB_HEADER_SIZE);
  uint64_t payload = get64(blob + 40);
  if (payload != len - MYR_BLOB_HEADER_SIZE - MYR_BLOB_TRAILER_SIZE)
    return myr_error_set(err, MYR_ECORRUPT,
                         "model blob length mismatch: header says %llu payload bytes, blob "
                         "has %zu",
                         (unsigned long long)payload,
                         len - MYR_BLOB_HEADER_SIZE - MYR_BLOB_TRAILER_SIZE);
  uint32_t stored = get32(blob + len - MYR_BLOB_TRAILER_SIZE);
  uint32_t actual = myr_crc32c(0, blob, len - MYR_BLOB_TRAILER_SIZE);
  if (stored != actual)
    return myr_error_set(err, MYR_ECORRUPT,
                         "model blob checksum mismatch (stored %08x, computed %08x)", stored,
                         actual);
  /* Family name: 1..15 bytes of [a-z0-9_], NUL-padded. */
  const unsigned char *name = blob + 8;
  size_t n = 0;
  while (n < 16 && name[n])
    n++;
  if (n == 0 || n > MYR_FAMILY_NAME_MAX)
    return myr_error_set(err, MYR_ECORRUPT, "model blob has an invalid family name");
  for (size_t i = 0; i < 16; i++) {
    unsigned char c = name[i];
    int ok = i < n ? ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_') : c == 0;
    if (!ok)
      return myr_error_set(err, MYR_ECORRUPT, "model blob has an invalid family name");
  }
  out->format_version = version;
  memcpy(out->family, name, n);
  out->family[n] = '\0';
  out->payload_version = get32(blob + 24);
  out->n_features = get32(blob + 28);
  out->schema_hash = get64(blob + 32);
  out->payload = blob + MYR_BLOB_HEADER_SIZE;
  out->payload_len = (size_t)payload;
  return MYR_OK;
}

int myr__blob_decode(const myr_registry *reg, const unsigned char *blob, size_t len,
                     const myr_scratch *scratch, const myr_model_family **family_out,
                     void **model_out, myr_blob_view *view_out, myr_error *err) {
  myr_blob_view view;
  *model_out = NULL;
  MYR_RETURN_NOT_OK(myr_blob_parse(blob, len, &view, err));
  const myr_model_family *f = myr_registry_find(reg, view.family);
  if (!f)
    return myr_error_set(err, MYR_ENOTFOUND,
                         "model blob needs family '%s', which is not loaded (missing "
                         "--plugin?)",
                         view.family);
  if (view.payload_version > f->payload_version)
    return myr_error_set(err, MYR_EUNSUPPORTED,
                         "%s model payload version %u is newer than this build reads (%u)",
                         f->name, view.payload_version, f->payload_version);
  MYR_RETURN_NOT_OK(f->decode(view.payload, view.payload_len, view.payload_version,
                              view.n_features, scratch, model_out, err));
  if (family_out)
    *family_out = f;
  if (view_out)
    *view_out = view;
  return MYR_OK;
}

int myr_blob_describe(const myr_registry *reg, const unsigned char *blob, size_t len,
                      myr_write_fn write, void *ud, myr_error *err) {
  myr__arena arena;
  myr__arena_init(&arena, 4096);
  myr_scratch scratch = myr__arena_scratch(&arena);
  const myr_model_family *f = NULL;
  void *model = NULL;
  myr_blob_view view;
  myr__buf head;
  myr__buf_init(&head);
  int rc = myr__blob_decode(reg, blob, len, &scratch, &f, &model, &view, err);
  if (rc != MYR_OK)
    goto done;
  myr__buf_printf(&head,
                  "{\"family\":\"%s\",\"format_version\":%u,\"payload_version\":%u,"
                  "\"n_features\":%u,\"schema_hash\":\"%016llx\",\"blob_bytes\":%zu,"
                  "\"model\":",
                  f->name, view.format_version, view.payload_version, view.n_features,
                  (unsigned long long)view.schema_hash, len);
  if (head.failed) {
    rc = myr_error_set(err, MYR_ENOMEM, "out of memory describing a model");
    goto done;
  }
  rc = write(ud, head.data, head.len);
  if (rc == MYR_OK)
    rc = f->describe ? f->describe(model, write, ud) : write(ud, "null", 4);
  if (rc == MYR_OK)
    rc = write(ud, "}", 1);
  if (rc != MYR_OK)
    myr_error_set(err, rc, "writing the model description failed");
done:
  myr__buf_free(&head);
  myr__arena_free(&arena);
  return rc;
}
