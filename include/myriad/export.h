/* SPDX-License-Identifier: Apache-2.0 */
/* Symbol visibility: libmyriad builds with -fvisibility=hidden and exports only MYR_API. */
#ifndef MYRIAD_EXPORT_H
#define MYRIAD_EXPORT_H

#if defined(_WIN32)
#define MYR_API
#elif defined(__GNUC__)
#define MYR_API __attribute__((visibility("default")))
#else
#define MYR_API
#endif

#endif /* MYRIAD_EXPORT_H */
