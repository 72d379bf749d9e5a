/* libkmseg: everything public in one include.
 *   #include <kmseg/kmseg.h>      cc app.c $(pkg-config --cflags --libs kmseg)
 * kmseg_version.h  KMSEG_VERSION_STRING and friends
 * error.h          kms_status, kms_error
 * image.h          kms_image
 * kmeans.h         native k-means: params, run, exact 1-D optimum
 * elbow.h          WCSS curve over K and its knee
 * pipeline_api.h   INI pipelines on files and in-memory images */
#ifndef KMSEG_H
#define KMSEG_H

/* outside extern "C": C++ sees its own versions of these */
#include <stddef.h>
#include <stdint.h>

#include "kmseg_version.h"

/* for the headers that do not say extern "C" themselves */
#ifdef __cplusplus
extern "C" {
#endif

#include "error.h"
#include "image.h"
#include "kmeans.h"
#include "elbow.h"
#include "pipeline_api.h"

#ifdef __cplusplus
}
#endif

#endif
