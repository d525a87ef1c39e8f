/* SPDX-License-Identifier: Apache-2.0 */
/* Small text helpers shared across modules (see text.c). All are thread-safe. */
#ifndef MYRIAD_CORE_TEXT_H
#define MYRIAD_CORE_TEXT_H

#include <stddef.h>

/* Seconds from a monotonic clock. */
double myr__now(void);
/* Whether s[0..n) is valid UTF-8 (no overlongs, no surrogates, at most U+10FFFF). */
int myr__utf8_valid(const unsigned char *s, size_t n);
/* "a, b, c" into out[0..cap), cut with "..." when it does not fit. */
void myr__join_names(char *out, size_t cap, const char *const *names, size_t n);
/* The shortest of %.15g / %.16g / %.17g that reads back as v (finite), written to out
   (at least 40 bytes, not NUL-terminated); returns its length. */
size_t myr__fmt_double(char *out, double v);

#endif /* MYRIAD_CORE_TEXT_H */
