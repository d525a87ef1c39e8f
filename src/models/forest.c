/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Family `forest`: random forests with scikit-learn's semantics and defaults:
 * RandomForestRegressor (squared error; predict = mean of the trees' leaf means) and,
 * with task=classification, RandomForestClassifier (gini; predict writes class
 * probabilities = mean over trees of the leaf class fractions, as predict_proba).
 *
 * DESIGN. Built for many small groups (a 100-tree forest on 100 rows is ~12,500 nodes):
 * - one fit converts x to float32 columns (as scikit-learn) and presorts each feature
 *   once; a tree filters those orders to its in-bag rows and keeps, per feature, a node's
 *   rows sorted in one contiguous range, stably partitioned at each split: no sorting
 *   per node, and no partitioning of features known constant or for leaf children;
 * - regression children get their statistics (and leaf status) from the pass over the
 *   parent's split feature order, summed in the order a pass at the child would use, so
 *   leaves cost no pass and no trip through the stack;
 * - a feature whose values are all more than the tolerance apart (usual for continuous
 *   data) skips the per-row "is this a boundary" test;
 * - the split search is scikit-learn's node_split_best (same feature sampling, same
 *   tolerances, same midpoint thresholds) with the squared-error proxy compared without
 *   divisions; trees grow depth first from an explicit stack, in preorder, so a left
 *   child is its parent + 1 and only right children are stored;
 * - all memory comes from the scratch arena (nothing per tree from the system);
 * - prediction walks blocks of rows down each tree together, branch-free.
 * Randomness: tree t draws from xoshiro256** seeded with mix64(seed ^ mix64(salt + t)),
 * bootstrap first, then each node's features in preorder: a model depends only on its
 * data and per-key seed, never on threads.
 *
 * Invariants: within a tree, child indices exceed their parent's (decode checks the
 * preorder structure, so walks end); thresholds are float32, which is lossless (see
 * docs/internals/model-format.md, which also has the payload layout).
 */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/hash.h"
#include "models/families.h"
#include "models/params.h"

/* scikit-learn's tolerances (_partitioner.pxd, _tree.pyx): values closer than
   FEATURE_THRESHOLD (a float32, added in float32) are one value; a node whose impurity is
   <= DBL_EPSILON is pure. */
static const float FEATURE_THRESHOLD = 1e-7f;
/* "forest\0\0": mixed with the tree index into the tree's seed. Frozen: models must be
   reproducible across releases. */
#define FOREST_SEED_SALT 0x666f726573740000ULL
#define NOT_LEAF UINT32_MAX /* leaf_of[] of a split node */
#define NO_PARENT UINT32_MAX
#define MAX_TREES 1000000u
#define TASK_REG 1
#define TASK_CLF 2

/* ------------------------------------------------------------------ params */

enum { MF_DEFAULT, MF_SQRT, MF_LOG2, MF_ALL, MF_INT, MF_FRAC }; /* max_features kinds */

typedef struct forest_params {
  int task;                     /* TASK_REG or TASK_CLF */
  uint32_t n_trees;             /* trees (n_estimators) */
  uint32_t max_depth;           /* 0: unlimited */
  double min_samples_split;     /* count, or fraction of rows when mss_frac */
  int mss_frac;                 /* min_samples_split is a fraction */
  double min_samples_leaf;      /* count, or fraction of rows when msl_frac */
  int msl_frac;                 /* min_samples_leaf is a fraction */
  int mf_kind;                  /* MF_*: MF_DEFAULT is 1.0 (regression) or sqrt */
  double max_features;          /* the count (MF_INT) or fraction (MF_FRAC) */
  int bootstrap;                /* draw each tree's rows with replacement */
  int ms_kind;                  /* max_samples: 0 none, 1 count, 2 fraction */
  double max_samples;           /* rows drawn per tree (count or fraction of rows) */
  double min_impurity_decrease; /* a split must decrease weighted impurity this much */
  int leaf64;                   /* regression leaf values kept in binary64, not float32 */
} forest_params;

static void params_init(void *pp) {
  forest_params *p = pp;
  memset(p, 0, sizeof *p);
  p->task = TASK_REG;
  p->n_trees = 100;
  p->max_depth = 0;
  p->min_samples_split = 2;
  p->min_samples_leaf = 1;
  p->mf_kind = MF_DEFAULT;
  p->bootstrap = 1;
  p->ms_kind = 0;
  p->min_impurity_decrease = 0;
}

/* 1: a plain integer (digits only) in *u; 2: another finite number in *d; 0: neither. */
static int parse_num(const char *v, uint64_t *u, double *d) {
  size_t n = strlen(v);
  if (n > 0 && strspn(v, "0123456789") == n) {
    errno = 0;
    unsigned long long x = strtoull(v, NULL, 10);
    if (errno)
      return 0;
    *u = x;
    *d = (double)x;
    return 1;
  }
  char *end;
  errno = 0;
  double x = strtod(v, &end);
  if (end == v || *end || errno || !isfinite(x))
    return 0;
  *d = x;
  return 2;
}

static int params_set(void *pp, const char *key, const char *v, myr_error *err) {
  forest_params *p = pp;
  uint64_t u = 0;
  double d = 0;
  int kind;
  if (!strcmp(key, "task")) {
    if (!strcmp(v, "regression"))
      p->task = TASK_REG;
    else if (!strcmp(v, "classification"))
      p->task = TASK_CLF;
    else
      return myr_error_set(err, MYR_EINVAL,
                           "forest: task must be regression or classification, got '%s'",
                           v);
    return MYR_OK;
  }
  if (!strcmp(key, "n_trees") || !strcmp(key, "n_estimators")) {
    if (parse_num(v, &u, &d) != 1 || u < 1 || u > MAX_TREES)
      return myr_error_set(err, MYR_EINVAL,
                           "forest: %s must be an integer in [1, %u], got '%s'", key,
                           MAX_TREES, v);
    p->n_trees = (uint32_t)u;
    return MYR_OK;
  }
  if (!strcmp(key, "max_depth")) {
    if (!strcmp(v, "none") || !strcmp(v, "None")) {
      p->max_depth = 0;
      return MYR_OK;
    }
    if (parse_num(v, &u, &d) != 1 || u < 1 || u >= UINT32_MAX)
      return myr_error_set(err, MYR_EINVAL,
                           "forest: max_depth must be an integer >= 1 or none, got '%s'",
                           v);
    p->max_depth = (uint32_t)u;
    return MYR_OK;
  }
  if (!strcmp(key, "min_samples_split")) {
    kind = parse_num(v, &u, &d);
    if (!((kind == 1 && u >= 2 && u < UINT32_MAX) || (kind == 2 && d > 0 && d <= 1)))
      return myr_error_set(
          err, MYR_EINVAL,
          "forest: min_samples_split must be an integer >= 2 or a fraction "
          "in (0, 1] such as 0.1, got '%s'",
          v);
    p->min_samples_split = d;
    p->mss_frac = kind == 2;
    return MYR_OK;
  }
  if (!strcmp(key, "min_samples_leaf")) {
    kind = parse_num(v, &u, &d);
    if (!((kind == 1 && u >= 1 && u < UINT32_MAX / 2) || (kind == 2 && d > 0 && d < 1)))
      return myr_error_set(
          err, MYR_EINVAL,
          "forest: min_samples_leaf must be an integer >= 1 or a fraction "
          "in (0, 1) such as 0.05, got '%s'",
          v);
    p->min_samples_leaf = d;
    p->msl_frac = kind == 2;
    return MYR_OK;
  }
  if (!strcmp(key, "max_features")) {
    if (!strcmp(v, "sqrt"))
      p->mf_kind = MF_SQRT;
    else if (!strcmp(v, "log2"))
      p->mf_kind = MF_LOG2;
    else if (!strcmp(v, "all") || !strcmp(v, "none") || !strcmp(v, "None"))
      p->mf_kind = MF_ALL;
    else {
      kind = parse_num(v, &u, &d);
      if (!((kind == 1 && u >= 1 && u < UINT32_MAX) || (kind == 2 && d > 0 && d <= 1)))
        return myr_error_set(
            err, MYR_EINVAL,
            "forest: max_features must be sqrt, log2, all, an integer >= 1 "
            "or a fraction in (0, 1] such as 0.5, got '%s'",
            v);
      p->mf_kind = kind == 1 ? MF_INT : MF_FRAC;
      p->max_features = d;
    }
    return MYR_OK;
  }
  if (!strcmp(key, "bootstrap")) {
    if (!myr__param_bool(v, &p->bootstrap))
      return myr_error_set(err, MYR_EINVAL,
                           "forest: bootstrap must be true or false, got '%s'", v);
    return MYR_OK;
  }
  if (!strcmp(key, "max_samples")) {
    if (!strcmp(v, "none") || !strcmp(v, "None")) {
      p->ms_kind = 0;
      return MYR_OK;
    }
    kind = parse_num(v, &u, &d);
    if (!((kind == 1 && u >= 1 && u < UINT32_MAX) || (kind == 2 && d > 0 && d <= 1e6)))
      return myr_error_set(
          err, MYR_EINVAL,
          "forest: max_samples must be none, an integer >= 1 or a fraction "
          "> 0 of the rows such as 0.5, got '%s'",
          v);
    p->ms_kind = kind;
    p->max_samples = d;
    return MYR_OK;
  }
  if (!strcmp(key, "leaf_values")) {
    if (!strcmp(v, "float32") || !strcmp(v, "float64")) {
      p->leaf64 = v[5] == '6';
      return MYR_OK;
    }
    return myr_error_set(err, MYR_EINVAL,
                         "forest: leaf_values must be float32 or float64, got '%s'", v);
  }
  if (!strcmp(key, "min_impurity_decrease")) {
    kind = parse_num(v, &u, &d);
    if (!kind || d < 0)
      return myr_error_set(
          err, MYR_EINVAL,
          "forest: min_impurity_decrease must be a number >= 0, got '%s'", v);
    p->min_impurity_decrease = d;
    return MYR_OK;
  }
  return myr_error_set(err, MYR_EINVAL,
                       "forest: unknown parameter '%s' (known: task, n_trees, max_depth, "
                       "min_samples_split, min_samples_leaf, max_features, bootstrap, "
                       "max_samples, min_impurity_decrease, leaf_values)",
                       key);
}

/* Shortest round-trip form of a real, always with a '.' or exponent so that it reads back
   as a fraction, not as an integer ("1.0" and "1" mean different things). */
static void fmt_real(char *out, size_t cap, double v) {
  for (int prec = 15; prec <= 17; prec++) {
    snprintf(out, cap, "%.*g", prec, v);
    if (strtod(out, NULL) == v)
      break;
  }
  if (!strpbrk(out, ".eEn"))
    snprintf(out + strlen(out), cap - strlen(out), ".0");
}

static void params_format(const void *pp, char *out, size_t cap) {
  const forest_params *p = pp;
  char depth[24], mss[40], msl[40], mf[40], ms[40], mid[40];
  if (p->max_depth)
    snprintf(depth, sizeof depth, "%u", p->max_depth);
  else
    snprintf(depth, sizeof depth, "none");
  if (p->mss_frac)
    fmt_real(mss, sizeof mss, p->min_samples_split);
  else
    snprintf(mss, sizeof mss, "%.0f", p->min_samples_split);
  if (p->msl_frac)
    fmt_real(msl, sizeof msl, p->min_samples_leaf);
  else
    snprintf(msl, sizeof msl, "%.0f", p->min_samples_leaf);
  switch (p->mf_kind) {
  case MF_SQRT: snprintf(mf, sizeof mf, "sqrt"); break;
  case MF_LOG2: snprintf(mf, sizeof mf, "log2"); break;
  case MF_ALL: snprintf(mf, sizeof mf, "all"); break;
  case MF_INT: snprintf(mf, sizeof mf, "%.0f", p->max_features); break;
  case MF_FRAC: fmt_real(mf, sizeof mf, p->max_features); break;
  default: /* scikit-learn's defaults: 1.0 for regressors, sqrt for classifiers */
    snprintf(mf, sizeof mf, "%s", p->task == TASK_CLF ? "sqrt" : "1.0");
    break;
  }
  if (p->ms_kind == 1)
    snprintf(ms, sizeof ms, "%.0f", p->max_samples);
  else if (p->ms_kind == 2)
    fmt_real(ms, sizeof ms, p->max_samples);
  else
    snprintf(ms, sizeof ms, "none");
  snprintf(mid, sizeof mid, "%.17g", p->min_impurity_decrease);
  snprintf(out, cap,
           "task=%s,n_trees=%u,max_depth=%s,min_samples_split=%s,min_samples_leaf=%s,"
           "max_features=%s,bootstrap=%s,max_samples=%s,min_impurity_decrease=%s,"
           "leaf_values=%s",
           p->task == TASK_CLF ? "classification" : "regression", p->n_trees, depth, mss,
           msl, mf, p->bootstrap ? "true" : "false", ms, mid,
           p->leaf64 ? "float64" : "float32");
}

/* ------------------------------------------------------------------ the model */

/* One node, 12 bytes: from node i, go to i + 1 when float32(x[feature]) <= thr, else to
   next. A leaf is made to loop on itself (feature 0, thr NaN, next = i), so prediction
   steps every row exactly the tree's depth times with no test for leaves. */
typedef struct fnode {
  float thr;        /* float32 threshold; NaN in a leaf */
  uint32_t feature; /* split feature; 0 in a leaf */
  uint32_t next;    /* right child (index within the tree, > i); i itself in a leaf */
} fnode;

typedef struct forest_model {
  uint32_t task;         /* TASK_REG or TASK_CLF */
  uint32_t n_features;   /* columns of x */
  uint32_t n_trees;      /* trees */
  uint32_t n_classes;    /* 0 for regression */
  uint32_t n_out;        /* outputs per row: 1 or n_classes */
  uint32_t value_bytes;  /* regression leaf width in the payload: 4 or 8 */
  uint32_t n_nodes;      /* nodes of all trees */
  uint32_t n_leaves;     /* leaves of all trees */
  size_t payload_bytes;  /* exact encoded size */
  const double *classes; /* n_classes label values, ascending */
  uint32_t *tree_node;   /* n_trees + 1: first node of each tree in nodes */
  uint32_t *tree_depth;  /* n_trees: depth of each tree (root alone: 0) */
  fnode *nodes;          /* all trees, each in preorder */
  uint32_t *leaf_of;     /* per node: its leaf index, or NOT_LEAF */
  double *values;        /* n_leaves * n_out: leaf mean, or class fractions */
  uint32_t *counts;      /* classification: n_leaves * n_classes weighted class counts */
} forest_model;

static size_t feature_code_bytes(size_t n_features) {
  return n_features <= 254 ? 1 : n_features <= 65534 ? 2 : 4;
}

static size_t varint_len(uint32_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    n++;
  }
  return n;
}

/* Payload bytes of m, from its nodes (called once per fit; decode knows it). */
static size_t compute_payload_bytes(const forest_model *m) {
  size_t fb = feature_code_bytes(m->n_features);
  size_t total = 12 + 8 * (size_t)m->n_classes + 4 * (size_t)m->n_trees;
  for (uint32_t i = 0; i < m->n_nodes; i++) {
    uint32_t leaf = m->leaf_of[i];
    total += fb;
    if (leaf == NOT_LEAF)
      total += 4;
    else if (m->task == TASK_REG)
      total += m->value_bytes;
    else
      for (uint32_t k = 0; k < m->n_classes; k++)
        total += varint_len(m->counts[(size_t)leaf * m->n_classes + k]);
  }
  return total;
}

/* ------------------------------------------------------------------ fitting */

/* A tree's random stream: xoshiro (core/hash.h) output used 32 bits at a time, high
   half first. Outputs are made RNG_BATCH at a time, so a draw is a load and an index
   bump instead of a branch on which half is next (it alternated unpredictably). */
#define RNG_BATCH 16
typedef struct rng32 {
  myr__rng rng;                /* the generator */
  uint32_t buf[2 * RNG_BATCH]; /* the next 32-bit draws, in stream order */
  uint32_t at;                 /* next unused entry of buf; 2 * RNG_BATCH: none left */
} rng32;

static void rng32_refill(rng32 *r) {
  for (uint32_t i = 0; i < RNG_BATCH; i++) {
    uint64_t v = myr__rng_next(&r->rng);
    r->buf[2 * i] = (uint32_t)(v >> 32);
    r->buf[2 * i + 1] = (uint32_t)v;
  }
  r->at = 0;
}

static inline uint32_t next32(rng32 *r) {
  if (r->at == 2 * RNG_BATCH)
    rng32_refill(r);
  return r->buf[r->at++];
}

/* Unbiased integer in [0, n), 0 < n < 2^32, by Lemire's multiply-shift: no division on
   the common path (myr__rng_below divides twice per draw, which showed in profiles). */
static inline uint32_t rand_below(rng32 *r, uint32_t n) {
  uint64_t m = (uint64_t)next32(r) * n;
  uint32_t lo = (uint32_t)m;
  if (lo < n) {
    uint32_t t = (uint32_t)(0u - n) % n;
    while (lo < t) {
      m = (uint64_t)next32(r) * n;
      lo = (uint32_t)m;
    }
  }
  return (uint32_t)(m >> 32);
}

/* x as scikit-learn sees it: float32, with out-of-range values saturated instead of
   becoming infinite (scikit-learn rejects them), so thresholds stay finite. */
static inline float to_f32(double v) {
  if (v > FLT_MAX)
    return FLT_MAX;
  if (v < -FLT_MAX)
    return -FLT_MAX;
  return (float)v;
}

/* Largest float32 <= t: for any float32 v, v <= t exactly when v <= floor_f32(t). */
static float floor_f32(double t) {
  float f = (float)t;
  if ((double)f > t)
    f = nextafterf(f, -INFINITY);
  return f;
}

/* Stable sort of idx[0..n) by key[idx[i]]: sorted runs of 16, then bottom-up merges. */
static void sort_idx(uint32_t *idx, uint32_t *tmp, size_t n, const float *key) {
  const size_t run = 16;
  for (size_t lo = 0; lo < n; lo += run) {
    size_t hi = lo + run < n ? lo + run : n;
    for (size_t i = lo + 1; i < hi; i++) {
      uint32_t v = idx[i];
      float kv = key[v];
      size_t j = i;
      while (j > lo && key[idx[j - 1]] > kv) {
        idx[j] = idx[j - 1];
        j--;
      }
      idx[j] = v;
    }
  }
  uint32_t *src = idx, *dst = tmp;
  for (size_t width = run; width < n; width *= 2) {
    for (size_t lo = 0; lo < n; lo += 2 * width) {
      size_t mid = lo + width < n ? lo + width : n;
      size_t hi = lo + 2 * width < n ? lo + 2 * width : n;
      size_t a = lo, b = mid, o = lo;
      while (a < mid && b < hi)
        dst[o++] = key[src[b]] < key[src[a]] ? src[b++] : src[a++];
      while (a < mid)
        dst[o++] = src[a++];
      while (b < hi)
        dst[o++] = src[b++];
    }
    uint32_t *t = src;
    src = dst;
    dst = t;
  }
  if (src != idx)
    memcpy(idx, src, n * sizeof *idx);
}

/* Doubles ascending, for qsort (class discovery: once per fit; labels are finite). */
static int cmp_f64(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Statistics of one node's rows. */
typedef struct nstat {
  double w;        /* weighted rows */
  double sum;      /* regression: sum of w * y */
  double sq;       /* regression: sum of w * y * y; classification: sum of counts^2 */
  double impurity; /* squared error or gini, as scikit-learn computes them */
  int pure;        /* all labels equal */
} nstat;

/* A node waiting on the stack. */
typedef struct pending {
  uint32_t start, end; /* its rows: ord[f][start..end) for every still-valid f */
  uint32_t depth;      /* root: 0 */
  uint32_t parent;     /* node whose right child this is, or NO_PARENT (a left child) */
  uint32_t n_const;    /* features known constant here: slot[depth][0..n_const) */
  uint32_t valid_f;    /* a feature whose order is partitioned down to this node */
  int has_stats;       /* st is filled in (regression: by the parent's split) */
  int leaf;            /* with has_stats: the node is a leaf */
  nstat st;            /* with has_stats: the node's statistics */
} pending;

/* The best split seen so far at a node. */
typedef struct split {
  double proxy;     /* best score so far (see eval_reg, eval_clf); -inf: none */
  uint32_t feature; /* split feature */
  uint32_t pos;     /* rows going left, in that feature's order */
  float lo, hi;     /* the two values the threshold falls between */
} split;

/* Everything one fit needs; trees reuse the per-tree arrays. */
typedef struct grower {
  const myr_scratch *s;
  size_t n, p;           /* rows, features */
  const float *xc;       /* p columns of n float32 values */
  const float *xft;      /* the same plus FEATURE_THRESHOLD, in float32 */
  const uint8_t *spread; /* p: 1 when a feature's values are pairwise farther apart
                            than FEATURE_THRESHOLD (every boundary is a candidate) */
  const uint32_t *gord;  /* max(p, 1) presorted orders of all rows */
  const double *y;       /* regression labels */
  const uint32_t *cls;   /* classification: class index of each row */
  uint32_t k;            /* classes; 0 for regression */
  uint32_t max_depth;    /* resolved: UINT32_MAX when unlimited */
  uint32_t mss, msl;     /* min_samples_split (>= 2 * msl), min_samples_leaf */
  uint32_t max_features; /* features drawn per node, 1..p */
  uint32_t n_boot;       /* rows drawn per tree when bootstrapping */
  int bootstrap;
  int leaf64;    /* regression leaf means stay binary64 */
  double mid;    /* min_impurity_decrease */
  double w_root; /* weighted rows of a tree (scikit-learn's weighted_n_samples) */
  /* per tree */
  rng32 rng;
  uint32_t *cnt;       /* times each row was drawn: its integer weight */
  double *e;           /* regression, per row of the node: w y W - w S (eval_reg) */
  double wt;           /* regression: W of the node being split */
  double *w, *wy;      /* row weight, weight * y */
  uint32_t *ord;       /* p orders of the in-bag rows, each partitioned by node */
  uint32_t *tmp;       /* n: sort and partition buffer */
  unsigned char *side; /* n: 1 when a row goes left */
  double *cl, *nc;     /* classification: left / node class weights, by class */
  uint32_t **slot;     /* per depth: feature permutation (known constants first) */
  size_t n_slot;       /* entries of slot */
  pending *stack;      /* nodes waiting */
  size_t stack_cap;
  /* output */
  forest_model *m;
  size_t node_cap, leaf_cap; /* capacity of m->nodes, of leaves in m->values */
} grower;

static void *grow(const myr_scratch *s, void *old, size_t used, size_t bytes,
                  size_t align) {
  void *p = s->alloc(s->ud, bytes, align);
  if (p && used)
    memcpy(p, old, used);
  return p;
}

/* Entries of a slot: p rounded up to whole SLOT_CHUNKs, copied in fixed-size chunks. */
#define SLOT_CHUNK 8
static size_t slot_len(size_t p) {
  return p ? (p + SLOT_CHUNK - 1) / SLOT_CHUNK * SLOT_CHUNK : SLOT_CHUNK;
}

static uint32_t *get_slot_slow(grower *g, size_t depth) {
  if (depth >= g->n_slot) {
    size_t n = g->n_slot * 2 > depth + 1 ? g->n_slot * 2 : depth + 8;
    uint32_t **ns =
        grow(g->s, g->slot, g->n_slot * sizeof *ns, n * sizeof *ns, sizeof *ns);
    if (!ns)
      return NULL;
    for (size_t i = g->n_slot; i < n; i++)
      ns[i] = NULL;
    g->slot = ns;
    g->n_slot = n;
  }
  if (!g->slot[depth]) {
    size_t bytes = slot_len(g->p) * sizeof(uint32_t);
    g->slot[depth] = g->s->alloc(g->s->ud, bytes, sizeof(uint32_t));
  }
  return g->slot[depth];
}

/* The feature permutation of depth (allocated the first time a tree gets that deep). */
static inline uint32_t *get_slot(grower *g, size_t depth) {
  if (depth < g->n_slot && g->slot[depth])
    return g->slot[depth];
  return get_slot_slow(g, depth);
}

/* Regression statistics of rows o[0..nn), nn >= 1, summed in that order. A split's
   children get theirs from the split feature's order, which is then theirs too: the sums
   are bit for bit what a pass at the child would give. */
static void reg_stats(const grower *g, const uint32_t *o, uint32_t nn, nstat *st) {
  double w = 0, sum = 0, sq = 0;
  double lo = g->y[o[0]], hi = lo;
  for (uint32_t i = 0; i < nn; i++) {
    uint32_t r = o[i];
    double yv = g->y[r];
    w += g->w[r];
    sum += g->wy[r];
    sq += g->wy[r] * yv;
    lo = yv < lo ? yv : lo;
    hi = yv > hi ? yv : hi;
  }
  st->impurity = sq / w - (sum / w) * (sum / w);
  st->pure = lo == hi;
  st->w = w;
  st->sum = sum;
  st->sq = sq;
}

static void node_stats(grower *g, const uint32_t *o, uint32_t nn, nstat *st) {
  double w = 0, sum = 0, sq = 0;
  if (!g->k) {
    reg_stats(g, o, nn, st);
    return;
  } else {
    double *nc = g->nc;
    for (uint32_t i = 0; i < nn; i++)
      nc[g->cls[o[i]]] = 0;
    for (uint32_t i = 0; i < nn; i++) {
      uint32_t r = o[i], c = g->cls[r];
      double ww = g->w[r], a = nc[c];
      sq += ww * (2 * a + ww);
      nc[c] = a + ww;
      w += ww;
    }
    st->impurity = 1.0 - sq / (w * w);
    st->pure = sq == w * w;
  }
  st->w = w;
  st->sum = sum;
  st->sq = sq;
}

/*
 * Every split of one feature (rows o[0..nn) sorted by col; colft = col + the tolerance,
 * rounded to float32 as scikit-learn adds it). scikit-learn maximizes sl^2/wl + sr^2/wr,
 * which is S^2/W + d^2/(W wl wr) with d = sl W - wl S. find_split prepares e[r] =
 * w y W - w S per row, so d is a running sum of e; weights are integers, so wl wr is
 * exact. Each row costs two adds and the comparison d^2 > best * wl wr, without the two
 * divisions per row that dominated the profile.
 */
static void eval_reg(const grower *g, const uint32_t *o, uint32_t nn, const float *col,
                     const float *colft, uint32_t f, split *b) {
  const double *w = g->w, *e = g->e;
  const double W = g->wt;
  uint32_t msl = g->msl, i = 0, last = nn - msl, pos = 0;
  double wl = 0, d = 0, best = b->proxy;
  for (; i + 1 < msl; i++) {
    wl += w[o[i]];
    d += e[o[i]];
  }
#define EVAL_ROW(r, rn, at)                                                              \
  do {                                                                                   \
    wl += w[r];                                                                          \
    d += e[r];                                                                           \
    if (col[rn] > colft[r]) {                                                            \
      double den = wl * (W - wl);                                                        \
      if (d * d > best * den) {                                                          \
        best = d * d / den;                                                              \
        pos = (at);                                                                      \
      }                                                                                  \
    }                                                                                    \
  } while (0)
  if (g->spread[f]) { /* every boundary is a candidate: no test of the values */
#define EVAL_ANY(r, at)                                                                  \
  do {                                                                                   \
    wl += w[r];                                                                          \
    d += e[r];                                                                           \
    double den = wl * (W - wl);                                                          \
    if (d * d > best * den) {                                                            \
      best = d * d / den;                                                                \
      pos = (at);                                                                        \
    }                                                                                    \
  } while (0)
    for (; i + 1 < last; i += 2) {
      uint32_t r1 = o[i], r2 = o[i + 1];
      EVAL_ANY(r1, i + 1);
      EVAL_ANY(r2, i + 2);
    }
    if (i < last)
      EVAL_ANY(o[i], i + 1);
#undef EVAL_ANY
    goto done;
  }
  uint32_t r = o[i];
  for (; i + 1 < last; i += 2) { /* two rows per trip: less loop overhead */
    uint32_t r1 = o[i + 1], r2 = o[i + 2];
    EVAL_ROW(r, r1, i + 1);
    EVAL_ROW(r1, r2, i + 2);
    r = r2;
  }
  if (i < last)
    EVAL_ROW(r, o[i + 1], i + 1);
#undef EVAL_ROW
done:
  if (pos) {
    b->proxy = best;
    b->feature = f;
    b->pos = pos;
    b->lo = col[o[pos - 1]];
    b->hi = col[o[pos]];
  }
}

/* The same for gini. Class weights move left one row at a time; the sums of squared
   class weights on both sides are updated in O(1) per row. */
static void eval_clf(const grower *g, const uint32_t *o, uint32_t nn, const float *col,
                     const float *colft, const nstat *st, uint32_t f, split *b) {
  const double *w = g->w, *nc = g->nc;
  const uint32_t *cls = g->cls;
  double *cl = g->cl;
  const double W = st->w;
  uint32_t msl = g->msl, i = 0, last = nn - msl, pos = 0;
  for (uint32_t j = 0; j < nn; j++)
    cl[cls[o[j]]] = 0;
  double wl = 0, sql = 0, sqr = st->sq, best = b->proxy;
  for (; i + 1 < msl; i++) {
    uint32_t r = o[i], c = cls[r];
    double ww = w[r], a = cl[c], rr = nc[c] - a;
    sql += ww * (2 * a + ww);
    sqr -= ww * (2 * rr - ww);
    cl[c] = a + ww;
    wl += ww;
  }
  for (; i < last; i++) {
    uint32_t r = o[i], c = cls[r];
    double ww = w[r], a = cl[c], rr = nc[c] - a;
    sql += ww * (2 * a + ww);
    sqr -= ww * (2 * rr - ww);
    cl[c] = a + ww;
    wl += ww;
    if (col[o[i + 1]] > colft[r]) {
      /* -wr * gini_r - wl * gini_l = sql / wl + sqr / wr - W; W is the same for all. */
      double wr = W - wl;
      double num = sql * wr + sqr * wl, den = wl * wr;
      if (num > best * den) {
        best = num / den;
        pos = i + 1;
      }
    }
  }
  if (pos) {
    b->proxy = best;
    b->feature = f;
    b->pos = pos;
    b->lo = col[o[pos - 1]];
    b->hi = col[o[pos]];
  }
}

/* scikit-learn's impurity_improvement of the split b (rows sorted by b->feature in o);
   regression takes the left child's statistics in sl (their sums over o[0..b->pos)). */
static double improvement(grower *g, const uint32_t *o, const nstat *st, const split *b,
                          const nstat *sl_st) {
  double wl = 0, il, ir;
  const double W = st->w;
  if (!g->k) {
    double sl = sl_st->sum, ql = sl_st->sq;
    wl = sl_st->w;
    double wr = W - wl, sr = st->sum - sl, qr = st->sq - ql;
    il = ql / wl - (sl / wl) * (sl / wl);
    ir = qr / wr - (sr / wr) * (sr / wr);
    return (W / g->w_root) * (st->impurity - wr / W * ir - wl / W * il);
  }
  double *cl = g->cl;
  for (uint32_t i = 0; i < b->pos; i++)
    cl[g->cls[o[i]]] = 0;
  double sql = 0, sqr = st->sq;
  for (uint32_t i = 0; i < b->pos; i++) {
    uint32_t r = o[i], c = g->cls[r];
    double ww = g->w[r], a = cl[c], rr = g->nc[c] - a;
    sql += ww * (2 * a + ww);
    sqr -= ww * (2 * rr - ww);
    cl[c] = a + ww;
    wl += ww;
  }
  double wr = W - wl;
  il = 1.0 - sql / (wl * wl);
  ir = 1.0 - sqr / (wr * wr);
  return (W / g->w_root) * (st->impurity - wr / W * ir - wl / W * il);
}

/*
 * scikit-learn's node_split_best: draw features without replacement until max_features
 * were visited (known constants count, but at least one must be non-constant), skip the
 * constant ones (remembered for the subtree), evaluate every boundary of the others.
 * Works on slot[depth + 1], which becomes the children's feature permutation.
 * Returns 1 with *b filled when there is a split (the caller checks
 * min_impurity_decrease), 0 for a leaf, MYR_ENOMEM (negative) when out of memory.
 */
static int find_split(grower *g, const pending *e, const nstat *st, split *b,
                      uint32_t *n_const_out) {
  const size_t n = g->n;
  uint32_t *parent = get_slot(g, e->depth);
  uint32_t *F = get_slot(g, (size_t)e->depth + 1);
  if (!parent || !F)
    return MYR_ENOMEM;
  for (size_t j = 0; j < g->p; j += SLOT_CHUNK) /* fixed size: inlined, no call */
    memcpy(F + j, parent + j, SLOT_CHUNK * sizeof *F);
  const uint32_t nn = e->end - e->start;
  uint32_t f_i = (uint32_t)g->p, visited = 0, found_c = 0, drawn_c = 0;
  const uint32_t known = e->n_const;
  uint32_t total_c = known;
  int prepared = 0;
  b->proxy = -INFINITY;
  b->pos = 0;
  while (f_i > total_c && (visited < g->max_features || visited <= found_c + drawn_c)) {
    visited++;
    uint32_t f_j = drawn_c + rand_below(&g->rng, f_i - found_c - drawn_c);
    if (f_j < known) {
      uint32_t t = F[drawn_c];
      F[drawn_c] = F[f_j];
      F[f_j] = t;
      drawn_c++;
      continue;
    }
    f_j += found_c;
    uint32_t f = F[f_j];
    const uint32_t *o = g->ord + (size_t)f * n + e->start;
    const float *col = g->xc + (size_t)f * n;
    if (col[o[nn - 1]] <= g->xft[(size_t)f * n + o[0]]) { /* max <= min + tolerance */
      F[f_j] = F[total_c];
      F[total_c] = f;
      found_c++;
      total_c++;
      continue;
    }
    f_i--;
    F[f_j] = F[f_i];
    F[f_i] = f;
    if (nn == 2) {
      /* One split, with the same proxy for every feature that separates the two rows
         (the sides only swap): scikit-learn would keep the first up to rounding. */
      b->proxy = 0;
      b->feature = f;
      b->pos = 1;
      b->lo = col[o[0]];
      b->hi = col[o[1]];
      break;
    }
    if (g->k) {
      eval_clf(g, o, nn, col, g->xft + (size_t)f * n, st, f, b);
      continue;
    }
    if (!prepared) {
      const uint32_t *ov = g->ord + (size_t)e->valid_f * n + e->start;
      const double W = st->w, S = st->sum;
      for (uint32_t i = 0; i < nn; i++) {
        uint32_t r = ov[i];
        g->e[r] = g->wy[r] * W - g->w[r] * S;
      }
      g->wt = W;
      prepared = 1;
    }
    eval_reg(g, o, nn, col, g->xft + (size_t)f * n, f, b);
  }
  *n_const_out = total_c;
  return b->pos != 0;
}

/* Whether a node of nn rows at depth is a leaf whatever its rows. */
static inline int leaf_by_size(const grower *g, uint32_t nn, uint32_t depth) {
  return (depth >= g->max_depth) | (nn < g->mss) | (nn < 2 * g->msl); /* no branches */
}

/* Whether a node with statistics st is a leaf. */
static inline int is_leaf(const grower *g, uint32_t nn, uint32_t depth, const nstat *st) {
  return leaf_by_size(g, nn, depth) | (st->impurity <= DBL_EPSILON) | st->pure;
}

/*
 * Hand node e's rows to its children: every feature order still useful below (not known
 * constant) is stably partitioned in place; the split feature's order already is. A
 * child that is a leaf reads nothing (regression) or only the split feature's order
 * (classification), so nothing is moved when both are.
 */
static void partition(grower *g, const pending *e, const split *b, const uint32_t *F,
                      uint32_t n_const, int need_l, int need_r) {
  const size_t n = g->n;
  const uint32_t nn = e->end - e->start, mid = b->pos;
  uint32_t *base = g->ord + e->start;
  const uint32_t *ob = base + (size_t)b->feature * n;
  if (!need_l && !need_r)
    return;
  unsigned char *side = g->side;
  uint32_t *tmp = g->tmp;
  for (uint32_t i = 0; i < mid; i++)
    side[ob[i]] = 1;
  for (uint32_t i = mid; i < nn; i++)
    side[ob[i]] = 0;
  /* No branches on side[]: sides alternate at random. A leaf child reads no other
     order, so when one side is a leaf the other is compacted in place. */
  for (size_t j = n_const; j < g->p; j++) {
    uint32_t f = F[j];
    if (f == b->feature)
      continue;
    uint32_t *a = base + (size_t)f * n;
    if (need_l && need_r) {
      uint32_t l = 0;
      for (uint32_t i = 0; i < nn; i++) {
        uint32_t s = a[i];
        a[l] = s;       /* l <= i: already read */
        tmp[i - l] = s; /* i - l rows went right so far */
        l += side[s];
      }
      memcpy(a + l, tmp, (nn - l) * sizeof *a);
    } else if (need_l) {
      uint32_t l = 0;
      for (uint32_t i = 0; i < nn; i++) {
        uint32_t s = a[i];
        a[l] = s;
        l += side[s];
      }
    } else {
      uint32_t k = nn; /* right rows end at nn; k - 1 >= i throughout */
      for (uint32_t i = nn; i-- > 0;) {
        uint32_t s = a[i];
        a[k - 1] = s;
        k -= side[s] ^ 1u;
      }
    }
  }
}

static void make_leaf(grower *g, uint32_t id, const uint32_t *o, uint32_t nn,
                      const nstat *st) {
  forest_model *m = g->m;
  uint32_t li = m->n_leaves++;
  fnode *nd = m->nodes + m->n_nodes + id;
  nd->feature = 0;
  nd->next = id;
  nd->thr = NAN;
  m->leaf_of[m->n_nodes + id] = li;
  if (!g->k) {
    /* float32 by default (leaf_values): the payload's leaves halve, and a mean of
       noisy labels loses nothing it held; a mean beyond float32's range stays. */
    double v = st->sum / st->w;
    m->values[li] = !g->leaf64 && fabs(v) <= FLT_MAX ? (double)(float)v : v;
    return;
  }
  uint32_t *cnt = m->counts + (size_t)li * g->k;
  double *val = m->values + (size_t)li * g->k;
  memset(cnt, 0, g->k * sizeof *cnt);
  for (uint32_t i = 0; i < nn; i++) {
    uint32_t c = g->cls[o[i]];
    cnt[c] = (uint32_t)g->nc[c];
  }
  for (uint32_t c = 0; c < g->k; c++)
    val[c] = (double)cnt[c] / st->w;
}

/* Room for one more tree of at most m_in in-bag rows. */
static int reserve(grower *g, uint32_t m_in, uint32_t trees_left) {
  forest_model *m = g->m;
  size_t need_nodes = (size_t)m->n_nodes + 2 * (size_t)m_in - 1;
  size_t need_leaves = (size_t)m->n_leaves + m_in;
  if (need_nodes >= UINT32_MAX || need_leaves >= UINT32_MAX)
    return MYR_EMODEL;
  if (need_nodes > g->node_cap) {
    size_t cap = g->node_cap * 2;
    if (!g->node_cap) { /* guess: all trees alike, plus slack */
      cap = (2 * (size_t)m_in - 1) * trees_left;
      cap += cap / 8;
      if (cap > ((size_t)1 << 22))
        cap = (size_t)1 << 22;
    }
    if (cap < need_nodes)
      cap = need_nodes;
    fnode *nn = grow(g->s, m->nodes, m->n_nodes * sizeof *nn, cap * sizeof *nn, 8);
    uint32_t *lo =
        nn ? grow(g->s, m->leaf_of, m->n_nodes * sizeof *lo, cap * sizeof *lo, 4) : NULL;
    if (!lo)
      return MYR_ENOMEM;
    m->nodes = nn;
    m->leaf_of = lo;
    g->node_cap = cap;
  }
  if (need_leaves > g->leaf_cap) {
    size_t cap = g->leaf_cap * 2;
    if (!g->leaf_cap) {
      cap = (size_t)m_in * trees_left;
      cap += cap / 8;
      if (cap > ((size_t)1 << 21))
        cap = (size_t)1 << 21;
    }
    if (cap < need_leaves)
      cap = need_leaves;
    size_t k = g->k ? g->k : 1;
    if (cap > SIZE_MAX / (k * sizeof(double)))
      return MYR_ENOMEM;
    double *v =
        grow(g->s, m->values, m->n_leaves * k * sizeof *v, cap * k * sizeof *v, 8);
    if (!v)
      return MYR_ENOMEM;
    m->values = v;
    if (g->k) {
      uint32_t *c =
          grow(g->s, m->counts, m->n_leaves * k * sizeof *c, cap * k * sizeof *c, 4);
      if (!c)
        return MYR_ENOMEM;
      m->counts = c;
    }
    g->leaf_cap = cap;
  }
  return MYR_OK;
}

static int build_tree(grower *g, uint32_t t, uint64_t seed) {
  const size_t n = g->n, p = g->p, pf = p ? p : 1;
  forest_model *m = g->m;
  myr__rng_seed(&g->rng.rng, myr__mix64(seed ^ myr__mix64(FOREST_SEED_SALT + t)));
  g->rng.at = 2 * RNG_BATCH;
  /* Bootstrap as scikit-learn: n_boot draws with replacement become row weights. */
  if (g->bootstrap) {
    memset(g->cnt, 0, n * sizeof *g->cnt);
    for (uint32_t i = 0; i < g->n_boot; i++)
      g->cnt[rand_below(&g->rng, (uint32_t)n)]++;
  }
  uint32_t m_in = 0;
  if (g->bootstrap) {
    for (size_t f = 0; f < pf; f++) {
      const uint32_t *src = g->gord + f * n;
      uint32_t *dst = g->ord + f * n, k = 0;
      for (size_t i = 0; i < n; i++) {
        dst[k] = src[i]; /* kept only when drawn */
        k += g->cnt[src[i]] != 0;
      }
      m_in = k;
    }
    for (size_t i = 0; i < n; i++) {
      g->w[i] = g->cnt[i];
      if (!g->k)
        g->wy[i] = g->w[i] * g->y[i];
    }
  } else {
    memcpy(g->ord, g->gord, pf * n * sizeof *g->ord);
    m_in = (uint32_t)n;
  }
  int rc = reserve(g, m_in, m->n_trees - t);
  if (rc != MYR_OK)
    return rc;
  uint32_t *root_f = get_slot(g, 0);
  if (!root_f)
    return MYR_ENOMEM;
  for (uint32_t f = 0; f < p; f++)
    root_f[f] = f;

  fnode *nodes = m->nodes + m->n_nodes;
  uint32_t n_tree = 0, depth_max = 0;
  size_t sp = 0;
  g->stack[sp++] = (pending){.start = 0, .end = m_in, .parent = NO_PARENT};
  while (sp > 0) {
    pending e = g->stack[--sp];
    uint32_t id = n_tree++;
    fnode *nd = &nodes[id];
    if (e.parent != NO_PARENT)
      nodes[e.parent].next = id;
    if (e.depth > depth_max)
      depth_max = e.depth;
    const uint32_t nn = e.end - e.start;
    const uint32_t *o = g->ord + (size_t)e.valid_f * n + e.start;
    if (!e.has_stats) {
      node_stats(g, o, nn, &e.st);
      e.leaf = is_leaf(g, nn, e.depth, &e.st);
    }
    split b;
    uint32_t n_const = 0;
    nstat sl, sr;
    int leaf = e.leaf;
    if (!leaf) {
      rc = find_split(g, &e, &e.st, &b, &n_const);
      if (rc < 0)
        return rc;
      leaf = rc == 0;
    }
    if (!leaf) {
      const uint32_t *ob = g->ord + (size_t)b.feature * n + e.start;
      if (!g->k) {
        reg_stats(g, ob, b.pos, &sl);
        reg_stats(g, ob + b.pos, nn - b.pos, &sr);
      }
      leaf = improvement(g, ob, &e.st, &b, &sl) + DBL_EPSILON < g->mid;
    }
    if (leaf) {
      make_leaf(g, id, o, nn, &e.st);
      continue;
    }
    m->leaf_of[m->n_nodes + id] = NOT_LEAF;
    double thr = (double)b.lo / 2.0 + (double)b.hi / 2.0;
    if (thr == (double)b.hi || isinf(thr))
      thr = b.lo;
    nd->thr = floor_f32(thr);
    nd->feature = b.feature;
    nd->next = 0;
    const uint32_t d1 = e.depth + 1, mid = e.start + b.pos;
    /* Regression children get their statistics and leaf status here; classification
       children compute theirs when popped. */
    int leaf_l, leaf_r;
    if (!g->k) {
      leaf_l = is_leaf(g, b.pos, d1, &sl);
      leaf_r = is_leaf(g, nn - b.pos, d1, &sr);
    } else {
      leaf_l = leaf_by_size(g, b.pos, d1);
      leaf_r = leaf_by_size(g, nn - b.pos, d1);
    }
    partition(g, &e, &b, g->slot[d1], n_const, !leaf_l, !leaf_r);
    if (sp + 2 > g->stack_cap) {
      size_t cap = g->stack_cap * 2;
      pending *ns = grow(g->s, g->stack, sp * sizeof *ns, cap * sizeof *ns, 8);
      if (!ns)
        return MYR_ENOMEM;
      g->stack = ns;
      g->stack_cap = cap;
    }
    pending r = {.start = mid,
                 .end = e.end,
                 .depth = d1,
                 .parent = id,
                 .n_const = n_const,
                 .valid_f = b.feature};
    pending l = {.start = e.start,
                 .end = mid,
                 .depth = d1,
                 .parent = NO_PARENT,
                 .n_const = n_const,
                 .valid_f = b.feature};
    if (g->k) {
      g->stack[sp++] = r;
      g->stack[sp++] = l;
      continue;
    }
    r.has_stats = l.has_stats = 1;
    r.st = sr;
    l.st = sl;
    r.leaf = leaf_r;
    if (!leaf_l) {
      g->stack[sp++] = r;
      g->stack[sp++] = l;
      continue;
    }
    /* A left leaf comes next in preorder: no trip through the stack (nor the right
       child's, when it is a leaf too). */
    if (d1 > depth_max)
      depth_max = d1;
    make_leaf(g, n_tree++, NULL, 0, &sl);
    if (leaf_r) {
      nd->next = n_tree;
      make_leaf(g, n_tree++, NULL, 0, &sr);
    } else {
      g->stack[sp++] = r;
    }
  }
  m->n_nodes += n_tree;
  m->tree_node[t + 1] = m->n_nodes;
  m->tree_depth[t] = depth_max;
  return MYR_OK;
}

/* Resolve the params against this group as scikit-learn's fit does. */
static int resolve(const forest_params *fp, grower *g, myr_error *err) {
  const size_t n = g->n, p = g->p;
  uint32_t msl = fp->msl_frac ? (uint32_t)ceil(fp->min_samples_leaf * (double)n)
                              : (uint32_t)fp->min_samples_leaf;
  uint32_t mss = fp->mss_frac ? (uint32_t)ceil(fp->min_samples_split * (double)n)
                              : (uint32_t)fp->min_samples_split;
  if (msl < 1)
    msl = 1;
  if (mss < 2)
    mss = 2;
  if (mss < 2 * msl)
    mss = 2 * msl;
  g->msl = msl;
  g->mss = mss;
  g->max_depth = fp->max_depth ? fp->max_depth : UINT32_MAX;
  size_t mf;
  switch (fp->mf_kind) {
  case MF_SQRT: mf = (size_t)sqrt((double)p); break;
  case MF_LOG2: mf = p ? (size_t)log2((double)p) : 0; break;
  case MF_ALL: mf = p; break;
  case MF_INT:
    mf = (size_t)fp->max_features; /* more than p: all of them, as scikit-learn */
    break;
  case MF_FRAC: mf = (size_t)(fp->max_features * (double)p); break;
  default: mf = fp->task == TASK_CLF ? (size_t)sqrt((double)p) : p; break;
  }
  if (mf < 1)
    mf = 1;
  g->max_features = mf > UINT32_MAX ? UINT32_MAX : (uint32_t)mf;
  g->bootstrap = fp->bootstrap;
  g->leaf64 = fp->leaf64;
  g->mid = fp->min_impurity_decrease;
  if (!fp->bootstrap && fp->ms_kind)
    return myr_error_set(err, MYR_EINVAL,
                         "forest: max_samples cannot be set when bootstrap=false");
  double nb = (double)n;
  if (fp->ms_kind == 1)
    nb = fp->max_samples;
  else if (fp->ms_kind == 2)
    nb = floor(fp->max_samples * (double)n);
  if (nb < 1)
    nb = 1;
  if (nb >= UINT32_MAX)
    return myr_error_set(
        err, MYR_EINVAL,
        "forest: max_samples asks for %.0f rows per tree, more than 2^32", nb);
  g->n_boot = (uint32_t)nb;
  g->w_root = fp->bootstrap ? nb : (double)n;
  return MYR_OK;
}

/* count elements of size bytes from scratch (>= 1 byte); NULL on overflow or OOM. */
static void *alloc_n(const myr_scratch *s, size_t count, size_t size) {
  if (count > SIZE_MAX / size)
    return NULL;
  return s->alloc(s->ud, count ? count * size : 1, 8);
}
#define NEW(ptr, count) (((ptr) = alloc_n(s, (count), sizeof *(ptr))) != NULL)

static int fit(const void *pp, const myr_dataset *d, uint64_t seed, const myr_scratch *s,
               void **model_out, myr_error *err) {
  const forest_params *fp = pp;
  const size_t n = d->n_rows, p = d->n_features, pf = p ? p : 1;
  *model_out = NULL;
  if (n == 0 || n >= UINT32_MAX / 2 || p >= UINT32_MAX - 1)
    return myr_error_set(err, MYR_EINVAL,
                         "forest: %zu rows x %zu features is out of range", n, p);
  if (pf > SIZE_MAX / sizeof(uint32_t) / n)
    return myr_error_set(err, MYR_ENOMEM, "forest: %zu x %zu values do not fit in memory",
                         n, p);
  grower g;
  memset(&g, 0, sizeof g);
  g.s = s;
  g.n = n;
  g.p = p;
  MYR_RETURN_NOT_OK(resolve(fp, &g, err));

  forest_model *m;
  float *xc, *xft;
  uint32_t *gord, *cls = NULL;
  double *classes = NULL;
  if (!NEW(m, 1) || !NEW(xc, pf * n) || !NEW(xft, pf * n) || !NEW(gord, pf * n) ||
      !NEW(g.ord, pf * n) || !NEW(g.tmp, n) || !NEW(g.side, n) || !NEW(g.cnt, n) ||
      !NEW(g.w, n) || !NEW(g.stack, 64))
    goto oom;
  g.stack_cap = 64;
  memset(m, 0, sizeof *m);
  m->task = (uint32_t)fp->task;
  m->n_features = (uint32_t)p;
  m->n_trees = fp->n_trees;
  g.m = m;
  if (!NEW(m->tree_node, (size_t)m->n_trees + 1) || !NEW(m->tree_depth, m->n_trees))
    goto oom;
  m->tree_node[0] = 0;

  /* float32 columns and their presorted orders */
  for (size_t i = 0; i < n; i++)
    for (size_t f = 0; f < p; f++) {
      xc[f * n + i] = to_f32(d->x[i * p + f]);
      xft[f * n + i] = xc[f * n + i] + FEATURE_THRESHOLD;
    }
  for (size_t f = 0; f < pf; f++) {
    uint32_t *o = gord + f * n;
    for (size_t i = 0; i < n; i++)
      o[i] = (uint32_t)i;
    if (p)
      sort_idx(o, g.tmp, n, xc + f * n);
  }
  uint8_t *spread;
  if (!NEW(spread, pf))
    goto oom;
  for (size_t f = 0; f < pf; f++) { /* sorted: consecutive values decide */
    const uint32_t *o = gord + f * n;
    spread[f] = p > 0;
    for (size_t i = 1; i < n && p; i++)
      if (!(xc[f * n + o[i]] > xft[f * n + o[i - 1]]))
        spread[f] = 0;
  }
  g.xc = xc;
  g.xft = xft;
  g.spread = spread;
  g.gord = gord;

  if (fp->task == TASK_CLF) {
    double *sorted;
    if (!NEW(sorted, n) || !NEW(cls, n))
      goto oom;
    memcpy(sorted, d->y, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, cmp_f64);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
      if (i == 0 || sorted[i] != sorted[k - 1])
        sorted[k++] = sorted[i];
    classes = sorted;
    for (size_t i = 0; i < n; i++) {
      size_t lo = 0, hi = k; /* classes[lo] == y[i], by binary search */
      while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (classes[mid] <= d->y[i])
          lo = mid;
        else
          hi = mid;
      }
      cls[i] = (uint32_t)lo;
    }
    g.k = (uint32_t)k;
    g.cls = cls;
    if (!NEW(g.cl, k) || !NEW(g.nc, k))
      goto oom;
    m->classes = classes;
    m->n_classes = (uint32_t)k;
    m->n_out = (uint32_t)k;
  } else {
    if (!NEW(g.wy, n) || !NEW(g.e, n))
      goto oom;
    g.y = d->y;
    m->n_out = 1;
  }
  if (!fp->bootstrap)
    for (size_t i = 0; i < n; i++) {
      g.cnt[i] = 1;
      g.w[i] = 1.0;
      if (!g.k)
        g.wy[i] = d->y[i];
    }

  for (uint32_t t = 0; t < m->n_trees; t++) {
    int rc = build_tree(&g, t, seed);
    if (rc == MYR_ENOMEM)
      goto oom;
    if (rc != MYR_OK)
      return myr_error_set(err, rc, "forest: more than 2^32 nodes");
  }
  /* Leaf values go to the payload as float32 when all of them are exactly float32:
     always with leaf_values=float32 unless a mean is beyond float32's range. */
  m->value_bytes = 4;
  for (uint32_t i = 0; m->task == TASK_REG && i < m->n_leaves; i++) {
    double v = m->values[i];
    if (!isfinite(v)) /* sums of labels near DBL_MAX overflow */
      return myr_error_set(err, MYR_EMODEL, "forest: a leaf mean is not finite");
    if (fabs(v) > FLT_MAX || (double)(float)v != v)
      m->value_bytes = 8;
  }
  m->payload_bytes = compute_payload_bytes(m);
  *model_out = m;
  return MYR_OK;
oom:
  return myr_error_set(err, MYR_ENOMEM, "out of memory fitting a forest (%zu rows)", n);
}

/* ------------------------------------------------------------------ using the model */

static size_t n_outputs(const void *mp) {
  const forest_model *m = mp;
  return m->n_out;
}

static const double *class_values(const void *mp) {
  const forest_model *m = mp;
  return m->task == TASK_CLF ? m->classes : NULL;
}

/* One step down a tree, without a branch (the side taken is random): i + 1 when
   xf[feature] <= thr, else next; a leaf (NaN threshold, next = i) stays put. */
static inline uint32_t step(const fnode *nd, uint32_t i, const float *xf) {
  const fnode *c = &nd[i];
  uint32_t right = 0u - (uint32_t) !(xf[c->feature] <= c->thr);
  return ((i + 1) & ~right) | (c->next & right);
}

/* Rows predicted together: their walks down a tree are independent, so the CPU overlaps
   them. */
#define PRED_BLOCK 8
#define PRED_FLOATS 4096 /* float32 copies of a block's rows, on the stack */

static int predict(const void *mp, const double *x, size_t n_rows, size_t n_features,
                   double *out, myr_error *err) {
  const forest_model *m = mp;
  if (n_features != m->n_features)
    return myr_error_set(err, MYR_EINVAL, "forest model has %u features, input has %zu",
                         m->n_features, n_features);
  const size_t p = n_features, k = m->n_out, pf = p ? p : 1;
  const double nt = (double)m->n_trees;
  float xf[PRED_FLOATS];
  size_t block = PRED_FLOATS / pf;
  if (block > PRED_BLOCK)
    block = PRED_BLOCK;
  for (size_t r0 = 0; r0 < n_rows; r0 += block ? block : 1) {
    size_t nb = block ? (n_rows - r0 < block ? n_rows - r0 : block) : 1;
    double *o = out + r0 * k;
    for (size_t j = 0; j < nb * k; j++)
      o[j] = 0;
    if (block)
      for (size_t j = 0; j < nb; j++) {
        xf[j * pf] = 0; /* read by leaves when there are no features */
        for (size_t f = 0; f < p; f++)
          xf[j * pf + f] = to_f32(x[(r0 + j) * p + f]);
      }
    for (uint32_t t = 0; t < m->n_trees; t++) {
      const fnode *nd = m->nodes + m->tree_node[t];
      const uint32_t *leaf_of = m->leaf_of + m->tree_node[t];
      const uint32_t steps = m->tree_depth[t];
      uint32_t idx[PRED_BLOCK] = {0};
      if (nb == PRED_BLOCK) { /* fixed trip count: the walks stay in registers */
        for (uint32_t st = 0; st < steps; st++)
          for (size_t j = 0; j < PRED_BLOCK; j++)
            idx[j] = step(nd, idx[j], xf + j * pf);
      } else if (block) {
        for (uint32_t st = 0; st < steps; st++)
          for (size_t j = 0; j < nb; j++)
            idx[j] = step(nd, idx[j], xf + j * pf);
      } else { /* rows too wide for the stack copy: convert as we go */
        for (uint32_t st = 0; st < steps; st++) {
          const fnode *c = &nd[idx[0]];
          idx[0] = to_f32(x[r0 * p + c->feature]) <= c->thr ? idx[0] + 1 : c->next;
        }
      }
      for (size_t j = 0; j < nb; j++) {
        const double *v = m->values + (size_t)leaf_of[idx[j]] * k;
        for (size_t c = 0; c < k; c++)
          o[j * k + c] += v[c];
      }
    }
    for (size_t j = 0; j < nb * k; j++)
      o[j] /= nt;
  }
  return MYR_OK;
}

/* ------------------------------------------------------------------ encoding */

static size_t encoded_size(const void *mp) {
  const forest_model *m = mp;
  return m->payload_bytes;
}

static void put32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}

static void put_f64(unsigned char *p, double v) {
  uint64_t u;
  memcpy(&u, &v, 8);
  for (int i = 0; i < 8; i++)
    p[i] = (unsigned char)(u >> (8 * i));
}

static double get_f64(const unsigned char *p) {
  uint64_t u = (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
  double v;
  memcpy(&v, &u, 8);
  return v;
}

static void put_f32(unsigned char *p, float v) {
  uint32_t u;
  memcpy(&u, &v, 4);
  put32(p, u);
}

static float get_f32(const unsigned char *p) {
  uint32_t u = get32(p);
  float v;
  memcpy(&v, &u, 4);
  return v;
}

static int encode(const void *mp, unsigned char *out, size_t len, myr_error *err) {
  const forest_model *m = mp;
  if (len != m->payload_bytes)
    return myr_error_set(err, MYR_EINTERNAL, "forest: encode buffer size mismatch");
  const size_t fb = feature_code_bytes(m->n_features), k = m->n_classes;
  unsigned char *p = out;
  p[0] = (unsigned char)m->task;
  p[1] = (unsigned char)fb;
  p[2] = (unsigned char)(m->task == TASK_REG ? m->value_bytes : 0);
  p[3] = 0;
  put32(p + 4, m->n_trees);
  put32(p + 8, m->n_classes);
  p += 12;
  for (size_t c = 0; c < k; c++, p += 8)
    put_f64(p, m->classes[c]);
  for (uint32_t t = 0; t < m->n_trees; t++) {
    uint32_t first = m->tree_node[t], end = m->tree_node[t + 1];
    put32(p, end - first);
    p += 4;
    for (uint32_t i = first; i < end; i++) {
      const fnode *nd = &m->nodes[i];
      uint32_t leaf = m->leaf_of[i];
      uint32_t code = leaf == NOT_LEAF ? nd->feature + 1 : 0;
      for (size_t b = 0; b < fb; b++)
        *p++ = (unsigned char)(code >> (8 * b));
      if (leaf == NOT_LEAF) {
        put_f32(p, nd->thr);
        p += 4;
      } else if (m->task == TASK_REG) {
        if (m->value_bytes == 4)
          put_f32(p, (float)m->values[leaf]);
        else
          put_f64(p, m->values[leaf]);
        p += m->value_bytes;
      } else {
        for (size_t c = 0; c < k; c++) {
          uint32_t v = m->counts[(size_t)leaf * k + c];
          while (v >= 0x80) {
            *p++ = (unsigned char)(v | 0x80);
            v >>= 7;
          }
          *p++ = (unsigned char)v;
        }
      }
    }
  }
  if ((size_t)(p - out) != len)
    return myr_error_set(err, MYR_EINTERNAL, "forest: encoded %zu bytes, expected %zu",
                         (size_t)(p - out), len);
  return MYR_OK;
}

/* Minimal-length LEB128 u32 from p[0..avail); bytes used, 0 when malformed. */
static size_t get_varint(const unsigned char *p, size_t avail, uint32_t *out) {
  uint64_t v = 0;
  for (size_t i = 0; i < avail && i < 5; i++) {
    v |= (uint64_t)(p[i] & 0x7f) << (7 * i);
    if (!(p[i] & 0x80)) {
      if ((i > 0 && p[i] == 0) || v > UINT32_MAX)
        return 0; /* not minimal, or too large */
      *out = (uint32_t)v;
      return i + 1;
    }
  }
  return 0;
}

#define CORRUPT(...) myr_error_set(err, MYR_ECORRUPT, "forest payload: " __VA_ARGS__)

/*
 * The common tree: regression with float32 leaves and 1-byte feature codes, where every
 * node is 5 bytes (code, then threshold or leaf value), so b[0..5 nn) is known to be
 * there and a node is decoded without branching on its kind (splits and leaves alternate
 * at random: a branch on it missed about every other node). The structure is checked as
 * in the general loop (a leaf may close a subtree only when one is open; a tree ends
 * with none open and on a leaf), but failures are only collected: 0 means the tree is
 * not valid or a value is out of range, and decode() then runs the general loop, which
 * says exactly what is wrong. The tree's first leaf is number leaf0, its values go to
 * values[0..lcap), lcap >= 1; stack and sdepth hold nn entries.
 */
static int decode_tree5(const unsigned char *b, uint32_t nn, uint32_t n_features,
                        fnode *nodes, uint32_t *leaf_of, uint32_t leaf0, double *values,
                        size_t lcap, uint32_t *stack, uint32_t *sdepth,
                        uint32_t *n_leaves, uint32_t *depth_out) {
  const uint32_t qnan = 0x7fc00000u;
  uint32_t sp = 0, depth = 0, depth_max = 0, leaf = 0, bad = 0, prev_split = 1;
  for (uint32_t i = 0; i < nn; i++) {
    const unsigned char *q = b + 5 * (size_t)i;
    uint32_t code = q[0], bits = get32(q + 1);
    if (i > 0) { /* a leaf before: i is the right child of the open split on top */
      uint32_t pop = prev_split ^ 1u, under = pop & (sp == 0);
      bad |= under;
      pop &= under ^ 1u; /* nothing open: no pop, so every index below stays in range */
      sp -= pop;
      uint32_t top = stack[sp], d_right = sdepth[sp] + 1, d_left = depth + 1;
      depth = d_left ^ ((d_left ^ d_right) & (0u - pop));
      nodes[i ^ ((i ^ top) & (0u - pop))].next = i; /* else node i's own, set below */
    }
    uint32_t is_split = code != 0;
    bad |= (code > n_features) | (((bits >> 23) & 0xffu) == 0xffu); /* not finite */
    uint32_t thr = bits ^ ((bits ^ qnan) & (is_split - 1u));        /* NaN in a leaf */
    fnode *nd = &nodes[i];
    memcpy(&nd->thr, &thr, sizeof thr);
    nd->feature = code - is_split;
    nd->next = i; /* a split's is set when its right child comes */
    leaf_of[i] = (leaf0 + leaf) | (0u - is_split); /* NOT_LEAF for a split */
    float v;
    memcpy(&v, &bits, sizeof v);
    /* A split's write is overwritten by the next leaf; only a tree that is not valid
       has more leaves than lcap, and it is decoded again anyway. */
    values[leaf < lcap ? leaf : lcap - 1] = (double)v;
    leaf += is_split ^ 1u;
    stack[sp] = i;
    sdepth[sp] = depth;
    sp += is_split;
    depth_max = depth > depth_max ? depth : depth_max;
    prev_split = is_split;
  }
  *n_leaves = leaf;
  *depth_out = depth_max;
  return !(bad | (sp != 0) | prev_split);
}

/*
 * One pass: every node is validated as it is filled in. The arrays are sized from the
 * smallest encoded node, so the payload's length bounds them before anything is read;
 * a node read past its tree's structure (a leaf with no open subtree left), a tree that
 * ends with subtrees open, or any trailing byte is an error.
 */
static int decode_any(const unsigned char *b, size_t len, uint32_t version,
                      size_t n_features, const myr_scratch *s, int fast, void **model_out,
                      myr_error *err) {
  *model_out = NULL;
  if (version != 1)
    return myr_error_set(err, MYR_EUNSUPPORTED, "forest payload version %u unknown",
                         version);
  if (n_features >= UINT32_MAX)
    return CORRUPT("%zu features", n_features);
  if (len < 12)
    return CORRUPT("%zu bytes, shorter than its 12-byte header", len);
  uint32_t task = b[0], fb = b[1], vb = b[2];
  uint32_t n_trees = get32(b + 4), k = get32(b + 8);
  if (task != TASK_REG && task != TASK_CLF)
    return CORRUPT("unknown task %u", task);
  if (fb != feature_code_bytes(n_features) || b[3] != 0)
    return CORRUPT("bad header flags");
  if (task == TASK_REG ? (vb != 4 && vb != 8) || k != 0 : vb != 0 || k == 0)
    return CORRUPT("bad leaf format or class count");
  if (n_trees == 0 || n_trees > MAX_TREES)
    return CORRUPT("%u trees", n_trees);
  if (k > (len - 12) / 8)
    return CORRUPT("%u classes do not fit %zu bytes", k, len);
  size_t pos = 12 + 8 * (size_t)k;
  for (uint32_t c = 0; c < k; c++) {
    double v = get_f64(b + 12 + 8 * (size_t)c);
    if (!isfinite(v) || (c > 0 && !(v > get_f64(b + 12 + 8 * (size_t)(c - 1)))))
      return CORRUPT("class values must be finite and ascending");
  }
  /* A split takes fb + 4 bytes, a leaf at least fb + vb (regression) or fb + k (one
     byte per class count): no more nodes than that fit. */
  const size_t min_node = fb + (task == TASK_REG ? (vb < 4 ? vb : 4) : (k < 4 ? k : 4));
  const size_t max_nodes = (len - pos) / min_node;
  if (max_nodes < n_trees)
    return CORRUPT("%u trees do not fit %zu bytes", n_trees, len);
  const size_t n_out = task == TASK_CLF ? k : 1;
  forest_model *m;
  double *classes = NULL;
  uint32_t *stack = NULL, *sdepth = NULL;
  if (!NEW(m, 1))
    return myr_error_set(err, MYR_ENOMEM, "out of memory decoding a forest");
  memset(m, 0, sizeof *m);
  /* A tree of nn nodes has (nn + 1) / 2 leaves and at most (nn - 1) / 2 open splits on
     its stack: bounds that keep the arrays close to what is written (the decoded model
     is what predict's cache counts). */
  const size_t max_leaves = max_nodes / 2 + n_trees;
  size_t stack_cap = 0;
  if (max_nodes > SIZE_MAX / 8 / (n_out + k) ||
      !NEW(m->tree_node, (size_t)n_trees + 1) || !NEW(m->tree_depth, n_trees) ||
      !NEW(m->nodes, max_nodes) || !NEW(m->leaf_of, max_nodes) ||
      !NEW(m->values, max_leaves * n_out) ||
      (k && (!NEW(classes, k) || !NEW(m->counts, max_leaves * k))))
    return myr_error_set(err, MYR_ENOMEM, "out of memory decoding a forest");
  m->task = task;
  m->n_features = (uint32_t)n_features;
  m->n_trees = n_trees;
  m->n_classes = k;
  m->n_out = (uint32_t)n_out;
  m->value_bytes = task == TASK_REG ? vb : 4;
  m->payload_bytes = len;
  for (uint32_t c = 0; c < k; c++)
    classes[c] = get_f64(b + 12 + 8 * (size_t)c);
  m->classes = classes;
  uint32_t node = 0, leaf = 0;
  for (uint32_t t = 0; t < n_trees; t++) {
    if (len - pos < 4)
      return CORRUPT("truncated at a tree header (offset %zu)", pos);
    uint32_t nn = get32(b + pos);
    pos += 4;
    if (nn == 0 || nn % 2 == 0 || nn > (len - pos) / min_node || nn > max_nodes - node)
      return CORRUPT("tree of %u nodes does not fit %zu remaining bytes", nn, len - pos);
    if ((fast ? nn : nn / 2 + 1) > stack_cap) { /* trees are alike: this rarely grows */
      stack_cap = fast ? nn : nn / 2 + 1;
      if (!NEW(stack, stack_cap) || !NEW(sdepth, stack_cap))
        return myr_error_set(err, MYR_ENOMEM, "out of memory decoding a forest");
    }
    m->tree_node[t] = node;
    if (fast) {
      uint32_t n_leaves, depth_max;
      if (len - pos < 5 * (size_t)nn || leaf >= max_leaves ||
          !decode_tree5(b + pos, nn, (uint32_t)n_features, m->nodes + node,
                        m->leaf_of + node, leaf, m->values + leaf, max_leaves - leaf,
                        stack, sdepth, &n_leaves, &depth_max))
        return decode_any(b, len, version, n_features, s, 0, model_out, err);
      pos += 5 * (size_t)nn;
      node += nn;
      leaf += n_leaves;
      m->tree_depth[t] = depth_max;
      continue;
    }
    fnode *nodes = m->nodes + node;
    uint32_t sp = 0, depth = 0, depth_max = 0;
    int prev_internal = 0;
    for (uint32_t i = 0; i < nn; i++) {
      if (i > 0) {
        if (prev_internal) {
          depth++; /* left child of i - 1 */
        } else {
          if (sp == 0)
            return CORRUPT("tree ends after %u of its %u nodes", i, nn);
          sp--;
          nodes[stack[sp]].next = i;
          depth = sdepth[sp] + 1;
        }
      }
      if (depth > depth_max)
        depth_max = depth;
      if (len - pos < fb)
        return CORRUPT("truncated node");
      uint32_t code = b[pos];
      for (size_t j = 1; j < fb; j++)
        code |= (uint32_t)b[pos + j] << (8 * j);
      pos += fb;
      fnode *nd = &nodes[i];
      if (code) {
        if (code > n_features)
          return CORRUPT("split on feature %u of %zu", code - 1, n_features);
        float thr;
        if (len - pos < 4 || !isfinite(thr = get_f32(b + pos)))
          return CORRUPT("bad or truncated threshold at offset %zu", pos);
        nd->feature = code - 1;
        nd->thr = thr;
        nd->next = 0;
        m->leaf_of[node + i] = NOT_LEAF;
        pos += 4;
        if (sp >= stack_cap) /* a valid tree has (nn - 1) / 2 splits */
          return CORRUPT("tree of %u nodes has too many splits", nn);
        stack[sp] = i;
        sdepth[sp++] = depth;
        prev_internal = 1;
        continue;
      }
      prev_internal = 0;
      nd->feature = 0;
      nd->thr = NAN;
      nd->next = i;
      m->leaf_of[node + i] = leaf;
      if (task == TASK_REG) {
        if (len - pos < vb)
          return CORRUPT("truncated leaf value");
        double v = vb == 4 ? (double)get_f32(b + pos) : get_f64(b + pos);
        if (!isfinite(v))
          return CORRUPT("non-finite leaf value at offset %zu", pos);
        m->values[leaf] = v;
        pos += vb;
      } else {
        uint32_t *cnt = m->counts + (size_t)leaf * k;
        uint64_t total = 0;
        for (uint32_t c = 0; c < k; c++) {
          size_t used = get_varint(b + pos, len - pos, &cnt[c]);
          if (!used)
            return CORRUPT("bad class count at offset %zu", pos);
          pos += used;
          total += cnt[c];
        }
        if (total == 0)
          return CORRUPT("leaf with no weight at offset %zu", pos);
        for (uint32_t c = 0; c < k; c++)
          m->values[(size_t)leaf * k + c] = (double)cnt[c] / (double)total;
      }
      leaf++;
    }
    if (sp != 0 || prev_internal)
      return CORRUPT("tree of %u nodes is incomplete", nn);
    node += nn;
    m->tree_depth[t] = depth_max;
  }
  if (pos != len)
    return CORRUPT("%zu trailing bytes", len - pos);
  m->tree_node[n_trees] = node;
  m->n_nodes = node;
  m->n_leaves = leaf;
  *model_out = m;
  return MYR_OK;
}

static int decode(const unsigned char *b, size_t len, uint32_t version, size_t n_features,
                  const myr_scratch *s, void **model_out, myr_error *err) {
  /* header: task, feature code bytes, leaf value bytes (checked in decode_any) */
  int fast = len >= 12 && b[0] == TASK_REG && b[1] == 1 && b[2] == 4;
  return decode_any(b, len, version, n_features, s, fast, model_out, err);
}

/* ------------------------------------------------------------------ describe */

static void stats_json(myr__buf *b, const char *name, double total, double lo, double sum,
                       double hi, uint32_t n) {
  myr__buf_printf(b, ",\"%s\":{", name);
  if (total >= 0)
    myr__buf_printf(b, "\"total\":%.0f,", total);
  myr__buf_printf(b, "\"min\":%.0f,\"mean\":", lo);
  myr__buf_json_num(b, sum / n);
  myr__buf_printf(b, ",\"max\":%.0f}", hi);
}

static int describe(const void *mp, myr_write_fn write, void *ud) {
  const forest_model *m = mp;
  myr__buf b;
  myr__buf_init(&b);
  myr__buf_printf(&b,
                  "{\"task\":\"%s\",\"n_trees\":%u,\"n_features\":%u,"
                  "\"n_outputs\":%u",
                  m->task == TASK_CLF ? "classification" : "regression", m->n_trees,
                  m->n_features, m->n_out);
  if (m->task == TASK_CLF) {
    myr__buf_puts(&b, ",\"classes\":[");
    for (uint32_t c = 0; c < m->n_classes; c++) {
      if (c)
        myr__buf_puts(&b, ",");
      myr__buf_json_num(&b, m->classes[c]);
    }
    myr__buf_puts(&b, "]");
  } else {
    myr__buf_printf(&b, ",\"leaf_value_bytes\":%u", m->value_bytes);
  }
  double nlo = INFINITY, nhi = 0, dlo = INFINITY, dhi = 0, dsum = 0;
  for (uint32_t t = 0; t < m->n_trees; t++) {
    double nn = m->tree_node[t + 1] - m->tree_node[t], dd = m->tree_depth[t];
    nlo = nn < nlo ? nn : nlo;
    nhi = nn > nhi ? nn : nhi;
    dlo = dd < dlo ? dd : dlo;
    dhi = dd > dhi ? dd : dhi;
    dsum += dd;
  }
  stats_json(&b, "nodes", m->n_nodes, nlo, m->n_nodes, nhi, m->n_trees);
  stats_json(&b, "leaves", m->n_leaves, (nlo + 1) / 2, m->n_leaves, (nhi + 1) / 2,
             m->n_trees);
  stats_json(&b, "depth", -1, dlo, dsum, dhi, m->n_trees);
  myr__buf_printf(&b, ",\"payload_bytes\":%zu}", m->payload_bytes);
  int rc = b.failed ? MYR_ENOMEM : write(ud, b.data, b.len);
  myr__buf_free(&b);
  return rc;
}

const myr_model_family myr__family_forest = {
    .abi_version = MYR_MODEL_ABI_VERSION,
    .name = "forest",
    .summary = "random forest regression or classification (task=...), as scikit-learn",
    .payload_version = 1,
    .task = MYR_TASK_REGRESSION, /* task=classification: see n_outputs / class_values */
    .params_size = sizeof(forest_params),
    .params_init = params_init,
    .params_set = params_set,
    .params_format = params_format,
    .min_rows = NULL,
    .fit = fit,
    .n_outputs = n_outputs,
    .predict = predict,
    .encoded_size = encoded_size,
    .encode = encode,
    .decode = decode,
    .describe = describe,
    .class_values = class_values,
};
