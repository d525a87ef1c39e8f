/* SPDX-License-Identifier: Apache-2.0 */
/* Status names and the error struct helpers. Messages are cut, never overflowed. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "myriad/error.h"

const char *myr_status_name(int code) {
  switch (code) {
  case MYR_OK: return "MYR_OK";
  case MYR_EINVAL: return "MYR_EINVAL";
  case MYR_ENOMEM: return "MYR_ENOMEM";
  case MYR_EIO: return "MYR_EIO";
  case MYR_EPARSE: return "MYR_EPARSE";
  case MYR_ECORRUPT: return "MYR_ECORRUPT";
  case MYR_ENOTFOUND: return "MYR_ENOTFOUND";
  case MYR_ESTORE: return "MYR_ESTORE";
  case MYR_EMODEL: return "MYR_EMODEL";
  case MYR_EUNSUPPORTED: return "MYR_EUNSUPPORTED";
  case MYR_ECANCELED: return "MYR_ECANCELED";
  case MYR_EINTERNAL: return "MYR_EINTERNAL";
  case MYR_ENODATA: return "MYR_ENODATA";
  default: return "MYR_EUNKNOWN";
  }
}

int myr_error_set(myr_error *err, int code, const char *fmt, ...) {
  if (err) {
    va_list ap;
    err->code = code;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
  }
  return code;
}

int myr_error_prefix(myr_error *err, const char *fmt, ...) {
  if (!err)
    return MYR_EINTERNAL;
  char prefix[MYR_ERROR_MESSAGE_MAX];
  char old[MYR_ERROR_MESSAGE_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(prefix, sizeof prefix, fmt, ap);
  va_end(ap);
  memcpy(old, err->message, sizeof old);
  /* Assemble by hand: the result is cut at the buffer size, which is intended. */
  size_t cap = sizeof err->message, pos = 0;
  for (const char *parts[3] = {prefix, ": ", old}, **p = parts; p < parts + 3; p++)
    for (const char *c = *p; *c && pos + 1 < cap; c++)
      err->message[pos++] = *c;
  err->message[pos] = '\0';
  return err->code;
}

void myr_error_clear(myr_error *err) {
  if (err) {
    err->code = MYR_OK;
    err->message[0] = '\0';
  }
}
