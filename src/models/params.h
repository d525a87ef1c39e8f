/* SPDX-License-Identifier: Apache-2.0 */
/* Parameter text shared by the built-in families. */
#ifndef MYRIAD_MODELS_PARAMS_H
#define MYRIAD_MODELS_PARAMS_H

#include <string.h>

/* "1"/"true"/"yes" or "0"/"false"/"no" into *out; 0 when v is neither. */
static inline int myr__param_bool(const char *v, int *out) {
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

#endif /* MYRIAD_MODELS_PARAMS_H */
