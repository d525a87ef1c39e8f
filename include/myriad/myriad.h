/* SPDX-License-Identifier: Apache-2.0 */
/**
 * @file myriad.h
 * @brief Umbrella header: everything a program using libmyriad needs.
 */
#ifndef MYRIAD_MYRIAD_H
#define MYRIAD_MYRIAD_H

#define MYR_VERSION_STRING "0.1.0"

#include "myriad/alloc.h"
#include "myriad/blob.h"
#include "myriad/error.h"
#include "myriad/gen.h"
#include "myriad/model.h"
#include "myriad/predict.h"
#include "myriad/store.h"
#include "myriad/train.h"

#endif /* MYRIAD_MYRIAD_H */
