/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target: model blobs from storage are untrusted. Parses, decodes with the built-in
 * families and describes arbitrary bytes; a decoded model must also predict without
 * reading out of bounds. A whole blob carries a CRC, which random mutations almost never
 * keep, so every input is also handed to each built-in family's payload decoder
 * directly: its first byte is the feature count, the rest the payload. Every input goes
 * through both paths.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "models/families.h"
#include "store/blob.h"

static int discard(void *ud, const char *b, size_t n) {
  (void)ud;
  (void)b;
  (void)n;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* Copy to an exact-size block so a sanitizer sees any overread. */
  unsigned char *blob = malloc(size ? size : 1);
  if (!blob)
    return 0;
  memcpy(blob, data, size);
  myr__arena a;
  myr__arena_init(&a, 0);
  myr_scratch s = myr__arena_scratch(&a);
  const myr_model_family *f = NULL;
  void *m = NULL;
  myr_blob_view v;
  if (myr__blob_decode(NULL, blob, size, &s, &f, &m, &v, NULL) == MYR_OK) {
    if (v.n_features <= 4096) {
      double *x = calloc(v.n_features ? v.n_features : 1, sizeof *x);
      double out[64];
      size_t n_out = f->n_outputs ? f->n_outputs(m) : 1;
      if (x && n_out <= 64)
        f->predict(m, x, 1, v.n_features, out, NULL);
      free(x);
    }
    myr_blob_describe(NULL, blob, size, discard, NULL, NULL);
  }
  myr__arena_free(&a);
  free(blob);
  if (size < 1)
    return 0;
  static const myr_model_family *const families[] = {&myr__family_forest,
                                                     &myr__family_linear};
  size_t p = data[0];
  for (size_t i = 0; i < sizeof families / sizeof families[0]; i++) {
    unsigned char *payload = malloc(size - 1 ? size - 1 : 1);
    if (!payload)
      return 0;
    memcpy(payload, data + 1, size - 1);
    myr__arena_init(&a, 0);
    s = myr__arena_scratch(&a);
    f = families[i];
    if (f->decode(payload, size - 1, f->payload_version, p, &s, &m, NULL) == MYR_OK) {
      double x[256] = {0}, out[64];
      size_t n_out = f->n_outputs ? f->n_outputs(m) : 1;
      if (n_out <= 64)
        f->predict(m, x, 1, p, out, NULL);
      if (f->describe)
        f->describe(m, discard, NULL);
    }
    myr__arena_free(&a);
    free(payload);
  }
  return 0;
}
