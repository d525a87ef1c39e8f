/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Family `linear`: ridge regression with an unpenalized intercept, solved in closed form
 * exactly as scikit-learn's Ridge (solver "cholesky"): center X and y, solve
 * (Xc'Xc + alpha I) w = Xc'yc by Cholesky, intercept = mean(y) - mean(X) w.
 * alpha = 0 is ordinary least squares; a singular system then fails the group instead of
 * returning an arbitrary solution.
 *
 * Payload v1 (little-endian): f64 intercept, then n_features f64 coefficients.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "models/families.h"
#include "models/params.h"

typedef struct linear_params {
  double alpha;      /* L2 penalty on the coefficients (not the intercept) */
  int fit_intercept; /* 1: center the data and fit an intercept */
} linear_params;

typedef struct linear_model {
  size_t n_features; /* coefficients */
  double intercept;  /* 0 when fit_intercept is off */
  double coef[];     /* n_features values */
} linear_model;

static void params_init(void *p) {
  linear_params *lp = p;
  lp->alpha = 1.0; /* scikit-learn's Ridge default */
  lp->fit_intercept = 1;
}

static int params_set(void *p, const char *key, const char *value, myr_error *err) {
  linear_params *lp = p;
  if (!strcmp(key, "alpha")) {
    char *end;
    errno = 0;
    double a = strtod(value, &end);
    if (end == value || *end || errno || !isfinite(a) || a < 0)
      return myr_error_set(err, MYR_EINVAL,
                           "linear: alpha must be a finite number >= 0, got '%s'", value);
    lp->alpha = a;
    return MYR_OK;
  }
  if (!strcmp(key, "fit_intercept")) {
    if (!myr__param_bool(value, &lp->fit_intercept))
      return myr_error_set(err, MYR_EINVAL,
                           "linear: fit_intercept must be true or false, got '%s'", value);
    return MYR_OK;
  }
  return myr_error_set(err, MYR_EINVAL,
                       "linear: unknown parameter '%s' (known: alpha, fit_intercept)", key);
}

static void params_format(const void *p, char *out, size_t cap) {
  const linear_params *lp = p;
  snprintf(out, cap, "alpha=%.17g,fit_intercept=%s", lp->alpha,
           lp->fit_intercept ? "true" : "false");
}

static size_t min_rows(const void *p, size_t n_features) {
  const linear_params *lp = p;
  /* OLS needs at least as many centered rows as unknowns to be non-singular. */
  return lp->alpha > 0 ? 1 : n_features + (lp->fit_intercept ? 1 : 0);
}

static int fit(const void *pp, const myr_dataset *d, uint64_t seed, const myr_scratch *s,
               void **model_out, myr_error *err) {
  (void)seed;
  const linear_params *lp = pp;
  const size_t n = d->n_rows, p = d->n_features;
  linear_model *m = s->alloc(s->ud, sizeof *m + p * sizeof(double), sizeof(double));
  double *xm = s->alloc(s->ud, (p + 1) * sizeof(double), sizeof(double));
  double *a = s->alloc(s->ud, (p * p + 1) * sizeof(double), sizeof(double));
  double *b = s->alloc(s->ud, (p + 1) * sizeof(double), sizeof(double));
  double *diag = s->alloc(s->ud, (p + 1) * sizeof(double), sizeof(double));
  if (!m || !xm || !a || !b || !diag)
    return myr_error_set(err, MYR_ENOMEM, "out of memory fitting a linear model");
  m->n_features = p;

  double ym = 0;
  memset(xm, 0, p * sizeof(double));
  if (lp->fit_intercept) {
    for (size_t i = 0; i < n; i++) {
      const double *x = d->x + i * p;
      for (size_t j = 0; j < p; j++)
        xm[j] += x[j];
      ym += d->y[i];
    }
    for (size_t j = 0; j < p; j++)
      xm[j] /= (double)n;
    ym /= (double)n;
  }
  /* Upper triangle of Xc'Xc and Xc'yc, from centered values for accuracy. */
  memset(a, 0, p * p * sizeof(double));
  memset(b, 0, p * sizeof(double));
  double *xc = diag; /* reuse as a row buffer until the factorization */
  for (size_t i = 0; i < n; i++) {
    const double *x = d->x + i * p;
    double yc = d->y[i] - ym;
    for (size_t j = 0; j < p; j++)
      xc[j] = x[j] - xm[j];
    for (size_t j = 0; j < p; j++) {
      double v = xc[j];
      double *restrict row = a + j * p;
      const double *restrict xr = xc;
      size_t k = j;
      /* Pairs, which the compiler turns into 2-wide SIMD; each entry still sums its
         rows in order, so results do not change. */
      for (; k + 2 <= p; k += 2) {
        row[k] += v * xr[k];
        row[k + 1] += v * xr[k + 1];
      }
      if (k < p)
        row[k] += v * xr[k];
      b[j] += v * yc;
    }
  }
  for (size_t j = 0; j < p; j++) {
    diag[j] = a[j * p + j];
    a[j * p + j] += lp->alpha;
  }
  /* Cholesky A = R'R in the upper triangle. */
  for (size_t j = 0; j < p; j++) {
    double s2 = a[j * p + j];
    for (size_t k = 0; k < j; k++)
      s2 -= a[k * p + j] * a[k * p + j];
    double tol = 1e-12 * (diag[j] + lp->alpha) + 1e-300;
    if (!(s2 > tol))
      return myr_error_set(err, MYR_EMODEL,
                           "singular system: feature %zu is constant or collinear with "
                           "others (use alpha > 0)",
                           j);
    double r = sqrt(s2);
    a[j * p + j] = r;
    for (size_t c = j + 1; c < p; c++) {
      double t = a[j * p + c];
      for (size_t k = 0; k < j; k++)
        t -= a[k * p + j] * a[k * p + c];
      a[j * p + c] = t / r;
    }
  }
  /* Solve R'z = b, then R w = z. */
  for (size_t j = 0; j < p; j++) {
    double t = b[j];
    for (size_t k = 0; k < j; k++)
      t -= a[k * p + j] * b[k];
    b[j] = t / a[j * p + j];
  }
  for (size_t jj = p; jj-- > 0;) {
    double t = b[jj];
    for (size_t k = jj + 1; k < p; k++)
      t -= a[jj * p + k] * m->coef[k];
    m->coef[jj] = t / a[jj * p + jj];
  }
  double icpt = ym;
  for (size_t j = 0; j < p; j++)
    icpt -= xm[j] * m->coef[j];
  m->intercept = lp->fit_intercept ? icpt : 0.0;
  for (size_t j = 0; j < p; j++)
    if (!isfinite(m->coef[j]))
      return myr_error_set(err, MYR_EMODEL, "linear fit produced non-finite coefficients");
  *model_out = m;
  return MYR_OK;
}

static int predict(const void *mp, const double *x, size_t n_rows, size_t n_features,
                   double *out, myr_error *err) {
  const linear_model *m = mp;
  if (n_features != m->n_features)
    return myr_error_set(err, MYR_EINVAL, "linear model has %zu features, input has %zu",
                         m->n_features, n_features);
  for (size_t i = 0; i < n_rows; i++) {
    const double *r = x + i * n_features;
    double v = m->intercept;
    for (size_t j = 0; j < n_features; j++)
      v += m->coef[j] * r[j];
    out[i] = v;
  }
  return MYR_OK;
}

static size_t encoded_size(const void *mp) {
  const linear_model *m = mp;
  return 8 * (1 + m->n_features);
}

static void put_f64(unsigned char *p, double v) {
  uint64_t u;
  memcpy(&u, &v, 8);
  for (int i = 0; i < 8; i++)
    p[i] = (unsigned char)(u >> (8 * i));
}

static double get_f64(const unsigned char *p) {
  uint64_t u = 0;
  for (int i = 0; i < 8; i++)
    u |= (uint64_t)p[i] << (8 * i);
  double v;
  memcpy(&v, &u, 8);
  return v;
}

static int encode(const void *mp, unsigned char *out, size_t len, myr_error *err) {
  const linear_model *m = mp;
  if (len != encoded_size(m))
    return myr_error_set(err, MYR_EINTERNAL, "linear: encode buffer size mismatch");
  put_f64(out, m->intercept);
  for (size_t j = 0; j < m->n_features; j++)
    put_f64(out + 8 * (j + 1), m->coef[j]);
  return MYR_OK;
}

static int decode(const unsigned char *payload, size_t len, uint32_t version,
                  size_t n_features, const myr_scratch *s, void **model_out,
                  myr_error *err) {
  if (version != 1)
    return myr_error_set(err, MYR_EUNSUPPORTED, "linear payload version %u unknown", version);
  if (n_features > (SIZE_MAX / 8) - 1 || len != 8 * (1 + n_features))
    return myr_error_set(err, MYR_ECORRUPT,
                         "linear payload is %zu bytes, expected %zu for %zu features", len,
                         n_features <= (SIZE_MAX / 8) - 1 ? 8 * (1 + n_features) : 0,
                         n_features);
  linear_model *m = s->alloc(s->ud, sizeof *m + n_features * sizeof(double), sizeof(double));
  if (!m)
    return myr_error_set(err, MYR_ENOMEM, "out of memory decoding a linear model");
  m->n_features = n_features;
  m->intercept = get_f64(payload);
  if (!isfinite(m->intercept))
    return myr_error_set(err, MYR_ECORRUPT, "linear payload has a non-finite intercept");
  for (size_t j = 0; j < n_features; j++) {
    m->coef[j] = get_f64(payload + 8 * (j + 1));
    if (!isfinite(m->coef[j]))
      return myr_error_set(err, MYR_ECORRUPT, "linear payload has a non-finite coefficient");
  }
  *model_out = m;
  return MYR_OK;
}

static int describe(const void *mp, myr_write_fn write, void *ud) {
  const linear_model *m = mp;
  myr__buf b;
  myr__buf_init(&b);
  myr__buf_puts(&b, "{\"intercept\":");
  myr__buf_json_num(&b, m->intercept);
  myr__buf_puts(&b, ",\"coef\":[");
  for (size_t j = 0; j < m->n_features; j++) {
    if (j)
      myr__buf_puts(&b, ",");
    myr__buf_json_num(&b, m->coef[j]);
  }
  myr__buf_puts(&b, "]}");
  int rc = b.failed ? MYR_ENOMEM : write(ud, b.data, b.len);
  myr__buf_free(&b);
  return rc;
}

const myr_model_family myr__family_linear = {
    .abi_version = MYR_MODEL_ABI_VERSION,
    .name = "linear",
    .summary = "ridge regression (alpha=0: least squares), closed form, as scikit-learn Ridge",
    .payload_version = 1,
    .task = MYR_TASK_REGRESSION,
    .params_size = sizeof(linear_params),
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
};
