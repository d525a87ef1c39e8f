/* SPDX-License-Identifier: Apache-2.0 */
/**
 * @file gen.h
 * @brief Synthetic per-group regression or classification data as CSV or Arrow IPC
 *        (`myriad gen`).
 *
 * Every row is a pure function of (seed, group index, row index within the group), so the
 * same options give byte-identical files whatever the thread count, and the rows of a
 * holdout split or a shuffled file are exactly the rows of the plain file, moved.
 * Each group has its own coefficients. The default shape is linear in the features plus a
 * small sin(f0) term and an f1*f2 interaction, so a linear model fits well but not
 * perfectly; other shapes (smooth, piecewise-constant, interactions) are made for
 * nonlinear models, and a classification task bins any shape's value into K classes.
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
/** Most classes with MYR_GEN_TASK_CLASSIFICATION. */
#define MYR_GEN_MAX_CLASSES 100

/** How rows are spread over groups. */
typedef enum myr_gen_skew {
  MYR_GEN_SKEW_NONE = 0, /**< every group has rows_per_group rows */
  MYR_GEN_SKEW_ZIPF = 1  /**< group sizes follow Zipf(zipf_s); the total stays exact */
} myr_gen_skew;

/** The function of the features behind the label (formulas at myr_gen_csv()). */
typedef enum myr_gen_shape {
  MYR_GEN_SHAPE_LINEAR = 0,      /**< linear plus small sin(f0) and f1*f2 terms */
  MYR_GEN_SHAPE_SMOOTH = 1,      /**< sums of sines, squares and cos(f_j + f_{j+1}) */
  MYR_GEN_SHAPE_PIECEWISE = 2,   /**< two random axis-aligned trees: a step function */
  MYR_GEN_SHAPE_INTERACTIONS = 3 /**< pairwise, three-way and sign (xor) interactions */
} myr_gen_shape;

/** What the label is. */
typedef enum myr_gen_task {
  MYR_GEN_TASK_REGRESSION = 0,    /**< the shape's value plus noise, five decimals */
  MYR_GEN_TASK_CLASSIFICATION = 1 /**< that value binned into classes 0..n_classes-1 */
} myr_gen_task;

/** The output format. */
typedef enum myr_gen_format {
  MYR_GEN_FORMAT_CSV = 0,          /**< CSV text with a header line */
  MYR_GEN_FORMAT_ARROW_FILE = 1,   /**< Arrow IPC file format (Feather v2) */
  MYR_GEN_FORMAT_ARROW_STREAM = 2  /**< Arrow IPC stream format */
} myr_gen_format;

/** Arrow IPC body compression (Arrow formats only). */
typedef enum myr_gen_compression {
  MYR_GEN_COMPRESSION_NONE = 0, /**< buffers as they are */
  MYR_GEN_COMPRESSION_LZ4 = 1,  /**< LZ4 frame per buffer */
  MYR_GEN_COMPRESSION_ZSTD = 2  /**< ZSTD per buffer */
} myr_gen_compression;

/**
 * What to generate. Either call myr_gen_options_init() (the CLI's defaults) or
 * zero-initialize; then set at least out (and n_groups when zero-initialized).
 * A zero field means its default, except where noted.
 */
typedef struct myr_gen_options {
  const char *out;         /* output path, "-" = stdout; required */
  const char *test_out;    /* holdout path (same format); NULL = myr_gen_test_path(out) */
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
  int shape;               /* myr_gen_shape; 0 = MYR_GEN_SHAPE_LINEAR */
  int task;                /* myr_gen_task; 0 = MYR_GEN_TASK_REGRESSION */
  unsigned n_classes;      /* classes with classification, 2..100; 0 = 2 (init: 2) */
  double flip;             /* classification: probability in [0, 1] that a row's class is
                              replaced by a uniformly drawn one (init: 0.05) */
  int format;              /* myr_gen_format of out and test_out; 0 = CSV */
  int compression;         /* myr_gen_compression, Arrow formats only; 0 = none */
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
 *        no shuffle, one thread per core, linear shape, regression (2 classes and flip
 *        0.05 if the task is set to classification). out stays NULL. Cannot fail.
 */
MYR_API void myr_gen_options_init(myr_gen_options *opt);

/**
 * @brief Generate the data set described by opt.
 *
 * Columns: the key columns (names from myr_gen_key_name()), f0..f{n-1}, then the label.
 * Features are uniform on the grid {-2, -1.99999, ..., 2} and written with exactly five
 * decimals; they do not depend on the shape or the task. For group g, with coefficients
 * drawn from an RNG seeded by (seed, g), the shape's value s(x) is (p = n_features,
 * N(m, v) a normal draw, U(a, b) a uniform one, +-U(a, b) one with a random sign):
 *
 *   linear:  s = b0 + sum_j b_j*f_j + a*sin(f0) + c*f1*f2
 *            b0 ~ N(0, 2^2), b_j ~ N(0,1), a ~ N(0,1); c (only with >= 3 features) is
 *            scaled so that the f1*f2 term's variance is 5-25% of the linear part's,
 *            which puts a per-group linear fit at R^2 of about 0.8-0.95 when noise is
 *            small.
 *   smooth:  s = b0 + sum_j 2^-j * [a_j*sin(w_j*f_j + phi_j) + q_j*f_j^2]
 *                   + sum_{j<p-1} 2^-j * c_j*cos(f_j + f_{j+1})
 *            b0 ~ N(0, 2^2), a_j ~ +-U(0.5, 2), w_j ~ U(0.5, 2), phi_j ~ U(-pi, pi),
 *            q_j ~ U(-1, 1), c_j ~ U(-1, 1): infinitely differentiable, and every
 *            |ds/df_j| <= 10, so |s(x) - s(x')| <= 10 * sum_j |x_j - x'_j|. The first
 *            features matter most (weights 2^-j).
 *   piecewise: s = b0 + T_1(x) + T_2(x), each T_t a full binary tree of depth 2 whose 3
 *            nodes test f_k <= t (k uniform over f0..f3, or all features when fewer,
 *            t ~ U(-1, 1)) and whose 4 leaves hold values ~ N(0, 2^2); b0 ~ N(0, 2^2).
 *            A step function with at most 16 distinct values per group: a tree-friendly
 *            target.
 *   interactions: with indices taken modulo p and sgn(v) = -1, 0, 1,
 *            s = b0 + sum_j 2^-j*b_j*f_j + c*(f0 - t0)*(f1 - t1) + d*f0*f1*f2
 *                   + e*sgn(f2)*sgn(f3)
 *            b0 ~ N(0, 2^2), b_j ~ N(0, 0.5^2), c ~ +-U(1, 2), d ~ +-U(0.3, 0.6),
 *            e ~ +-U(1, 2), t0, t1 ~ U(-1, 1): weak main effects (a linear fit per
 *            group reaches R^2 of about 0.2), a strong product, a three-way product and
 *            an xor-like sign term.
 *
 * Regression: y = s(x) + noise*N(0,1), written with five decimals.
 * Classification: the latent value v = s(x) + noise*N(0,1) (the regression label) is cut
 * at the group's K-1 quantiles of v, estimated from 256 seeded draws of x and of the
 * noise (so the K classes are about equally frequent), giving the class k in 0..K-1 (the
 * number of cut points below v); then with probability flip the class is replaced by one
 * drawn uniformly from 0..K-1 (label noise: flip * (K-1)/K of the rows change class). The
 * label is written as the integer k.
 *
 * Formats: CSV writes features and regression labels with exactly five decimals and
 * classes as integers. The Arrow formats (opt->format) hold the same rows in record
 * batches of up to 65536 rows (fewer with very many features): key columns as utf8,
 * features and the label as float64 equal to the double a correct parser reads from the
 * CSV text (classes as 0.0, 1.0, ...), all fields nullable though none is null, buffers
 * optionally LZ4- or ZSTD-compressed (opt->compression).
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
 * @brief The format a path's extension suggests: ".arrow", ".feather" and ".ipc" give
 *        MYR_GEN_FORMAT_ARROW_FILE, ".arrows" MYR_GEN_FORMAT_ARROW_STREAM, anything else
 *        (and "-" or NULL) MYR_GEN_FORMAT_CSV. Case-sensitive. Cannot fail.
 */
MYR_API int myr_gen_format_of_path(const char *path);

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
