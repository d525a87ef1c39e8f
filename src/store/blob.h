/* SPDX-License-Identifier: Apache-2.0 */
/* Internal side of the model blob codec (the public half is include/myriad/blob.h). */
#ifndef MYRIAD_STORE_BLOB_H
#define MYRIAD_STORE_BLOB_H

#include "core/arena.h"
#include "myriad/blob.h"

/* The table-driven CRC32C, used where the CPU has no CRC32C instruction (and by the
   tests, to check that both give the same answer). */
uint32_t myr__crc32c_portable(uint32_t crc, const void *data, size_t len);

/* Encode model as a v1 blob in a new block (free with myr__free). */
int myr__blob_encode(const myr_model_family *f, const void *model, size_t n_features,
                     uint64_t schema_hash, unsigned char **blob_out, size_t *len_out,
                     myr_error *err);

/* Parse blob, find its family in reg (NULL = built-ins) and decode the model from
   scratch memory. family_out and view_out may be NULL. */
int myr__blob_decode(const myr_registry *reg, const unsigned char *blob, size_t len,
                     const myr_scratch *scratch, const myr_model_family **family_out,
                     void **model_out, myr_blob_view *view_out, myr_error *err);

#endif /* MYRIAD_STORE_BLOB_H */
