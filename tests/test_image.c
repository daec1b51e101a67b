/* Images and segmentation data: PNG decoding of every colour type and bit
 * depth, damaged and hostile files, resizing, saving, camera frames, the
 * manifest, the paired flip and the synthetic surface-defect data set. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "nn_internal.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <png.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* ------------------------------------------------------------------ */
/* helpers                                                             */
/* ------------------------------------------------------------------ */

static char tmpdir[64];

/* A path inside the test's directory; four rotating buffers. */
static const char *tpath(const char *name)
{
    static char bufs[4][256];
    static int k;
    char *b = bufs[k++ & 3];
    snprintf(b, sizeof bufs[0], "%s/%s", tmpdir, name);
    return b;
}

#define assert_error(expr, want, sub)                                          \
    do {                                                                       \
        nn_status s_ = (expr);                                                 \
        if (s_ != (want))                                                      \
            fail_msg("%s: got %s, want %s (message: %s)", #expr,              \
                     nn_status_name(s_), nn_status_name(want),                 \
                     nn_last_error());                                         \
        const char *sub_ = (sub);                                              \
        if (sub_ && !strstr(nn_last_error(), sub_))                            \
            fail_msg("%s: message '%s' lacks '%s'", #expr, nn_last_error(),   \
                     sub_);                                                    \
    } while (0)

#define assert_ok(expr)                                                        \
    do {                                                                       \
        nn_status s_ = (expr);                                                 \
        if (s_ != NN_OK)                                                       \
            fail_msg("%s: %s (%s)", #expr, nn_status_name(s_),                 \
                     nn_last_error());                                         \
    } while (0)

static uint32_t lcg_state = 12345;
static uint32_t lcg(void)
{
    lcg_state = lcg_state * 1664525u + 1013904223u;
    return lcg_state >> 8;
}

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (n) assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static uint8_t *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc(*n + 1);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, *n, f), *n);
    fclose(f);
    return p;
}

/* A PNG written by libpng itself (the test's reference writer). samples
 * holds height rows of width pixels in the file's own layout: one value
 * per sample, 16-bit values for depth 16, sub-byte values unpacked. */
typedef struct png_spec {
    int width, height, depth, color; /* PNG_COLOR_TYPE_* */
    const uint16_t *samples;
    const png_color *palette;
    int n_palette;
    const uint8_t *trns; /* palette alpha, n_trns entries */
    int n_trns;
    int interlace;
} png_spec;

static png_spec spec(int w, int h, int depth, int color,
                     const uint16_t *samples)
{
    png_spec s;
    memset(&s, 0, sizeof s);
    s.width = w;
    s.height = h;
    s.depth = depth;
    s.color = color;
    s.samples = samples;
    return s;
}

static int spec_samples(int color)
{
    switch (color) {
    case PNG_COLOR_TYPE_GRAY: return 1;
    case PNG_COLOR_TYPE_GRAY_ALPHA: return 2;
    case PNG_COLOR_TYPE_RGB: return 3;
    case PNG_COLOR_TYPE_RGB_ALPHA: return 4;
    }
    return 1; /* palette */
}

static void write_png(const char *path, const png_spec *s)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    png_structp png =
        png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    assert_non_null(png);
    assert_non_null(info);
    assert_int_equal(setjmp(png_jmpbuf(png)), 0);
    png_init_io(png, f);
    png_set_IHDR(png, info, (uint32_t)s->width, (uint32_t)s->height,
                 s->depth, s->color,
                 s->interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (s->palette) png_set_PLTE(png, info, s->palette, s->n_palette);
    if (s->trns) png_set_tRNS(png, info, s->trns, s->n_trns, NULL);
    png_write_info(png, info);
    if (s->depth < 8) png_set_packing(png);
    int spp = spec_samples(s->color), bps = s->depth == 16 ? 2 : 1;
    size_t row = (size_t)s->width * spp * bps;
    uint8_t *buf = calloc((size_t)s->height, row);
    png_bytep *rows = calloc((size_t)s->height, sizeof *rows);
    for (int y = 0; y < s->height; y++) {
        rows[y] = buf + y * row;
        for (int i = 0; i < s->width * spp; i++) {
            uint16_t v = s->samples[(size_t)y * s->width * spp + i];
            if (bps == 2) {
                rows[y][2 * i] = (uint8_t)(v >> 8);
                rows[y][2 * i + 1] = (uint8_t)v;
            } else {
                rows[y][i] = (uint8_t)v;
            }
        }
    }
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    fclose(f);
    free(rows);
    free(buf);
}

/* Random samples below 2^depth. */
static uint16_t *random_samples(int n, int depth)
{
    uint16_t *s = malloc((size_t)n * sizeof *s);
    for (int i = 0; i < n; i++)
        s[i] = (uint16_t)(lcg() & ((1u << depth) - 1));
    return s;
}

static nn_tensor *load(const char *path, int channels)
{
    nn_tensor *t = NULL;
    assert_ok(nn_image_load(path, channels, NULL, &t));
    return t;
}

static void assert_shape3(const nn_tensor *t, int64_t h, int64_t w,
                          int64_t c)
{
    assert_int_equal(nn_tensor_rank(t), 3);
    assert_int_equal(nn_tensor_dim(t, 0), h);
    assert_int_equal(nn_tensor_dim(t, 1), w);
    assert_int_equal(nn_tensor_dim(t, 2), c);
}

/* ------------------------------------------------------------------ */
/* decoding                                                            */
/* ------------------------------------------------------------------ */

/* Gray at every depth, gray + alpha: value / max, alpha dropped; gray
 * becomes RGB by repetition. */
static void test_gray_depths(void **state)
{
    const int depths[5] = {1, 2, 4, 8, 16};
    for (int a = 0; a < 2; a++)
        for (int k = 0; k < 5; k++) {
            int d = depths[k];
            if (a && d < 8) continue; /* gray + alpha is 8 or 16 bits */
            int w = 13, h = 5, spp = a ? 2 : 1;
            uint16_t *px = random_samples(w * h * spp, d);
            png_spec s = spec(
                w, h, d, a ? PNG_COLOR_TYPE_GRAY_ALPHA : PNG_COLOR_TYPE_GRAY,
                px);
            write_png(tpath("g.png"), &s);
            nn_tensor *g = load(tpath("g.png"), 1);
            nn_tensor *c = load(tpath("g.png"), 3);
            assert_shape3(g, h, w, 1);
            assert_shape3(c, h, w, 3);
            float max = (float)((1u << d) - 1);
            for (int i = 0; i < w * h; i++) {
                float want = (float)px[i * spp] / max;
                assert_true(nn_tensor_data(g)[i] == want);
                for (int ch = 0; ch < 3; ch++)
                    assert_true(nn_tensor_data(c)[3 * i + ch] == want);
            }
            nn_tensor_free(g);
            nn_tensor_free(c);
            free(px);
        }
}

/* RGB and RGBA at 8 and 16 bits: exact values, alpha dropped. */
static void test_rgb_depths(void **state)
{
    for (int a = 0; a < 2; a++)
        for (int d = 8; d <= 16; d += 8) {
            int w = 7, h = 9, spp = a ? 4 : 3;
            uint16_t *px = random_samples(w * h * spp, d);
            png_spec s = spec(
                w, h, d, a ? PNG_COLOR_TYPE_RGB_ALPHA : PNG_COLOR_TYPE_RGB,
                px);
            write_png(tpath("c.png"), &s);
            nn_tensor *t = load(tpath("c.png"), 3);
            assert_shape3(t, h, w, 3);
            float max = d == 16 ? 65535.0f : 255.0f;
            for (int i = 0; i < w * h; i++)
                for (int ch = 0; ch < 3; ch++)
                    assert_true(nn_tensor_data(t)[3 * i + ch] ==
                                (float)px[i * spp + ch] / max);
            nn_tensor_free(t);
            nn_tensor *g = load(tpath("c.png"), 1);
            assert_shape3(g, h, w, 1);
            for (int i = 0; i < w * h; i++) {
                const uint16_t *p = px + i * spp;
                float want = (0.299f * p[0] + 0.587f * p[1] + 0.114f * p[2]) /
                             max;
                assert_true(fabsf(nn_tensor_data(g)[i] - want) <= 0.5f / 255);
            }
            nn_tensor_free(g);
            free(px);
        }
}

/* RGB -> gray gives what PIL's convert("L") gives (values from PIL). */
static void test_luma_matches_pil(void **state)
{
    const uint16_t rgb[6][3] = {{255, 0, 0},   {0, 255, 0},    {0, 0, 255},
                                {10, 200, 30}, {128, 128, 129}, {250, 3, 77}};
    const int pil[6] = {76, 150, 29, 124, 128, 85};
    png_spec s = spec(6, 1, 8, PNG_COLOR_TYPE_RGB, &rgb[0][0]);
    write_png(tpath("l.png"), &s);
    nn_tensor *g = load(tpath("l.png"), 1);
    for (int i = 0; i < 6; i++)
        assert_true(nn_tensor_data(g)[i] == (float)pil[i] / 255.0f);
    nn_tensor_free(g);
}

/* Palette images at 1, 2, 4 and 8 bits, with and without transparency:
 * the palette's colours (alpha dropped). */
static void test_palette(void **state)
{
    png_color pal[256];
    for (int i = 0; i < 256; i++)
        pal[i] = (png_color){(uint8_t)lcg(), (uint8_t)lcg(), (uint8_t)lcg()};
    uint8_t trns[256];
    for (int i = 0; i < 256; i++) trns[i] = (uint8_t)(i * 7);
    const int depths[4] = {1, 2, 4, 8};
    for (int t = 0; t < 2; t++)
        for (int k = 0; k < 4; k++) {
            int d = depths[k], n = 1 << d, w = 11, h = 6;
            uint16_t *px = random_samples(w * h, d);
            png_spec s = spec(w, h, d, PNG_COLOR_TYPE_PALETTE, px);
            s.palette = pal;
            s.n_palette = n;
            s.trns = t ? trns : NULL;
            s.n_trns = t ? n : 0;
            write_png(tpath("p.png"), &s);
            nn_tensor *c = load(tpath("p.png"), 3);
            nn_tensor *g = load(tpath("p.png"), 1);
            for (int i = 0; i < w * h; i++) {
                png_color col = pal[px[i]];
                float *v = nn_tensor_data(c) + 3 * i;
                assert_true(v[0] == col.red / 255.0f);
                assert_true(v[1] == col.green / 255.0f);
                assert_true(v[2] == col.blue / 255.0f);
                uint32_t l = (col.red * 19595u + col.green * 38470u +
                              col.blue * 7471u + 0x8000u) >> 16;
                assert_true(nn_tensor_data(g)[i] == (float)l / 255.0f);
            }
            nn_tensor_free(c);
            nn_tensor_free(g);
            free(px);
        }
}

/* Adam7-interlaced files decode to the same values as plain ones. */
static void test_interlaced(void **state)
{
    const int colors[3] = {PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_RGB,
                           PNG_COLOR_TYPE_RGB_ALPHA};
    for (int k = 0; k < 3; k++)
        for (int d = 8; d <= 16; d += 8) {
            int w = 13, h = 11, spp = spec_samples(colors[k]);
            uint16_t *px = random_samples(w * h * spp, d);
            png_spec s = spec(w, h, d, colors[k], px);
            write_png(tpath("plain.png"), &s);
            s.interlace = 1;
            write_png(tpath("adam7.png"), &s);
            nn_tensor *a = load(tpath("plain.png"), 3);
            nn_tensor *b = load(tpath("adam7.png"), 3);
            assert_memory_equal(nn_tensor_data(a), nn_tensor_data(b),
                                (size_t)w * h * 3 * sizeof(float));
            float max = d == 16 ? 65535.0f : 255.0f;
            assert_true(nn_tensor_data(b)[3 * (w * h - 1)] ==
                        px[(w * h - 1) * spp] / max);
            nn_tensor_free(a);
            nn_tensor_free(b);
            free(px);
        }
}

/* ------------------------------------------------------------------ */
/* masks                                                               */
/* ------------------------------------------------------------------ */

static void test_masks(void **state)
{
    nn_image_opts o = NN_IMAGE_OPTS_INIT;
    o.num_classes = 4;
    uint16_t ids[12] = {0, 1, 2, 3, 3, 2, 1, 0, 0, 0, 3, 1};
    png_spec s = spec(4, 3, 8, PNG_COLOR_TYPE_GRAY, ids);
    write_png(tpath("m.png"), &s);
    nn_tensor *m = NULL;
    assert_ok(nn_mask_load(tpath("m.png"), &o, &m));
    assert_shape3(m, 3, 4, 1);
    for (int i = 0; i < 12; i++) assert_true(nn_tensor_data(m)[i] == ids[i]);
    nn_tensor_free(m);
    /* the default num_classes is 2: value 2 at x 2, y 0 is named */
    assert_error(nn_mask_load(tpath("m.png"), NULL, &m), NN_ERR_FORMAT,
                 "value 2 at x 2, y 0 is not a class id in [0, 2)");
    assert_null(m);
    assert_error(nn_mask_load(tpath("m.png"), NULL, &m), NN_ERR_FORMAT,
                 tpath("m.png"));

    /* palette masks: the index is the class, whatever the colour */
    png_color pal[4] = {{0, 0, 0}, {255, 0, 0}, {0, 255, 0}, {9, 9, 9}};
    png_spec p = spec(4, 3, 2, PNG_COLOR_TYPE_PALETTE, ids);
    p.palette = pal;
    p.n_palette = 4;
    write_png(tpath("pm.png"), &p);
    assert_ok(nn_mask_load(tpath("pm.png"), &o, &m));
    for (int i = 0; i < 12; i++) assert_true(nn_tensor_data(m)[i] == ids[i]);
    nn_tensor_free(m);

    /* binary black-and-white masks: 0 and 255 (or 1 at one bit) */
    uint16_t bw[6] = {0, 255, 255, 0, 0, 255};
    png_spec b = spec(3, 2, 8, PNG_COLOR_TYPE_GRAY, bw);
    write_png(tpath("bw.png"), &b);
    o.mask_mode = NN_MASK_BINARY;
    o.num_classes = 2;
    assert_ok(nn_mask_load(tpath("bw.png"), &o, &m));
    for (int i = 0; i < 6; i++)
        assert_true(nn_tensor_data(m)[i] == (bw[i] ? 1.0f : 0.0f));
    nn_tensor_free(m);
    uint16_t bits[6] = {0, 1, 1, 0, 1, 0};
    png_spec b1 = spec(3, 2, 1, PNG_COLOR_TYPE_GRAY, bits);
    write_png(tpath("b1.png"), &b1);
    assert_ok(nn_mask_load(tpath("b1.png"), &o, &m));
    for (int i = 0; i < 6; i++) assert_true(nn_tensor_data(m)[i] == bits[i]);
    nn_tensor_free(m);
    /* an anti-aliased edge is not binary */
    bw[4] = 128;
    write_png(tpath("bw.png"), &b);
    assert_error(nn_mask_load(tpath("bw.png"), &o, &m), NN_ERR_FORMAT,
                 "value 128 at x 1, y 1 is neither 0 nor 255");
    /* without the binary mode 255 is class 255 */
    o.mask_mode = NN_MASK_CLASS_IDS;
    assert_error(nn_mask_load(tpath("bw.png"), &o, &m), NN_ERR_FORMAT,
                 "value 255");

    /* RGB masks are refused with advice */
    uint16_t rgb[3] = {1, 2, 3};
    png_spec c = spec(1, 1, 8, PNG_COLOR_TYPE_RGB, rgb);
    write_png(tpath("rgbm.png"), &c);
    assert_error(nn_mask_load(tpath("rgbm.png"), &o, &m), NN_ERR_UNSUPPORTED,
                 "palette");
    assert_null(m);
}

/* ------------------------------------------------------------------ */
/* damaged and hostile files                                           */
/* ------------------------------------------------------------------ */

static void small_png(const char *path, int interlace)
{
    uint16_t *px = random_samples(6 * 5 * 3, 8);
    png_spec s = spec(6, 5, 8, PNG_COLOR_TYPE_RGB, px);
    s.interlace = interlace;
    write_png(path, &s);
    free(px);
}

/* Every prefix of a valid file is an error, never a crash or a hang. */
static void test_truncations(void **state)
{
    for (int il = 0; il < 2; il++) {
        small_png(tpath("full.png"), il);
        size_t n = 0;
        uint8_t *bytes = read_file(tpath("full.png"), &n);
        for (size_t len = 0; len < n; len++) {
            write_file(tpath("cut.png"), bytes, len);
            nn_tensor *t = NULL;
            nn_status s = nn_image_load(tpath("cut.png"), 3, NULL, &t);
            if (s != NN_ERR_FORMAT)
                fail_msg("length %zu of %zu: %s (%s)", len, n,
                         nn_status_name(s), nn_last_error());
            assert_null(t);
            assert_non_null(strstr(nn_last_error(), "cut.png"));
        }
        nn_tensor *t = NULL;
        nn_image_load(tpath("cut.png"), 3, NULL, &t);
        assert_true(strstr(nn_last_error(), "truncated"));
        write_file(tpath("cut.png"), bytes, n);
        assert_ok(nn_image_load(tpath("cut.png"), 3, NULL, &t));
        nn_tensor_free(t);
        free(bytes);
    }
}

/* Flipping any one byte of the file is detected (the signature, or a
 * chunk's CRC), and never crashes. */
static void test_byte_flips(void **state)
{
    small_png(tpath("full.png"), 0);
    size_t n = 0;
    uint8_t *bytes = read_file(tpath("full.png"), &n);
    for (size_t i = 0; i < n; i++) {
        bytes[i] ^= 0x5a;
        write_file(tpath("flip.png"), bytes, n);
        bytes[i] ^= 0x5a;
        nn_tensor *t = NULL;
        nn_status s = nn_image_load(tpath("flip.png"), 3, NULL, &t);
        if (s != NN_ERR_FORMAT)
            fail_msg("byte %zu of %zu: %s (%s)", i, n, nn_status_name(s),
                     nn_last_error());
        assert_null(t);
    }
    free(bytes);
    nn_tensor *t = NULL;
    write_file(tpath("empty.png"), "", 0);
    assert_error(nn_image_load(tpath("empty.png"), 3, NULL, &t),
                 NN_ERR_FORMAT, "is empty");
    write_file(tpath("text.png"), "hello, world\n", 13);
    assert_error(nn_image_load(tpath("text.png"), 3, NULL, &t),
                 NN_ERR_FORMAT, "not a PNG file");
}

/* A damaged ancillary chunk makes libpng warn and skip it: the image
 * loads, and nothing reaches stderr (libpng's default would print). */
static void test_warnings_stay_quiet(void **state)
{
    FILE *f = fopen(tpath("text.png"), "wb");
    png_structp png =
        png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    assert_int_equal(setjmp(png_jmpbuf(png)), 0);
    png_init_io(png, f);
    png_set_IHDR(png, info, 2, 1, 8, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_text text;
    memset(&text, 0, sizeof text);
    text.compression = PNG_TEXT_COMPRESSION_NONE;
    text.key = "Comment";
    text.text = "QQQQ";
    text.text_length = 4;
    png_set_text(png, info, &text, 1);
    png_write_info(png, info);
    uint8_t row[2] = {10, 20};
    png_write_row(png, row);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    fclose(f);
    size_t n = 0;
    uint8_t *bytes = read_file(tpath("text.png"), &n);
    uint8_t *q = memmem(bytes, n, "QQQQ", 4);
    assert_non_null(q);
    q[0] = 'R'; /* the tEXt chunk's CRC no longer matches */
    write_file(tpath("text.png"), bytes, n);
    free(bytes);
    fflush(stderr);
    int saved = dup(2);
    FILE *err = fopen(tpath("stderr.txt"), "w");
    dup2(fileno(err), 2);
    nn_tensor *t = NULL;
    nn_status st = nn_image_load(tpath("text.png"), 1, NULL, &t);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    fclose(err);
    assert_ok(st);
    assert_true(nn_tensor_data(t)[1] == 20.0f / 255.0f);
    nn_tensor_free(t);
    size_t printed = 0;
    free(read_file(tpath("stderr.txt"), &printed));
    assert_int_equal(printed, 0);
}

/* A header can claim any size up to 2^31 - 1 per side: the claim is
 * checked against max_values before anything is allocated for it. */
static void test_huge_header(void **state)
{
    small_png(tpath("huge.png"), 0);
    size_t n = 0;
    uint8_t *bytes = read_file(tpath("huge.png"), &n);
    /* IHDR's data starts at 16: width, height (big-endian); CRC at 29 */
    const uint32_t sizes[3][2] = {
        {1u << 30, 1u << 30}, {32768, 16384}, {0x7fffffffu, 1}};
    for (int k = 0; k < 3; k++) {
        for (int i = 0; i < 4; i++) {
            bytes[16 + i] = (uint8_t)(sizes[k][0] >> (24 - 8 * i));
            bytes[20 + i] = (uint8_t)(sizes[k][1] >> (24 - 8 * i));
        }
        uint32_t crc = (uint32_t)crc32(0, bytes + 12, 17);
        for (int i = 0; i < 4; i++)
            bytes[29 + i] = (uint8_t)(crc >> (24 - 8 * i));
        write_file(tpath("huge.png"), bytes, n);
        nn_tensor *t = NULL;
        nn__debug_fail_alloc_after(0);
        assert_error(nn_image_load(tpath("huge.png"), 3, NULL, &t),
                     NN_ERR_UNSUPPORTED, "nn_image_opts.max_values");
        /* the job, libpng's two structs and its zlib stream, nothing the
         * size of the image */
        int64_t allocs = nn__debug_fail_alloc_after(0);
        assert_true(allocs > 0 && allocs <= 8);
        assert_null(t);
    }
    free(bytes);
    /* the limit is the caller's: 6 x 5 x 3 = 90 values */
    small_png(tpath("small.png"), 0);
    nn_image_opts o = NN_IMAGE_OPTS_INIT;
    o.max_values = 89;
    nn_tensor *t = NULL;
    assert_error(nn_image_load(tpath("small.png"), 3, &o, &t),
                 NN_ERR_UNSUPPORTED, "6 x 5 x 3 values, more than the limit "
                 "of 89");
    /* the stored RGB counts even when gray is asked for */
    assert_error(nn_image_load(tpath("small.png"), 1, &o, &t),
                 NN_ERR_UNSUPPORTED, "x 3 values");
    o.max_values = 90;
    assert_ok(nn_image_load(tpath("small.png"), 1, &o, &t));
    nn_tensor_free(t);
}

static void on_alarm(int sig) { (void)sig; }

/* A FIFO with no writer would block an ordinary open: refused at once. */
static void test_not_regular_files(void **state)
{
    assert_int_equal(mkfifo(tpath("fifo.png"), 0600), 0);
    signal(SIGALRM, on_alarm);
    alarm(5);
    nn_tensor *t = NULL;
    assert_error(nn_image_load(tpath("fifo.png"), 3, NULL, &t), NN_ERR_IO,
                 "not a regular file");
    assert_error(nn_mask_load(tpath("fifo.png"), NULL, &t), NN_ERR_IO,
                 "not a regular file");
    assert_error(nn_seg_load_manifest(tpath("fifo.png"), 3, NULL, &t, &t),
                 NN_ERR_IO, "not a regular file");
    alarm(0);
    assert_error(nn_image_load(tmpdir, 3, NULL, &t), NN_ERR_IO,
                 "not a regular file");
    assert_error(nn_image_load(tpath("missing.png"), 3, NULL, &t), NN_ERR_IO,
                 "No such file");
    unlink(tpath("fifo.png"));
}

static void test_arguments(void **state)
{
    nn_tensor *t = (nn_tensor *)1;
    small_png(tpath("a.png"), 0);
    assert_error(nn_image_load(tpath("a.png"), 2, NULL, &t), NN_ERR_INVALID,
                 "channels 2");
    assert_null(t);
    assert_error(nn_image_load(NULL, 3, NULL, &t), NN_ERR_INVALID, "path");
    assert_error(nn_image_load(tpath("a.png"), 3, NULL, NULL), NN_ERR_INVALID,
                 "out");
    nn_image_opts o = NN_IMAGE_OPTS_INIT;
    o.height = 10;
    assert_error(nn_image_load(tpath("a.png"), 3, &o, &t), NN_ERR_INVALID,
                 "both");
    o.width = 10;
    o.num_classes = 0;
    assert_error(nn_mask_load(tpath("a.png"), &o, &t), NN_ERR_INVALID,
                 "num_classes 0");
    o.num_classes = 2;
    o.mask_mode = (nn_mask_mode)7;
    assert_error(nn_mask_load(tpath("a.png"), &o, &t), NN_ERR_INVALID,
                 "mask_mode");
    o.size = 0;
    assert_error(nn_image_load(tpath("a.png"), 3, &o, &t), NN_ERR_INVALID,
                 "opts->size");
    /* an older, shorter struct: the fields it lacks take their defaults */
    nn_image_opts old = NN_IMAGE_OPTS_INIT;
    old.size = offsetof(nn_image_opts, max_values);
    old.height = old.width = 3;
    assert_ok(nn_image_load(tpath("a.png"), 3, &old, &t));
    assert_shape3(t, 3, 3, 3);
    nn_tensor_free(t);
    assert_null(nn_defect_name(5));
    assert_string_equal(nn_defect_name(NN_DEFECT_CRACK), "crack");
}

/* ------------------------------------------------------------------ */
/* resizing, batches, saving, frames                                   */
/* ------------------------------------------------------------------ */

static void test_resize(void **state)
{
    /* nearest keeps only the ids a mask had, growing and shrinking */
    int64_t shape[4] = {2, 7, 9, 1};
    nn_tensor *m = nn_tensor_create(4, shape);
    for (int i = 0; i < 2 * 7 * 9; i++)
        nn_tensor_data(m)[i] = (float)(lcg() % 3) * 2.0f; /* 0, 2, 4 */
    const int sizes[3][2] = {{16, 20}, {3, 4}, {7, 9}};
    for (int k = 0; k < 3; k++) {
        nn_tensor *r = NULL;
        assert_ok(nn_image_resize(m, sizes[k][0], sizes[k][1],
                                  NN_INTERP_NEAREST, &r));
        assert_int_equal(nn_tensor_dim(r, 0), 2);
        assert_int_equal(nn_tensor_dim(r, 1), sizes[k][0]);
        assert_int_equal(nn_tensor_dim(r, 2), sizes[k][1]);
        bool seen[3] = {0};
        for (int64_t i = 0; i < nn_tensor_size(r); i++) {
            float v = nn_tensor_data(r)[i];
            assert_true(v == 0.0f || v == 2.0f || v == 4.0f);
            seen[(int)v / 2] = true;
        }
        assert_true(seen[0] && seen[1] && seen[2]);
        if (k == 2)
            assert_memory_equal(nn_tensor_data(r), nn_tensor_data(m),
                                2 * 7 * 9 * sizeof(float));
        nn_tensor_free(r);
    }
    /* bilinear: a 2x2 image doubled, half-pixel centres (tf.image.resize:
     * rows 1, 1.25, 1.75, 2 between values 1 and 2) */
    int64_t s3[3] = {2, 2, 1};
    nn_tensor *x = nn_tensor_create(3, s3);
    float v[4] = {1, 2, 3, 4};
    memcpy(nn_tensor_data(x), v, sizeof v);
    nn_tensor *r = NULL;
    assert_ok(nn_image_resize(x, 4, 4, NN_INTERP_BILINEAR, &r));
    assert_int_equal(nn_tensor_rank(r), 3);
    const float row0[4] = {1.0f, 1.25f, 1.75f, 2.0f};
    for (int i = 0; i < 4; i++) assert_true(nn_tensor_data(r)[i] == row0[i]);
    nn_tensor_free(r);
    assert_error(nn_image_resize(x, 0, 4, NN_INTERP_BILINEAR, &r),
                 NN_ERR_INVALID, "height 0");
    assert_error(nn_image_resize(x, 4, 4, (nn_interpolation)5, &r),
                 NN_ERR_INVALID, "interpolation");
    nn_tensor_free(x);
    nn_tensor_free(m);

    /* loading with a size resizes masks by nearest */
    uint16_t ids[4] = {0, 1, 1, 0};
    png_spec s = spec(2, 2, 8, PNG_COLOR_TYPE_GRAY, ids);
    write_png(tpath("m2.png"), &s);
    nn_image_opts o = NN_IMAGE_OPTS_INIT;
    o.height = 5;
    o.width = 3;
    nn_tensor *t = NULL;
    assert_ok(nn_mask_load(tpath("m2.png"), &o, &t));
    assert_shape3(t, 5, 3, 1);
    for (int i = 0; i < 15; i++)
        assert_true(nn_tensor_data(t)[i] == 0.0f ||
                    nn_tensor_data(t)[i] == 1.0f);
    nn_tensor_free(t);
}

static void test_batch(void **state)
{
    const char *names[3] = {"b0.png", "b1.png", "b2.png"};
    char paths[3][256];
    for (int k = 0; k < 3; k++) {
        int w = k == 2 ? 8 : 6;
        uint16_t *px = random_samples(w * 5 * 3, 8);
        png_spec s = spec(w, 5, 8, PNG_COLOR_TYPE_RGB, px);
        snprintf(paths[k], sizeof paths[k], "%s", tpath(names[k]));
        write_png(paths[k], &s);
        free(px);
    }
    const char *p[3] = {paths[0], paths[1], paths[2]};
    nn_tensor *t = NULL;
    assert_ok(nn_image_load_batch(p, 2, 3, NULL, &t));
    assert_int_equal(nn_tensor_dim(t, 0), 2);
    nn_tensor *one = load(paths[1], 3);
    assert_memory_equal(nn_tensor_data(t) + 90, nn_tensor_data(one),
                        90 * sizeof(float));
    nn_tensor_free(one);
    nn_tensor_free(t);
    /* without a size, a file of another size is an error naming it */
    assert_error(nn_image_load_batch(p, 3, 3, NULL, &t), NN_ERR_SHAPE,
                 "paths[2]: png: '");
    assert_true(strstr(nn_last_error(), "b2.png' is 5 x 8"));
    assert_null(t);
    nn_image_opts o = NN_IMAGE_OPTS_INIT;
    o.height = 4;
    o.width = 4;
    assert_ok(nn_image_load_batch(p, 3, 1, &o, &t));
    assert_int_equal(nn_tensor_dim(t, 0), 3);
    assert_int_equal(nn_tensor_dim(t, 3), 1);
    nn_tensor_free(t);
    p[1] = tpath("nothing.png");
    assert_error(nn_image_load_batch(p, 3, 3, &o, &t), NN_ERR_IO,
                 "paths[1]");
    p[1] = NULL;
    assert_error(nn_image_load_batch(p, 3, 3, &o, &t), NN_ERR_INVALID,
                 "paths[1] is NULL");
}

/* Saved images and masks read back exactly; no temporary stays behind. */
static void test_save(void **state)
{
    int64_t shape[4] = {2, 5, 7, 3};
    nn_tensor *x = nn_tensor_create(4, shape);
    float *d = nn_tensor_data(x);
    for (int i = 0; i < 2 * 5 * 7 * 3; i++)
        d[i] = (float)(lcg() % 1000) / 999.0f * 1.2f - 0.1f;
    d[0] = NAN;
    assert_ok(nn_image_save_png(tpath("s.png"), x, 1));
    nn_tensor *y = load(tpath("s.png"), 3);
    for (int i = 0; i < 5 * 7 * 3; i++) {
        float v = d[105 + i];
        float want = v <= 0 ? 0 : v >= 1 ? 1 : roundf(v * 255) / 255;
        assert_true(fabsf(nn_tensor_data(y)[i] - want) < 1e-6f);
    }
    nn_tensor_free(y);
    assert_ok(nn_image_save_png(tpath("s.png"), x, 0));
    y = load(tpath("s.png"), 3);
    assert_true(nn_tensor_data(y)[0] == 0.0f); /* NaN written as 0 */
    nn_tensor_free(y);
    assert_error(nn_image_save_png(tpath("s.png"), x, 2), NN_ERR_INVALID,
                 "index 2");
    nn_tensor_free(x);

    int64_t ms[3] = {4, 6, 1};
    nn_tensor *m = nn_tensor_create(3, ms);
    for (int i = 0; i < 24; i++) nn_tensor_data(m)[i] = (float)(i % 11);
    assert_ok(nn_mask_save_png(tpath("ms.png"), m, 0));
    nn_image_opts o = NN_IMAGE_OPTS_INIT;
    o.num_classes = 11;
    nn_tensor *back = NULL;
    assert_ok(nn_mask_load(tpath("ms.png"), &o, &back));
    assert_memory_equal(nn_tensor_data(back), nn_tensor_data(m),
                        24 * sizeof(float));
    nn_tensor_free(back);
    nn_tensor_data(m)[5] = 1.5f;
    assert_error(nn_mask_save_png(tpath("ms.png"), m, 0), NN_ERR_INVALID,
                 "value 1.5 at x 5, y 0");
    nn_tensor_free(m);
    assert_error(nn_image_save_png(tpath("s.png"), NULL, 0), NN_ERR_INVALID,
                 "tensor is NULL");
    nn_tensor *one = nn_tensor_create(3, ms);
    assert_error(nn_mask_save_png(tpath("nodir/s.png"), one, 0), NN_ERR_IO,
                 "cannot create");
    nn_tensor_free(one);
    /* only the files we asked for: no temporaries */
    DIR *dir = opendir(tmpdir);
    struct dirent *e;
    while ((e = readdir(dir)))
        assert_null(strstr(e->d_name, ".tmp."));
    closedir(dir);
}

static void test_from_u8(void **state)
{
    enum { H = 3, W = 4, C = 3, STRIDE = 16 };
    uint8_t frame[H * STRIDE];
    for (int i = 0; i < H * STRIDE; i++) frame[i] = (uint8_t)lcg();
    int64_t shape[4] = {2, H, W, C};
    nn_tensor *t = nn_tensor_create(4, shape);
    nn_pixels_opts o = NN_PIXELS_OPTS_INIT;
    o.stride = STRIDE;
    const float mean[3] = {0.485f, 0.456f, 0.406f};
    const float sd[3] = {0.229f, 0.224f, 0.225f};
    memcpy(o.mean, mean, sizeof mean);
    memcpy(o.std, sd, sizeof sd);
    nn__debug_fail_alloc_after(0);
    assert_ok(nn_image_from_u8(frame, H, W, C, &o, t, 1));
    assert_int_equal(nn__debug_fail_alloc_after(0), 0); /* no allocation */
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < C; c++) {
                float want = ((float)frame[y * STRIDE + x * C + c] *
                                  (1.0f / 255.0f) -
                              mean[c]) /
                             sd[c];
                assert_true(nn_tensor_data(t)[H * W * C +
                                              (y * W + x) * C + c] == want);
            }
    for (int i = 0; i < H * W * C; i++)
        assert_true(nn_tensor_data(t)[i] == 0.0f); /* image 0 untouched */
    assert_error(nn_image_from_u8(frame, H, W + 2, C, &o, t, 0),
                 NN_ERR_INVALID, "stride 16 is shorter than a row (18");
    o.stride = 0;
    assert_error(nn_image_from_u8(frame, H, W + 1, C, &o, t, 0),
                 NN_ERR_SHAPE, "out holds 3 x 4 x 3");
    assert_error(nn_image_from_u8(frame, H, W, C, &o, t, 2), NN_ERR_INVALID,
                 "index 2");
    o.std[1] = 0.0f;
    assert_error(nn_image_from_u8(frame, H, W, C, &o, t, 0), NN_ERR_INVALID,
                 "channel 1");
    nn_tensor_free(t);
}

/* ------------------------------------------------------------------ */
/* the manifest                                                        */
/* ------------------------------------------------------------------ */

static void gray_png(const char *path, int w, int h, uint16_t v, int depth)
{
    uint16_t *px = malloc((size_t)w * h * sizeof *px);
    for (int i = 0; i < w * h; i++) px[i] = (uint16_t)(v + i % 2);
    png_spec s = spec(w, h, depth, PNG_COLOR_TYPE_GRAY, px);
    write_png(path, &s);
    free(px);
}

static void test_manifest(void **state)
{
    mkdir(tpath("set"), 0700);
    mkdir(tpath("set/img"), 0700);
    gray_png(tpath("set/img/a.png"), 8, 6, 100, 8);
    gray_png(tpath("set/img/b, with comma.png"), 16, 12, 30, 8);
    gray_png(tpath("set/img/ma.png"), 8, 6, 0, 8);
    gray_png(tpath("set/img/mb.png"), 16, 12, 0, 8);
    char text[1024];
    snprintf(text, sizeof text,
             "\xEF\xBB\xBFid,image_path,mask_path,note\r\n"
             "a,img/a.png,img/ma.png,first\r\n"
             "\r\n"
             "\"b \"\"2\"\"\",\"img/b, with comma.png\",%s,x\n",
             tpath("set/img/mb.png"));
    write_file(tpath("set/m.csv"), text, strlen(text));
    nn_image_opts o = NN_IMAGE_OPTS_INIT;
    o.height = o.width = 4;
    nn_tensor *x = NULL, *y = NULL;
    assert_ok(nn_seg_load_manifest(tpath("set/m.csv"), 3, &o, &x, &y));
    int64_t sx[4], sy[4];
    nn_tensor_shape(x, sx, 4);
    nn_tensor_shape(y, sy, 4);
    assert_true(sx[0] == 2 && sx[1] == 4 && sx[2] == 4 && sx[3] == 3);
    assert_true(sy[0] == 2 && sy[1] == 4 && sy[2] == 4 && sy[3] == 1);
    for (int i = 0; i < 16; i++) {
        float a = nn_tensor_data(x)[3 * i], b = nn_tensor_data(x)[48 + 3 * i];
        assert_true(a >= 100 / 255.0f && a <= 101 / 255.0f);
        assert_true(b >= 30 / 255.0f && b <= 31 / 255.0f);
        float m0 = nn_tensor_data(y)[i], m1 = nn_tensor_data(y)[16 + i];
        assert_true((m0 == 0 || m0 == 1) && (m1 == 0 || m1 == 1));
    }
    nn_tensor_free(x);
    nn_tensor_free(y);
    /* without a size every row must match the first */
    assert_error(nn_seg_load_manifest(tpath("set/m.csv"), 1, NULL, &x, &y),
                 NN_ERR_SHAPE, "line 4 (id 'b \"2\"'): image 'img/b, with "
                               "comma.png' is 12 x 16, the first row's 6 x 8");
    assert_null(x);
    assert_null(y);
}

typedef struct bad_case {
    const char *csv, *status_name, *want1, *want2;
    nn_status status;
} bad_case;

static void test_manifest_bad_rows(void **state)
{
    mkdir(tpath("bad"), 0700);
    gray_png(tpath("bad/i.png"), 8, 6, 50, 8);
    gray_png(tpath("bad/m.png"), 8, 6, 0, 8);
    gray_png(tpath("bad/m5.png"), 8, 6, 4, 8); /* values 4 and 5 */
    gray_png(tpath("bad/small.png"), 8, 5, 0, 8);
    small_png(tpath("bad/rgbmask.png"), 0);
    size_t n = 0;
    small_png(tpath("bad/good.png"), 0);
    uint8_t *bytes = read_file(tpath("bad/good.png"), &n);
    write_file(tpath("bad/cut.png"), bytes, n - 20);
    bytes[40] ^= 1;
    write_file(tpath("bad/flip.png"), bytes, n);
    free(bytes);
    const char *ok = "r0,i.png,m.png\n";
    const bad_case cases[] = {
        {"id,image_path,mask_path\n%sr1,gone.png,m.png\n", NULL, "line 3",
         "gone.png': No such file", NN_ERR_IO},
        {"id,image_path,mask_path\n%sr1,i.png,gone.png\n", NULL,
         "(id 'r1')", "gone.png", NN_ERR_IO},
        {"id,image_path,mask_path\n%sr1,cut.png,m.png\n", NULL, "line 3",
         "cut.png' is truncated", NN_ERR_FORMAT},
        {"id,image_path,mask_path\n%sr1,flip.png,m.png\n", NULL, "line 3",
         "flip.png' is corrupt", NN_ERR_FORMAT},
        {"id,image_path,mask_path\n%sr1,i.png,small.png\n", NULL, "line 3",
         "image 'i.png' is 6 x 8 (height x width) but mask 'small.png' is "
         "5 x 8",
         NN_ERR_SHAPE},
        {"id,image_path,mask_path\n%s\nr1,i.png,m5.png\n", NULL, "line 4",
         "m5.png': value 4 at x 0, y 0 is not a class id in [0, 2)",
         NN_ERR_FORMAT},
        {"id,image_path,mask_path\n%sr1,i.png,rgbmask.png\n", NULL,
         "line 3", "rgbmask.png' is an RGB image", NN_ERR_UNSUPPORTED},
        {"id,image_path\n%s", NULL, "line 1",
         "the header must begin 'id,image_path,mask_path', found "
         "'id,image_path'",
         NN_ERR_FORMAT},
        {"id,image_path,mask_path\n%sr1,i.png\n", NULL, "line 3",
         "2 fields", NN_ERR_FORMAT},
        {"id,image_path,mask_path\n%sr1,,m.png\n", NULL, "line 3",
         "the image_path is empty", NN_ERR_FORMAT},
        {"id,image_path,mask_path\n%sr1,\"i.png,m.png\n", NULL, "line 3",
         "quoted field is not closed", NN_ERR_FORMAT},
        {"id,image_path,mask_path\n%sr1,\"i\"x.png,m.png\n", NULL, "line 3",
         "text after a closing quote", NN_ERR_FORMAT},
        {"id,image_path,mask_path\n%sr1,i\"x.png,m.png\n", NULL, "line 3",
         "a quote inside an unquoted field", NN_ERR_FORMAT},
        {"id,image_path,mask_path\n", NULL, "has no rows", NULL,
         NN_ERR_FORMAT},
        {"", NULL, "is empty", NULL, NN_ERR_FORMAT},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        char text[512];
        snprintf(text, sizeof text, cases[k].csv, ok);
        write_file(tpath("bad/m.csv"), text, strlen(text));
        nn_tensor *x = (nn_tensor *)1, *y = (nn_tensor *)1;
        nn_status s =
            nn_seg_load_manifest(tpath("bad/m.csv"), 3, NULL, &x, &y);
        if (s != cases[k].status)
            fail_msg("case %zu: %s (%s)", k, nn_status_name(s),
                     nn_last_error());
        const char *msg = nn_last_error();
        if (!strstr(msg, "bad/m.csv") || !strstr(msg, cases[k].want1) ||
            (cases[k].want2 && !strstr(msg, cases[k].want2)))
            fail_msg("case %zu: message '%s'", k, msg);
        assert_null(x);
        assert_null(y);
    }
    /* the same mask passes with enough classes */
    const char *fine = "id,image_path,mask_path\nr1,i.png,m5.png\n";
    write_file(tpath("bad/m.csv"), fine, strlen(fine));
    nn_image_opts o = NN_IMAGE_OPTS_INIT;
    o.num_classes = 6;
    nn_tensor *x = NULL, *y = NULL;
    assert_ok(nn_seg_load_manifest(tpath("bad/m.csv"), 3, &o, &x, &y));
    assert_true(nn_tensor_data(y)[0] == 4.0f && nn_tensor_data(y)[1] == 5.0f);
    nn_tensor_free(x);
    nn_tensor_free(y);
}

/* ------------------------------------------------------------------ */
/* the paired flip                                                     */
/* ------------------------------------------------------------------ */

/* The mask is a function of the image's pixels; after the paired flip it
 * must still be that function of the flipped image, and the flips must
 * really happen (some images flipped, some not). */
static void test_paired_flip(void **state)
{
    enum { N = 16, H = 5, W = 6, C = 3 };
    int64_t xs[4] = {N, H, W, C}, ys[4] = {N, H, W, 1};
    nn_tensor *x = nn_tensor_create(4, xs), *y = nn_tensor_create(4, ys);
    for (int i = 0; i < N * H * W * C; i++)
        nn_tensor_data(x)[i] = (float)(lcg() % 1000) / 1000.0f;
    for (int i = 0; i < N * H * W; i++)
        nn_tensor_data(y)[i] = nn_tensor_data(x)[3 * i] > 0.5f;
    nn_tensor *x0 = nn_tensor_create(4, xs);
    memcpy(nn_tensor_data(x0), nn_tensor_data(x), sizeof(float) * N * H * W * C);
    const nn_flip_mode modes[3] = {NN_FLIP_HORIZONTAL, NN_FLIP_VERTICAL,
                                   NN_FLIP_HORIZONTAL_AND_VERTICAL};
    for (int k = 0; k < 3; k++) {
        assert_ok(nn_seg_random_flip(x, y, modes[k], 1234 + k));
        int changed = 0;
        for (int n = 0; n < N; n++) {
            const float *a = nn_tensor_data(x) + n * H * W * C;
            const float *b = nn_tensor_data(x0) + n * H * W * C;
            changed += memcmp(a, b, sizeof(float) * H * W * C) != 0;
        }
        assert_true(changed > 0 && changed < N);
        for (int i = 0; i < N * H * W; i++)
            assert_true(nn_tensor_data(y)[i] ==
                        (nn_tensor_data(x)[3 * i] > 0.5f));
        /* the same seed again undoes it */
        assert_ok(nn_seg_random_flip(x, y, modes[k], 1234 + k));
        assert_memory_equal(nn_tensor_data(x), nn_tensor_data(x0),
                            sizeof(float) * N * H * W * C);
    }
    /* a horizontal flip really mirrors: pixel (0, 0) moves to (0, W-1) */
    assert_ok(nn_seg_random_flip(x, y, NN_FLIP_HORIZONTAL, 99));
    for (int n = 0; n < N; n++) {
        const float *a = nn_tensor_data(x) + n * H * W * C;
        const float *b = nn_tensor_data(x0) + n * H * W * C;
        if (memcmp(a, b, sizeof(float) * H * W * C) != 0)
            assert_true(a[(W - 1) * C + 2] == b[2]);
    }
    int64_t bad[4] = {N, H, W + 1, 1};
    nn_tensor *z = nn_tensor_create(4, bad);
    assert_error(nn_seg_random_flip(x, z, NN_FLIP_HORIZONTAL, 1),
                 NN_ERR_SHAPE, "masks");
    assert_error(nn_seg_random_flip(x, y, (nn_flip_mode)0, 1),
                 NN_ERR_INVALID, "mode");
    assert_ok(nn_seg_random_flip(x, NULL, NN_FLIP_VERTICAL, 1));
    nn_tensor_free(z);
    nn_tensor_free(x);
    nn_tensor_free(x0);
    nn_tensor_free(y);
}

/* ------------------------------------------------------------------ */
/* the synthetic data set                                              */
/* ------------------------------------------------------------------ */

static void synth(const nn_defects_opts *o, nn_tensor **x, nn_tensor **y,
                  nn_tensor **l)
{
    assert_ok(nn_synthetic_defects(o, x, y, l));
}

static uint64_t fnv(const void *p, size_t n, uint64_t h)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

static void test_synthetic_deterministic(void **state)
{
    nn_defects_opts o = NN_DEFECTS_OPTS_INIT;
    o.count = 24;
    o.height = 48;
    o.width = 64;
    o.seed = 7;
    nn_tensor *x1, *y1, *l1, *x2, *y2, *l2, *x3, *y3, *l3;
    int threads = nn_get_num_threads();
    nn_set_num_threads(1);
    synth(&o, &x1, &y1, &l1);
    nn_set_num_threads(2);
    synth(&o, &x2, &y2, &l2);
    nn_set_num_threads(threads);
    size_t nx = (size_t)nn_tensor_size(x1) * sizeof(float);
    size_t ny = (size_t)nn_tensor_size(y1) * sizeof(float);
    assert_int_equal(nn_tensor_size(x1), 24 * 48 * 64 * 3);
    assert_memory_equal(nn_tensor_data(x1), nn_tensor_data(x2), nx);
    assert_memory_equal(nn_tensor_data(y1), nn_tensor_data(y2), ny);
    assert_memory_equal(nn_tensor_data(l1), nn_tensor_data(l2),
                        24 * sizeof(float));
    o.seed = 8;
    synth(&o, &x3, &y3, &l3);
    assert_memory_not_equal(nn_tensor_data(x1), nn_tensor_data(x3), nx);
    /* The same bits on every machine: a checksum of this exact output.
     * A change to the generator must update it on purpose. */
    uint64_t h = fnv(nn_tensor_data(x1), nx, 0xcbf29ce484222325ULL);
    h = fnv(nn_tensor_data(y1), ny, h);
    if (h != 0x7d0b4ff76e987633ULL)
        fail_msg("synthetic checksum %016llx", (unsigned long long)h);
    nn_tensor_free(x1);
    nn_tensor_free(y1);
    nn_tensor_free(l1);
    nn_tensor_free(x2);
    nn_tensor_free(y2);
    nn_tensor_free(l2);
    nn_tensor_free(x3);
    nn_tensor_free(y3);
    nn_tensor_free(l3);
}

/* Masks are non-empty exactly for the defective images; the fraction is
 * exact; typed masks carry the label; values stay in [0, 1]. */
static void test_synthetic_masks_and_labels(void **state)
{
    for (int typed = 0; typed < 2; typed++) {
        nn_defects_opts o = NN_DEFECTS_OPTS_INIT;
        o.count = 60;
        o.height = o.width = 40;
        o.channels = typed ? 1 : 3;
        o.defect_fraction = 0.7f;
        o.typed_masks = typed;
        o.seed = 3;
        nn_tensor *x, *y, *l;
        synth(&o, &x, &y, &l);
        int defective = 0, kinds[NN_DEFECT_KINDS] = {0};
        for (int i = 0; i < 60; i++) {
            int kind = (int)nn_tensor_data(l)[i];
            assert_true(kind >= 0 && kind < NN_DEFECT_KINDS);
            kinds[kind]++;
            defective += kind != 0;
            int64_t area = 0;
            for (int p = 0; p < 40 * 40; p++) {
                float v = nn_tensor_data(y)[i * 1600 + p];
                assert_true(v == 0.0f || v == (typed ? (float)kind : 1.0f));
                area += v != 0.0f;
            }
            if ((kind != 0) != (area > 0))
                fail_msg("image %d: kind %d, mask area %lld", i, kind,
                         (long long)area);
        }
        assert_int_equal(defective, 42);
        for (int k = 1; k < NN_DEFECT_KINDS; k++) assert_true(kinds[k] > 0);
        assert_int_equal(nn_tensor_dim(x, 3), o.channels);
        for (int64_t i = 0; i < nn_tensor_size(x); i++) {
            float v = nn_tensor_data(x)[i];
            assert_true(v >= 0.0f && v <= 1.0f);
        }
        nn_tensor_free(x);
        nn_tensor_free(y);
        nn_tensor_free(l);
    }
    nn_defects_opts o = NN_DEFECTS_OPTS_INIT;
    nn_tensor *x, *y, *l;
    o.height = 8;
    assert_error(nn_synthetic_defects(&o, &x, &y, &l), NN_ERR_INVALID,
                 "height 8");
    o.height = 32;
    o.defect_fraction = 1.5f;
    assert_error(nn_synthetic_defects(&o, &x, &y, &l), NN_ERR_INVALID,
                 "defect_fraction");
    o.defect_fraction = 0.0f;
    o.count = 5;
    synth(&o, &x, &y, &l);
    for (int64_t i = 0; i < nn_tensor_size(y); i++)
        assert_true(nn_tensor_data(y)[i] == 0.0f);
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_tensor_free(l);
}

/* Chamfer distance (4-neighbour steps) of each pixel of a size x size
 * image to the nearest non-zero mask pixel. */
static void mask_distance(const float *mask, int size, float *d)
{
    for (int p = 0; p < size * size; p++) d[p] = mask[p] != 0.0f ? 0.0f : 1e9f;
    for (int pass = 0; pass < 2; pass++) {
        for (int y = 0; y < size; y++)
            for (int x = 0; x < size; x++) {
                float *v = &d[y * size + x];
                if (y) *v = fminf(*v, d[(y - 1) * size + x] + 1);
                if (x) *v = fminf(*v, d[y * size + x - 1] + 1);
            }
        for (int y = size - 1; y >= 0; y--)
            for (int x = size - 1; x >= 0; x--) {
                float *v = &d[y * size + x];
                if (y < size - 1) *v = fminf(*v, d[(y + 1) * size + x] + 1);
                if (x < size - 1) *v = fminf(*v, d[y * size + x + 1] + 1);
            }
    }
}

/* How far a stain's mean colour lies from that of the surface around it
 * (3 to 10 pixels outside its mask), in units of the surface's spread of
 * colour there. */
static double stain_visibility(const float *img, const float *mask, int size,
                               float *d)
{
    mask_distance(mask, size, d);
    double in[3] = {0}, out[3] = {0}, sq[3] = {0};
    long n_in = 0, n_out = 0;
    for (int p = 0; p < size * size; p++) {
        int inside = d[p] == 0.0f, ring = d[p] >= 3 && d[p] <= 10;
        if (!inside && !ring) continue;
        for (int c = 0; c < 3; c++) {
            double v = img[3 * p + c];
            if (inside) {
                in[c] += v;
            } else {
                out[c] += v;
                sq[c] += v * v;
            }
        }
        if (inside)
            n_in++;
        else
            n_out++;
    }
    double change = 0, spread = 0;
    for (int c = 0; c < 3; c++) {
        double mean_out = out[c] / (double)n_out;
        double diff = in[c] / (double)n_in - mean_out;
        change += diff * diff;
        spread += sq[c] / (double)n_out - mean_out * mean_out;
    }
    return sqrt(change / spread);
}

/* No stain is a mask over an unchanged image. Before the generator raised
 * the strength of stains the surface's texture would hide, these images
 * held a stain 0.017 spreads from its surroundings (invisible: a light
 * water stain on a coarse weave); now the least visible is at 0.19. */
static void test_synthetic_stains_visible(void **state)
{
    nn_defects_opts o = NN_DEFECTS_OPTS_INIT;
    o.count = 400;
    o.seed = 11;
    o.defect_fraction = 1.0f;
    nn_tensor *x, *y, *l;
    synth(&o, &x, &y, &l);
    float *d = malloc(128 * 128 * sizeof *d);
    assert_non_null(d);
    int stains = 0;
    for (int i = 0; i < 400; i++) {
        if ((int)nn_tensor_data(l)[i] != NN_DEFECT_STAIN) continue;
        stains++;
        double v = stain_visibility(nn_tensor_data(x) + (size_t)i * 128 * 128 * 3,
                                    nn_tensor_data(y) + (size_t)i * 128 * 128,
                                    128, d);
        if (v < 0.15) fail_msg("image %d: a stain %.3f spreads from its surface", i, v);
    }
    assert_true(stains > 80);
    free(d);
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_tensor_free(l);
}

/* The data set written by make_defects' calls reads back through the
 * manifest with its masks intact. */
static void test_synthetic_roundtrip(void **state)
{
    nn_defects_opts o = NN_DEFECTS_OPTS_INIT;
    o.count = 4;
    o.height = o.width = 32;
    o.defect_fraction = 1.0f;
    nn_tensor *x, *y, *l;
    synth(&o, &x, &y, &l);
    mkdir(tpath("syn"), 0700);
    FILE *f = fopen(tpath("syn/manifest.csv"), "w");
    fprintf(f, "id,image_path,mask_path,defect\n");
    for (int i = 0; i < 4; i++) {
        char name[64];
        snprintf(name, sizeof name, "syn/%d.png", i);
        assert_ok(nn_image_save_png(tpath(name), x, i));
        snprintf(name, sizeof name, "syn/%dm.png", i);
        assert_ok(nn_mask_save_png(tpath(name), y, i));
        fprintf(f, "%d,%d.png,%dm.png,%s\n", i, i, i,
                nn_defect_name((int)nn_tensor_data(l)[i]));
    }
    fclose(f);
    nn_tensor *x2, *y2;
    assert_ok(nn_seg_load_manifest(tpath("syn/manifest.csv"), 3, NULL, &x2,
                                   &y2));
    assert_memory_equal(nn_tensor_data(y2), nn_tensor_data(y),
                        4 * 32 * 32 * sizeof(float));
    for (int64_t i = 0; i < nn_tensor_size(x); i++)
        assert_true(fabsf(nn_tensor_data(x2)[i] - nn_tensor_data(x)[i]) <=
                    0.5f / 255 + 1e-6f);
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_tensor_free(l);
    nn_tensor_free(x2);
    nn_tensor_free(y2);
}

/* ------------------------------------------------------------------ */
/* allocation failures                                                 */
/* ------------------------------------------------------------------ */

typedef nn_status (*alloc_case)(void);

static nn_status case_image(void)
{
    nn_tensor *t = NULL;
    nn_image_opts o = NN_IMAGE_OPTS_INIT;
    o.height = o.width = 9;
    nn_status s = nn_image_load(tpath("af.png"), 1, &o, &t);
    assert_true((s == NN_OK) == (t != NULL));
    nn_tensor_free(t);
    return s;
}

static nn_status case_mask(void)
{
    nn_tensor *t = NULL;
    nn_status s = nn_mask_load(tpath("afm.png"), NULL, &t);
    assert_true((s == NN_OK) == (t != NULL));
    nn_tensor_free(t);
    return s;
}

static nn_status case_manifest(void)
{
    nn_tensor *x = NULL, *y = NULL;
    nn_status s = nn_seg_load_manifest(tpath("af.csv"), 3, NULL, &x, &y);
    assert_true((s == NN_OK) == (x != NULL && y != NULL));
    nn_tensor_free(x);
    nn_tensor_free(y);
    return s;
}

static nn_status case_batch(void)
{
    const char *p[2] = {tpath("af.png"), tpath("af.png")};
    nn_tensor *t = NULL;
    nn_status s = nn_image_load_batch(p, 2, 3, NULL, &t);
    nn_tensor_free(t);
    return s;
}

static nn_status case_synth(void)
{
    nn_defects_opts o = NN_DEFECTS_OPTS_INIT;
    o.count = 3;
    o.height = o.width = 24;
    nn_tensor *x = NULL, *y = NULL, *l = NULL;
    nn_status s = nn_synthetic_defects(&o, &x, &y, &l);
    assert_true((s == NN_OK) == (x && y && l));
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_tensor_free(l);
    return s;
}

static nn_status case_save(void)
{
    int64_t shape[3] = {5, 4, 1};
    nn_tensor *t = nn_tensor_create(3, shape);
    if (!t) return nn_last_status();
    nn_status s = nn_image_save_png(tpath("afs.png"), t, 0);
    if (s == NN_OK) s = nn_mask_save_png(tpath("afs.png"), t, 0);
    nn_tensor_free(t);
    return s;
}

/* Every allocation of every loader fails once in turn: NN_ERR_NOMEM comes
 * back, nothing leaks (the ASan run checks), and no temporary remains. */
static void test_alloc_failures(void **state)
{
    small_png(tpath("af.png"), 1);
    uint16_t ids[6] = {0, 1, 1, 0, 1, 0};
    png_spec s = spec(3, 2, 8, PNG_COLOR_TYPE_GRAY, ids);
    write_png(tpath("afm.png"), &s);
    gray_png(tpath("afi.png"), 3, 2, 10, 8);
    const char *csv = "id,image_path,mask_path\na,afi.png,afm.png\n"
                      "b,afi.png,afm.png\n";
    write_file(tpath("af.csv"), csv, strlen(csv));
    const alloc_case cases[6] = {case_image,    case_mask,  case_manifest,
                                 case_batch, case_synth, case_save};
    for (int c = 0; c < 6; c++) {
        nn__debug_fail_alloc_after(0);
        assert_ok(cases[c]());
        int64_t total = nn__debug_fail_alloc_after(0);
        assert_true(total > 0);
        int nomem = 0;
        for (int64_t k = 1; k <= total; k++) {
            nn__debug_fail_alloc_after(k);
            nn_status st = cases[c]();
            nn__debug_fail_alloc_after(0);
            if (st != NN_OK && st != NN_ERR_NOMEM)
                fail_msg("case %d, allocation %lld: %s (%s)", c,
                         (long long)k, nn_status_name(st), nn_last_error());
            nomem += st == NN_ERR_NOMEM;
        }
        assert_true(nomem > 0);
    }
    DIR *dir = opendir(tmpdir);
    struct dirent *e;
    while ((e = readdir(dir)))
        assert_null(strstr(e->d_name, ".tmp."));
    closedir(dir);
}

/* ------------------------------------------------------------------ */

static int remove_tree(const char *path)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    return system(cmd);
}

static int setup(void **state)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/nn_test_image_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state) { return remove_tree(tmpdir) == 0 ? 0 : -1; }

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gray_depths),
        cmocka_unit_test(test_rgb_depths),
        cmocka_unit_test(test_luma_matches_pil),
        cmocka_unit_test(test_palette),
        cmocka_unit_test(test_interlaced),
        cmocka_unit_test(test_masks),
        cmocka_unit_test(test_truncations),
        cmocka_unit_test(test_byte_flips),
        cmocka_unit_test(test_warnings_stay_quiet),
        cmocka_unit_test(test_huge_header),
        cmocka_unit_test(test_not_regular_files),
        cmocka_unit_test(test_arguments),
        cmocka_unit_test(test_resize),
        cmocka_unit_test(test_batch),
        cmocka_unit_test(test_save),
        cmocka_unit_test(test_from_u8),
        cmocka_unit_test(test_manifest),
        cmocka_unit_test(test_manifest_bad_rows),
        cmocka_unit_test(test_paired_flip),
        cmocka_unit_test(test_synthetic_deterministic),
        cmocka_unit_test(test_synthetic_masks_and_labels),
        cmocka_unit_test(test_synthetic_stains_visible),
        cmocka_unit_test(test_synthetic_roundtrip),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
