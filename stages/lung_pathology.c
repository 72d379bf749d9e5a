/* Pathology inside the lung's outline (lung_pathology.h).
 *
 * The threshold keeps what is as dark as aerated lung. Dense lung inside the
 * outline is taken in by lung_mask already when air surrounds it (hole
 * filling: nodules, consolidation or ground glass within the lung), and
 * ground glass (-700 .. -300 HU) mostly lies below the threshold (about
 * -300 HU). What it misses is dense lung against the pleura: consolidation,
 * a juxtapleural nodule, dense dependent lung at the back. They leave a
 * bite in the lung's outline on its rib side, while the organs that must
 * stay out (heart, liver and spleen domes, stomach, bowel) sit in the
 * outline's mediastinal or diaphragmatic concavities, and a pleural
 * effusion lies outside the lung as an even band along the chest wall,
 * which leaves the lung's outline convex.
 *
 * So, per lung: its convex hull; the pixels between the hull and the lung
 * (neither lung, outside air nor bone), in 4-connected bites; a bite is
 * filled when it is at least min_depth thick (chamfer distance; rib
 * impressions and the closing's leftovers are thinner) and lies, seen from
 * the lung's centroid, between angle_lo and angle_hi (0 lateral, 90
 * posterior): the rib side. The heart's and hilum's concavities lie medial
 * or in front, a dome's in front and medial (the lung's base wraps behind
 * it), the descending aorta's posteromedial (beyond angle_hi).
 *
 * Choice, measured (tests/lung_pathology.py: on each of the 24 development
 * slices a consolidation image, half disks of 13 mm radius at 0..60 HU
 * against the lateral wall of one lung and the back of the other; a
 * ground-glass image, -700..-300 HU, the other way round; an effusion band
 * 12 px deep over the back of both lungs at 0..20 HU and a 40 HU patch in
 * the mediastinum; 72 cases, each passing at Dice >= 0.98 against the
 * untouched truth and every patch pixel 2 px inside it in the mask, or
 * the band and patch left out):
 *  - nothing (lung_mask before): 27 of 72 fail (all 24 consolidations, 3
 *    ground glass); Dice mean 0.9863, min 0.9731;
 *  - a larger closing per lung (rolling ball), radius 20 reference pixels
 *    (14 mm) instead of 10: 31 fail (the consolidations still, and 3
 *    mediastinal patches taken in); Dice mean 0.9847, min 0.9702; on the
 *    24 clean slices mean 0.9884, min 0.9797 (was 0.9908 / 0.9833); 30 px
 *    (21 mm): 33 fail, clean mean 0.9856, min 0.9719. A ball big enough to
 *    bridge a patch bridges the cardiac notch and the hilum too;
 *  - these bites: 0 of 72 fail; Dice mean 0.9901, min 0.9816; effusion
 *    bands at most 1.8 % in the mask, mediastinal patches 0; the 24 clean
 *    slices' masks byte for byte unchanged (no bite passes there: of the
 *    bites 4 px thick or more on the rib side, the one long thin one is a
 *    liver dome under a raised base (ratio 0.145), the others lie
 *    posteromedial, beyond 110 degrees: 122 .. 134, the aorta and spine).
 *  3-D smoothing needs volumes (lung_volume's part), not slices.
 * Cost: about 2.5 M instructions a slice (callgrind; the whole lung
 * pipeline of a slice about 42 M), the bites' thickness measured only for
 * bites on the rib side.
 * Limits: a consolidation long along the wall and thin (thickness < 0.2 of
 * its length, when longer than 40 mm) is not taken; nor one on the
 * anterior or mediastinal side; an effusion and a dependent consolidation
 * that both leave the lung's outline convex are alike to this rule (the
 * former is kept out, the latter missed); the rim of a patch within 2 px of
 * the chest wall follows the wall only as far as REACH. Tuned on 24 slices
 * of one data set and synthetic patches.
 */
#include "lung_pathology.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "context.h"
#include "lung_sides.h"
#include "opencv_c.h"

enum { MIN_BITE_AREA = 20, REACH = 4 };
/* A bite's thickness over its length, at least: a dome of the liver under
 * the lung's base or a lens left by a raised diaphragm is long and thin
 * (0.145 on the one such bite on the rib side in the 24 slices), a patch
 * against the pleura about as thick as it is half long (0.25 for a half
 * disk). */
static const double MIN_OPEN = 0.2;
/* Bites up to SMALL_EXT long (~40 mm at the reference scale: a nodule, a
 * patch of consolidation) need only SMALL_OPEN: the rib cage curves away
 * under a short chord, which leaves such a bite thinner than its patch
 * (a half disk of 13 mm radius against the lateral wall: 0.176). */
static const double SMALL_OPEN = 0.1;
enum { SMALL_EXT = 56 };

typedef struct pt {
    int x, y;
} pt;

static int pt_cmp(const void *a, const void *b)
{
    const pt *p = a, *q = b;
    return p->x != q->x ? (p->x > q->x) - (p->x < q->x)
                        : (p->y > q->y) - (p->y < q->y);
}

static long cross(pt o, pt a, pt b)
{
    return (long)(a.x - o.x) * (b.y - o.y) - (long)(a.y - o.y) * (b.x - o.x);
}

/* Andrew's monotone chain: the hull of p[0 .. n) (sorted here) into h,
 * counter-clockwise; returns its size. h has room for 2n. */
static int convex_hull(pt *p, int n, pt *h)
{
    qsort(p, (size_t)n, sizeof *p, pt_cmp);
    if (n < 3) {
        memcpy(h, p, (size_t)n * sizeof *p);
        return n;
    }
    int k = 0;
    for (int i = 0; i < n; i++) {
        while (k >= 2 && cross(h[k - 2], h[k - 1], p[i]) <= 0)
            k--;
        h[k++] = p[i];
    }
    for (int i = n - 2, t = k + 1; i >= 0; i--) {
        while (k >= t && cross(h[k - 2], h[k - 1], p[i]) <= 0)
            k--;
        h[k++] = p[i];
    }
    return k - 1;
}

typedef struct bite {
    long area;
    double sx, sy;
    int32_t depth;
    int x0, y0, x1, y1;
} bite;

/* The chosen bites into mask and sides, grown by REACH pixels (not into
 * bone, outside air or the other lung): the closing rounds the corners
 * where the lung meets a patch, so the hull's chord falls a few pixels
 * short of the chest wall there. */
static kms_status fill_bites(const kms_pleural_fill *p, const kms_image *hu,
                             const kms_runs *outside, const kms_runs *br,
                             const bool *fill, int ox, int oy, kms_image *mask,
                             kms_image *sides, uint8_t side, long *added,
                             kms_error *err)
{
    const int W = mask->width, H = mask->height;
    int bx0 = 1 << 30, by0 = 1 << 30, bx1 = -1, by1 = -1;
    for (size_t k = 0; k < br->n; k++) {
        const kms_run *u = &br->run[k];
        if (!fill[u->label])
            continue;
        bx0 = u->x0 + ox < bx0 ? u->x0 + ox : bx0;
        bx1 = u->x1 + ox > bx1 ? u->x1 + ox : bx1;
        by0 = u->y + oy < by0 ? u->y + oy : by0;
        by1 = u->y + oy + 1 > by1 ? u->y + oy + 1 : by1;
    }
    int gx = bx0 - REACH, gy = by0 - REACH;
    int gw = bx1 - bx0 + 2 * REACH, gh = by1 - by0 + 2 * REACH;
    kms_image g = {0}, grown = {0};
    kms_status st = kms_image_alloc(&g, gw, gh, 1, KMS_DEPTH_U8, err);
    for (size_t k = 0; st == KMS_OK && k < br->n; k++) {
        const kms_run *u = &br->run[k];
        if (fill[u->label])
            memset((uint8_t *)kms_image_row(&g, u->y + oy - gy) + u->x0 +
                       ox - gx,
                   255, (size_t)(u->x1 - u->x0));
    }
    if (st == KMS_OK)
        st = kms_cv_morphology(&g, &grown, KMS_CV_MORPH_DILATE,
                               KMS_CV_MORPH_ELLIPSE, 2 * REACH + 1, 1, err);
    for (int y = 0; st == KMS_OK && y < gh; y++) {
        int sy = y + gy;
        if (sy < 0 || sy >= H)
            continue;
        const uint8_t *r = kms_image_row(&grown, y);
        const uint8_t *b = kms_image_row(&g, y);
        uint8_t *m = kms_image_row(mask, sy);
        uint8_t *s = kms_image_row(sides, sy);
        const int16_t *v = kms_image_row(hu, sy);
        size_t k = outside->row[sy];
        for (int x = 0; x < gw; x++) {
            int sx = x + gx;
            if (!r[x] || sx < 0 || sx >= W || m[sx])
                continue;
            while (k < outside->row[sy + 1] && outside->run[k].x1 <= sx)
                k++;
            bool out = k < outside->row[sy + 1] && outside->run[k].x0 <= sx;
            if (!b[x] && (out || v[sx] >= p->bone_hu))
                continue;
            m[sx] = 255;
            s[sx] = side;
            (*added)++;
        }
    }
    kms_image_free(&g);
    kms_image_free(&grown);
    return st;
}

/* The thickness of bite l (of the runs br): the largest chamfer (3-4)
 * distance of its pixels to the nearest pixel not in it, on its box. */
static kms_status bite_depth(const kms_runs *br, int l, const bite *b,
                             int32_t *depth, kms_error *err)
{
    int w = b->x1 - b->x0 + 2, h = b->y1 - b->y0 + 2;
    uint8_t *m = calloc((size_t)w * (size_t)h, 1);
    int32_t *d = malloc((size_t)w * (size_t)h * sizeof *d);
    if (!m || !d) {
        free(m);
        free(d);
        return kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL,
                             "out of memory");
    }
    for (size_t i = br->first[l]; i < br->first[l + 1]; i++) {
        const kms_run *u = &br->run[br->at[i]];
        memset(m + (size_t)(u->y - b->y0 + 1) * (size_t)w + (u->x0 - b->x0 + 1),
               1, (size_t)(u->x1 - u->x0));
    }
    kms_chamfer34(m, d, w, h);
    int32_t best = 0;
    for (int i = 0; i < w * h; i++)
        best = d[i] > best ? d[i] : best;
    *depth = best;
    free(m);
    free(d);
    return KMS_OK;
}

/* A lung's outline as points: the ends of its segments (the mask's runs
 * split where the side changes), and its centroid. */
typedef struct outline {
    pt *pts;
    size_t n, cap;
    double sx, sy, area;
} outline;

static kms_status outlines(const kms_runs *mr, const kms_image *sides,
                           outline *o, kms_error *err)
{
    for (size_t k = 0; k < mr->n; k++) {
        const kms_run *u = &mr->run[k];
        const uint8_t *s = kms_image_row(sides, u->y);
        for (int x = u->x0; x < u->x1;) {
            int e = x + 1;
            while (e < u->x1 && s[e] == s[x])
                e++;
            if (s[x] == KMS_LUNG_RIGHT || s[x] == KMS_LUNG_LEFT) {
                outline *l = &o[s[x] - 1];
                if (l->n + 2 > l->cap) {
                    size_t cap = l->cap ? 2 * l->cap : 1024;
                    pt *q = realloc(l->pts, cap * sizeof *q);
                    if (!q)
                        return kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL,
                                             "out of memory");
                    l->pts = q;
                    l->cap = cap;
                }
                l->pts[l->n++] = (pt){x, u->y};
                l->pts[l->n++] = (pt){e - 1, u->y};
                l->sx += 0.5 * (x + e - 1) * (double)(e - x);
                l->sy += (double)u->y * (e - x);
                l->area += e - x;
            }
            x = e;
        }
    }
    return KMS_OK;
}

/* One lung (value side of sides); mr: the runs of the mask. */
static kms_status fill_side(const kms_pleural_fill *p, const kms_image *hu,
                            const kms_runs *outside, const kms_runs *mr,
                            outline *ol, kms_image *mask, kms_image *sides,
                            uint8_t side, long *added, kms_error *err)
{
    const int W = sides->width, H = sides->height;
    kms_runs br = {0};
    pt *hull = NULL;
    int *lo = NULL, *hi = NULL;
    uint8_t *cc = NULL;
    bite *bt = NULL;
    kms_status st = KMS_OK;
    if (ol->n == 0)
        return KMS_OK;
    double lx = ol->sx / ol->area, ly = ol->sy / ol->area;
    hull = malloc((2 * ol->n + 2) * sizeof *hull);
    if (!hull) {
        st = kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
        goto out;
    }
    int nh = convex_hull(ol->pts, (int)ol->n, hull);
    if (nh < 3)
        goto out;
    /* the hull's box, with a background border for the chamfer */
    int x0 = W, x1 = -1, y0 = H, y1 = -1;
    for (int i = 0; i < nh; i++) {
        x0 = hull[i].x < x0 ? hull[i].x : x0;
        x1 = hull[i].x > x1 ? hull[i].x : x1;
        y0 = hull[i].y < y0 ? hull[i].y : y0;
        y1 = hull[i].y > y1 ? hull[i].y : y1;
    }
    int bw = x1 - x0 + 3, bh = y1 - y0 + 3, ox = x0 - 1, oy = y0 - 1;
    lo = malloc((size_t)bh * sizeof *lo);
    hi = malloc((size_t)bh * sizeof *hi);
    cc = calloc((size_t)bw * (size_t)bh, 1);
    if (!lo || !hi || !cc) {
        st = kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
        goto out;
    }
    for (int y = 0; y < bh; y++) {
        lo[y] = 1 << 30;
        hi[y] = -(1 << 30);
    }
    /* the hull's span per row, pixel centres on or inside its edges */
    for (int i = 0; i < nh; i++) {
        pt a = hull[i], b = hull[(i + 1) % nh];
        int ya = a.y < b.y ? a.y : b.y, yb = a.y < b.y ? b.y : a.y;
        for (int y = ya; y <= yb; y++) {
            double x = a.y == b.y ? a.x
                                  : a.x + (double)(y - a.y) * (b.x - a.x) /
                                              (double)(b.y - a.y);
            int xl = (int)ceil(x - 1e-9), xr = (int)floor(x + 1e-9);
            if (a.y == b.y) {
                xl = a.x < b.x ? a.x : b.x;
                xr = a.x < b.x ? b.x : a.x;
            }
            int r = y - oy;
            lo[r] = xl < lo[r] ? xl : lo[r];
            hi[r] = xr > hi[r] ? xr : hi[r];
        }
    }
    /* candidates: in the hull, not lung (either side), not bone */
    for (int y = y0; y <= y1; y++) {
        const uint8_t *m = kms_image_row(mask, y);
        const int16_t *v = kms_image_row(hu, y);
        uint8_t *c = cc + (size_t)(y - oy) * (size_t)bw - ox;
        /* the gaps between the mask's runs (as they were before either
         * lung's bites were added: m says since) within the hull's span */
        int cur = lo[y - oy], end = hi[y - oy] + 1;
        for (size_t k = mr->row[y]; k <= mr->row[y + 1] && cur < end; k++) {
            int g1 = k < mr->row[y + 1] ? mr->run[k].x0 : end;
            g1 = g1 < end ? g1 : end;
            for (int x = cur; x < g1; x++)
                c[x] = !m[x] && v[x] < p->bone_hu;
            if (k < mr->row[y + 1] && mr->run[k].x1 > cur)
                cur = mr->run[k].x1;
        }
        for (size_t k = outside->row[y]; k < outside->row[y + 1]; k++) {
            const kms_run *u = &outside->run[k];
            for (int x = u->x0 > x0 ? u->x0 : x0; x < u->x1 && x <= x1; x++)
                c[x] = 0;
        }
    }
    st = kms_runs_find(&br, cc, bw, bw, bh, KMS_RUNS_LABEL4, err);
    if (st != KMS_OK || br.n_labels == 0)
        goto out;
    bt = calloc((size_t)br.n_labels + 1, sizeof *bt);
    if (!bt) {
        st = kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
        goto out;
    }
    for (size_t k = 0; k < br.n; k++) {
        const kms_run *u = &br.run[k];
        bite *b = &bt[u->label];
        double len = u->x1 - u->x0;
        if (b->area == 0) {
            b->x0 = b->y0 = 1 << 30;
            b->x1 = b->y1 = -1;
        }
        b->x0 = u->x0 < b->x0 ? u->x0 : b->x0;
        b->x1 = u->x1 > b->x1 ? u->x1 : b->x1;
        b->y0 = u->y < b->y0 ? u->y : b->y0;
        b->y1 = u->y + 1;
        b->area += (long)len;
        b->sx += (0.5 * (u->x0 + u->x1 - 1) + ox) * len;
        b->sy += (u->y + oy) * len;
    }
    /* lateral is towards the image's left for the right lung */
    double lat = side == KMS_LUNG_RIGHT ? -1 : 1;
    bool *fill = calloc((size_t)br.n_labels + 1, sizeof *fill);
    if (!fill) {
        st = kms_error_set(err, KMS_ERR_NOMEM, NULL, 0, NULL, "out of memory");
        goto out;
    }
    bool any = false;
    for (int l = 1; l <= br.n_labels; l++) {
        bite *b = &bt[l];
        int ext = b->x1 - b->x0 > b->y1 - b->y0 ? b->x1 - b->x0 : b->y1 - b->y0;
        if (b->area < MIN_BITE_AREA || ext < 2 * p->min_depth)
            continue;
        double vx = b->sx / (double)b->area - lx;
        double vy = b->sy / (double)b->area - ly;
        double angle = atan2(vy, lat * vx) * (180 / 3.14159265358979323846);
        if (angle < p->angle_lo || angle > p->angle_hi)
            continue;
        /* the thickness last: only bites on the rib side need it */
        st = bite_depth(&br, l, b, &b->depth, err);
        if (st != KMS_OK)
            break;
        double open = b->depth / 3.0 / ext;
        fill[l] = b->depth >= 3 * p->min_depth &&
                  (open >= MIN_OPEN ||
                   (ext <= SMALL_EXT && open >= SMALL_OPEN));
        any |= fill[l];
    }
    if (st == KMS_OK && any)
        st = fill_bites(p, hu, outside, &br, fill, ox, oy, mask, sides, side,
                        added, err);
    free(fill);
out:
    kms_runs_free(&br);
    free(hull);
    free(lo);
    free(hi);
    free(cc);
    free(bt);
    return st;
}

kms_status kms_lung_pleural_fill(const kms_pleural_fill *p, const kms_image *hu,
                                 const kms_runs *outside, kms_image *mask,
                                 kms_image *sides, long *added, kms_error *err)
{
    kms_runs mr = {0};
    *added = 0;
    kms_status st = kms_runs_find(&mr, mask->data, (ptrdiff_t)mask->stride,
                                  mask->width, mask->height, 0, err);
    outline ol[2] = {{0}, {0}};
    if (st == KMS_OK)
        st = outlines(&mr, sides, ol, err);
    for (int k = 0; st == KMS_OK && k < 2; k++)
        st = fill_side(p, hu, outside, &mr, &ol[k], mask, sides,
                       (uint8_t)(k + 1), added, err);
    free(ol[0].pts);
    free(ol[1].pts);
    kms_runs_free(&mr);
    return st;
}
