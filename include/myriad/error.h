/* SPDX-License-Identifier: Apache-2.0 */
/**
 * @file error.h
 * @brief Status codes and the caller-owned error struct used by every myriad call.
 *
 * Every function that can fail returns an int: MYR_OK (0) or one of the negative codes
 * below, and takes a last parameter `myr_error *err` (may be NULL) that receives a human
 * message naming the file, row, column or key at fault. Codes are never renumbered; a
 * retired code keeps its number and gains an OBSOLETE name.
 *
 * Thread safety: a myr_error belongs to one thread at a time.
 */
#ifndef MYRIAD_ERROR_H
#define MYRIAD_ERROR_H

#include <stddef.h>

#include "myriad/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Status codes. 0 is success; failures are negative and stable across releases. */
typedef enum myr_status {
  MYR_OK = 0,
  MYR_EINVAL = -1,       /**< invalid argument, option or spec */
  MYR_ENOMEM = -2,       /**< an allocation failed */
  MYR_EIO = -3,          /**< reading or writing a file failed */
  MYR_EPARSE = -4,       /**< malformed input that cannot be skipped row by row */
  MYR_ECORRUPT = -5,     /**< a model blob or store failed validation */
  MYR_ENOTFOUND = -6,    /**< no such key, column, family or run */
  MYR_ESTORE = -7,       /**< the store (SQLite) reported an error */
  MYR_EMODEL = -8,       /**< a model could not be fitted (singular, non-finite ...) */
  MYR_EUNSUPPORTED = -9, /**< a valid request this build does not implement */
  MYR_ECANCELED = -10,   /**< the caller asked the work to stop */
  MYR_EINTERNAL = -11,   /**< a bug in myriad: please report it */
  MYR_ENODATA = -12,     /**< the input holds no usable rows */
} myr_status;

/** Longest message kept, including the terminating NUL; longer ones are cut. */
#define MYR_ERROR_MESSAGE_MAX 1024

/** Caller-owned error detail. Zero-initialize it, or call myr_error_clear(). */
typedef struct myr_error {
  int code;                            /* last status set, MYR_OK when none */
  char message[MYR_ERROR_MESSAGE_MAX]; /* NUL-terminated, empty when none */
} myr_error;

/** @brief Short stable name of a status code ("MYR_EINVAL"); never NULL. */
MYR_API const char *myr_status_name(int code);

/** @brief Set err (if not NULL) to code and a printf-style message. @return code. */
MYR_API int myr_error_set(myr_error *err, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/** @brief Prefix the existing message with printf-style context. @return err->code. */
MYR_API int myr_error_prefix(myr_error *err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/** @brief Reset err to MYR_OK and an empty message; accepts NULL. */
MYR_API void myr_error_clear(myr_error *err);

/** Return from the enclosing function when expr yields a failure status. */
#define MYR_RETURN_NOT_OK(expr)     \
  do {                              \
    int myr_rno_status_ = (expr);   \
    if (myr_rno_status_ != MYR_OK)  \
      return myr_rno_status_;       \
  } while (0)

#ifdef __cplusplus
}
#endif
#endif /* MYRIAD_ERROR_H */
