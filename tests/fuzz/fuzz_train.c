/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target: the whole train path on hostile CSV rows (reader, number and key parsing,
 * row accounting, grouping, fitting, encoding), without a store. The input is the body
 * of a file whose header is fixed ("k,a,b,y"), so that the options always resolve and
 * the fuzzer spends its time on rows. The accounting invariant is checked on every run.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "myriad/train.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const char header[] = "k,a,b,y\n";
  int fd = memfd_create("fuzz_train", 0);
  if (fd < 0)
    return 0;
  if (write(fd, header, sizeof header - 1) != (ssize_t)(sizeof header - 1) ||
      (size && write(fd, data, size) != (ssize_t)size)) {
    close(fd);
    return 0;
  }
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  static const char *const keys[] = {"k"};
  myr_train_options o;
  memset(&o, 0, sizeof o);
  o.input = path;
  o.keys = keys;
  o.n_keys = 1;
  o.label = "y";
  o.n_threads = 1;
  o.holdout = size && data[0] & 1 ? 0.3 : 0;
  o.model = size > 1 && data[1] & 1 ? "forest" : "linear";
  o.params = o.model[0] == 'f' ? "n_trees=3,max_depth=4" : NULL;
  myr_train_summary s;
  myr_error err = {0};
  int rc = myr_train(&o, &s, &err);
  uint64_t skipped = 0;
  for (int i = 0; i < MYR_SKIP__COUNT; i++)
    skipped += s.skipped[i];
  if (rc == MYR_OK &&
      (s.rows_used + s.rows_skipped != s.rows_total || skipped != s.rows_skipped ||
       s.groups_trained + s.groups_failed != s.groups_total))
    __builtin_trap(); /* every row and group must be accounted for */
  if (rc != MYR_OK && err.message[0] == '\0')
    __builtin_trap(); /* a failure always says why */
  close(fd);
  return 0;
}
