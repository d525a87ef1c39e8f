/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target: a hostile models table (Arrow IPC bytes) imported into a fresh store
 * (myr_store_import: the models-table reader, key encoding, blob and feature-list
 * checks, the store writes). Invariants: a failure says why, and publishes nothing; a
 * success publishes exactly the models and errors it counted.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/arrow.h"
#include "myriad/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void remove_store(const char *path) {
  char p[600];
  unlink(path);
  snprintf(p, sizeof p, "%s-wal", path);
  unlink(p);
  snprintf(p, sizeof p, "%s-shm", path);
  unlink(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static char path[512];
  if (!path[0]) {
    const char *tmp = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/fuzz_import_%d.db", tmp && *tmp ? tmp : "/tmp",
             (int)getpid());
  }
  uint8_t *buf = malloc(size ? size : 1); /* exact size: a sanitizer sees overreads */
  if (!buf)
    return 0;
  memcpy(buf, data, size);
  struct ArrowArrayStream st;
  myr_error err = {0};
  if (myr__ipc_open_mem(buf, size, "fuzz", &st, &err) != MYR_OK) {
    free(buf);
    return 0;
  }
  remove_store(path);
  myr_import_options o = {path, &st, "fuzz", 0};
  myr_import_summary s;
  int rc = myr_store_import(&o, &s, &err);
  if (st.release)
    abort(); /* the table is always released */
  if (rc != MYR_OK && err.message[0] == '\0')
    abort(); /* a failure always says why */
  myr_store *store = NULL;
  myr_store_info info;
  myr_error e2 = {0};
  if (myr_store_open(path, MYR_STORE_READONLY, &store, &e2) == MYR_OK &&
      myr_store_get_info(store, &info, &e2) == MYR_OK) {
    if (rc != MYR_OK && info.latest_run != 0)
      abort(); /* a failed import publishes nothing */
    if (rc == MYR_OK && (info.latest_run != s.run_id || info.n_errors != s.errors ||
                         info.n_models > s.models))
      abort(); /* what was published is what was counted (a repeated key counts once) */
  } else if (rc == MYR_OK) {
    abort(); /* a successful import leaves a readable store */
  }
  myr_store_close(store);
  remove_store(path);
  free(buf);
  return 0;
}
