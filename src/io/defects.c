/* The synthetic surface-defect data set: a textured surface (brushed
 * metal, woven fabric, painted or cast), defects drawn onto it
 * (defect_marks.c), then uneven lighting and sensor noise, in that order,
 * because the light and the sensor see the defect as they see the
 * surface. Each image draws from its own generator, seeded from the data
 * set's seed and its index, so images are independent of each other and
 * of the thread count. */
#include "io/synth.h"

#include <math.h>
#include <omp.h>
#include <string.h>

#define SIDE_MIN 16
#define SIDE_MAX 4096
#define COUNT_MAX (1 << 24)

/* ---------------- deterministic maths ---------------- */

float nn__synth_sin(float x)
{
    /* Reduce to [-pi, pi], fold to [-pi/2, pi/2], then Taylor to x^11. */
    const float two_pi = 2.0f * SYNTH_PI;
    x -= two_pi * floorf(x / two_pi + 0.5f);
    if (x > 0.5f * SYNTH_PI) x = SYNTH_PI - x;
    if (x < -0.5f * SYNTH_PI) x = -SYNTH_PI - x;
    float x2 = x * x;
    float p = -2.5052108e-8f;
    p = p * x2 + 2.7557319e-6f;
    p = p * x2 - 1.9841270e-4f;
    p = p * x2 + 8.3333333e-3f;
    p = p * x2 - 1.6666667e-1f;
    return x + x * x2 * p;
}

static uint32_t hash2(uint32_t key, int32_t x, int32_t y)
{
    uint32_t h = key ^ ((uint32_t)x * 0x8da6b343u) ^ ((uint32_t)y * 0xd8163841u);
    h ^= h >> 15;
    h *= 0x2c1b3c6du;
    h ^= h >> 12;
    h *= 0x297a2d39u;
    h ^= h >> 15;
    return h;
}

static float lattice(uint32_t key, int32_t x, int32_t y)
{
    return (float)(hash2(key, x, y) >> 8) * (1.0f / 16777216.0f);
}

float nn__synth_noise(uint32_t key, float x, float y)
{
    float fx = floorf(x), fy = floorf(y);
    int32_t ix = (int32_t)fx, iy = (int32_t)fy;
    float tx = x - fx, ty = y - fy;
    tx = tx * tx * (3.0f - 2.0f * tx);
    ty = ty * ty * (3.0f - 2.0f * ty);
    float a = lattice(key, ix, iy), b = lattice(key, ix + 1, iy);
    float c = lattice(key, ix, iy + 1), d = lattice(key, ix + 1, iy + 1);
    float top = a + (b - a) * tx, bot = c + (d - c) * tx;
    return top + (bot - top) * ty;
}

float nn__synth_fbm(uint32_t key, float x, float y, int octaves)
{
    float sum = 0.0f, amp = 0.5f, norm = 0.0f;
    for (int k = 0; k < octaves; k++) {
        sum += amp * nn__synth_noise(key + 0x9e37u * (uint32_t)k, x, y);
        norm += amp;
        amp *= 0.5f;
        x *= 2.0f;
        y *= 2.0f;
    }
    return sum / norm;
}

/* Zero-mean noise of unit variance, roughly Gaussian (the sum of four
 * uniforms), from a hash so that pixels need no sequential generator. */
static float pixel_noise(uint32_t key, int32_t x, int32_t y)
{
    uint32_t h1 = hash2(key, x, y), h2 = hash2(key ^ 0x5bd1e995u, x, y);
    float u = (float)(h1 & 0xffff) + (float)(h1 >> 16) +
              (float)(h2 & 0xffff) + (float)(h2 >> 16);
    return (u * (1.0f / 65536.0f) - 2.0f) * 1.7320508f;
}

/* ---------------- surfaces ---------------- */

typedef struct surface {
    float base[3];   /* colour */
    float angle;     /* of the brushing or the weave */
    uint32_t key;    /* noise key */
} surface;

static void jitter_colour(nn_rng *r, const float *c, float amount, float *out)
{
    float k = nn__synth_range(r, 1.0f - amount, 1.0f + amount);
    for (int i = 0; i < 3; i++)
        out[i] = nn__synth_clamp01(
            c[i] * k * nn__synth_range(r, 1.0f - amount / 3, 1.0f + amount / 3));
}

/* Brushed metal: streaks long along the brushing direction and a few
 * pixels across it, a broader sheen, and fine grain. */
static void metal(synth_img *im, nn_rng *r, const surface *sf)
{
    float ca = nn__synth_cos(sf->angle), sa = nn__synth_sin(sf->angle);
    float along = 1.0f / (nn__synth_range(r, 40.0f, 90.0f) * im->s);
    float across = 1.0f / (nn__synth_range(r, 0.8f, 1.8f) * im->s);
    float streak = nn__synth_range(r, 0.05f, 0.12f);
    float sheen = nn__synth_range(r, 0.03f, 0.08f);
    for (int y = 0; y < im->h; y++)
        for (int x = 0; x < im->w; x++) {
            float u = (float)x * ca + (float)y * sa;
            float v = -(float)x * sa + (float)y * ca;
            float n = nn__synth_fbm(sf->key, u * along, v * across, 3) - 0.5f;
            float b = nn__synth_noise(sf->key + 7u, u * along * 0.5f,
                                      v * across * 0.08f) - 0.5f;
            float g = (lattice(sf->key + 11u, x, y) - 0.5f) * 0.03f;
            float k = 1.0f + streak * 2.0f * n + sheen * 2.0f * b + g;
            float *p = im->rgb + ((size_t)y * im->w + x) * 3;
            for (int c = 0; c < 3; c++) p[c] = sf->base[c] * k;
        }
}

/* Woven fabric: warp and weft threads crossing over and under (plain or
 * twill weave), each thread rounded across its width, dipping where it
 * goes under, with its own shade (yarns differ) and fibres along it. */
static void fabric(synth_img *im, nn_rng *r, const surface *sf)
{
    float ca = nn__synth_cos(sf->angle), sa = nn__synth_sin(sf->angle);
    float period = nn__synth_range(r, 3.5f, 7.0f) * im->s;
    int twill = nn__rng_uniform(r) < 0.5f;
    float weft_shade = nn__synth_range(r, 0.8f, 1.1f);
    float yarn = nn__synth_range(r, 0.05f, 0.14f);
    float fibre = nn__synth_range(r, 0.08f, 0.18f);
    float gap = nn__synth_range(r, 0.2f, 0.45f);
    float relief = nn__synth_range(r, 0.25f, 0.45f);
    for (int y = 0; y < im->h; y++)
        for (int x = 0; x < im->w; x++) {
            float a = ((float)x * ca + (float)y * sa) / period;
            float b = (-(float)x * sa + (float)y * ca) / period;
            float fa = floorf(a), fb = floorf(b);
            int i = (int)fa, j = (int)fb;
            float ta = 2.0f * (a - fa) - 1.0f, tb = 2.0f * (b - fb) - 1.0f;
            bool warp = twill ? ((i - j) % 3 + 3) % 3 != 0 : ((i + j) & 1) == 0;
            /* t: across the thread on top; along: its length */
            float t = warp ? ta : tb, along = warp ? tb : ta;
            float round = 1.0f - t * t * t * t;
            float dip = 1.0f - gap * along * along * along * along;
            float shade = (1.0f - relief + relief * round) * dip;
            int thread = warp ? i : j;
            shade *= 1.0f + yarn * (2.0f * lattice(sf->key + (warp ? 21u : 23u),
                                                    thread, 0) - 1.0f);
            /* fibres: fine stripes along the thread */
            float pos = warp ? a : b, len = warp ? b : a;
            float n = nn__synth_noise(sf->key + (warp ? 3u : 5u), pos * 6.0f,
                                      len * 0.7f);
            shade *= 1.0f + fibre * (n - 0.5f) * 2.0f;
            if (!warp) shade *= weft_shade;
            float big = nn__synth_noise(sf->key + 9u, (float)x / (50.0f * im->s),
                                        (float)y / (50.0f * im->s));
            shade *= 0.94f + 0.12f * big;
            float *p = im->rgb + ((size_t)y * im->w + x) * 3;
            for (int c = 0; c < 3; c++) p[c] = sf->base[c] * shade;
        }
}

/* Painted or cast surfaces: blotchy low-frequency variation, a fine
 * orange-peel or sand grain, and for castings scattered pores (tiny dark
 * specks that a model must learn to tell from pits). */
static void blotchy(synth_img *im, nn_rng *r, const surface *sf, bool cast)
{
    float scale = 1.0f / (nn__synth_range(r, 25.0f, 60.0f) * im->s);
    float blotch = cast ? nn__synth_range(r, 0.10f, 0.20f)
                        : nn__synth_range(r, 0.04f, 0.10f);
    float grain = cast ? nn__synth_range(r, 0.05f, 0.10f)
                       : nn__synth_range(r, 0.015f, 0.035f);
    float gscale = 1.0f / ((cast ? 1.2f : 2.0f) * im->s);
    float pores = cast ? nn__synth_range(r, 0.002f, 0.012f) : 0.0f;
    for (int y = 0; y < im->h; y++)
        for (int x = 0; x < im->w; x++) {
            float n = nn__synth_fbm(sf->key, (float)x * scale,
                                    (float)y * scale, 4) - 0.5f;
            float g = nn__synth_noise(sf->key + 13u, (float)x * gscale,
                                      (float)y * gscale) - 0.5f;
            float k = 1.0f + 2.0f * blotch * n + 2.0f * grain * g;
            if (lattice(sf->key + 17u, x, y) < pores)
                k *= 0.75f + 0.15f * lattice(sf->key + 19u, x, y);
            float *p = im->rgb + ((size_t)y * im->w + x) * 3;
            for (int c = 0; c < 3; c++) p[c] = sf->base[c] * k;
        }
}

static void draw_surface(synth_img *im, nn_rng *r)
{
    static const float metals[3][3] = {
        {0.62f, 0.63f, 0.65f}, {0.55f, 0.56f, 0.60f}, {0.70f, 0.68f, 0.64f}};
    static const float cloths[6][3] = {
        {0.25f, 0.34f, 0.52f}, {0.64f, 0.57f, 0.42f}, {0.50f, 0.50f, 0.52f},
        {0.42f, 0.45f, 0.30f}, {0.82f, 0.80f, 0.74f}, {0.50f, 0.22f, 0.24f}};
    static const float paints[7][3] = {
        {0.55f, 0.56f, 0.57f}, {0.30f, 0.45f, 0.35f}, {0.26f, 0.36f, 0.55f},
        {0.86f, 0.70f, 0.22f}, {0.80f, 0.45f, 0.20f}, {0.84f, 0.82f, 0.74f},
        {0.44f, 0.40f, 0.36f}};
    surface sf;
    sf.key = (uint32_t)nn__rng_u64(r);
    sf.angle = nn__synth_range(r, 0.0f, SYNTH_PI);
    int kind = (int)nn__rng_below(r, 4);
    if (kind == 0) {
        jitter_colour(r, metals[nn__rng_below(r, 3)], 0.12f, sf.base);
        metal(im, r, &sf);
    } else if (kind == 1) {
        sf.angle = nn__synth_range(r, -0.3f, 0.3f) +
                   (nn__rng_uniform(r) < 0.5f ? 0.0f : 0.5f * SYNTH_PI);
        jitter_colour(r, cloths[nn__rng_below(r, 6)], 0.12f, sf.base);
        fabric(im, r, &sf);
    } else if (kind == 2) {
        jitter_colour(r, paints[nn__rng_below(r, 7)], 0.10f, sf.base);
        blotchy(im, r, &sf, false);
    } else {
        float g = nn__synth_range(r, 0.35f, 0.55f);
        float cast[3] = {g * 1.03f, g, g * 0.95f};
        jitter_colour(r, cast, 0.05f, sf.base);
        blotchy(im, r, &sf, true);
    }
}

/* A linear gradient and a vignette from an off-centre light, then sensor
 * noise (shared by the channels for the most part, as on a Bayer sensor
 * after demosaicing). */
static void light_and_noise(synth_img *im, nn_rng *r)
{
    float dir = nn__synth_range(r, 0.0f, 2.0f * SYNTH_PI);
    float gx = nn__synth_cos(dir), gy = nn__synth_sin(dir);
    float grad = nn__synth_range(r, 0.05f, 0.35f);
    float vig = nn__synth_range(r, 0.0f, 0.35f);
    float cx = nn__synth_range(r, 0.2f, 0.8f), cy = nn__synth_range(r, 0.2f, 0.8f);
    float gain = nn__synth_range(r, 0.85f, 1.15f);
    float sigma = nn__synth_range(r, 0.004f, SYNTH_NOISE_MAX);
    uint32_t key = (uint32_t)nn__rng_u64(r);
    for (int y = 0; y < im->h; y++)
        for (int x = 0; x < im->w; x++) {
            float u = ((float)x + 0.5f) / (float)im->w;
            float v = ((float)y + 0.5f) / (float)im->h;
            float d2 = (u - cx) * (u - cx) + (v - cy) * (v - cy);
            float k = gain * (1.0f + grad * ((u - 0.5f) * gx + (v - 0.5f) * gy)) *
                      (1.0f - vig * d2);
            float shared = pixel_noise(key, x, y) * sigma;
            float *p = im->rgb + ((size_t)y * im->w + x) * 3;
            for (int c = 0; c < 3; c++) {
                float own = pixel_noise(key + 1u + (uint32_t)c, x, y) * sigma;
                p[c] = nn__synth_clamp01(p[c] * k + SYNTH_NOISE_SHARED * shared +
                                       SYNTH_NOISE_OWN * own);
            }
        }
}

/* ---------------- the data set ---------------- */

typedef struct synth_job {
    nn_defects_opts o;
    const uint8_t *kinds; /* per image */
    float *images, *masks;
    float *scratch;       /* per thread: rgb then cov */
} synth_job;

static void render(const synth_job *job, int64_t i, float *scratch)
{
    const nn_defects_opts *o = &job->o;
    size_t px = (size_t)o->height * o->width;
    synth_img im = {o->height, o->width, 0.0f, scratch, scratch + 3 * px,
                    job->masks + (size_t)i * px, 1.0f};
    im.s = (float)(o->height < o->width ? o->height : o->width) / 128.0f;
    nn_rng r;
    nn__rng_seed(&r, o->seed ^ ((uint64_t)(i + 1) * 0x9e3779b97f4a7c15ULL));
    memset(im.mask, 0, px * sizeof *im.mask);
    draw_surface(&im, &r);
    nn_defect_kind kind = (nn_defect_kind)job->kinds[i];
    if (kind != NN_DEFECT_NONE) {
        im.mask_value = o->typed_masks ? (float)kind : 1.0f;
        nn__synth_defect(&im, kind, &r);
    }
    light_and_noise(&im, &r);
    float *dst = job->images + (size_t)i * px * o->channels;
    for (size_t p = 0; p < px; p++) {
        const float *c = im.rgb + 3 * p;
        if (o->channels == 3)
            memcpy(dst + 3 * p, c, 3 * sizeof *c);
        else
            dst[p] = 0.299f * c[0] + 0.587f * c[1] + 0.114f * c[2];
    }
}

/* Exactly round(count * fraction) defective images, at seeded places,
 * each of a kind drawn uniformly. */
static void choose_kinds(const nn_defects_opts *o, uint8_t *kinds)
{
    nn_rng r;
    nn__rng_seed(&r, o->seed ^ 0x6a09e667f3bcc908ULL);
    int defective = (int)((double)o->count * o->defect_fraction + 0.5);
    for (int i = 0; i < o->count; i++)
        kinds[i] = i < defective
                       ? (uint8_t)(1 + nn__rng_below(&r, NN_DEFECT_KINDS - 1))
                       : NN_DEFECT_NONE;
    for (int i = o->count - 1; i > 0; i--) {
        int j = (int)nn__rng_below(&r, (uint64_t)i + 1);
        uint8_t t = kinds[i];
        kinds[i] = kinds[j];
        kinds[j] = t;
    }
}

static nn_status check_opts(const nn_defects_opts *o)
{
    const char *who = "nn_synthetic_defects";
    NN_CHECK(o->count >= 1 && o->count <= COUNT_MAX, NN_ERR_INVALID,
             "%s: count %d outside 1..%d", who, o->count, COUNT_MAX);
    NN_CHECK(o->height >= SIDE_MIN && o->height <= SIDE_MAX &&
                 o->width >= SIDE_MIN && o->width <= SIDE_MAX,
             NN_ERR_INVALID, "%s: height %d and width %d must lie in %d..%d",
             who, o->height, o->width, SIDE_MIN, SIDE_MAX);
    NN_CHECK(o->channels == 1 || o->channels == 3, NN_ERR_INVALID,
             "%s: channels %d must be 1 (gray) or 3 (RGB)", who, o->channels);
    NN_CHECK(o->defect_fraction >= 0.0f && o->defect_fraction <= 1.0f,
             NN_ERR_INVALID, "%s: defect_fraction %g outside [0, 1]", who,
             (double)o->defect_fraction);
    return NN_OK;
}

static nn_status make_tensors(const nn_defects_opts *o, nn_tensor **x,
                              nn_tensor **y, nn_tensor **labels)
{
    int64_t shape[4] = {o->count, o->height, o->width, o->channels};
    *x = nn_tensor_create(4, shape);
    shape[3] = 1;
    *y = *x ? nn_tensor_create(4, shape) : NULL;
    int64_t n = o->count;
    *labels = *y ? nn_tensor_create(1, &n) : NULL;
    return *labels ? NN_OK : nn_last_status();
}

nn_status nn_synthetic_defects(const nn_defects_opts *opts,
                               nn_tensor **images, nn_tensor **masks,
                               nn_tensor **labels)
{
    NN_CHECK(images && masks && labels, NN_ERR_INVALID,
             "nn_synthetic_defects: output pointer is NULL");
    *images = *masks = *labels = NULL;
    synth_job job = {.o = NN_DEFECTS_OPTS_INIT};
    NN_TRY(nn__read_opts(&job.o, opts, "nn_synthetic_defects"));
    NN_TRY(check_opts(&job.o));
    int threads = nn__threads();
    size_t px = (size_t)job.o.height * job.o.width;
    nn_tensor *x = NULL, *y = NULL, *l = NULL;
    uint8_t *kinds = nn__alloc((size_t)job.o.count);
    float *scratch = kinds ? nn__calloc((size_t)threads * 4, px * sizeof(float))
                           : NULL;
    nn_status s = scratch ? make_tensors(&job.o, &x, &y, &l) : NN_ERR_NOMEM;
    if (s == NN_OK) {
        choose_kinds(&job.o, kinds);
        job.kinds = kinds;
        job.images = x->data;
        job.masks = y->data;
        for (int i = 0; i < job.o.count; i++) l->data[i] = (float)kinds[i];
#pragma omp parallel for num_threads(threads) schedule(dynamic)
        for (int i = 0; i < job.o.count; i++)
            render(&job, i, scratch + (size_t)omp_get_thread_num() * 4 * px);
    }
    nn__free(kinds);
    nn__free(scratch);
    if (s != NN_OK) {
        nn_tensor_free(x);
        nn_tensor_free(y);
        nn_tensor_free(l);
        return s;
    }
    *images = x;
    *masks = y;
    *labels = l;
    return NN_OK;
}

const char *nn_defect_name(int kind)
{
    static const char *const names[NN_DEFECT_KINDS] = {
        "none", "scratch", "pit", "crack", "stain"};
    if (kind < 0 || kind >= NN_DEFECT_KINDS) {
        nn__fail(NN_ERR_INVALID, "nn_defect_name: no defect kind %d", kind);
        return NULL;
    }
    return names[kind];
}
