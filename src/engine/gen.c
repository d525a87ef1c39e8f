/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Synthetic data generator behind `myriad gen`. DESIGN: the output is a sequence of
 * n_rows positions; position p holds row (g, i) of group g. Each row is a pure function of
 * (seed, g, i): its own RNG is seeded from the group seed and i, and the group's
 * coefficients from the group seed alone. So chunks of positions are generated on a thread
 * pool in any order and written in order (double-buffered: batch k is written while batch
 * k+1 is generated), a holdout split only routes rows, and --shuffle only maps positions
 * through a keyed Feistel permutation of [0, n_rows) (cycle walking), holding no rows.
 * Numbers are formatted with integer arithmetic (fixed five decimals), never printf.
 * Arrow output: a chunk is one record batch, built in its slot's column builders (keys
 * utf8; features and label float64, each the double the CSV text parses to), written as
 * a borrowed view and then cleared, so the slots' memory is reused batch after batch.
 * The features of a row never depend on the shape or the task, and the linear shape's
 * regression label is computed in exactly the historical operation order: files written
 * before shapes and classes existed stay byte-identical. Draws a shape or task adds come
 * after the historical ones of the same RNG, or from RNGs of their own.
 */
#include "myriad/gen.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "core/hash.h"
#include "core/text.h"
#include "core/pool.h"
#include "io/arrow.h"

#define COEF_HEAD 3                    /* b0, a, c; then b_j */
#define GRID_HALF 200000               /* features are k * 1e-5, |k| <= GRID_HALF */
#define CHUNK_BYTES (512u * 1024u)     /* target output bytes per chunk */
#define COEF_CACHE_MAX (256u << 20)    /* shuffle caches coefficients up to this size */
#define MAX_ROWS (UINT64_C(1) << 50)   /* most rows in one data set */
#define LABEL_MAX 256                  /* longest label name */
#define KEY_FIELD_MAX 48               /* longest key value plus its ',' */
#define PREFETCH_AHEAD 8               /* shuffle: rows between prefetch and use */
#define PIECE_TREES 2                  /* piecewise: trees summed */
#define PIECE_NODES 3                  /* internal nodes of a depth-2 tree, heap order */
#define PIECE_LEAVES 4                 /* leaves of a depth-2 tree */
#define PIECE_ACTIVE 4                 /* piecewise: nodes test f0..f3 only */
#define PIECE_STRIDE (2 * PIECE_NODES + PIECE_LEAVES) /* features, thresholds, leaves */
#define QUANTILE_DRAWS 256             /* classification: draws behind the cut points */
#define PI 3.14159265358979323846
#define ARROW_BATCH_ROWS 65536         /* rows per Arrow record batch, at most ... */
#define ARROW_BATCH_BYTES (64u << 20)  /* ... and about this many bytes */
#define ARROW_SLOTS_BYTES (256u << 20) /* Arrow: bytes of batches under construction */

static const char *const key_names[MYR_GEN_MAX_KEY_COLUMNS] = {
    "app", "api", "host", "region", "zone", "tenant", "device", "metric"};
static const char *const key_prefix[MYR_GEN_MAX_KEY_COLUMNS] = {
    "app-", "/api/v1/ep-", "host-", "region-", "zone-", "tenant-", "device-", "metric-"};

static const char digits2[201] = "00010203040506070809101112131415161718192021222324"
                                 "25262728293031323334353637383940414243444546474849"
                                 "50515253545556575859606162636465666768697071727374"
                                 "75767778798081828384858687888990919293949596979899";

typedef struct gen_buf {
  char *data; /* owned */
  size_t len; /* bytes used */
  size_t cap; /* bytes allocated */
} gen_buf;

typedef struct gen_slot {
  gen_buf train;       /* rows for out */
  gen_buf test;        /* rows for the holdout file */
  uint64_t rows_test;  /* rows of this chunk in test */
  uint64_t rows;       /* rows of this chunk */
  myr__arrow_builder *atrain; /* Arrow output: rows for out (instead of train) */
  myr__arrow_builder *atest;  /* Arrow output: rows for the holdout file */
} gen_slot;

/* Everything the workers read; written only while no job runs. */
typedef struct gen_plan {
  uint64_t seed_mixed;     /* group seeds derive from it */
  uint64_t n_groups;
  uint64_t rows_per_group; /* without Zipf */
  uint64_t n_rows;         /* all rows, test included */
  uint64_t *start;         /* Zipf: n_groups + 1 first positions of each group; else NULL */
  size_t n_features;
  size_t n_keys;
  uint64_t radix;          /* every key column is one digit of g in this radix */
  unsigned width;          /* zero-padded digits of a key value */
  double noise;
  int shape;               /* myr_gen_shape */
  int classify;            /* non-zero: labels are classes 0..n_classes-1 */
  unsigned n_classes;      /* classes, with classify */
  uint64_t flip_thr;       /* classify: redraw a class when a 53-bit draw is below */
  size_t n_shape;          /* shape coefficients at the start of a group's block */
  int holdout;             /* whether there is a test file */
  uint64_t holdout_thr;    /* a row is test when its 53-bit draw is below this */
  int shuffle;
  unsigned perm_bits;      /* Feistel domain: [0, 2^perm_bits) holds [0, n_rows) */
  uint64_t perm_keys[4];   /* round keys */
  double *coef;            /* shuffle: n_groups x stride cached coefficients, or NULL */
  size_t stride;           /* n_shape shape coefficients, then n_classes - 1 cuts */
  double *scratch;         /* n_threads x work scratch: coefficients, features, draws */
  size_t work;             /* doubles of scratch per thread: stride + p + draws */
  uint64_t chunk_rows;     /* positions per chunk */
  uint64_t n_chunks;
  size_t max_row;          /* bound on the bytes of one row */
  int arrow;               /* rows go to the slots' Arrow builders, not to text */
  uint64_t batch_first;    /* first chunk of the running batch */
  gen_slot *batch_slots;   /* its slots */
} gen_plan;

/* ---- formatting ---------------------------------------------------------------- */

static char *put_u64(char *p, uint64_t v) {
  char tmp[20];
  char *end = tmp + sizeof tmp, *q = end;
  while (v >= 100) {
    unsigned r = (unsigned)(v % 100);
    v /= 100;
    q -= 2;
    memcpy(q, digits2 + 2 * r, 2);
  }
  if (v >= 10) {
    q -= 2;
    memcpy(q, digits2 + 2 * v, 2);
  } else {
    *--q = (char)('0' + v);
  }
  memcpy(p, q, (size_t)(end - q));
  return p + (end - q);
}

static unsigned count_digits(uint64_t v) {
  unsigned n = 1;
  while (v >= 10) {
    v /= 10;
    n++;
  }
  return n;
}

static char *put_u64_padded(char *p, uint64_t v, unsigned width) {
  for (unsigned n = count_digits(v); n < width; n++)
    *p++ = '0';
  return put_u64(p, v);
}

/* v / 100000 with exactly five decimals: -123456 -> "-1.23456". */
static char *put_fixed5(char *p, int64_t v) {
  uint64_t u = (uint64_t)v;
  if (v < 0) {
    *p++ = '-';
    u = (uint64_t)0 - u;
  }
  uint64_t ip = u / 100000;
  unsigned fp = (unsigned)(u - ip * 100000);
  if (ip < 10)
    *p++ = (char)('0' + ip);
  else
    p = put_u64(p, ip);
  *p++ = '.';
  unsigned d = fp / 10000, rest = fp - d * 10000;
  p[0] = (char)('0' + d);
  memcpy(p + 1, digits2 + 2 * (rest / 100), 2);
  memcpy(p + 3, digits2 + 2 * (rest % 100), 2);
  return p + 5;
}

static char *put_double5(char *p, double y) {
  double v = y * 1e5;
  if (fabs(v) < 9.0e18)
    return put_fixed5(p, (int64_t)(v < 0 ? v - 0.5 : v + 0.5));
  /* Unreachable with the noise limit; kept so no value can overflow the formatter. */
  return p + snprintf(p, 32, "%.6e", y);
}

/* ---- rows ------------------------------------------------------------------------ */

static uint64_t group_seed(const gen_plan *pl, uint64_t g) {
  return myr__mix64(pl->seed_mixed ^ (g * 0x9e3779b97f4a7c15ULL));
}

static uint64_t row_seed(uint64_t gseed, uint64_t i) {
  return myr__mix64(gseed ^ myr__mix64(i ^ 0x726f772d73656564ULL));
}

/* Random sign times U(lo, hi). */
static double signed_uniform(myr__rng *r, double lo, double hi) {
  double v = lo + (hi - lo) * myr__rng_double(r);
  return (myr__rng_next(r) & 1) ? v : -v;
}

static double uniform(myr__rng *r, double lo, double hi) {
  return lo + (hi - lo) * myr__rng_double(r);
}

static double sgn(double v) {
  return (double)((v > 0) - (v < 0));
}

/* Linear shape: coef = b0, a, c, b_0 .. b_{n-1}. The draw order is part of the output
   format. */
static void coef_linear(const gen_plan *pl, uint64_t g, double *coef) {
  myr__rng r;
  myr__rng_seed(&r, group_seed(pl, g));
  double *b = coef + COEF_HEAD, lin = 0;
  coef[0] = 2.0 * myr__rng_normal(&r);
  for (size_t j = 0; j < pl->n_features; j++) {
    b[j] = myr__rng_normal(&r);
    lin += b[j] * b[j];
  }
  coef[1] = myr__rng_normal(&r);
  double frac = 0.05 + 0.20 * myr__rng_double(&r);
  double sign = (myr__rng_next(&r) & 1) ? 1.0 : -1.0;
  /* Var(f_j) = 4/3 and Var(f1*f2) = 16/9: c*f1*f2 carries frac of the linear variance. */
  coef[2] = pl->n_features >= 3 ? sign * 0.75 * sqrt(frac * lin * (4.0 / 3.0)) : 0.0;
}

/* Smooth: coef = b0, then per feature a_j, w_j, phi_j, q_j, c_j (c_{p-1} = 0). Feature
   j's terms are scaled by 2^-j: the first features matter most, as in real data. */
static void coef_smooth(const gen_plan *pl, myr__rng *r, double *coef) {
  size_t p = pl->n_features;
  double scale = 1.0;
  coef[0] = 2.0 * myr__rng_normal(r);
  for (size_t j = 0; j < p; j++, scale *= 0.5) {
    double *t = coef + 1 + 5 * j;
    t[0] = scale * signed_uniform(r, 0.5, 2.0);
    t[1] = uniform(r, 0.5, 2.0);
    t[2] = uniform(r, -PI, PI);
    t[3] = scale * uniform(r, -1.0, 1.0);
    t[4] = j + 1 < p ? scale * uniform(r, -1.0, 1.0) : 0.0;
  }
}

/* Piecewise: coef = b0, then per tree PIECE_NODES node features (as doubles), as many
   thresholds and PIECE_LEAVES leaf values. */
static void coef_piecewise(const gen_plan *pl, myr__rng *r, double *coef) {
  uint64_t active = pl->n_features < PIECE_ACTIVE ? pl->n_features : PIECE_ACTIVE;
  coef[0] = 2.0 * myr__rng_normal(r);
  for (int t = 0; t < PIECE_TREES; t++) {
    double *tree = coef + 1 + t * PIECE_STRIDE;
    for (int k = 0; k < PIECE_NODES; k++) {
      tree[k] = (double)myr__rng_below(r, active);
      tree[PIECE_NODES + k] = uniform(r, -1.0, 1.0);
    }
    for (int k = 0; k < PIECE_LEAVES; k++)
      tree[2 * PIECE_NODES + k] = 2.0 * myr__rng_normal(r);
  }
}

/* Interactions: coef = b0, c, d, e, t0, t1, then b_0 .. b_{p-1} (scaled by 2^-j). */
static void coef_interactions(const gen_plan *pl, myr__rng *r, double *coef) {
  double scale = 0.5;
  coef[0] = 2.0 * myr__rng_normal(r);
  coef[1] = signed_uniform(r, 1.0, 2.0);
  coef[2] = signed_uniform(r, 0.3, 0.6);
  coef[3] = signed_uniform(r, 1.0, 2.0);
  coef[4] = uniform(r, -1.0, 1.0);
  coef[5] = uniform(r, -1.0, 1.0);
  for (size_t j = 0; j < pl->n_features; j++, scale *= 0.5)
    coef[6 + j] = scale * myr__rng_normal(r);
}

static size_t shape_coef_count(int shape, size_t p) {
  switch (shape) {
  case MYR_GEN_SHAPE_SMOOTH: return 1 + 5 * p;
  case MYR_GEN_SHAPE_PIECEWISE: return 1 + PIECE_TREES * PIECE_STRIDE;
  case MYR_GEN_SHAPE_INTERACTIONS: return 6 + p;
  default: return COEF_HEAD + p;
  }
}

/* The shape's value s(x) at features x[0..p-1] (formulas in gen.h). The linear shape
   here must stay in emit_row's operation order. */
static double shape_value(const gen_plan *pl, const double *coef, const double *x) {
  size_t p = pl->n_features;
  double y = coef[0];
  switch (pl->shape) {
  case MYR_GEN_SHAPE_SMOOTH:
    for (size_t j = 0; j < p; j++) {
      const double *t = coef + 1 + 5 * j;
      y += t[0] * sin(t[1] * x[j] + t[2]) + t[3] * x[j] * x[j];
    }
    for (size_t j = 0; j + 1 < p; j++)
      y += coef[1 + 5 * j + 4] * cos(x[j] + x[j + 1]);
    return y;
  case MYR_GEN_SHAPE_PIECEWISE:
    for (int t = 0; t < PIECE_TREES; t++) {
      const double *tree = coef + 1 + t * PIECE_STRIDE;
      int k = 0;
      while (k < PIECE_NODES)
        k = x[(size_t)tree[k]] <= tree[PIECE_NODES + k] ? 2 * k + 1 : 2 * k + 2;
      y += tree[2 * PIECE_NODES + (k - PIECE_NODES)];
    }
    return y;
  case MYR_GEN_SHAPE_INTERACTIONS: {
    double x0 = x[0], x1 = x[1 % p], x2 = x[2 % p], x3 = x[3 % p];
    for (size_t j = 0; j < p; j++)
      y += coef[6 + j] * x[j];
    y += coef[1] * (x0 - coef[4]) * (x1 - coef[5]);
    y += coef[2] * x0 * x1 * x2;
    y += coef[3] * sgn(x2) * sgn(x3);
    return y;
  }
  default: {
    const double *beta = coef + COEF_HEAD;
    for (size_t j = 0; j < p; j++)
      y += beta[j] * x[j];
    double x1 = p > 1 ? x[1] : 0, x2 = p > 2 ? x[2] : 0;
    return y + (coef[1] * sin(x[0]) + coef[2] * x1 * x2);
  }
  }
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* The group's coefficients into coef[0..stride): the shape's, then for classification
   the n_classes - 1 cut points, midpoints between order statistics of QUANTILE_DRAWS
   latent values at x uniform on [-2, 2]^p (draws from an RNG of their own). work holds
   p + QUANTILE_DRAWS doubles (unused for regression). */
static void group_coef(const gen_plan *pl, uint64_t g, double *coef, double *work) {
  uint64_t gseed = group_seed(pl, g);
  myr__rng r;
  if (pl->shape == MYR_GEN_SHAPE_LINEAR) {
    coef_linear(pl, g, coef);
  } else {
    myr__rng_seed(&r, myr__mix64(gseed ^ (0x7368617065ULL + (uint64_t)pl->shape)));
    if (pl->shape == MYR_GEN_SHAPE_SMOOTH)
      coef_smooth(pl, &r, coef);
    else if (pl->shape == MYR_GEN_SHAPE_PIECEWISE)
      coef_piecewise(pl, &r, coef);
    else
      coef_interactions(pl, &r, coef);
  }
  if (!pl->classify)
    return;
  double *x = work, *v = work + pl->n_features;
  myr__rng_seed(&r, myr__mix64(gseed ^ 0x7175616e74696c65ULL));
  for (size_t i = 0; i < QUANTILE_DRAWS; i++) {
    for (size_t j = 0; j < pl->n_features; j++)
      x[j] = 4.0 * myr__rng_double(&r) - 2.0;
    v[i] = shape_value(pl, coef, x) + pl->noise * myr__rng_normal(&r);
  }
  qsort(v, QUANTILE_DRAWS, sizeof *v, cmp_double);
  double *cut = coef + pl->n_shape;
  for (unsigned k = 1; k < pl->n_classes; k++) {
    size_t i = (size_t)k * QUANTILE_DRAWS / pl->n_classes; /* 1 <= i < QUANTILE_DRAWS */
    cut[k - 1] = 0.5 * (v[i - 1] + v[i]);
  }
}

/* The key fields of group g, each followed by ','; returns the length. ends[k]
   receives where field k ends (the position of its ','). */
static size_t group_key(const gen_plan *pl, uint64_t g, char *out, size_t *ends) {
  uint64_t comp[MYR_GEN_MAX_KEY_COLUMNS];
  for (size_t k = pl->n_keys; k-- > 0;) {
    comp[k] = g % pl->radix;
    g /= pl->radix;
  }
  char *p = out;
  for (size_t k = 0; k < pl->n_keys; k++) {
    size_t n = strlen(key_prefix[k]);
    memcpy(p, key_prefix[k], n);
    p = put_u64_padded(p + n, comp[k], pl->width);
    ends[k] = (size_t)(p - out);
    *p++ = ',';
  }
  return (size_t)(p - out);
}

static uint64_t group_start(const gen_plan *pl, uint64_t g) {
  return pl->start ? pl->start[g] : g * pl->rows_per_group;
}

static uint64_t group_of(const gen_plan *pl, uint64_t pos) {
  if (!pl->start)
    return pos / pl->rows_per_group;
  uint64_t lo = 0, hi = pl->n_groups; /* start[lo] <= pos < start[hi] */
  while (hi - lo > 1) {
    uint64_t mid = lo + (hi - lo) / 2;
    if (pl->start[mid] <= pos)
      lo = mid;
    else
      hi = mid;
  }
  return lo;
}

/* A bijection of [0, n_rows): a 4-round unbalanced Feistel network over perm_bits bits
   (each round maps (hi, lo) to (lo, hi ^ F(lo)), a bijection whatever the split), applied
   again until the value falls inside the range (cycle walking; the domain is < 2 n_rows,
   so under two rounds of walking on average). */
static uint64_t permute(const gen_plan *pl, uint64_t x) {
  unsigned a = pl->perm_bits / 2, b = pl->perm_bits - a;
  uint64_t mask_a = (UINT64_C(1) << a) - 1, mask_b = (UINT64_C(1) << b) - 1;
  do {
    for (int k = 0; k < 4; k++) {
      uint64_t hi = x >> b, lo = x & mask_b;
      x = (lo << a) | (hi ^ (myr__mix64(lo ^ pl->perm_keys[k]) & mask_a));
    }
  } while (x >= pl->n_rows);
  return x;
}

static inline void prefetch(const void *p) {
#if defined(__GNUC__)
  __builtin_prefetch(p);
#else
  (void)p;
#endif
}

static int reserve(gen_buf *b, size_t more) {
  if (b->cap - b->len >= more)
    return MYR_OK;
  size_t cap = b->cap ? b->cap : 4096;
  while (cap - b->len < more)
    cap *= 2;
  char *data = myr__realloc(b->data, cap);
  if (!data)
    return MYR_ENOMEM;
  b->data = data;
  b->cap = cap;
  return MYR_OK;
}

/* The values of one row, drawn from its seed: feature j is ks[j] steps of 1e-5; returns
   the regression label (unrounded), or with classification the class (*cls too). xs
   receives the features (n_features doubles) unless the shape is linear. The row RNG
   draws the features, then the noise, then (classification) the flip and its class. */
static double row_values(const gen_plan *pl, const double *coef, uint64_t rseed,
                         double *xs, int32_t *ks, unsigned *cls) {
  myr__rng r;
  myr__rng_seed(&r, rseed);
  const double *beta = coef + COEF_HEAD;
  const int linear = pl->shape == MYR_GEN_SHAPE_LINEAR;
  double y = coef[0], x[3] = {0, 0, 0};
  uint64_t w = 0;
  for (size_t j = 0; j < pl->n_features; j++) {
    /* One 64-bit draw gives two features: 32 bits each, mapped by multiply-shift onto
       the 400001 grid points (bias below 1e-4, irrelevant here). */
    uint32_t bits;
    if ((j & 1) == 0) {
      w = myr__rng_next(&r);
      bits = (uint32_t)w;
    } else {
      bits = (uint32_t)(w >> 32);
    }
    int64_t k = (int64_t)(((uint64_t)bits * (2 * GRID_HALF + 1)) >> 32) - GRID_HALF;
    double xj = (double)k * 1e-5;
    if (linear) {
      if (j < 3)
        x[j] = xj;
      y += beta[j] * xj;
    } else {
      xs[j] = xj;
    }
    ks[j] = (int32_t)k;
  }
  if (linear)
    y += coef[1] * sin(x[0]) + coef[2] * x[1] * x[2];
  else
    y = shape_value(pl, coef, xs);
  if (pl->noise > 0)
    y += pl->noise * myr__rng_normal(&r);
  if (pl->classify) {
    const double *cut = coef + pl->n_shape;
    unsigned k = 0;
    while (k + 1 < pl->n_classes && cut[k] < y)
      k++;
    if (pl->flip_thr && (myr__rng_next(&r) >> 11) < pl->flip_thr)
      k = (unsigned)myr__rng_below(&r, pl->n_classes);
    *cls = k;
    return (double)k;
  }
  return y;
}

/* Append one row as CSV text: the key fields, the features, then the label. */
static void emit_row(const gen_plan *pl, gen_buf *b, const char *key, size_t key_len,
                     const double *coef, uint64_t rseed, double *xs) {
  int32_t ks[MYR_GEN_MAX_FEATURES];
  unsigned cls = 0;
  double y = row_values(pl, coef, rseed, xs, ks, &cls);
  char *p = b->data + b->len;
  memcpy(p, key, key_len);
  p += key_len;
  for (size_t j = 0; j < pl->n_features; j++) {
    p = put_fixed5(p, ks[j]);
    *p++ = ',';
  }
  if (pl->classify)
    p = put_u64(p, cls);
  else
    p = put_double5(p, y);
  *p++ = '\n';
  b->len = (size_t)(p - b->data);
}

/* The double that reading put_double5(y)'s text gives: q / 1e5 for the rounded q is
   correctly rounded (q and 1e5 are exact doubles, and IEEE division rounds correctly),
   as a correct decimal parser rounds the same real number. */
static double value5(double y) {
  double v = y * 1e5;
  if (fabs(v) < 9.0e15) { /* |q| < 2^53: q is exact */
    int64_t q = (int64_t)(v < 0 ? v - 0.5 : v + 0.5);
    return (double)q / 1e5;
  }
  char text[64];
  *put_double5(text, y) = '\0';
  return strtod(text, NULL);
}

/* Append one row to an Arrow batch: the same values the CSV text holds, as utf8 keys
   and float64 features and label. */
static int emit_row_arrow(const gen_plan *pl, myr__arrow_builder *ab, const char *key,
                          const size_t *key_ends, const double *coef, uint64_t rseed,
                          double *xs) {
  int32_t ks[MYR_GEN_MAX_FEATURES];
  unsigned cls = 0;
  double y = row_values(pl, coef, rseed, xs, ks, &cls);
  size_t from = 0, c = 0;
  for (size_t k = 0; k < pl->n_keys; k++, c++) {
    if (myr__arrow_append_bytes(ab, c, key + from, key_ends[k] - from) != MYR_OK)
      return MYR_ENOMEM;
    from = key_ends[k] + 1;
  }
  for (size_t j = 0; j < pl->n_features; j++, c++)
    if (myr__arrow_append_f64(ab, c, (double)ks[j] / 1e5) != MYR_OK)
      return MYR_ENOMEM;
  if (myr__arrow_append_f64(ab, c, pl->classify ? (double)cls : value5(y)) != MYR_OK)
    return MYR_ENOMEM;
  return MYR_OK;
}

/* Pool task: generate chunk batch_first + task into batch_slots[task]. */
static int gen_chunk(void *ctx, size_t task, unsigned worker) {
  const gen_plan *pl = ctx;
  gen_slot *s = &pl->batch_slots[task];
  uint64_t chunk = pl->batch_first + task;
  uint64_t p0 = chunk * pl->chunk_rows;
  uint64_t p1 = p0 + pl->chunk_rows < pl->n_rows ? p0 + pl->chunk_rows : pl->n_rows;
  double *scratch = pl->scratch + (size_t)worker * pl->work;
  double *work = scratch + pl->stride; /* features, then quantile draws */
  char key[MYR_GEN_MAX_KEY_COLUMNS * KEY_FIELD_MAX];
  size_t key_len = 0, key_ends[MYR_GEN_MAX_KEY_COLUMNS];
  const double *coef = scratch;
  uint64_t g = UINT64_MAX, gseed = 0, gbegin = 0, gend = 0;

  /* Shuffle reads cached coefficients in random order: positions are permuted
     PREFETCH_AHEAD rows early so the cache line can be requested before it is needed. */
  uint64_t ring_pos[PREFETCH_AHEAD], ring_group[PREFETCH_AHEAD];
  if (pl->shuffle) {
    for (uint64_t p = p0; p < p1 && p < p0 + PREFETCH_AHEAD; p++) {
      ring_pos[p % PREFETCH_AHEAD] = permute(pl, p);
      ring_group[p % PREFETCH_AHEAD] = group_of(pl, ring_pos[p % PREFETCH_AHEAD]);
    }
  }

  s->train.len = s->test.len = 0;
  s->rows = p1 - p0;
  s->rows_test = 0;
  for (uint64_t p = p0; p < p1; p++) {
    uint64_t pos = p, pg;
    if (pl->shuffle) {
      pos = ring_pos[p % PREFETCH_AHEAD];
      pg = ring_group[p % PREFETCH_AHEAD];
      uint64_t ahead = p + PREFETCH_AHEAD;
      if (ahead < p1) {
        uint64_t q = permute(pl, ahead), qg = group_of(pl, q);
        ring_pos[ahead % PREFETCH_AHEAD] = q;
        ring_group[ahead % PREFETCH_AHEAD] = qg;
        if (pl->coef)
          prefetch(pl->coef + qg * pl->stride);
      }
    } else {
      pg = g != UINT64_MAX && pos < gend ? g : group_of(pl, pos);
    }
    if (pg != g) {
      g = pg;
      gbegin = group_start(pl, g);
      gend = group_start(pl, g + 1);
      gseed = group_seed(pl, g);
      key_len = group_key(pl, g, key, key_ends);
      if (pl->coef) {
        coef = pl->coef + g * pl->stride;
      } else {
        group_coef(pl, g, scratch, work);
        coef = scratch;
      }
    }
    uint64_t i = pos - gbegin;
    uint64_t rseed = row_seed(gseed, i);
    int to_test = pl->holdout &&
                  (myr__mix64(rseed ^ 0x686f6c646f7574ULL) >> 11) < pl->holdout_thr;
    s->rows_test += (uint64_t)to_test;
    if (pl->arrow) {
      if (emit_row_arrow(pl, to_test ? s->atest : s->atrain, key, key_ends, coef, rseed,
                         work) != MYR_OK)
        return MYR_ENOMEM;
      continue;
    }
    gen_buf *b = to_test ? &s->test : &s->train;
    if (reserve(b, pl->max_row) != MYR_OK)
      return MYR_ENOMEM;
    emit_row(pl, b, key, key_len, coef, rseed, work);
  }
  return MYR_OK;
}

/* Pool task: cached coefficients for groups [task * 4096, ...). */
static int gen_coef_block(void *ctx, size_t task, unsigned worker) {
  const gen_plan *pl = ctx;
  uint64_t g0 = (uint64_t)task * 4096, g1 = g0 + 4096;
  double *work = pl->scratch + (size_t)worker * pl->work + pl->stride;
  if (g1 > pl->n_groups)
    g1 = pl->n_groups;
  for (uint64_t g = g0; g < g1; g++)
    group_coef(pl, g, pl->coef + g * pl->stride, work);
  return MYR_OK;
}

/* ---- setup ----------------------------------------------------------------------- */

/* Zipf group sizes: rank k gets 1 + a share of the n_rows - n_groups extra rows in
   proportion to (k+1)^-s, apportioned through cumulative floors so the total is exact.
   Ranks are then dealt to groups by a seeded Fisher-Yates shuffle. */
static int plan_zipf(gen_plan *pl, double s, uint64_t seed, myr_error *err) {
  uint64_t n = pl->n_groups, extra = pl->n_rows - n;
  pl->start = myr__reallocarray(NULL, n + 1, sizeof *pl->start);
  if (!pl->start)
    return myr_error_set(err, MYR_ENOMEM, "out of memory for %llu group sizes",
                         (unsigned long long)n);
  double total = 0;
  for (uint64_t k = 0; k < n; k++)
    total += pow((double)(k + 1), -s);
  double cum = 0;
  uint64_t prev = 0;
  for (uint64_t k = 0; k < n; k++) {
    cum += pow((double)(k + 1), -s);
    uint64_t upto = (uint64_t)floor((double)extra * (cum / total));
    if (k == n - 1 || upto > extra)
      upto = extra;
    if (upto < prev)
      upto = prev;
    pl->start[k + 1] = 1 + (upto - prev);
    prev = upto;
  }
  myr__rng r;
  myr__rng_seed(&r, myr__mix64(seed ^ 0x7a6970662d72616eULL));
  for (uint64_t k = n - 1; k > 0; k--) {
    uint64_t j = myr__rng_below(&r, k + 1);
    uint64_t t = pl->start[k + 1];
    pl->start[k + 1] = pl->start[j + 1];
    pl->start[j + 1] = t;
  }
  pl->start[0] = 0;
  for (uint64_t g = 0; g < n; g++)
    pl->start[g + 1] += pl->start[g];
  return MYR_OK;
}

static void plan_keys(gen_plan *pl) {
  /* Smallest radix r with r^K >= n_groups, so g < n_groups maps to a unique tuple. */
  uint64_t n = pl->n_groups;
  size_t kk = pl->n_keys;
  uint64_t r = (uint64_t)ceil(pow((double)n, 1.0 / (double)kk));
  if (r < 1)
    r = 1;
  for (;;) { /* adjust for pow() rounding either way */
    uint64_t lo = r - 1, acc = 1;
    int ge = 0;
    if (lo >= 1) {
      for (size_t k = 0; k < kk && !ge; k++) {
        if (acc > UINT64_MAX / lo)
          ge = 1;
        else if ((acc *= lo) >= n)
          ge = 1;
      }
    }
    if (lo >= 1 && ge) {
      r = lo;
      continue;
    }
    acc = 1;
    ge = r >= n;
    for (size_t k = 0; k < kk && !ge; k++) {
      if (acc > UINT64_MAX / r || (acc *= r) >= n)
        ge = 1;
    }
    if (ge)
      break;
    r++;
  }
  pl->radix = r;
  unsigned w = count_digits(r - 1);
  pl->width = w < 4 ? 4 : w;
}

static void plan_permutation(gen_plan *pl) {
  unsigned bits = 2;
  while (bits < 64 && (UINT64_C(1) << bits) < pl->n_rows)
    bits++;
  pl->perm_bits = bits;
  for (int k = 0; k < 4; k++)
    pl->perm_keys[k] = myr__mix64(pl->seed_mixed ^ (0x7065726d00ULL + (uint64_t)k));
}

size_t myr_gen_test_path(const char *out, char *buf, size_t cap) {
  if (!out)
    out = "";
  const char *base = strrchr(out, '/');
  base = base ? base + 1 : out;
  const char *dot = strrchr(base, '.');
  size_t stem = dot && dot != base ? (size_t)(dot - out) : strlen(out);
  /* snprintf(NULL, 0, ...) is how callers ask for the length. */
  // cppcheck-suppress [nullPointer,ctunullpointer]
  int n = snprintf(buf, cap, "%.*s.test%s", (int)stem, out, out + stem);
  return n < 0 ? 0 : (size_t)n;
}

const char *myr_gen_key_name(size_t k) {
  return k < MYR_GEN_MAX_KEY_COLUMNS ? key_names[k] : NULL;
}

void myr_gen_options_init(myr_gen_options *opt) {
  memset(opt, 0, sizeof *opt);
  opt->n_groups = 1000;
  opt->rows_per_group = 100;
  opt->skew = MYR_GEN_SKEW_NONE;
  opt->zipf_s = 1.1;
  opt->n_features = 8;
  opt->noise = 0.1;
  opt->n_key_columns = 2;
  opt->label = "y";
  opt->shape = MYR_GEN_SHAPE_LINEAR;
  opt->task = MYR_GEN_TASK_REGRESSION;
  opt->n_classes = 2;
  opt->flip = 0.05;
}

static int check_label(const char *label, size_t n_keys, size_t n_features,
                       myr_error *err) {
  size_t n = strlen(label);
  if (n == 0 || n > LABEL_MAX)
    return myr_error_set(err, MYR_EINVAL, "--label must be 1 to %d characters", LABEL_MAX);
  if (strpbrk(label, ",\"\r\n"))
    return myr_error_set(err, MYR_EINVAL,
                         "--label '%s' must not contain a comma, quote or line break", label);
  for (size_t k = 0; k < n_keys; k++)
    if (strcmp(label, key_names[k]) == 0)
      return myr_error_set(err, MYR_EINVAL, "--label '%s' is also a key column", label);
  if (label[0] == 'f' && label[1] >= '0' && label[1] <= '9') {
    char *end;
    errno = 0;
    unsigned long long j = strtoull(label + 1, &end, 10);
    char canon[32];
    snprintf(canon, sizeof canon, "f%llu", j);
    if (!*end && errno == 0 && j < n_features && strcmp(canon, label) == 0)
      return myr_error_set(err, MYR_EINVAL, "--label '%s' is also a feature column", label);
  }
  return MYR_OK;
}

static int write_all(FILE *f, const char *data, size_t len, const char *path,
                     myr_error *err) {
  if (len && fwrite(data, 1, len, f) != len)
    return myr_error_set(err, MYR_EIO, "cannot write '%s': %s", path, strerror(errno));
  return MYR_OK;
}

static int open_output(const char *path, FILE **out, int *owned, myr_error *err) {
  if (strcmp(path, "-") == 0) {
    *out = stdout;
    *owned = 0;
    return MYR_OK;
  }
  *out = fopen(path, "wb");
  if (!*out)
    return myr_error_set(err, MYR_EIO, "cannot open output '%s': %s", path, strerror(errno));
  *owned = 1;
  return MYR_OK;
}

static int finish_output(FILE *f, int owned, const char *path, myr_error *err) {
  int bad;
  if (owned)
    bad = fclose(f) != 0;
  else
    bad = fflush(f) != 0;
  if (bad)
    return myr_error_set(err, MYR_EIO, "cannot write '%s': %s", path, strerror(errno));
  return MYR_OK;
}

/* Arrow output: one builder per slot and output, all with the schema of the CSV header
   (keys as utf8, features and label as float64). */
static int make_builders(const gen_plan *pl, const char *label, gen_slot *slots,
                         size_t n, myr_error *err) {
  size_t n_cols = pl->n_keys + pl->n_features + 1;
  const char **names = myr__calloc(n_cols, sizeof *names);
  int *types = myr__calloc(n_cols, sizeof *types);
  char *fnames = myr__malloc(pl->n_features * 8); /* "f0" .. "f999" */
  int rc = MYR_OK;
  if (!names || !types || !fnames) {
    rc = myr_error_set(err, MYR_ENOMEM, "out of memory");
    goto done;
  }
  for (size_t c = 0; c < n_cols; c++) {
    types[c] = c < pl->n_keys ? MYR__ARROW_UTF8 : MYR__ARROW_F64;
    if (c < pl->n_keys) {
      names[c] = key_names[c];
    } else if (c < pl->n_keys + pl->n_features) {
      size_t j = c - pl->n_keys;
      char *f = fnames + 8 * j;
      f[0] = 'f';
      *put_u64(f + 1, j) = '\0';
      names[c] = f;
    } else {
      names[c] = label;
    }
  }
  for (size_t i = 0; i < n && rc == MYR_OK; i++) {
    rc = myr__arrow_builder_new(n_cols, names, types, &slots[i].atrain, err);
    if (rc == MYR_OK && pl->holdout)
      rc = myr__arrow_builder_new(n_cols, names, types, &slots[i].atest, err);
  }
done:
  myr__free(names);
  myr__free(types);
  myr__free(fnames);
  return rc;
}

/* Write the rows b holds as one record batch of w (nothing when there are none), then
   empty b, keeping its memory for the next batch. */
static int write_batch(myr__arrow_builder *b, myr__ipc_writer *w, myr_error *err) {
  if (myr__arrow_builder_rows(b) == 0)
    return MYR_OK;
  struct ArrowArray a;
  MYR_RETURN_NOT_OK(myr__arrow_builder_view(b, &a, err));
  int rc = myr__ipc_writer_write(w, &a, err);
  a.release(&a);
  myr__arrow_builder_clear(b);
  return rc;
}

static int open_arrow(const char *path, const myr_gen_options *opt,
                      const struct ArrowSchema *schema, myr__ipc_writer **out, int *owned,
                      myr_error *err) {
  static const int codecs[] = {MYR__IPC_NONE, MYR__IPC_LZ4, MYR__IPC_ZSTD};
  MYR_RETURN_NOT_OK(myr__ipc_writer_open(path, opt->format == MYR_GEN_FORMAT_ARROW_FILE,
                                         codecs[opt->compression], schema, out, err));
  *owned = strcmp(path, "-") != 0;
  return MYR_OK;
}

static int close_arrow(myr__ipc_writer **w, uint64_t *bytes, myr_error *err) {
  int rc = myr__ipc_writer_finish(*w, err);
  if (rc == MYR_OK)
    *bytes = myr__ipc_writer_bytes(*w);
  myr__ipc_writer *t = *w;
  *w = NULL;
  if (rc != MYR_OK) {
    myr__ipc_writer_abort(t);
    return rc;
  }
  return myr__ipc_writer_close(t, err);
}

int myr_gen_format_of_path(const char *path) {
  const char *base = path ? strrchr(path, '/') : NULL;
  base = base ? base + 1 : path ? path : "";
  const char *dot = strrchr(base, '.');
  if (!dot || dot == base)
    return MYR_GEN_FORMAT_CSV;
  if (!strcmp(dot, ".arrow") || !strcmp(dot, ".feather") || !strcmp(dot, ".ipc"))
    return MYR_GEN_FORMAT_ARROW_FILE;
  if (!strcmp(dot, ".arrows"))
    return MYR_GEN_FORMAT_ARROW_STREAM;
  return MYR_GEN_FORMAT_CSV;
}

static char *build_header(const gen_plan *pl, const char *label) {
  size_t cap = pl->n_keys * 16 + pl->n_features * 8 + strlen(label) + 2;
  char *h = myr__malloc(cap), *p = h;
  if (!h)
    return NULL;
  for (size_t k = 0; k < pl->n_keys; k++) {
    size_t n = strlen(key_names[k]);
    memcpy(p, key_names[k], n);
    p += n;
    *p++ = ',';
  }
  for (size_t j = 0; j < pl->n_features; j++) {
    *p++ = 'f';
    p = put_u64(p, j);
    *p++ = ',';
  }
  size_t n = strlen(label);
  memcpy(p, label, n);
  p[n] = '\n';
  p[n + 1] = '\0';
  return h;
}

int myr_gen_csv(const myr_gen_options *opt, myr_gen_summary *summary_out,
                myr_error *err) {
  double t0 = myr__now();
  int rc = MYR_OK;
  gen_plan pl;
  myr_gen_summary sum;
  myr__pool *pool = NULL;
  gen_slot *slots = NULL;
  size_t n_slots = 0;
  char *header = NULL, *test_path = NULL;
  FILE *ftrain = NULL, *ftest = NULL;
  int own_train = 0, own_test = 0;
  myr__ipc_writer *wtrain = NULL, *wtest = NULL;
  struct ArrowSchema schema = {0};
  memset(&pl, 0, sizeof pl);
  memset(&sum, 0, sizeof sum);
  if (summary_out)
    memset(summary_out, 0, sizeof *summary_out);

  /* -- validate and resolve defaults -- */
  if (!opt)
    return myr_error_set(err, MYR_EINVAL, "no options given");
  if (!opt->out || !*opt->out)
    return myr_error_set(err, MYR_EINVAL, "--out is required");
  uint64_t rows = opt->rows_per_group ? opt->rows_per_group : 100;
  size_t n_features = opt->n_features ? opt->n_features : 8;
  size_t n_keys = opt->n_key_columns ? opt->n_key_columns : 2;
  double zipf_s = opt->zipf_s != 0 ? opt->zipf_s : 1.1;
  const char *label = opt->label ? opt->label : "y";
  if (opt->n_groups == 0)
    return myr_error_set(err, MYR_EINVAL, "--groups must be at least 1");
  if (opt->n_groups > MAX_ROWS / rows)
    return myr_error_set(err, MYR_EINVAL,
                         "--groups %llu x --rows %llu is over the limit of 2^50 rows",
                         (unsigned long long)opt->n_groups, (unsigned long long)rows);
  if (n_features > MYR_GEN_MAX_FEATURES)
    return myr_error_set(err, MYR_EINVAL, "--features must be 1 to %d, got %zu",
                         MYR_GEN_MAX_FEATURES, n_features);
  if (n_keys > MYR_GEN_MAX_KEY_COLUMNS)
    return myr_error_set(err, MYR_EINVAL, "--key-columns must be 1 to %d, got %zu",
                         MYR_GEN_MAX_KEY_COLUMNS, n_keys);
  if (opt->skew != MYR_GEN_SKEW_NONE && opt->skew != MYR_GEN_SKEW_ZIPF)
    return myr_error_set(err, MYR_EINVAL, "--skew must be none or zipf");
  if (!(zipf_s > 0 && zipf_s <= 100))
    return myr_error_set(err, MYR_EINVAL, "--zipf-s must be above 0 and at most 100, got %g",
                         zipf_s);
  if (!(opt->noise >= 0 && opt->noise <= MYR_GEN_MAX_NOISE))
    return myr_error_set(err, MYR_EINVAL, "--noise must be 0 to %g, got %g",
                         MYR_GEN_MAX_NOISE, opt->noise);
  if (!(opt->holdout >= 0 && opt->holdout < 1))
    return myr_error_set(err, MYR_EINVAL, "--holdout must be in [0, 1), got %g",
                         opt->holdout);
  if (opt->shape < MYR_GEN_SHAPE_LINEAR || opt->shape > MYR_GEN_SHAPE_INTERACTIONS)
    return myr_error_set(err, MYR_EINVAL,
                         "--shape must be linear, smooth, piecewise or interactions");
  if (opt->task != MYR_GEN_TASK_REGRESSION && opt->task != MYR_GEN_TASK_CLASSIFICATION)
    return myr_error_set(err, MYR_EINVAL, "--task must be regression or classification");
  unsigned n_classes = opt->n_classes ? opt->n_classes : 2;
  int classify = opt->task == MYR_GEN_TASK_CLASSIFICATION;
  if (classify && (n_classes < 2 || n_classes > MYR_GEN_MAX_CLASSES))
    return myr_error_set(err, MYR_EINVAL, "--classes must be 2 to %d, got %u",
                         MYR_GEN_MAX_CLASSES, n_classes);
  if (classify && !(opt->flip >= 0 && opt->flip <= 1))
    return myr_error_set(err, MYR_EINVAL, "--flip must be in [0, 1], got %g", opt->flip);
  if (opt->format < MYR_GEN_FORMAT_CSV || opt->format > MYR_GEN_FORMAT_ARROW_STREAM)
    return myr_error_set(err, MYR_EINVAL, "--format must be csv, arrow or arrows");
  if (opt->compression < MYR_GEN_COMPRESSION_NONE ||
      opt->compression > MYR_GEN_COMPRESSION_ZSTD)
    return myr_error_set(err, MYR_EINVAL, "--compression must be none, lz4 or zstd");
  const int arrow = opt->format != MYR_GEN_FORMAT_CSV;
  if (!arrow && opt->compression != MYR_GEN_COMPRESSION_NONE)
    return myr_error_set(err, MYR_EINVAL,
                         "--compression needs an Arrow format (--format arrow or arrows)");
  MYR_RETURN_NOT_OK(check_label(label, n_keys, n_features, err));
  if (opt->holdout > 0) {
    if (opt->test_out) {
      test_path = myr__strdup(opt->test_out);
    } else {
      if (strcmp(opt->out, "-") == 0)
        return myr_error_set(err, MYR_EINVAL,
                             "--holdout with --out - needs --test-out for the test rows");
      size_t n = myr_gen_test_path(opt->out, NULL, 0);
      test_path = myr__malloc(n + 1);
      if (test_path)
        myr_gen_test_path(opt->out, test_path, n + 1);
    }
    if (!test_path)
      return myr_error_set(err, MYR_ENOMEM, "out of memory");
    if (!*test_path || strcmp(test_path, opt->out) == 0) {
      rc = myr_error_set(err, MYR_EINVAL, "--test-out '%s' must differ from --out",
                         test_path);
      goto done;
    }
  }

  /* -- plan -- */
  pl.seed_mixed = myr__mix64(opt->seed ^ 0x6d79722d67656eULL);
  pl.n_groups = opt->n_groups;
  pl.rows_per_group = rows;
  pl.n_rows = opt->n_groups * rows;
  pl.n_features = n_features;
  pl.n_keys = n_keys;
  pl.noise = opt->noise;
  pl.shape = opt->shape;
  pl.classify = classify;
  pl.n_classes = classify ? n_classes : 0;
  pl.flip_thr = classify ? (uint64_t)(opt->flip * 9007199254740992.0) : 0; /* 2^53 */
  pl.n_shape = shape_coef_count(opt->shape, n_features);
  pl.holdout = opt->holdout > 0;
  pl.holdout_thr = (uint64_t)(opt->holdout * 9007199254740992.0); /* 2^53 */
  pl.shuffle = opt->shuffle != 0;
  pl.stride = pl.n_shape + (classify ? n_classes - 1 : 0);
  pl.work = pl.stride + n_features + (classify ? QUANTILE_DRAWS : 0);
  pl.max_row = n_keys * KEY_FIELD_MAX + n_features * 10 + 48;
  plan_keys(&pl);
  if (pl.shuffle)
    plan_permutation(&pl);
  sum.min_group_rows = sum.max_group_rows = rows;
  if (opt->skew == MYR_GEN_SKEW_ZIPF) {
    if ((rc = plan_zipf(&pl, zipf_s, opt->seed, err)) != MYR_OK)
      goto done;
    sum.min_group_rows = UINT64_MAX;
    sum.max_group_rows = 0;
    for (uint64_t g = 0; g < pl.n_groups; g++) {
      uint64_t n = pl.start[g + 1] - pl.start[g];
      sum.min_group_rows = n < sum.min_group_rows ? n : sum.min_group_rows;
      sum.max_group_rows = n > sum.max_group_rows ? n : sum.max_group_rows;
    }
  }
  size_t est_row = n_keys * (pl.width + 8) + n_features * 9 + 12;
  pl.chunk_rows = CHUNK_BYTES / est_row ? CHUNK_BYTES / est_row : 1;
  size_t arrow_row = n_keys * (pl.width + 20) + (n_features + 1) * 8; /* bytes, about */
  if (arrow) { /* a chunk is a record batch */
    pl.arrow = 1;
    pl.chunk_rows = ARROW_BATCH_BYTES / arrow_row;
    pl.chunk_rows = pl.chunk_rows > ARROW_BATCH_ROWS ? ARROW_BATCH_ROWS : pl.chunk_rows;
    pl.chunk_rows = pl.chunk_rows < 1024 ? 1024 : pl.chunk_rows;
  }
  pl.n_chunks = (pl.n_rows + pl.chunk_rows - 1) / pl.chunk_rows;

  unsigned n_threads = opt->n_threads ? opt->n_threads : myr__cpu_count();
  if (n_threads > 256)
    n_threads = 256;
  if (n_threads > pl.n_chunks)
    n_threads = (unsigned)pl.n_chunks;
  if ((rc = myr__pool_create(n_threads, &pool, err)) != MYR_OK)
    goto done;
  pl.scratch = myr__reallocarray(NULL, (size_t)n_threads, pl.work * sizeof(double));
  n_slots = 2 * (size_t)n_threads;
  if (arrow) { /* bound the memory of batches under construction */
    size_t fit = ARROW_SLOTS_BYTES / 2 / (pl.chunk_rows * arrow_row);
    n_slots = fit < 1 ? 1 : fit < n_slots ? fit : n_slots;
  }
  slots = myr__calloc(2 * n_slots, sizeof *slots);
  header = build_header(&pl, label);
  if (!pl.scratch || !slots || !header) {
    rc = myr_error_set(err, MYR_ENOMEM, "out of memory");
    goto done;
  }
  if (arrow && (rc = make_builders(&pl, label, slots, 2 * n_slots, err)) != MYR_OK)
    goto done;
  if (pl.shuffle && pl.n_groups <= COEF_CACHE_MAX / sizeof(double) / pl.stride) {
    pl.coef = myr__reallocarray(NULL, (size_t)pl.n_groups, pl.stride * sizeof(double));
    if (!pl.coef) {
      rc = myr_error_set(err, MYR_ENOMEM, "out of memory for group coefficients");
      goto done;
    }
    myr__pool_run(pool, (size_t)((pl.n_groups + 4095) / 4096), gen_coef_block, &pl);
  }

  /* -- write -- */
  if (arrow) {
    if ((rc = myr__arrow_builder_schema(slots[0].atrain, &schema, err)) != MYR_OK)
      goto done;
    if ((rc = open_arrow(opt->out, opt, &schema, &wtrain, &own_train, err)) != MYR_OK)
      goto done;
    if (test_path &&
        (rc = open_arrow(test_path, opt, &schema, &wtest, &own_test, err)) != MYR_OK)
      goto done;
  } else {
    if ((rc = open_output(opt->out, &ftrain, &own_train, err)) != MYR_OK)
      goto done;
    if (test_path && (rc = open_output(test_path, &ftest, &own_test, err)) != MYR_OK)
      goto done;
    size_t header_len = strlen(header);
    if ((rc = write_all(ftrain, header, header_len, opt->out, err)) != MYR_OK)
      goto done;
    sum.bytes_train = header_len;
    if (ftest) {
      if ((rc = write_all(ftest, header, header_len, test_path, err)) != MYR_OK)
        goto done;
      sum.bytes_test = header_len;
    }
  }

  int cur = 0, running = 0;
  size_t batch_n = 0;
  if (pl.n_chunks > 0) {
    pl.batch_first = 0;
    pl.batch_slots = slots;
    batch_n = pl.n_chunks < n_slots ? (size_t)pl.n_chunks : n_slots;
    myr__pool_start(pool, batch_n, gen_chunk, &pl);
    running = 1;
  }
  while (running) {
    int st = myr__pool_wait(pool);
    running = 0;
    if (st != MYR_OK) {
      rc = myr_error_set(err, st, "out of memory generating rows");
      goto done;
    }
    gen_slot *done_slots = pl.batch_slots;
    size_t done_n = batch_n;
    uint64_t next = pl.batch_first + done_n;
    if (next < pl.n_chunks) {
      cur ^= 1;
      pl.batch_first = next;
      pl.batch_slots = slots + (size_t)cur * n_slots;
      batch_n = pl.n_chunks - next < n_slots ? (size_t)(pl.n_chunks - next) : n_slots;
      myr__pool_start(pool, batch_n, gen_chunk, &pl);
      running = 1;
    }
    for (size_t j = 0; j < done_n; j++) {
      gen_slot *s = &done_slots[j];
      if (arrow) {
        if ((rc = write_batch(s->atrain, wtrain, err)) != MYR_OK)
          goto done;
        if (wtest && (rc = write_batch(s->atest, wtest, err)) != MYR_OK)
          goto done;
        sum.rows_train += s->rows - s->rows_test;
        sum.rows_test += s->rows_test;
        continue;
      }
      if ((rc = write_all(ftrain, s->train.data, s->train.len, opt->out, err)) != MYR_OK)
        goto done;
      sum.bytes_train += s->train.len;
      sum.rows_train += s->rows - s->rows_test;
      if (ftest) {
        if ((rc = write_all(ftest, s->test.data, s->test.len, test_path, err)) != MYR_OK)
          goto done;
        sum.bytes_test += s->test.len;
        sum.rows_test += s->rows_test;
      }
    }
  }
  if (wtrain && (rc = close_arrow(&wtrain, &sum.bytes_train, err)) != MYR_OK)
    goto done;
  if (wtest && (rc = close_arrow(&wtest, &sum.bytes_test, err)) != MYR_OK)
    goto done;
  FILE *f = ftrain;
  ftrain = NULL;
  if (f && (rc = finish_output(f, own_train, opt->out, err)) != MYR_OK)
    goto done;
  if (ftest) {
    f = ftest;
    ftest = NULL;
    if ((rc = finish_output(f, own_test, test_path, err)) != MYR_OK)
      goto done;
  }
  sum.n_groups = pl.n_groups;
  sum.n_features = n_features;
  sum.n_key_columns = n_keys;
  sum.rows_total = sum.rows_train + sum.rows_test;
  sum.n_threads = n_threads;
  sum.seconds = myr__now() - t0;
  if (summary_out)
    *summary_out = sum;

done:
  myr__pool_destroy(pool); /* waits for a batch still running */
  if (ftrain && own_train)
    fclose(ftrain);
  if (ftest && own_test)
    fclose(ftest);
  myr__ipc_writer_abort(wtrain);
  myr__ipc_writer_abort(wtest);
  if (schema.release)
    schema.release(&schema);
  if (rc != MYR_OK) {
    if (own_train)
      remove(opt->out);
    if (own_test)
      remove(test_path);
  }
  for (size_t j = 0; slots && j < 2 * n_slots; j++) {
    myr__free(slots[j].train.data);
    myr__free(slots[j].test.data);
    myr__arrow_builder_free(slots[j].atrain);
    myr__arrow_builder_free(slots[j].atest);
  }
  myr__free(slots);
  myr__free(header);
  myr__free(test_path);
  myr__free(pl.start);
  myr__free(pl.coef);
  myr__free(pl.scratch);
  return rc;
}
