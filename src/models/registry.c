/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Family registry: the built-in families (a static table) plus families a user adds
 * (plugins). A NULL registry means the built-ins alone, so callers that need no plugins
 * never allocate one. Names are unique within a registry.
 *
 * Plugins (docs/plugins.md): a library's families point into its code and data, so its
 * handle stays open until myr_registry_destroy() has dropped every family, and a plugin
 * whose register function fails is unloaded only after its families are removed again.
 */
#include <dlfcn.h>
#include <string.h>

#include "core/alloc.h"
#include "models/families.h"
#include "myriad/model.h"

static const myr_model_family *const builtins[] = {
    &myr__family_linear,
    &myr__family_forest,
};
#define N_BUILTINS (sizeof builtins / sizeof builtins[0])

struct myr_registry {
  const myr_model_family **added; /* families added by the user, borrowed */
  size_t n_added;
  size_t cap;
  void **plugins;     /* dlopen() handles in load order; closed by destroy, last first */
  size_t n_plugins;
  size_t plugins_cap;
};

/* The plugin entry point, MYR_PLUGIN_SYMBOL (model.h). */
typedef int (*plugin_register_fn)(uint32_t abi_version, myr_registry *reg,
                                  myr_error *err);

int myr_registry_create(myr_registry **out, myr_error *err) {
  *out = myr__calloc(1, sizeof **out);
  if (!*out)
    return myr_error_set(err, MYR_ENOMEM, "out of memory creating a model registry");
  return MYR_OK;
}

void myr_registry_destroy(myr_registry *reg) {
  if (!reg)
    return;
  /* Forget the families first: plugin families live in the libraries closed below. */
  myr__free(reg->added);
  reg->added = NULL;
  reg->n_added = 0;
  for (size_t i = reg->n_plugins; i-- > 0;)
    dlclose(reg->plugins[i]);
  myr__free(reg->plugins);
  myr__free(reg);
}

static int valid_name(const char *name) {
  size_t n = name ? strlen(name) : 0;
  if (n == 0 || n > MYR_FAMILY_NAME_MAX)
    return 0;
  for (size_t i = 0; i < n; i++) {
    char c = name[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
      return 0;
  }
  return 1;
}

int myr_registry_add(myr_registry *reg, const myr_model_family *f, myr_error *err) {
  if (!reg || !f)
    return myr_error_set(err, MYR_EINVAL, "no registry or family given");
  if (f->abi_version != MYR_MODEL_ABI_VERSION)
    return myr_error_set(err, MYR_EUNSUPPORTED,
                         "model family built for ABI version %u; this myriad speaks %u",
                         f->abi_version, MYR_MODEL_ABI_VERSION);
  if (!valid_name(f->name))
    return myr_error_set(err, MYR_EINVAL,
                         "model family name '%s' is invalid: use 1-%d characters of a-z, 0-9, _",
                         f->name ? f->name : "", MYR_FAMILY_NAME_MAX);
  if (!f->params_init || !f->params_set || !f->params_format || !f->fit || !f->predict ||
      !f->encoded_size || !f->encode || !f->decode)
    return myr_error_set(err, MYR_EINVAL, "model family '%s' lacks a required function",
                         f->name);
  if (myr_registry_find(reg, f->name))
    return myr_error_set(err, MYR_EINVAL, "a model family named '%s' is already registered",
                         f->name);
  if (reg->n_added == reg->cap) {
    size_t cap = reg->cap ? reg->cap * 2 : 4;
    const myr_model_family **p = myr__reallocarray(reg->added, cap, sizeof *p);
    if (!p)
      return myr_error_set(err, MYR_ENOMEM, "out of memory registering '%s'", f->name);
    reg->added = p;
    reg->cap = cap;
  }
  reg->added[reg->n_added++] = f;
  return MYR_OK;
}

size_t myr_registry_count(const myr_registry *reg) {
  return N_BUILTINS + (reg ? reg->n_added : 0);
}

const myr_model_family *myr_registry_at(const myr_registry *reg, size_t i) {
  if (i < N_BUILTINS)
    return builtins[i];
  i -= N_BUILTINS;
  return reg && i < reg->n_added ? reg->added[i] : NULL;
}

const myr_model_family *myr_registry_find(const myr_registry *reg, const char *name) {
  size_t n = myr_registry_count(reg);
  for (size_t i = 0; i < n; i++) {
    const myr_model_family *f = myr_registry_at(reg, i);
    if (strcmp(f->name, name) == 0)
      return f;
  }
  return NULL;
}

/*
 * Not thread-safe on one registry (it mutates it); dlerror() is per thread in glibc.
 * Loading a library this registry already loaded (by any path naming the same file:
 * dlopen() returns the same handle) is a no-op that returns MYR_OK.
 */
int myr_registry_load_plugin(myr_registry *reg, const char *path, myr_error *err) {
  if (!reg || !path || !*path)
    return myr_error_set(err, MYR_EINVAL, "no registry or plugin path given");
  /* Reserve the slot first: once the plugin's families are in, nothing can fail. */
  if (reg->n_plugins == reg->plugins_cap) {
    size_t cap = reg->plugins_cap ? reg->plugins_cap * 2 : 4;
    void **p = myr__reallocarray(reg->plugins, cap, sizeof *p);
    if (!p)
      return myr_error_set(err, MYR_ENOMEM, "out of memory loading plugin '%s'", path);
    reg->plugins = p;
    reg->plugins_cap = cap;
  }
  dlerror();
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char *why = dlerror();
    return myr_error_set(err, MYR_EIO, "cannot load plugin '%s': %s%s", path,
                         why ? why : "unknown dlopen error",
                         strchr(path, '/') ? ""
                                           : " (a path without '/' is looked up in the "
                                             "library search path, not the current "
                                             "directory: write ./NAME)");
  }
  for (size_t i = 0; i < reg->n_plugins; i++) {
    if (reg->plugins[i] == h) {
      dlclose(h); /* drop the reference this call added */
      return MYR_OK;
    }
  }
  dlerror();
  void *sym = dlsym(h, MYR_PLUGIN_SYMBOL);
  const char *why = dlerror();
  if (!sym || why) {
    int rc = myr_error_set(err, MYR_EINVAL,
                           "'%s' is not a myriad plugin: it does not export %s() (%s)",
                           path, MYR_PLUGIN_SYMBOL, why ? why : "symbol is NULL");
    dlclose(h);
    return rc;
  }
  plugin_register_fn reg_fn;
  memcpy(&reg_fn, &sym, sizeof reg_fn); /* object to function pointer, as POSIX allows */
  size_t before = reg->n_added;
  myr_error perr;
  myr_error_clear(&perr);
  int rc = reg_fn(MYR_MODEL_ABI_VERSION, reg, &perr);
  if (rc != MYR_OK) {
    /* Drop what it added before failing, then its code: nothing half-registered. */
    reg->n_added = before;
    dlclose(h);
    if (rc > 0)
      rc = MYR_EINVAL; /* a plugin returned a non-status; still a failure */
    return myr_error_set(err, rc, "plugin '%s' failed to register: %s", path,
                         perr.message[0] ? perr.message : myr_status_name(rc));
  }
  reg->plugins[reg->n_plugins++] = h;
  return MYR_OK;
}
