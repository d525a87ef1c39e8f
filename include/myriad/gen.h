/* SPDX-License-Identifier: Apache-2.0 */
/**
 * @file gen.h
 * @brief Synthetic per-group regression data as CSV (`myriad gen`).
 *
 * Every row is a pure function of (seed, group index, row index within the group), so the
 * same options give byte-identical files whatever the thread count, and the rows of a
 * holdout split or a shuffled file are exactly the rows of the plain file, moved.
 * Each group has its own coefficients; its label is linear in the features plus a small
 * sin(f0) term and an f1*f2 interaction, so a linear model fits well but not perfectly.
 *
 * Thread safety: myr_gen_csv() may run in several threads at once on different outputs.
 */
#ifndef MYRIAD_GEN_H
#define MYRIAD_GEN_H

#include <stddef.h>
#include <stdint.h>

#include "myriad/error.h"
#include "myriad/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Most feature columns (f0..f999). */
#define MYR_GEN_MAX_FEATURES 1000
/** Most key columns. */
#define MYR_GEN_MAX_KEY_COLUMNS 8
/** Largest accepted label noise standard deviation. */
#define MYR_GEN_MAX_NOISE 1e6

/** How rows are spread over groups. */
typedef enum myr_gen_skew {
  MYR_GEN_SKEW_NONE = 0, /**< every group has rows_per_group rows */
  MYR_GEN_SKEW_ZIPF = 1  /**< group sizes follow Zipf(zipf_s); the total stays exact */
} myr_gen_skew;

/**
 * What to generate. Either call myr_gen_options_init() (the CLI's defaults) or
 * zero-initialize; then set at least out (and n_groups when zero-initialized).
 * A zero field means its default, except where noted.
 */
typedef struct myr_gen_options {
  const char *out;         /* output CSV path, "-" = stdout; required */
  const char *test_out;    /* holdout CSV path; NULL = myr_gen_test_path(out) */
  uint64_t n_groups;       /* groups = distinct key tuples; required, >= 1 (init: 1000) */
  uint64_t rows_per_group; /* rows per group, the mean with Zipf; 0 = 100 */
  int skew;                /* myr_gen_skew; 0 = MYR_GEN_SKEW_NONE */
  double zipf_s;           /* Zipf exponent, > 0; 0 = 1.1 */
  size_t n_features;       /* feature columns f0..f{n-1}, <= 1000; 0 = 8 */
  double noise;            /* std dev of the Gaussian label noise, 0 = none (init: 0.1) */
  uint64_t seed;           /* everything random derives from it; default 0 */
  double holdout;          /* fraction of rows written to test_out, in [0, 1); 0 = none */
  size_t n_key_columns;    /* string key columns, <= 8 (app, api, host ...); 0 = 2 */
  const char *label;       /* label column name; NULL = "y" */
  int shuffle;             /* non-zero: all rows in one pseudo-random order */
  unsigned n_threads;      /* generating threads; 0 = one per core */
} myr_gen_options;

/** What was written. */
typedef struct myr_gen_summary {
  uint64_t n_groups;       /* groups generated */
  size_t n_features;       /* feature columns */
  size_t n_key_columns;    /* key columns */
  uint64_t rows_total;     /* rows generated: rows_train + rows_test */
  uint64_t rows_train;     /* data rows in out */
  uint64_t rows_test;      /* data rows in the holdout file */
  uint64_t bytes_train;    /* bytes written to out, header included */
  uint64_t bytes_test;     /* bytes written to the holdout file, header included */
  uint64_t min_group_rows; /* smallest group, before the holdout split */
  uint64_t max_group_rows; /* largest group, before the holdout split */
  unsigned n_threads;      /* threads used */
  double seconds;          /* wall time */
} myr_gen_summary;

/**
 * @brief Fill opt with the defaults `myriad gen` uses: 1000 groups x 100 rows, no skew,
 *        zipf_s 1.1, 8 features, noise 0.1, seed 0, no holdout, 2 key columns, label "y",
 *        no shuffle, one thread per core. out stays NULL. Cannot fail.
 */
MYR_API void myr_gen_options_init(myr_gen_options *opt);

/**
 * @brief Generate the data set described by opt.
 *
 * Columns: the key columns (names from myr_gen_key_name()), f0..f{n-1}, then the label.
 * Features are uniform on the grid {-2, -1.99999, ..., 2} and written with exactly five
 * decimals; the label is written with five decimals. For group g, with coefficients
 * drawn from an RNG seeded by (seed, g):
 *
 *     y = b0 + sum_j b_j*f_j + a*sin(f0) + c*f1*f2 + noise*N(0,1)
 *
 * b0 ~ N(0, 2^2), b_j ~ N(0,1), a ~ N(0,1); c (only with >= 3 features) is scaled so that
 * the f1*f2 term's variance is 5-25% of the linear part's, which puts a per-group linear
 * fit at R^2 of about 0.8-0.95 when noise is small.
 *
 * Rows of a group are contiguous and groups come in key order, unless opt->shuffle asks
 * for a pseudo-random permutation of all rows (a keyed Feistel permutation: no row is held
 * in memory). Each row goes to the holdout file when its own deterministic draw is below
 * opt->holdout. Memory is O(groups) with Zipf or shuffle, plus a few MiB per thread.
 *
 * @param[in] opt options; borrowed for the call.
 * @param[out] summary_out counts and timing (may be NULL); zeroed on failure.
 * @return MYR_OK; MYR_EINVAL for a bad option (the message names it); MYR_EIO when a
 *         file cannot be opened or written (named, with the system's reason; a partly
 *         written file is removed); MYR_ENOMEM.
 */
MYR_API int myr_gen_csv(const myr_gen_options *opt, myr_gen_summary *summary_out,
                        myr_error *err);

/**
 * @brief The default holdout path for out: ".test" before the extension of the last path
 *        component ("data.csv" -> "data.test.csv", "data" -> "data.test").
 * @param[out] buf receives the NUL-terminated path, cut to cap - 1 bytes (may be NULL when
 *        cap is 0).
 * @return the length of the whole path (like snprintf): the result was cut when >= cap.
 */
MYR_API size_t myr_gen_test_path(const char *out, char *buf, size_t cap);

/**
 * @brief Name of key column k (0 = "app", 1 = "api", 2 = "host", 3 = "region", 4 =
 *        "zone", 5 = "tenant", 6 = "device", 7 = "metric"); NULL when k >= 8.
 *        The returned string is static.
 */
MYR_API const char *myr_gen_key_name(size_t k);

#ifdef __cplusplus
}
#endif
#endif /* MYRIAD_GEN_H */
