/* A bounds-checking walk over the data elements of a DICOM file, run before
 * GDCM sees it: Debian's GDCM is built with asserts on and calls abort() on
 * some damaged headers, which would end a whole batch. Plain C, no
 * allocation, a few small reads per file (pixel data is skipped, not read).
 *
 * Checked: preamble + "DICM" (or none), the meta group (0002) in explicit
 * VR little endian, then the data set in the transfer syntax it names
 * (explicit VR little endian, implicit VR little endian, explicit VR big
 * endian; deflated is refused), sequences and items of defined or
 * undefined length (nested at most KMS_DICOM_WALK_MAX_DEPTH deep),
 * encapsulated pixel data fragments. Every element header and every
 * defined length must fit in its container and in the file; VR codes must
 * be valid ones (and pass the caller's check); only sequences, UN and pixel
 * data may have an undefined length (as GDCM asserts). */
#ifndef KMS_DICOM_WALK_H
#define KMS_DICOM_WALK_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum { KMS_DICOM_WALK_MAX_DEPTH = 16 };

typedef enum kms_dicom_walk_result {
    KMS_DICOM_WALK_OK = 0,
    KMS_DICOM_WALK_NOT_DICOM,  /* no DICM, and the first element is none */
    KMS_DICOM_WALK_CORRUPT,    /* a header that does not hold together */
    KMS_DICOM_WALK_TRUNCATED,  /* the file ends inside its pixel data */
    KMS_DICOM_WALK_UNSUPPORTED,/* deflated or unknown transfer syntax */
    KMS_DICOM_WALK_IO          /* cannot open or read the file */
} kms_dicom_walk_result;

typedef struct kms_dicom_layout {
    uint64_t file_size;
    bool has_pixels;          /* (7FE0,0010) in the top-level data set */
    bool encapsulated;        /* its length is undefined (fragments) */
    uint64_t pixel_offset;    /* first byte of its value */
    uint64_t pixel_length;    /* its defined length (0 when encapsulated) */
    char transfer_syntax[68]; /* as the meta header names it ("" if none) */
    unsigned rle_segments;    /* RLE: segments of the first frame (else 0) */
    /* on failure: where and why (one line, no file name) */
    uint64_t bad_at;
    char why[160];
} kms_dicom_layout;

/* Says whether an explicit VR (two letters) suits the tag; NULL: any
 * valid VR does. GDCM asserts when a tag it converts (Rows, PixelSpacing,
 * ImagePositionPatient, ...) has a VR other than its dictionary's. */
typedef bool (*kms_dicom_vr_check)(uint16_t group, uint16_t element,
                                   const char vr[2]);

/* Walks the file at path; fills out (also on failure). */
kms_dicom_walk_result kms_dicom_walk(const char *path, kms_dicom_vr_check check,
                                     kms_dicom_layout *out);

#ifdef __cplusplus
}
#endif

#endif
