/* Internal interface of the synthetic surface-defect generator
 * (src/io/defects.c: surfaces and the public call; src/io/defect_marks.c:
 * the defects). Everything here is plain float arithmetic with integer
 * hashing and no libm call beyond floorf and sqrtf (both exact), so a seed
 * gives the same images on every machine. Not API. */
#ifndef NN_IO_SYNTH_H
#define NN_IO_SYNTH_H

#include "nn_internal.h"

#define SYNTH_PI 3.14159265358979f

/* The sensor noise light_and_noise() adds: a standard deviation drawn up
 * to SYNTH_NOISE_MAX, and each channel's share of a noise common to the
 * channels and of its own (stain() counts it when it makes a stain
 * visible). */
#define SYNTH_NOISE_MAX 0.025f
#define SYNTH_NOISE_SHARED 0.8f
#define SYNTH_NOISE_OWN 0.45f

/* One image being drawn: RGB in [0, 1] (before lighting and noise), the
 * coverage scratch of the defect being drawn, and the output mask. */
typedef struct synth_img {
    int h, w;
    float s; /* size scale: min(h, w) / 128 */
    float *rgb;  /* [h, w, 3] */
    float *cov;  /* [h, w] */
    float *mask; /* [h, w] */
    float mask_value;
} synth_img;

/* sin and cos from a reduction and a polynomial: the same bits on every
 * machine, unlike libm's. Error below 1e-6 on any argument we use. */
float nn__synth_sin(float x);
static inline float nn__synth_cos(float x)
{
    return nn__synth_sin(x + 0.5f * SYNTH_PI);
}

/* Value noise in [0, 1) on the integer lattice, smoothly interpolated;
 * fbm sums `octaves` of it, each at twice the frequency and half the
 * amplitude, normalised to [0, 1). */
float nn__synth_noise(uint32_t key, float x, float y);
float nn__synth_fbm(uint32_t key, float x, float y, int octaves);

/* Uniform in [lo, hi). */
static inline float nn__synth_range(nn_rng *r, float lo, float hi)
{
    return lo + (hi - lo) * nn__rng_uniform(r);
}

static inline float nn__synth_clamp01(float v)
{
    return v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
}

/* Draws one defect of `kind` into im (colours and mask). */
void nn__synth_defect(synth_img *im, nn_defect_kind kind, nn_rng *r);

#endif
