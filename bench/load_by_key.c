/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Time reading one model by key from a store, as a server answering a request does:
 * look the key up among the current models (myr_store_models with every key column
 * given) and check its blob (myr_blob_parse). Keys are drawn at random among the
 * store's current keys; the store is read in one snapshot.
 *
 *   load_by_key STORE [LOOKUPS [SEED]]
 *
 * Prints one JSON object: lookups, p50/p90/p99/max microseconds, models, store bytes
 * and bytes per model. Part of bench/million.py; not a test.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "myriad/myriad.h"

typedef struct keys {
  size_t n_keys;       /* key columns */
  char **names;        /* n_keys */
  char **values;       /* n * n_keys, sampled by reservoir */
  size_t n, cap, seen; /* sampled, capacity, models seen */
  uint64_t rng;
} keys;

static uint64_t next(uint64_t *s) { /* splitmix64 */
  uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static char *dup(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d)
    memcpy(d, s, n);
  return d;
}

/* Reservoir-sample cap keys among all current models. */
static int sample(void *ud, const myr_model_record *m) {
  keys *k = ud;
  size_t slot = k->seen < k->cap ? k->seen : (size_t)(next(&k->rng) % (k->seen + 1));
  k->seen++;
  if (slot >= k->cap)
    return 0;
  for (size_t j = 0; j < k->n_keys; j++) {
    char **v = &k->values[slot * k->n_keys + j];
    free(*v);
    if (!(*v = dup(m->key_values[j])))
      return MYR_ENOMEM;
  }
  if (slot >= k->n)
    k->n = slot + 1;
  return 0;
}

static int found(void *ud, const myr_model_record *m) {
  myr_blob_view v;
  myr_error err = {0};
  if (myr_blob_parse(m->blob, m->blob_len, &v, &err) != MYR_OK)
    return MYR_ECORRUPT;
  ++*(size_t *)ud;
  return 0;
}

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: load_by_key STORE [LOOKUPS [SEED]]\n");
    return 2;
  }
  size_t lookups = argc > 2 ? (size_t)strtoull(argv[2], NULL, 10) : 10000;
  keys k = {0};
  k.rng = argc > 3 ? strtoull(argv[3], NULL, 10) : 1;
  k.cap = lookups ? lookups : 1;
  myr_store *st = NULL;
  myr_error err = {0};
  myr_store_info info;
  if (myr_store_open(argv[1], MYR_STORE_READONLY, &st, &err) != MYR_OK ||
      myr_store_get_info(st, &info, &err) != MYR_OK) {
    fprintf(stderr, "load_by_key: %s\n", err.message);
    return 1;
  }
  k.n_keys = info.n_keys;
  k.values = calloc(k.cap * (k.n_keys ? k.n_keys : 1), sizeof *k.values);
  myr_model_query all = {0};
  if (!k.values || myr_store_models(st, &all, sample, &k, &err) != MYR_OK || k.n == 0) {
    fprintf(stderr, "load_by_key: no models sampled: %s\n", err.message);
    return 1;
  }
  double *us = calloc(lookups ? lookups : 1, sizeof *us);
  if (!us || myr_store_snapshot_begin(st, &err) != MYR_OK) {
    fprintf(stderr, "load_by_key: %s\n", err.message);
    return 1;
  }
  for (size_t i = 0; i < lookups; i++) {
    size_t pick = (size_t)(next(&k.rng) % k.n);
    myr_model_query q = {0};
    q.key_names = info.key_names;
    q.key_values = (const char *const *)&k.values[pick * k.n_keys];
    q.n_filter = k.n_keys;
    size_t hits = 0;
    double t = now_us();
    int rc = myr_store_models(st, &q, found, &hits, &err);
    us[i] = now_us() - t;
    if (rc != MYR_OK || hits != 1) {
      fprintf(stderr, "load_by_key: lookup %zu: %d hits, %s\n", i, (int)hits,
              err.message);
      return 1;
    }
  }
  myr_store_snapshot_end(st);
  qsort(us, lookups, sizeof *us, cmp_d);
#define PCT(q) us[(size_t)((double)(lookups - 1) * (q))]
  printf(
      "{\"lookups\":%zu,\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,\"max_us\":%.1f,"
      "\"models\":%llu,\"store_bytes\":%llu,\"bytes_per_model\":%.0f}\n",
      lookups, PCT(0.5), PCT(0.9), PCT(0.99), us[lookups - 1],
      (unsigned long long)info.n_models, (unsigned long long)info.file_bytes,
      info.n_models ? (double)info.file_bytes / (double)info.n_models : 0.0);
  myr_store_close(st);
  for (size_t i = 0; i < k.cap * k.n_keys; i++)
    free(k.values[i]);
  free(k.values);
  free(us);
  return 0;
}
