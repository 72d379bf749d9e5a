#include "plot.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "opencv_c.h"

enum { MARGIN_LEFT = 110, MARGIN_RIGHT = 40, MARGIN_TOP = 60, MARGIN_BOTTOM = 80 };

static const double BLACK[4] = {0, 0, 0, 0};
static const double GREY[4] = {200, 200, 200, 0};
static const double BLUE[4] = {180, 90, 20, 0};
static const double RED[4] = {30, 30, 220, 0};

typedef struct frame {
    int x0, y0, x1, y1;          /* plot area in pixels: left, top, right, bottom */
    double xmin, xmax, ymin, ymax;
} frame;

static int px(const frame *f, double x)
{
    return f->x0 + (int)lround((x - f->xmin) / (f->xmax - f->xmin) * (f->x1 - f->x0));
}

static int py(const frame *f, double y)
{
    return f->y1 - (int)lround((y - f->ymin) / (f->ymax - f->ymin) * (f->y1 - f->y0));
}

/* A tick step of 1, 2 or 5 times a power of ten giving about `want` ticks. */
static double nice_step(double span, int want)
{
    double raw = span / want, mag = pow(10, floor(log10(raw)));
    double r = raw / mag;
    return (r < 1.5 ? 1 : r < 3.5 ? 2 : r < 7.5 ? 5 : 10) * mag;
}

static kms_status text(kms_image *img, const char *s, int x, int y, double scale,
                       const double color[4], int align, kms_error *err)
{
    int w = 0, h = 0;
    kms_status st = kms_cv_text_size(s, scale, 1, &w, &h, NULL, err);
    if (st != KMS_OK)
        return st;
    /* align: 0 left, 1 centre, 2 right; y is the text's vertical middle */
    int left = align == 0 ? x : align == 1 ? x - w / 2 : x - w;
    return kms_cv_put_text(img, s, left, y + h / 2, scale, color, 1, err);
}

static kms_status draw_axes(kms_image *img, const frame *f, const kms_plot *p,
                            kms_error *err)
{
    kms_status st = KMS_OK;
    double ystep = nice_step(f->ymax - f->ymin, 6);
    for (double v = ceil(f->ymin / ystep) * ystep; st == KMS_OK && v <= f->ymax;
         v += ystep) {
        char label[32];
        snprintf(label, sizeof label, "%.3g", fabs(v) < ystep * 1e-6 ? 0.0 : v);
        st = kms_cv_line(img, f->x0, py(f, v), f->x1, py(f, v), GREY, 1, err);
        if (st == KMS_OK)
            st = kms_cv_line(img, f->x0 - 6, py(f, v), f->x0, py(f, v), BLACK, 1, err);
        if (st == KMS_OK)
            st = text(img, label, f->x0 - 10, py(f, v), 0.45, BLACK, 2, err);
    }
    double xstep = fmax(1, nice_step(f->xmax - f->xmin, 10));
    for (double v = ceil(f->xmin / xstep) * xstep; st == KMS_OK && v <= f->xmax;
         v += xstep) {
        char label[32];
        snprintf(label, sizeof label, "%g", v);
        st = kms_cv_line(img, px(f, v), f->y1, px(f, v), f->y1 + 6, BLACK, 1, err);
        if (st == KMS_OK)
            st = text(img, label, px(f, v), f->y1 + 20, 0.45, BLACK, 1, err);
    }
    if (st == KMS_OK)
        st = kms_cv_line(img, f->x0, f->y1, f->x1, f->y1, BLACK, 2, err);
    if (st == KMS_OK)
        st = kms_cv_line(img, f->x0, f->y0, f->x0, f->y1, BLACK, 2, err);
    if (st == KMS_OK)
        st = text(img, p->x_label, (f->x0 + f->x1) / 2, f->y1 + 50, 0.6, BLACK, 1, err);
    if (st == KMS_OK)
        st = text(img, p->y_label, 10, f->y0 - 22, 0.6, BLACK, 0, err);
    if (st == KMS_OK)
        st = text(img, p->title, img->width / 2, 20, 0.65, BLACK, 1, err);
    return st;
}

static kms_status draw_curve(kms_image *img, const frame *f, const kms_plot *p,
                             kms_error *err)
{
    kms_status st = KMS_OK;
    for (int i = 0; st == KMS_OK && i < p->n; i++) {
        if (i > 0)
            st = kms_cv_line(img, px(f, p->x[i - 1]), py(f, p->y[i - 1]),
                             px(f, p->x[i]), py(f, p->y[i]), BLUE, 2, err);
        if (st == KMS_OK)
            st = kms_cv_circle(img, px(f, p->x[i]), py(f, p->y[i]), 4, BLUE, -1, err);
    }
    if (st != KMS_OK || p->mark < 0 || p->mark >= p->n)
        return st;
    int mx = px(f, p->x[p->mark]), my = py(f, p->y[p->mark]);
    /* dashed guide from the axis up to the marked point */
    for (int y = f->y1; st == KMS_OK && y > my; y -= 12)
        st = kms_cv_line(img, mx, y, mx, y - 6 > my ? y - 6 : my, RED, 1, err);
    if (st == KMS_OK)
        st = kms_cv_circle(img, mx, my, 9, RED, 2, err);
    if (st == KMS_OK && p->mark_label)
        st = text(img, p->mark_label, mx + 14, my - 14, 0.6, RED, 0, err);
    return st;
}

kms_status kms_plot_draw(const kms_plot *p, int width, int height,
                         kms_image *out, kms_error *err)
{
    kms_image img = {0};
    kms_status st = kms_image_alloc(&img, width, height, 3, KMS_DEPTH_U8, err);
    if (st != KMS_OK)
        return st;
    memset(img.data, 255, img.stride * (size_t)height);
    frame f = {MARGIN_LEFT, MARGIN_TOP, width - MARGIN_RIGHT, height - MARGIN_BOTTOM,
               p->x[0], p->x[0], p->y[0], p->y[0]};
    for (int i = 1; i < p->n; i++) {
        f.xmin = fmin(f.xmin, p->x[i]);
        f.xmax = fmax(f.xmax, p->x[i]);
        f.ymin = fmin(f.ymin, p->y[i]);
        f.ymax = fmax(f.ymax, p->y[i]);
    }
    /* the y axis starts at 0 so the drop is seen in proportion */
    f.ymin = fmin(0, f.ymin);
    if (f.ymax <= f.ymin)
        f.ymax = f.ymin + 1;
    f.ymax += (f.ymax - f.ymin) * 0.05;
    if (f.xmax <= f.xmin)
        f.xmax = f.xmin + 1;
    f.xmin -= 0.3;
    f.xmax += 0.3;
    st = draw_axes(&img, &f, p, err);
    if (st == KMS_OK)
        st = draw_curve(&img, &f, p, err);
    if (st == KMS_OK)
        kms_image_move(out, &img);
    kms_image_free(&img);
    return st;
}
