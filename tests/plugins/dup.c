/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A plugin whose registration fails half-way: it adds a valid family `halfway`, then a
 * family named `linear`, which is built in, and returns that error. The loader must
 * remove `halfway` again and unload the library.
 */
#include <stdint.h>

#include "myriad/model.h"

/* Stubs: never called, the families only need to pass myr_registry_add's checks. */
static void params_init(void *p) {
  (void)p;
}
static int params_set(void *p, const char *k, const char *v, myr_error *err) {
  (void)p;
  (void)v;
  return myr_error_set(err, MYR_EINVAL, "dup: unknown parameter '%s'", k);
}
static void params_format(const void *p, char *out, size_t cap) {
  (void)p;
  if (cap)
    out[0] = '\0';
}
static int fit(const void *p, const myr_dataset *d, uint64_t seed, const myr_scratch *s,
               void **out, myr_error *err) {
  (void)p;
  (void)d;
  (void)seed;
  (void)s;
  (void)out;
  return myr_error_set(err, MYR_EMODEL, "dup: cannot fit");
}
static int predict(const void *m, const double *x, size_t n, size_t p, double *out,
                   myr_error *err) {
  (void)m;
  (void)x;
  (void)n;
  (void)p;
  (void)out;
  return myr_error_set(err, MYR_EMODEL, "dup: cannot predict");
}
static size_t encoded_size(const void *m) {
  (void)m;
  return 0;
}
static int encode(const void *m, unsigned char *out, size_t len, myr_error *err) {
  (void)m;
  (void)out;
  (void)len;
  return myr_error_set(err, MYR_EMODEL, "dup: cannot encode");
}
static int decode(const unsigned char *b, size_t len, uint32_t v, size_t p,
                  const myr_scratch *s, void **out, myr_error *err) {
  (void)b;
  (void)len;
  (void)v;
  (void)p;
  (void)s;
  (void)out;
  return myr_error_set(err, MYR_EMODEL, "dup: cannot decode");
}

#define DUP_FAMILY(fname)                                                                \
  {                                                                                      \
    .abi_version = MYR_MODEL_ABI_VERSION, .name = fname, .summary = "test stub",         \
    .payload_version = 1, .task = MYR_TASK_REGRESSION, .params_size = 1,                 \
    .params_init = params_init, .params_set = params_set,                                \
    .params_format = params_format, .fit = fit, .predict = predict,                      \
    .encoded_size = encoded_size, .encode = encode, .decode = decode,                    \
  }

static const myr_model_family halfway = DUP_FAMILY("halfway");
static const myr_model_family clash = DUP_FAMILY("linear");

MYR_API int myr_plugin_register(uint32_t abi_version, myr_registry *reg, myr_error *err);

MYR_API int myr_plugin_register(uint32_t abi_version, myr_registry *reg, myr_error *err) {
  if (abi_version != MYR_MODEL_ABI_VERSION)
    return myr_error_set(err, MYR_EUNSUPPORTED, "dup plugin: ABI %u unsupported",
                         abi_version);
  MYR_RETURN_NOT_OK(myr_registry_add(reg, &halfway, err));
  return myr_registry_add(reg, &clash, err);
}
