/* The defects of the synthetic data set, drawn in continuous coordinates
 * (pixel (x, y) has its centre at x + 0.5, y + 0.5). Each shape has a
 * geometric coverage alpha that reaches 1/2 exactly on its outline (a line
 * of half-width h: alpha = h + 1/2 - distance), so the mask, alpha >= 1/2,
 * is the shape itself and the drawn edge is anti-aliased around it. Every
 * defect passes through a point inside the image with a core wider than
 * half a pixel's diagonal, so its mask is never empty. How dark or bright
 * a defect looks varies separately from its shape, down to faint ones. */
#include "io/synth.h"

#include <math.h>
#include <string.h>

#define CRACK_MAX_SEGMENTS 160
#define CRACK_MAX_BRANCHES 6

/* How strong a defect looks: a quarter to a third are faint. */
static float strength(nn_rng *r, float faint_share, float lo, float mid,
                      float hi)
{
    return nn__rng_uniform(r) < faint_share ? nn__synth_range(r, lo, mid)
                                            : nn__synth_range(r, mid, hi);
}

static float dist_to_segment(float px, float py, float ax, float ay, float bx,
                             float by)
{
    float dx = bx - ax, dy = by - ay;
    float len2 = dx * dx + dy * dy;
    float t = len2 > 0.0f ? ((px - ax) * dx + (py - ay) * dy) / len2 : 0.0f;
    t = nn__synth_clamp01(t);
    float ex = px - (ax + t * dx), ey = py - (ay + t * dy);
    return sqrtf(ex * ex + ey * ey);
}

typedef struct box {
    int x0, y0, x1, y1; /* inclusive pixel range */
} box;

static box clip_box(const synth_img *im, float xmin, float ymin, float xmax,
                    float ymax)
{
    box b = {(int)floorf(xmin), (int)floorf(ymin), (int)floorf(xmax),
             (int)floorf(ymax)};
    if (b.x0 < 0) b.x0 = 0;
    if (b.y0 < 0) b.y0 = 0;
    if (b.x1 > im->w - 1) b.x1 = im->w - 1;
    if (b.y1 > im->h - 1) b.y1 = im->h - 1;
    return b;
}

/* A segment of half-width `half` into the coverage (scaled by `ink`, the
 * local intensity) and into the mask. */
static void segment(synth_img *im, float ax, float ay, float bx, float by,
                    float half, float ink)
{
    float m = half + 1.0f;
    box b = clip_box(im, fminf(ax, bx) - m, fminf(ay, by) - m,
                     fmaxf(ax, bx) + m, fmaxf(ay, by) + m);
    for (int y = b.y0; y <= b.y1; y++)
        for (int x = b.x0; x <= b.x1; x++) {
            float d = dist_to_segment((float)x + 0.5f, (float)y + 0.5f, ax,
                                      ay, bx, by);
            float a = nn__synth_clamp01(half + 0.5f - d);
            if (a <= 0.0f) continue;
            size_t p = (size_t)y * im->w + x;
            if (a * ink > im->cov[p]) im->cov[p] = a * ink;
            if (a >= 0.5f) im->mask[p] = im->mask_value;
        }
}

/* Applies the coverage: darkens, brightens or tints by k * coverage, then
 * clears it for the next shape. */
static void apply(synth_img *im, float k, int bright, const float *tint)
{
    size_t n = (size_t)im->h * im->w;
    for (size_t p = 0; p < n; p++) {
        float a = im->cov[p];
        if (a <= 0.0f) continue;
        float *c = im->rgb + 3 * p, t = k * a;
        for (int i = 0; i < 3; i++) {
            if (bright)
                c[i] += (1.0f - c[i]) * t;
            else if (tint)
                c[i] *= 1.0f - t + t * tint[i];
            else
                c[i] *= 1.0f - t;
        }
        im->cov[p] = 0.0f;
    }
}

/* A point in the inner part of the image. */
static void inner_point(const synth_img *im, nn_rng *r, float margin,
                        float *x, float *y)
{
    *x = nn__synth_range(r, margin, 1.0f - margin) * (float)im->w;
    *y = nn__synth_range(r, margin, 1.0f - margin) * (float)im->h;
}

/* ---------------- scratches ---------------- */

/* A quadratic Bezier curve, as segments whose intensity wanders along it
 * (scratches skip where the tool lifted) and fades at the ends. */
static void scratch_curve(synth_img *im, nn_rng *r, float x0, float y0,
                          float angle, float len, float half)
{
    float x2 = x0 + len * nn__synth_cos(angle);
    float y2 = y0 + len * nn__synth_sin(angle);
    float bend = nn__synth_range(r, -0.25f, 0.25f) * len;
    float x1 = 0.5f * (x0 + x2) - bend * nn__synth_sin(angle);
    float y1 = 0.5f * (y0 + y2) + bend * nn__synth_cos(angle);
    uint32_t key = (uint32_t)nn__rng_u64(r);
    int n = 8 + (int)(len / 4.0f);
    float px = x0, py = y0;
    for (int i = 1; i <= n; i++) {
        float t = (float)i / (float)n, u = 1.0f - t;
        float qx = u * u * x0 + 2.0f * u * t * x1 + t * t * x2;
        float qy = u * u * y0 + 2.0f * u * t * y1 + t * t * y2;
        float ends = fminf(1.0f, fminf(t, 1.0f - t) * 8.0f + 0.35f);
        float skip = 0.45f + 0.55f * nn__synth_noise(key, t * 6.0f, 0.5f);
        segment(im, px, py, qx, qy, half, ends * skip);
        px = qx;
        py = qy;
    }
}

static void scratches(synth_img *im, nn_rng *r)
{
    float u = nn__rng_uniform(r);
    int count = u < 0.7f ? 1 : u < 0.9f ? 2 : 3;
    float angle = nn__synth_range(r, 0.0f, 2.0f * SYNTH_PI);
    float side = (float)(im->h < im->w ? im->h : im->w);
    int bright = nn__rng_uniform(r) < 0.6f;
    float k = strength(r, 0.3f, 0.10f, 0.22f, 0.55f);
    for (int i = 0; i < count; i++) {
        float x, y;
        inner_point(im, r, 0.1f, &x, &y);
        float a = angle + nn__synth_range(r, -0.15f, 0.15f);
        float len = nn__synth_range(r, 0.2f, 0.8f) * side;
        float half = nn__synth_range(r, 0.75f, 1.4f) * im->s;
        scratch_curve(im, r, x, y, a, len, half);
    }
    apply(im, k, bright, NULL);
}

/* ---------------- pits ---------------- */

/* A pit: a rough disc, darker towards its middle, with a bright rim on the
 * side facing the light (or a bright spatter: brighter in the middle). */
static void pit(synth_img *im, nn_rng *r, float cx, float cy, float rad,
                float k, int bright, float lx, float ly)
{
    uint32_t key = (uint32_t)nn__rng_u64(r);
    float rough = nn__synth_range(r, 0.1f, 0.3f);
    float m = rad * (1.0f + rough) + 2.0f;
    box b = clip_box(im, cx - m, cy - m, cx + m, cy + m);
    for (int y = b.y0; y <= b.y1; y++)
        for (int x = b.x0; x <= b.x1; x++) {
            float dx = (float)x + 0.5f - cx, dy = (float)y + 0.5f - cy;
            float d = sqrtf(dx * dx + dy * dy);
            float n = nn__synth_noise(key, dx * 1.5f / rad, dy * 1.5f / rad);
            float dd = d + rough * rad * (2.0f * n - 1.0f);
            float a = nn__synth_clamp01(rad + 0.5f - dd);
            size_t p = (size_t)y * im->w + x;
            float *c = im->rgb + 3 * p;
            float depth = nn__synth_clamp01(1.0f - dd / rad);
            float t = k * a * (0.6f + 0.4f * depth);
            float facing = d > 0.0f ? (dx * lx + dy * ly) / d : 0.0f;
            float ring = nn__synth_clamp01(1.0f - fabsf(dd - rad) / 1.2f);
            float rim = bright ? 0.0f : 0.5f * k * ring * fmaxf(facing, 0.0f);
            for (int i = 0; i < 3; i++) {
                c[i] = bright ? c[i] + (1.0f - c[i]) * t : c[i] * (1.0f - t);
                c[i] += (1.0f - c[i]) * rim;
            }
            if (a >= 0.5f) im->mask[p] = im->mask_value;
        }
}

static void pits(synth_img *im, nn_rng *r)
{
    int count = nn__rng_uniform(r) < 0.5f ? 1 : 2 + (int)nn__rng_below(r, 4);
    float cx, cy;
    inner_point(im, r, 0.08f, &cx, &cy);
    float light = nn__synth_range(r, 0.0f, 2.0f * SYNTH_PI);
    float lx = nn__synth_cos(light), ly = nn__synth_sin(light);
    int bright = nn__rng_uniform(r) < 0.2f;
    float spread = nn__synth_range(r, 6.0f, 22.0f) * im->s;
    for (int i = 0; i < count; i++) {
        float x = cx, y = cy;
        if (i > 0) {
            x = cx + nn__synth_range(r, -spread, spread);
            y = cy + nn__synth_range(r, -spread, spread);
            x = fminf(fmaxf(x, 1.0f), (float)im->w - 1.0f);
            y = fminf(fmaxf(y, 1.0f), (float)im->h - 1.0f);
        }
        float rad = nn__synth_range(r, 1.2f, 4.2f) * im->s;
        float k = strength(r, 0.25f, 0.15f, 0.3f, 0.7f);
        pit(im, r, x, y, rad, k, bright, lx, ly);
    }
}

/* ---------------- cracks ---------------- */

typedef struct branch {
    float x, y, angle, half;
    int steps;
} branch;

/* Walks one branch as a zig-zag: each step deviates from the branch's
 * heading by its own random angle (cracks follow grain boundaries, not
 * smooth curves) while the heading itself drifts slowly; the width tapers
 * to the tip; now and then a side branch starts. */
static void crack_branch(synth_img *im, nn_rng *r, branch br, branch *pending,
                         int *n_pending)
{
    float heading = br.angle;
    for (int i = 0; i < br.steps; i++) {
        heading += nn__synth_range(r, -0.2f, 0.2f);
        float angle = heading + nn__synth_range(r, -0.9f, 0.9f);
        float step = nn__synth_range(r, 1.0f, 4.0f) * im->s;
        float nx = br.x + step * nn__synth_cos(angle);
        float ny = br.y + step * nn__synth_sin(angle);
        float taper = 1.0f - 0.5f * (float)i / (float)br.steps;
        float half = fmaxf(br.half * taper, 0.5f);
        segment(im, br.x, br.y, nx, ny, half, 0.7f + 0.3f * taper);
        br.x = nx;
        br.y = ny;
        if (*n_pending < CRACK_MAX_BRANCHES && br.steps - i > 5 &&
            nn__rng_uniform(r) < 0.1f) {
            float side = nn__rng_uniform(r) < 0.5f ? -1.0f : 1.0f;
            pending[(*n_pending)++] = (branch){
                nx, ny, heading + side * nn__synth_range(r, 0.5f, 1.3f),
                half * 0.75f, (br.steps - i) * 2 / 3};
        }
    }
}

static void crack(synth_img *im, nn_rng *r)
{
    branch pending[CRACK_MAX_BRANCHES + 1];
    int n = 0, done = 0;
    float x, y;
    inner_point(im, r, 0.15f, &x, &y);
    float side = (float)(im->h < im->w ? im->h : im->w);
    int steps = (int)(nn__synth_range(r, 0.25f, 0.7f) * side /
                      (2.5f * im->s));
    if (steps > CRACK_MAX_SEGMENTS) steps = CRACK_MAX_SEGMENTS;
    if (steps < 6) steps = 6;
    float angle = nn__synth_range(r, 0.0f, 2.0f * SYNTH_PI);
    float half = nn__synth_range(r, 0.75f, 1.15f) * im->s;
    /* from the start point both ways, so it lies inside the crack */
    pending[n++] = (branch){x, y, angle, half, steps / 2 + 1};
    pending[n++] = (branch){x, y, angle + SYNTH_PI, half, steps / 2 + 1};
    while (done < n) crack_branch(im, r, pending[done++], pending, &n);
    apply(im, strength(r, 0.25f, 0.18f, 0.32f, 0.75f), 0, NULL);
}

/* ---------------- stains ---------------- */

/* A stain is a change of colour over an area; where the surface's own
 * texture varies more than that change, nothing in the image shows the
 * stain its mask marks (a light water stain on a coarse weave). So the
 * strength rises until the mean change of colour under the mask, per unit
 * of strength as apply() makes it, reaches STAIN_VISIBLE times the spread
 * of the surface's colour there (its texture, and the sensor noise at its
 * largest, which light_and_noise() adds later). Faint stains stay faint;
 * none is a mask over an unchanged image. */
#define STAIN_VISIBLE 0.5f

static float visible_strength(const synth_img *im, box b, float k,
                              const float *tint)
{
    double sum[3] = {0}, sq[3] = {0}, shift[3] = {0};
    long n = 0;
    for (int y = b.y0; y <= b.y1; y++)
        for (int x = b.x0; x <= b.x1; x++) {
            size_t p = (size_t)y * im->w + x;
            if (im->cov[p] <= 0.0f || im->mask[p] != im->mask_value)
                continue;
            const float *c = im->rgb + 3 * p;
            for (int i = 0; i < 3; i++) {
                sum[i] += c[i];
                sq[i] += (double)c[i] * c[i];
                shift[i] += im->cov[p] *
                            (tint ? c[i] * (tint[i] - 1.0f) : 1.0f - c[i]);
            }
            n++;
        }
    if (n == 0) return k;
    double spread = 0, change = 0;
    for (int i = 0; i < 3; i++) {
        double mean = sum[i] / (double)n;
        spread += sq[i] / (double)n - mean * mean;
        change += (shift[i] / (double)n) * (shift[i] / (double)n);
    }
    /* the noise of each channel at its largest; 0.84 rounds
     * SYNTH_NOISE_SHARED^2 + SYNTH_NOISE_OWN^2 (0.8425) */
    spread = fmax(spread, 0) + 3 * 0.84 * SYNTH_NOISE_MAX * SYNTH_NOISE_MAX;
    if (change <= 0) return k;
    float need = STAIN_VISIBLE * (float)sqrt(spread / change);
    return fminf(fmaxf(k, need), 1.0f);
}

/* A rotated ellipse with a rough outline, a soft edge and sometimes a
 * darker ring where the liquid dried. */
static void stain(synth_img *im, nn_rng *r)
{
    /* rust, dried coffee or mud, water, oil */
    static const float tints[4][3] = {{0.70f, 0.45f, 0.28f},
                                      {0.62f, 0.52f, 0.38f},
                                      {0.72f, 0.73f, 0.76f},
                                      {0.45f, 0.42f, 0.40f}};
    float cx, cy;
    inner_point(im, r, 0.1f, &cx, &cy);
    float rad = nn__synth_range(r, 8.0f, 28.0f) * im->s;
    float aspect = nn__synth_range(r, 0.55f, 1.0f);
    float rot = nn__synth_range(r, 0.0f, SYNTH_PI);
    float cr = nn__synth_cos(rot), sr = nn__synth_sin(rot);
    float soft = nn__synth_range(r, 0.12f, 0.45f);
    float ring = nn__rng_uniform(r) < 0.4f ? nn__synth_range(r, 0.3f, 0.8f)
                                           : 0.0f;
    int residue = nn__rng_uniform(r) < 0.15f;
    const float *tint = tints[nn__rng_below(r, 4)];
    float k = strength(r, 0.3f, 0.1f, 0.18f, residue ? 0.35f : 0.6f);
    uint32_t key = (uint32_t)nn__rng_u64(r);
    float m = rad * 1.6f / aspect + 2.0f; /* d <= 1 + 0.55 inside */
    box b = clip_box(im, cx - m, cy - m, cx + m, cy + m);
    for (int y = b.y0; y <= b.y1; y++)
        for (int x = b.x0; x <= b.x1; x++) {
            float dx = (float)x + 0.5f - cx, dy = (float)y + 0.5f - cy;
            float u = dx * cr + dy * sr, v = (-dx * sr + dy * cr) / aspect;
            float d = sqrtf(u * u + v * v) / rad;
            float n = nn__synth_fbm(key, (float)x / (0.7f * rad),
                                    (float)y / (0.7f * rad), 3);
            d += 1.1f * (n - 0.5f);
            float a = nn__synth_clamp01((1.0f - d) / soft + 0.5f);
            float edge = nn__synth_clamp01(1.0f - fabsf(d - 0.95f) / 0.1f);
            /* mottled inside: the liquid dried unevenly */
            float mottle = 0.65f + 0.35f * nn__synth_noise(key + 1u,
                                                           (float)x / (3.0f * im->s),
                                                           (float)y / (3.0f * im->s));
            size_t p = (size_t)y * im->w + x;
            im->cov[p] =
                nn__synth_clamp01(a * mottle + ring * edge * (a > 0.0f));
            if (a >= 0.5f) im->mask[p] = im->mask_value;
        }
    k = visible_strength(im, b, k, residue ? NULL : tint);
    apply(im, k, residue, residue ? NULL : tint);
}

void nn__synth_defect(synth_img *im, nn_defect_kind kind, nn_rng *r)
{
    memset(im->cov, 0, (size_t)im->h * im->w * sizeof *im->cov);
    switch (kind) {
    case NN_DEFECT_SCRATCH: scratches(im, r); break;
    case NN_DEFECT_PIT: pits(im, r); break;
    case NN_DEFECT_CRACK: crack(im, r); break;
    case NN_DEFECT_STAIN: stain(im, r); break;
    case NN_DEFECT_NONE: break;
    }
}
