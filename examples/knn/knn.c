/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Example model plugin: family `knn`, a k-nearest-neighbours regressor per key, with the
 * semantics of scikit-learn's KNeighborsRegressor(n_neighbors=k, weights=...): Euclidean
 * distance, the prediction is the mean (uniform) or the 1/distance-weighted mean
 * (distance) of the k nearest training labels; with distance weights a query that
 * coincides with training rows gets the plain mean of those rows' labels. Ties in
 * distance go to the lower training row index. standardize=true first scales every
 * feature as scikit-learn's StandardScaler does (a Pipeline of the two).
 *
 * It uses only the public headers (include/myriad/model.h) and is built as its own
 * shared library: see docs/plugins.md. Built and loaded with
 *   gcc -shared -fPIC -O2 -I include examples/knn/knn.c -o libmyriad_knn.so -lm
 *   myriad train data.csv --plugin ./libmyriad_knn.so --model knn --param k=3 ...
 *
 * Payload v1 (little-endian; p = n_features from the blob header, n = n_rows):
 *   offset      size  field
 *   0           4     u32 k          1 <= k <= n
 *   4           4     u32 flags      bit 0: weights=distance, bit 1: standardized;
 *                                    every other bit 0
 *   8           8     u64 n          training rows, >= 1
 *   16          8p    f64 mean[p]    only when standardized
 *   16+8p       8p    f64 scale[p]   only when standardized, each > 0
 *   16+s        8np   f64 x[n][p]    training rows, row-major, standardized if flagged
 *   16+s+8np    8n    f64 y[n]       training labels
 * (s = 16p when standardized, else 0.) Every f64 is finite; the length is exact.
 */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "myriad/model.h"

#define KNN_MAX_K 1000000u    /* params_set's upper bound on k */
#define KNN_STACK_K 64u       /* predict keeps up to this many neighbours on the stack */
#define KNN_HEAD 16u          /* fixed payload header bytes */
#define KNN_F_DISTANCE 1u     /* flags: weights=distance */
#define KNN_F_STANDARDIZED 2u /* flags: mean and scale present, rows standardized */

typedef struct knn_params {
  uint32_t k;      /* neighbours averaged (scikit-learn's n_neighbors) */
  int distance;    /* 1: weights=distance, 0: weights=uniform */
  int standardize; /* 1: scale features as StandardScaler before the distances */
} knn_params;

typedef struct knn_model {
  uint32_t k;          /* 1 <= k <= n_rows */
  uint32_t flags;      /* KNN_F_* */
  size_t n_rows;       /* training rows kept */
  size_t n_features;   /* columns of x */
  const double *mean;  /* n_features values, NULL unless standardized */
  const double *scale; /* n_features values > 0, NULL unless standardized */
  const double *x;     /* n_rows * n_features, row-major, standardized if flagged */
  const double *y;     /* n_rows labels */
} knn_model;

/* One neighbour candidate: ordered by distance, then by training row index. */
typedef struct knn_nb {
  double d2;  /* squared Euclidean distance */
  size_t idx; /* training row */
} knn_nb;

static void params_init(void *pp) {
  knn_params *p = pp;
  p->k = 5; /* scikit-learn's default n_neighbors */
  p->distance = 0;
  p->standardize = 0;
}

static int parse_bool(const char *v, int *out) {
  if (!strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "yes")) {
    *out = 1;
    return 1;
  }
  if (!strcmp(v, "0") || !strcmp(v, "false") || !strcmp(v, "no")) {
    *out = 0;
    return 1;
  }
  return 0;
}

static int params_set(void *pp, const char *key, const char *value, myr_error *err) {
  knn_params *p = pp;
  if (!strcmp(key, "k")) {
    char *end = NULL;
    errno = 0;
    unsigned long long k =
        value[0] >= '0' && value[0] <= '9' ? strtoull(value, &end, 10) : 0;
    if (k == 0 || *end || errno || k > KNN_MAX_K)
      return myr_error_set(err, MYR_EINVAL,
                           "knn: k must be a whole number from 1 to %u, got '%s'",
                           KNN_MAX_K, value);
    p->k = (uint32_t)k;
    return MYR_OK;
  }
  if (!strcmp(key, "weights")) {
    if (!strcmp(value, "uniform"))
      p->distance = 0;
    else if (!strcmp(value, "distance"))
      p->distance = 1;
    else
      return myr_error_set(err, MYR_EINVAL,
                           "knn: weights must be uniform or distance, got '%s'", value);
    return MYR_OK;
  }
  if (!strcmp(key, "standardize")) {
    if (!parse_bool(value, &p->standardize))
      return myr_error_set(err, MYR_EINVAL,
                           "knn: standardize must be true or false, got '%s'", value);
    return MYR_OK;
  }
  return myr_error_set(err, MYR_EINVAL,
                       "knn: unknown parameter '%s' (known: k, weights, standardize)",
                       key);
}

static void params_format(const void *pp, char *out, size_t cap) {
  const knn_params *p = pp;
  snprintf(out, cap, "k=%u,weights=%s,standardize=%s", (unsigned)p->k,
           p->distance ? "distance" : "uniform", p->standardize ? "true" : "false");
}

static size_t min_rows(const void *pp, size_t n_features) {
  (void)n_features;
  const knn_params *p = pp;
  return p->k; /* scikit-learn refuses n_neighbors > n_samples_fit */
}

/*
 * StandardScaler's statistics: mean, then the population variance with its correction
 * term, and scale 1 for a feature whose variance is within rounding of zero (sklearn's
 * _is_constant_feature bound), so constant columns pass through centred but unscaled.
 */
static void scaler_fit(const myr_dataset *d, double *mean, double *scale) {
  const size_t n = d->n_rows, p = d->n_features;
  const double dn = (double)n;
  for (size_t j = 0; j < p; j++) {
    double sum = 0;
    for (size_t i = 0; i < n; i++)
      sum += d->x[i * p + j];
    double m = sum / dn, corr = 0, sq = 0;
    for (size_t i = 0; i < n; i++) {
      double t = d->x[i * p + j] - m;
      corr += t;
      sq += t * t;
    }
    double var = (sq - corr * corr / dn) / dn;
    double bound =
        dn * DBL_EPSILON * var + (dn * m * DBL_EPSILON) * (dn * m * DBL_EPSILON);
    mean[j] = m;
    scale[j] = var <= bound ? 1.0 : sqrt(var);
  }
}

static int fit(const void *pp, const myr_dataset *d, uint64_t seed, const myr_scratch *s,
               void **model_out, myr_error *err) {
  (void)seed; /* nearest neighbours involve no randomness */
  const knn_params *prm = pp;
  const size_t n = d->n_rows, p = d->n_features;
  if (n < prm->k)
    return myr_error_set(err, MYR_EMODEL,
                         "knn: k=%u needs at least %u rows, the group has %zu",
                         (unsigned)prm->k, (unsigned)prm->k, n);
  knn_model *m = s->alloc(s->ud, sizeof *m, sizeof(double));
  double *x = s->alloc(s->ud, (n * p + 1) * sizeof(double), sizeof(double));
  double *y = s->alloc(s->ud, n * sizeof(double), sizeof(double));
  double *mean = NULL, *scale = NULL;
  if (prm->standardize) {
    mean = s->alloc(s->ud, (p + 1) * sizeof(double), sizeof(double));
    scale = s->alloc(s->ud, (p + 1) * sizeof(double), sizeof(double));
  }
  if (!m || !x || !y || (prm->standardize && (!mean || !scale)))
    return myr_error_set(err, MYR_ENOMEM, "knn: out of memory keeping %zu training rows",
                         n);
  memcpy(y, d->y, n * sizeof(double));
  if (prm->standardize) {
    scaler_fit(d, mean, scale);
    for (size_t i = 0; i < n; i++)
      for (size_t j = 0; j < p; j++)
        x[i * p + j] = (d->x[i * p + j] - mean[j]) / scale[j];
  } else if (p) {
    memcpy(x, d->x, n * p * sizeof(double));
  }
  for (size_t i = 0; i < n * p; i++)
    if (!isfinite(x[i]))
      return myr_error_set(err, MYR_EMODEL, "knn: standardized features are not finite");
  m->k = prm->k;
  m->flags = (prm->distance ? KNN_F_DISTANCE : 0u) |
             (prm->standardize ? KNN_F_STANDARDIZED : 0u);
  m->n_rows = n;
  m->n_features = p;
  m->mean = mean;
  m->scale = scale;
  m->x = x;
  m->y = y;
  *model_out = m;
  return MYR_OK;
}

/* Insert c into nb[0..*cnt) (sorted, capacity k) if it is among the k best so far. Rows
   arrive in index order, so an equal distance never displaces an earlier row. */
static void nb_offer(knn_nb *nb, size_t *cnt, size_t k, knn_nb c) {
  size_t pos = *cnt;
  if (pos == k) {
    if (!(c.d2 < nb[k - 1].d2))
      return;
    pos = k - 1;
  } else {
    (*cnt)++;
  }
  while (pos > 0 && c.d2 < nb[pos - 1].d2) {
    nb[pos] = nb[pos - 1];
    pos--;
  }
  nb[pos] = c;
}

/* The prediction for one query row q (already standardized when the model is). */
static double predict_one(const knn_model *m, const double *q, knn_nb *nb) {
  const size_t p = m->n_features, k = m->k;
  size_t cnt = 0;
  for (size_t i = 0; i < m->n_rows; i++) {
    const double *r = m->x + i * p;
    double d2 = 0;
    for (size_t j = 0; j < p; j++) {
      double t = q[j] - r[j];
      d2 += t * t;
    }
    knn_nb c = {d2, i};
    nb_offer(nb, &cnt, k, c);
  }
  if (m->flags & KNN_F_DISTANCE) {
    /* scikit-learn: w = 1/d; if any w is infinite (d == 0 or subnormal), the row
       averages exactly those neighbours. */
    double num = 0, den = 0, inf_sum = 0;
    size_t n_inf = 0;
    for (size_t i = 0; i < k; i++) {
      double w = 1.0 / sqrt(nb[i].d2);
      double yi = m->y[nb[i].idx];
      if (isinf(w)) {
        inf_sum += yi;
        n_inf++;
      } else {
        num += w * yi;
        den += w;
      }
    }
    if (n_inf)
      return inf_sum / (double)n_inf;
    if (den > 0)
      return num / den;
    /* Every distance overflowed to infinity: fall back to the plain mean. */
  }
  double sum = 0;
  for (size_t i = 0; i < k; i++)
    sum += m->y[nb[i].idx];
  return sum / (double)k;
}

static int predict(const void *mp, const double *x, size_t n_rows, size_t n_features,
                   double *out, myr_error *err) {
  const knn_model *m = mp;
  if (n_features != m->n_features)
    return myr_error_set(err, MYR_EINVAL, "knn model has %zu features, input has %zu",
                         m->n_features, n_features);
  /* predict gets no scratch allocator: small k lives on the stack, larger k in one
     block for the whole call. */
  knn_nb stack_nb[KNN_STACK_K];
  double stack_q[32];
  knn_nb *nb = stack_nb;
  double *q = stack_q;
  int rc = MYR_OK;
  if (m->k > KNN_STACK_K)
    nb = malloc(m->k * sizeof *nb);
  if ((m->flags & KNN_F_STANDARDIZED) && n_features > 32)
    q = malloc(n_features * sizeof *q);
  if (!nb || !q) {
    rc = myr_error_set(err, MYR_ENOMEM, "knn: out of memory predicting with k=%u",
                       (unsigned)m->k);
    goto done;
  }
  for (size_t i = 0; i < n_rows; i++) {
    const double *r = x + i * n_features;
    if (m->flags & KNN_F_STANDARDIZED) {
      for (size_t j = 0; j < n_features; j++)
        q[j] = (r[j] - m->mean[j]) / m->scale[j];
      r = q;
    }
    out[i] = predict_one(m, r, nb);
  }
done:
  if (nb != stack_nb)
    free(nb);
  if (q != stack_q)
    free(q);
  return rc;
}

static size_t encoded_size(const void *mp) {
  const knn_model *m = mp;
  size_t p = m->n_features;
  return KNN_HEAD + ((m->flags & KNN_F_STANDARDIZED) ? 16 * p : 0) +
         8 * m->n_rows * (p + 1);
}

static void put_u32(unsigned char *b, uint32_t v) {
  for (int i = 0; i < 4; i++)
    b[i] = (unsigned char)(v >> (8 * i));
}

static void put_u64(unsigned char *b, uint64_t v) {
  for (int i = 0; i < 8; i++)
    b[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_u32(const unsigned char *b) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++)
    v |= (uint32_t)b[i] << (8 * i);
  return v;
}

static uint64_t get_u64(const unsigned char *b) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v |= (uint64_t)b[i] << (8 * i);
  return v;
}

static unsigned char *put_f64s(unsigned char *b, const double *v, size_t n) {
  for (size_t i = 0; i < n; i++, b += 8) {
    uint64_t u;
    memcpy(&u, &v[i], 8);
    put_u64(b, u);
  }
  return b;
}

/* Read n doubles into out; 0 when one is not finite. */
static int get_f64s(const unsigned char **b, double *out, size_t n) {
  for (size_t i = 0; i < n; i++, *b += 8) {
    uint64_t u = get_u64(*b);
    memcpy(&out[i], &u, 8);
    if (!isfinite(out[i]))
      return 0;
  }
  return 1;
}

static int encode(const void *mp, unsigned char *out, size_t len, myr_error *err) {
  const knn_model *m = mp;
  if (len != encoded_size(m))
    return myr_error_set(err, MYR_EINTERNAL, "knn: encode buffer size mismatch");
  const size_t p = m->n_features;
  put_u32(out, m->k);
  put_u32(out + 4, m->flags);
  put_u64(out + 8, (uint64_t)m->n_rows);
  unsigned char *b = out + KNN_HEAD;
  if (m->flags & KNN_F_STANDARDIZED) {
    b = put_f64s(b, m->mean, p);
    b = put_f64s(b, m->scale, p);
  }
  b = put_f64s(b, m->x, m->n_rows * p);
  put_f64s(b, m->y, m->n_rows);
  return MYR_OK;
}

static int decode(const unsigned char *payload, size_t len, uint32_t version,
                  size_t n_features, const myr_scratch *s, void **model_out,
                  myr_error *err) {
  const size_t p = n_features;
  if (version != 1)
    return myr_error_set(err, MYR_EUNSUPPORTED, "knn payload version %u unknown",
                         version);
  if (len < KNN_HEAD)
    return myr_error_set(err, MYR_ECORRUPT,
                         "knn payload of %zu bytes is shorter than its "
                         "%u-byte header",
                         len, KNN_HEAD);
  uint32_t k = get_u32(payload), flags = get_u32(payload + 4);
  uint64_t n64 = get_u64(payload + 8);
  if (flags & ~(uint32_t)(KNN_F_DISTANCE | KNN_F_STANDARDIZED))
    return myr_error_set(err, MYR_ECORRUPT, "knn payload has unknown flags 0x%x", flags);
  if (n64 == 0 || k == 0 || k > n64)
    return myr_error_set(err, MYR_ECORRUPT,
                         "knn payload has k=%u for %llu rows (need 1 <= k <= rows)", k,
                         (unsigned long long)n64);
  /* Sizes in doubles, each step checked so that no product can wrap. */
  size_t rest = (len - KNN_HEAD) / 8;
  size_t stats = (flags & KNN_F_STANDARDIZED) ? 2 : 0;
  if ((len - KNN_HEAD) % 8 || p >= SIZE_MAX / 16 || stats * p > rest ||
      n64 > (rest - stats * p) / (p + 1) || n64 * (p + 1) != rest - stats * p)
    return myr_error_set(err, MYR_ECORRUPT,
                         "knn payload is %zu bytes, which does not fit %llu rows of %zu "
                         "features%s",
                         len, (unsigned long long)n64, p, stats ? " plus scaler" : "");
  const size_t n = (size_t)n64;
  knn_model *m = s->alloc(s->ud, sizeof *m, sizeof(double));
  double *x = s->alloc(s->ud, (n * p + 1) * sizeof(double), sizeof(double));
  double *y = s->alloc(s->ud, n * sizeof(double), sizeof(double));
  double *mean = NULL, *scale = NULL;
  if (stats) {
    mean = s->alloc(s->ud, (p + 1) * sizeof(double), sizeof(double));
    scale = s->alloc(s->ud, (p + 1) * sizeof(double), sizeof(double));
  }
  if (!m || !x || !y || (stats && (!mean || !scale)))
    return myr_error_set(err, MYR_ENOMEM, "knn: out of memory decoding %zu rows", n);
  const unsigned char *b = payload + KNN_HEAD;
  if (stats) {
    if (!get_f64s(&b, mean, p) || !get_f64s(&b, scale, p))
      return myr_error_set(err, MYR_ECORRUPT,
                           "knn payload has a non-finite scaler value");
    for (size_t j = 0; j < p; j++)
      if (!(scale[j] > 0))
        return myr_error_set(err, MYR_ECORRUPT,
                             "knn payload has scale %g for feature %zu", scale[j], j);
  }
  if (!get_f64s(&b, x, n * p) || !get_f64s(&b, y, n))
    return myr_error_set(err, MYR_ECORRUPT, "knn payload has a non-finite value");
  m->k = k;
  m->flags = flags;
  m->n_rows = n;
  m->n_features = p;
  m->mean = mean;
  m->scale = scale;
  m->x = x;
  m->y = y;
  *model_out = m;
  return MYR_OK;
}

static int write_str(myr_write_fn write, void *ud, const char *s) {
  return write(ud, s, strlen(s));
}

static int write_array(myr_write_fn write, void *ud, const char *name, const double *v,
                       size_t n) {
  char num[40];
  int rc = write_str(write, ud, name);
  for (size_t j = 0; j < n && rc == MYR_OK; j++) {
    snprintf(num, sizeof num, "%s%.17g", j ? "," : "", v[j]);
    rc = write_str(write, ud, num);
  }
  return rc == MYR_OK ? write_str(write, ud, "]") : rc;
}

/* {"k":3,"weights":"uniform","standardize":false,"n_rows":40} plus, when standardized,
   "mean":[..],"scale":[..]. The training rows are not listed: they can be many. */
static int describe(const void *mp, myr_write_fn write, void *ud) {
  const knn_model *m = mp;
  char head[160];
  int std = (m->flags & KNN_F_STANDARDIZED) != 0;
  snprintf(head, sizeof head,
           "{\"k\":%u,\"weights\":\"%s\",\"standardize\":%s,\"n_rows\":%zu",
           (unsigned)m->k, (m->flags & KNN_F_DISTANCE) ? "distance" : "uniform",
           std ? "true" : "false", m->n_rows);
  int rc = write_str(write, ud, head);
  if (rc == MYR_OK && std)
    rc = write_array(write, ud, ",\"mean\":[", m->mean, m->n_features);
  if (rc == MYR_OK && std)
    rc = write_array(write, ud, ",\"scale\":[", m->scale, m->n_features);
  return rc == MYR_OK ? write_str(write, ud, "}") : rc;
}

static const myr_model_family knn_family = {
    .abi_version = MYR_MODEL_ABI_VERSION,
    .name = "knn",
    .summary =
        "k-nearest-neighbours regression (plugin), as scikit-learn KNeighborsRegressor",
    .payload_version = 1,
    .task = MYR_TASK_REGRESSION,
    .params_size = sizeof(knn_params),
    .params_init = params_init,
    .params_set = params_set,
    .params_format = params_format,
    .min_rows = min_rows,
    .fit = fit,
    .n_outputs = NULL,
    .predict = predict,
    .encoded_size = encoded_size,
    .encode = encode,
    .decode = decode,
    .describe = describe,
    .class_values = NULL,
};

/* The entry point myriad looks up (MYR_PLUGIN_SYMBOL). Exported explicitly: builds with
   -fvisibility=hidden would otherwise hide it. */
MYR_API int myr_plugin_register(uint32_t abi_version, myr_registry *reg, myr_error *err);

MYR_API int myr_plugin_register(uint32_t abi_version, myr_registry *reg, myr_error *err) {
  if (abi_version != MYR_MODEL_ABI_VERSION)
    return myr_error_set(err, MYR_EUNSUPPORTED,
                         "knn plugin was built for model ABI version %u, this myriad "
                         "speaks %u: rebuild the plugin",
                         MYR_MODEL_ABI_VERSION, abi_version);
  return myr_registry_add(reg, &knn_family, err);
}
