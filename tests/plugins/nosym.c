/* SPDX-License-Identifier: Apache-2.0 */
/* A shared library that is not a myriad plugin: it lacks myr_plugin_register(). */
#include "myriad/export.h"

MYR_API int myr_test_not_a_plugin(void);

MYR_API int myr_test_not_a_plugin(void) {
  return 42;
}
