/* SPDX-License-Identifier: Apache-2.0 */
/**
 * @file blob.h
 * @brief Model blob format v1: fixed header, family payload, CRC32C.
 *
 * Layout (little-endian, docs/internals/model-format.md):
 *   0  4  magic "MYRB"         24  4  family payload version
 *   4  2  format version (1)   28  4  feature count
 *   6  2  header size (48)     32  8  feature schema hash
 *   8 16  family name, NUL-padded 40 8 payload length
 *  48  n  payload              48+n 4 CRC32C of bytes [0, 48+n)
 * A blob read from storage is untrusted: myr_blob_parse checks every field.
 */
#ifndef MYRIAD_BLOB_H
#define MYRIAD_BLOB_H

#include <stddef.h>
#include <stdint.h>

#include "myriad/error.h"
#include "myriad/export.h"
#include "myriad/model.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MYR_BLOB_MAGIC "MYRB"
#define MYR_BLOB_FORMAT_VERSION 1u
#define MYR_BLOB_HEADER_SIZE 48u
#define MYR_BLOB_TRAILER_SIZE 4u

/** A parsed blob header; payload points into the caller's blob. */
typedef struct myr_blob_view {
  uint16_t format_version;
  char family[MYR_FAMILY_NAME_MAX + 1]; /* NUL-terminated */
  uint32_t payload_version;
  uint32_t n_features;
  uint64_t schema_hash;
  const unsigned char *payload;
  size_t payload_len;
} myr_blob_view;

/** @brief Validate magic, version, sizes and CRC of blob[0..len). */
MYR_API int myr_blob_parse(const unsigned char *blob, size_t len, myr_blob_view *out,
                           myr_error *err);

/** @brief Stable hash of the ordered feature names, stored in each blob's header. */
MYR_API uint64_t myr_feature_schema_hash(const char *const *names, size_t n);

/** @brief CRC32C (Castagnoli) of data, starting from crc (0 for a fresh checksum). */
MYR_API uint32_t myr_crc32c(uint32_t crc, const void *data, size_t len);

/**
 * @brief Decode blob with the family it names (looked up in reg, NULL = built-ins) and
 * write {"family":..,"payload_version":..,"n_features":..,"model":{...}} to write().
 */
MYR_API int myr_blob_describe(const myr_registry *reg, const unsigned char *blob,
                              size_t len, myr_write_fn write, void *ud, myr_error *err);

#ifdef __cplusplus
}
#endif
#endif /* MYRIAD_BLOB_H */
