/* SPDX-License-Identifier: Apache-2.0 */
/**
 * @file model.h
 * @brief The model family interface (versioned vtable) and the family registry.
 *
 * A model family (linear, forest, a user's plugin ...) is one const myr_model_family: plain
 * C function pointers over opaque params and model objects. The engine owns all memory a
 * family uses: fit and decode allocate only from the myr_scratch they are given, which the
 * engine resets after each model, so a family never frees anything and a million fits do
 * not mean a million malloc/free pairs.
 *
 * ABI rules: MYR_MODEL_ABI_VERSION changes when this struct changes incompatibly; a family
 * built for another version is refused. New optional members are only ever appended.
 * Thread safety: every function may be called from many threads at once on different
 * objects; fitted models are immutable, so predict may share one model across threads.
 */
#ifndef MYRIAD_MODEL_H
#define MYRIAD_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "myriad/error.h"
#include "myriad/export.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MYR_MODEL_ABI_VERSION 1u

/** Longest family name, without the NUL (it must fit the blob header's 16-byte field). */
#define MYR_FAMILY_NAME_MAX 15

/** What a family's predictions mean. */
typedef enum myr_task {
  MYR_TASK_REGRESSION = 1,     /**< one real value per row */
  MYR_TASK_CLASSIFICATION = 2, /**< per-class probabilities per row */
  MYR_TASK_ANOMALY = 3,        /**< one anomaly score per row */
} myr_task;

/** Scratch memory: lives until the engine resets it; blocks are never freed one by one. */
typedef struct myr_scratch {
  void *(*alloc)(void *ud, size_t size, size_t align); /* NULL when out of memory */
  void *ud;                                            /* the engine's arena */
} myr_scratch;

/** One group's training data, borrowed for the duration of fit. */
typedef struct myr_dataset {
  size_t n_rows;     /* rows in this group (>= 1) */
  size_t n_features; /* columns of x */
  const double *x;   /* row-major n_rows * n_features, all finite */
  const double *y;   /* n_rows labels, all finite */
} myr_dataset;

/** Writer callback handed to describe(); returns MYR_OK or a failure to stop. */
typedef int (*myr_write_fn)(void *ud, const char *bytes, size_t len);

/** A model family. Instances are static and immutable. */
typedef struct myr_model_family {
  uint32_t abi_version;     /* MYR_MODEL_ABI_VERSION */
  const char *name;         /* [a-z0-9_], 1..MYR_FAMILY_NAME_MAX chars */
  const char *summary;      /* one line for --help listings */
  uint32_t payload_version; /* bumped whenever the encoded payload layout changes */
  myr_task task;
  size_t params_size; /* bytes of the family's params struct (engine-allocated) */

  /** Fill params with the family's defaults. Cannot fail. */
  void (*params_init)(void *params);
  /** Set one parameter from text; errors name the key and the accepted values. */
  int (*params_set)(void *params, const char *key, const char *value, myr_error *err);
  /** Write the canonical "k=v,k=v" form of params (NUL-terminated, cut at cap). */
  void (*params_format)(const void *params, char *out, size_t cap);
  /** Fewest rows a group needs with n_features features (NULL: 1). */
  size_t (*min_rows)(const void *params, size_t n_features);

  /**
   * Fit one model. seed is the per-key seed (run seed mixed with the key hash): the same
   * data and seed must give the same model, byte for byte. The model is allocated from
   * scratch. Failures (singular system, ...) return MYR_EMODEL with a reason in err.
   */
  int (*fit)(const void *params, const myr_dataset *data, uint64_t seed,
             const myr_scratch *scratch, void **model_out, myr_error *err);
  /**
   * Number of outputs per row predict writes (NULL: 1). Classifiers write one
   * probability per class, in the order of class_values().
   */
  size_t (*n_outputs)(const void *model);
  /** Predict n_rows rows of x (row-major) into out (n_rows * n_outputs). */
  int (*predict)(const void *model, const double *x, size_t n_rows, size_t n_features,
                 double *out, myr_error *err);
  /** Exact number of bytes encode() writes. */
  size_t (*encoded_size)(const void *model);
  /** Encode the payload into out[0..len), len == encoded_size(model). Little-endian. */
  int (*encode)(const void *model, unsigned char *out, size_t len, myr_error *err);
  /**
   * Decode a payload of a blob whose header was already validated. The payload is
   * untrusted: every length and count must be checked. Allocates from scratch.
   */
  int (*decode)(const unsigned char *payload, size_t len, uint32_t payload_version,
                size_t n_features, const myr_scratch *scratch, void **model_out,
                myr_error *err);
  /** Write the model as one JSON object (coefficients, trees ...); NULL if none. */
  int (*describe)(const void *model, myr_write_fn write, void *ud);
  /**
   * Classifiers: the label value of each output column (NULL for other tasks). Labels
   * are numbers; a classifier's classes are the distinct label values of its group,
   * ascending, as scikit-learn's classes_.
   */
  const double *(*class_values)(const void *model);
} myr_model_family;

/** A set of families: the built-ins plus any the user adds. */
typedef struct myr_registry myr_registry;

/** @brief Create a registry holding the built-in families. Free with myr_registry_destroy. */
MYR_API int myr_registry_create(myr_registry **out, myr_error *err);
/** @brief Free a registry; accepts NULL. Families added stay owned by their callers. */
MYR_API void myr_registry_destroy(myr_registry *reg);
/** @brief Add a family (borrowed: it must outlive the registry). Rejects bad ABI/names. */
MYR_API int myr_registry_add(myr_registry *reg, const myr_model_family *family,
                             myr_error *err);
/** @brief Find a family by name; NULL reg means the built-ins. NULL when absent. */
MYR_API const myr_model_family *myr_registry_find(const myr_registry *reg, const char *name);
/** @brief The i-th family (i < count) for listings; NULL reg means the built-ins. */
MYR_API size_t myr_registry_count(const myr_registry *reg);
MYR_API const myr_model_family *myr_registry_at(const myr_registry *reg, size_t i);

/**
 * @brief Load a plugin shared library and add the families it provides.
 *
 * The library must export `int myr_plugin_register(uint32_t abi_version,
 * myr_registry *reg, myr_error *err)`, which checks abi_version against the
 * MYR_MODEL_ABI_VERSION it was built with and calls myr_registry_add() for each family
 * (see docs/plugins.md). The library stays loaded until the registry is destroyed.
 */
MYR_API int myr_registry_load_plugin(myr_registry *reg, const char *path, myr_error *err);

/** Name of the function a plugin exports. */
#define MYR_PLUGIN_SYMBOL "myr_plugin_register"

#ifdef __cplusplus
}
#endif
#endif /* MYRIAD_MODEL_H */
