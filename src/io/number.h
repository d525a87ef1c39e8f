/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Text to number for CSV cells. Decimal numbers with up to 19 significant digits and a
 * small exponent are converted exactly with one floating-point operation (both operands
 * are exact doubles, so the result is correctly rounded); everything else goes through
 * strtod. Missing-value tokens are recognized here so that every reader agrees on them.
 */
#ifndef MYRIAD_IO_NUMBER_H
#define MYRIAD_IO_NUMBER_H

#include <stddef.h>

enum myr__num {
  MYR__NUM_OK = 0,      /* finite number */
  MYR__NUM_MISSING = 1, /* empty, NA, NaN, null (any case), possibly space-padded */
  MYR__NUM_BAD = 2,     /* not a number */
  MYR__NUM_INF = 3,     /* inf, infinity, or out of double range */
};

/* Parse s[0..len) (not NUL-terminated). Leading and trailing spaces/tabs are ignored. */
int myr__parse_double(const char *s, size_t len, double *out);
/* Whether s[0..len) is a missing-value token (same rule as above). */
int myr__is_missing(const char *s, size_t len);

#endif /* MYRIAD_IO_NUMBER_H */
