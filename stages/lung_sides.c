/* The patient's right and left lung of a canonical slice's lung mask
 * (lung_sides.h).
 *
 * Most slices show two lungs apart: each component goes to the side of the
 * body's mid-line its centroid lies on (one lung alone in a slice too).
 * Lungs that touch at the anterior junction (in front of the aorta) or the
 * posterior one (in front of the spine) make one component with a fair
 * share (SPLIT_SHARE) on each side. It is split along the junction, not a
 * straight line: the chamfer (3-4) distance of its pixels to the
 * background is thresholded at rising levels (an erosion by one more pixel
 * each time) until the two largest parts each hold PART_SHARE of what is
 * left and lie on either side of the mid-line; those cores are grown back
 * through the component breadth first (8-connected), so each pixel goes to
 * the core it is nearer to inside the mask: the cut falls across the
 * neck, where the two fronts meet. A component that never comes apart so
 * (a lung pushed across the mid-line, or lungs joined over a wide front)
 * goes whole to its centroid's side, unless both sides hold
 * STRAIGHT_SHARE of it: then, failing anything better, it is cut at the
 * mid-line. All work on the component's box only. */
#include "lung_sides.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "context.h"
#include "mask_ops.h"

static const double SPLIT_SHARE = 0.15, PART_SHARE = 0.1,
                    STRAIGHT_SHARE = 0.3;
enum { SPLIT_MIN_AREA = 200, FAR = 1 << 29 };

typedef struct comp_side {
    long area, left; /* pixels, those left of xmid */
    double sum_x;
    int x0, y0, x1, y1; /* box, exclusive ends */
} comp_side;

/* Pixels of [x0, x1) left of xmid (column x is left when x < xmid). */
static long left_of(int x0, int x1, double xmid)
{
    double n = ceil(xmid) - x0; /* columns x0 .. ceil(xmid) - 1 */
    if (n <= 0)
        return 0;
    return n >= x1 - x0 ? x1 - x0 : (long)n;
}

static uint8_t side_of(double x, double xmid)
{
    return x < xmid ? KMS_LUNG_RIGHT : KMS_LUNG_LEFT;
}

void kms_chamfer34(const uint8_t *in, int32_t *d, int w, int h)
{
    for (int i = 0; i < w * h; i++)
        d[i] = in[i] ? FAR : 0;
    for (int y = 1; y < h - 1; y++)
        for (int x = 1; x < w - 1; x++) {
            int32_t *p = &d[y * w + x];
            if (!*p)
                continue;
            int32_t v = *p, a;
            if ((a = p[-1] + 3) < v) v = a;
            if ((a = p[-w] + 3) < v) v = a;
            if ((a = p[-w - 1] + 4) < v) v = a;
            if ((a = p[-w + 1] + 4) < v) v = a;
            *p = v;
        }
    for (int y = h - 2; y >= 1; y--)
        for (int x = w - 2; x >= 1; x--) {
            int32_t *p = &d[y * w + x];
            if (!*p)
                continue;
            int32_t v = *p, a;
            if ((a = p[1] + 3) < v) v = a;
            if ((a = p[w] + 3) < v) v = a;
            if ((a = p[w + 1] + 4) < v) v = a;
            if ((a = p[w - 1] + 4) < v) v = a;
            *p = v;
        }
}

/* Cores of the component (d: its distance map, w x h, a background
 * border) at the first level where it comes apart across xmid (ox: the
 * box's x in the slice); their sides into own[]. false: it never does. */
static kms_status find_cores(const int32_t *d, int w, int h, int ox,
                             double xmid, uint8_t *own, bool *found,
                             kms_error *err)
{
    int32_t top = 0;
    for (int i = 0; i < w * h; i++)
        top = d[i] > top ? d[i] : top;
    uint8_t *lvl = malloc((size_t)w * (size_t)h);
    kms_runs r = {0};
    double *sx = NULL;
    long *area = NULL;
    kms_status st = lvl ? KMS_OK
                        : kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL,
                                        "out of memory");
    *found = false;
    for (int32_t t = 3; st == KMS_OK && !*found && t < top; t += 3) {
        for (int i = 0; i < w * h; i++)
            lvl[i] = d[i] > t;
        st = kms_runs_find(&r, lvl, w, w, h, KMS_RUNS_LABEL8, err);
        if (st != KMS_OK)
            break;
        if (r.n_labels < 2)
            continue;
        free(sx);
        free(area);
        sx = calloc((size_t)r.n_labels + 1, sizeof *sx);
        area = calloc((size_t)r.n_labels + 1, sizeof *area);
        if (!sx || !area) {
            st = kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL,
                               "out of memory");
            break;
        }
        long total = 0;
        for (size_t k = 0; k < r.n; k++) {
            const kms_run *u = &r.run[k];
            long len = u->x1 - u->x0;
            area[u->label] += len;
            sx[u->label] += 0.5 * (double)(u->x0 + u->x1 - 1) * (double)len;
            total += len;
        }
        int a = 0, b = 0; /* the two largest */
        for (int l = 1; l <= r.n_labels; l++) {
            if (area[l] > area[a]) {
                b = a;
                a = l;
            } else if (area[l] > area[b]) {
                b = l;
            }
        }
        if (!a || !b || (double)area[b] < PART_SHARE * (double)total)
            continue;
        uint8_t sa = side_of(ox + sx[a] / (double)area[a], xmid);
        uint8_t sb = side_of(ox + sx[b] / (double)area[b], xmid);
        if (sa == sb)
            continue;
        memset(own, 0, (size_t)w * (size_t)h);
        for (size_t k = 0; k < r.n; k++) {
            const kms_run *u = &r.run[k];
            if (u->label == a || u->label == b)
                memset(own + (size_t)u->y * (size_t)w + u->x0,
                       u->label == a ? sa : sb, (size_t)(u->x1 - u->x0));
        }
        *found = true;
    }
    free(lvl);
    free(sx);
    free(area);
    kms_runs_free(&r);
    return st;
}

/* Grows the cores in own[] through in[] breadth first, 8-connected. */
static kms_status grow_back(const uint8_t *in, uint8_t *own, int w, int h,
                            kms_error *err)
{
    int32_t *queue = malloc((size_t)w * (size_t)h * sizeof *queue);
    if (!queue)
        return kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL,
                             "out of memory");
    size_t head = 0, tail = 0;
    for (int i = 0; i < w * h; i++)
        if (own[i])
            queue[tail++] = i;
    const int step[8] = {-1, 1, -w, w, -w - 1, -w + 1, w - 1, w + 1};
    while (head < tail) {
        int i = queue[head++];
        for (int k = 0; k < 8; k++) {
            int j = i + step[k]; /* the border is background: never out */
            if (in[j] && !own[j]) {
                own[j] = own[i];
                queue[tail++] = j;
            }
        }
    }
    free(queue);
    return KMS_OK;
}

/* Component l of r, which reaches across xmid, into sides. */
static kms_status split_component(const kms_runs *r, int l, const comp_side *c,
                                  double xmid, kms_image *sides,
                                  kms_error *err)
{
    int ox = c->x0 - 1, oy = c->y0 - 1;
    int w = c->x1 - c->x0 + 2, h = c->y1 - c->y0 + 2;
    kms_image in = {0};
    int32_t *d = malloc((size_t)w * (size_t)h * sizeof *d);
    uint8_t *own = calloc((size_t)w * (size_t)h, 1);
    kms_status st = d && own ? kms_image_alloc(&in, w, h, 1, KMS_DEPTH_U8, err)
                             : kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL,
                                             "out of memory");
    bool found = false;
    uint8_t *px = NULL;
    if (st == KMS_OK) {
        kms_runs_paint(r, l, &in, ox, oy, 1);
        /* a packed copy: rows w bytes apart */
        px = malloc((size_t)w * (size_t)h);
        if (!px)
            st = kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL,
                               "out of memory");
        for (int y = 0; st == KMS_OK && y < h; y++)
            memcpy(px + (size_t)y * (size_t)w, kms_image_row(&in, y),
                   (size_t)w);
    }
    if (st == KMS_OK) {
        kms_chamfer34(px, d, w, h);
        st = find_cores(d, w, h, ox, xmid, own, &found, err);
    }
    if (st == KMS_OK && found)
        st = grow_back(px, own, w, h, err);
    if (st == KMS_OK && !found) {
        double share = (double)(c->left < c->area - c->left
                                    ? c->left
                                    : c->area - c->left) /
                       (double)c->area;
        uint8_t whole = side_of(c->sum_x / (double)c->area, xmid);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                own[y * w + x] =
                    share >= STRAIGHT_SHARE ? side_of(ox + x, xmid) : whole;
    }
    for (int y = 0; st == KMS_OK && y < h; y++) {
        int sy = oy + y;
        if (sy < 0 || sy >= sides->height)
            continue;
        uint8_t *o = kms_image_row(sides, sy);
        for (int x = 0; x < w; x++) {
            int sx = ox + x;
            if (px[y * w + x] && sx >= 0 && sx < sides->width)
                o[sx] = own[y * w + x];
        }
    }
    kms_image_free(&in);
    free(px);
    free(d);
    free(own);
    return st;
}

kms_status kms_lung_sides(const kms_image *mask, double xmid, kms_image *sides,
                          kms_error *err)
{
    kms_runs r = {0};
    comp_side *cs = NULL;
    kms_status st = kms_image_alloc(sides, mask->width, mask->height, 1,
                                    KMS_DEPTH_U8, err);
    if (st == KMS_OK)
        st = kms_runs_find(&r, mask->data, (ptrdiff_t)mask->stride,
                           mask->width, mask->height, KMS_RUNS_LABEL8, err);
    if (st == KMS_OK) {
        cs = calloc((size_t)r.n_labels + 1, sizeof *cs);
        if (!cs)
            st = kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL,
                               "out of memory");
    }
    for (int l = 1; st == KMS_OK && l <= r.n_labels; l++)
        cs[l] = (comp_side){.x0 = 1 << 30, .y0 = 1 << 30};
    for (size_t k = 0; st == KMS_OK && k < r.n; k++) {
        const kms_run *u = &r.run[k];
        comp_side *c = &cs[u->label];
        long len = u->x1 - u->x0;
        c->area += len;
        c->left += left_of(u->x0, u->x1, xmid);
        c->sum_x += 0.5 * (double)(u->x0 + u->x1 - 1) * (double)len;
        c->x0 = u->x0 < c->x0 ? u->x0 : c->x0;
        c->x1 = u->x1 > c->x1 ? u->x1 : c->x1;
        c->y0 = u->y < c->y0 ? u->y : c->y0;
        c->y1 = u->y + 1;
    }
    for (int l = 1; st == KMS_OK && l <= r.n_labels; l++) {
        const comp_side *c = &cs[l];
        long minor = c->left < c->area - c->left ? c->left : c->area - c->left;
        if (c->area >= SPLIT_MIN_AREA &&
            (double)minor >= SPLIT_SHARE * (double)c->area)
            st = split_component(&r, l, c, xmid, sides, err);
        else
            kms_runs_paint(&r, l, sides, 0, 0,
                           side_of(c->sum_x / (double)c->area, xmid));
    }
    free(cs);
    kms_runs_free(&r);
    if (st != KMS_OK)
        kms_image_free(sides);
    return st;
}
