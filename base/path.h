/* Small path helpers shared by the readers, the input scan and the writers. */
#ifndef KMS_PATH_H
#define KMS_PATH_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Joins dir and name into buf ("name" alone when dir is "" or "." or name
 * is absolute). */
void kms_path_join(char *buf, size_t len, const char *dir, const char *name);

/* path made absolute against the current folder (malloc'ed; NULL when out
 * of memory). "@list" keeps its @; absolute and empty paths are copied as
 * they are.
 * Command-line paths mean the current folder, not the config's. */
char *kms_path_absolute(const char *path);

/* Whether s ends with suffix after at least one other character, ignoring
 * ASCII case (".NII.GZ" is ".nii.gz": scanners and PACS exports write
 * either; ".nii" alone has no stem and is no NIfTI file). */
bool kms_ends_with(const char *s, const char *suffix);

#ifdef __cplusplus
}
#endif

#endif
