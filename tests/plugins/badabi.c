/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A plugin "built for" model ABI version 99: its register function refuses any other
 * version, as docs/plugins.md asks every plugin to do, and adds nothing.
 */
#include <stdint.h>

#include "myriad/model.h"

#define BADABI_VERSION 99u /* the ABI this module pretends to be built against */

MYR_API int myr_plugin_register(uint32_t abi_version, myr_registry *reg, myr_error *err);

MYR_API int myr_plugin_register(uint32_t abi_version, myr_registry *reg, myr_error *err) {
  (void)reg;
  if (abi_version != BADABI_VERSION)
    return myr_error_set(err, MYR_EUNSUPPORTED,
                         "badabi plugin was built for model ABI version %u, this myriad "
                         "speaks %u",
                         BADABI_VERSION, abi_version);
  return MYR_OK;
}
