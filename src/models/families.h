/* SPDX-License-Identifier: Apache-2.0 */
/* The built-in model families, one file each in src/models/. */
#ifndef MYRIAD_MODELS_FAMILIES_H
#define MYRIAD_MODELS_FAMILIES_H

#include "myriad/model.h"

extern const myr_model_family myr__family_linear; /* ridge / OLS regression */
extern const myr_model_family myr__family_forest; /* random forest (sklearn semantics) */

#endif /* MYRIAD_MODELS_FAMILIES_H */
