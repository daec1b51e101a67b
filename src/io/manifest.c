/* Segmentation data sets: the CSV manifest (id,image_path,mask_path) and
 * the paired random flip of images and masks. The manifest is read whole
 * and parsed in place (unquoting only ever shortens a field), every row is
 * checked before the first image is decoded, and a failure anywhere names
 * the manifest's line, the row's id and the file. */
#include "io/image.h"
#include "kernels/kernels.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define MANIFEST_MAX_BYTES ((int64_t)64 << 20)
#define MANIFEST_MAX_ROWS (1 << 24)
#define MAX_FIELDS 3

typedef struct mrow {
    int line;
    const char *id, *image, *mask;
} mrow;

typedef struct manifest {
    const char *path;
    char *text;
    mrow *rows;
    int n, cap;
    char *file; /* the current row's resolved path */
    size_t dir_len; /* of path's directory, with its '/' (0: none) */
} manifest;

static void manifest_free(manifest *m)
{
    nn__free(m->text);
    nn__free(m->rows);
    nn__free(m->file);
}

static nn_status read_text(manifest *m)
{
    int fd = -1;
    uint64_t size = 0;
    NN_TRY(nn__file_open(m->path, "manifest", &fd, &size));
    nn_status s = NN_OK;
    if (size > MANIFEST_MAX_BYTES)
        s = nn__fail(NN_ERR_UNSUPPORTED,
                     "manifest: '%s' has %llu bytes, more than the %lld a "
                     "manifest may have",
                     m->path, (unsigned long long)size,
                     (long long)MANIFEST_MAX_BYTES);
    if (s == NN_OK) {
        m->text = nn__alloc((size_t)size + 1);
        if (!m->text) s = NN_ERR_NOMEM;
    }
    size_t got = 0;
    if (s == NN_OK)
        s = nn__file_read(fd, m->path, "manifest", (uint8_t *)m->text,
                          (size_t)size, &got);
    close(fd);
    if (s == NN_OK) m->text[got] = '\0';
    return s;
}

/* ---------------- CSV ---------------- */

static bool at_end_of_field(char c)
{
    return c == ',' || c == '\n' || c == '\r' || c == '\0';
}

/* Copies one field from *r to *w (w <= r), unquoting; leaves *r on the
 * character after it. */
static nn_status parse_field(const manifest *m, int line, char **r, char **w)
{
    char *in = *r, *out = *w;
    if (*in == '"') {
        for (in++;; in++) {
            NN_CHECK(*in != '\0' && *in != '\n' && *in != '\r',
                     NN_ERR_FORMAT,
                     "manifest '%s' line %d: a quoted field is not closed on "
                     "its line (fields cannot contain line breaks)",
                     m->path, line);
            if (*in == '"' && in[1] != '"') break;
            if (*in == '"') in++; /* "" is a quote */
            *out++ = *in;
        }
        in++;
        NN_CHECK(at_end_of_field(*in), NN_ERR_FORMAT,
                 "manifest '%s' line %d: text after a closing quote", m->path,
                 line);
    } else {
        for (; !at_end_of_field(*in); in++) {
            NN_CHECK(*in != '"', NN_ERR_FORMAT,
                     "manifest '%s' line %d: a quote inside an unquoted "
                     "field (quote the whole field and double the quote)",
                     m->path, line);
            *out++ = *in;
        }
    }
    *r = in;
    *w = out;
    return NN_OK;
}

/* Parses the record that starts at *p, NUL-terminating its fields in
 * place; *p moves to the next line. */
static nn_status parse_record(const manifest *m, int line, char **p,
                              char **fields, int *n)
{
    char *r = *p, *w = *p;
    *n = 0;
    for (;;) {
        char *start = w;
        NN_TRY(parse_field(m, line, &r, &w));
        char sep = *r;
        *w++ = '\0'; /* may overwrite sep, which is saved */
        if (*n < MAX_FIELDS) fields[*n] = start;
        (*n)++;
        if (sep == '\0') break;
        r++;
        if (sep == ',') continue;
        if (sep == '\r' && *r == '\n') r++;
        break;
    }
    *p = r;
    return NN_OK;
}

static nn_status check_header(const manifest *m, int line, char **f, int n)
{
    NN_CHECK(n >= 3 && strcmp(f[0], "id") == 0 &&
                 strcmp(f[1], "image_path") == 0 &&
                 strcmp(f[2], "mask_path") == 0,
             NN_ERR_FORMAT,
             "manifest '%s' line %d: the header must begin "
             "'id,image_path,mask_path', found '%s%s%s%s%s'",
             m->path, line, f[0], n > 1 ? "," : "", n > 1 ? f[1] : "",
             n > 2 ? "," : "", n > 2 ? f[2] : "");
    return NN_OK;
}

static nn_status add_row(manifest *m, int line, char **f, int n)
{
    NN_CHECK(n >= 3, NN_ERR_FORMAT,
             "manifest '%s' line %d: %d field%s, expected id,image_path,"
             "mask_path",
             m->path, line, n, n == 1 ? "" : "s");
    NN_CHECK(f[1][0] && f[2][0], NN_ERR_FORMAT,
             "manifest '%s' line %d (id '%s'): the %s is empty", m->path,
             line, f[0], f[1][0] ? "mask_path" : "image_path");
    NN_CHECK(m->n < MANIFEST_MAX_ROWS, NN_ERR_UNSUPPORTED,
             "manifest '%s': more than %d rows", m->path, MANIFEST_MAX_ROWS);
    if (m->n == m->cap) {
        int cap = m->cap ? 2 * m->cap : 64;
        mrow *rows = nn__realloc(m->rows, (size_t)cap * sizeof *rows);
        if (!rows) return NN_ERR_NOMEM;
        m->rows = rows;
        m->cap = cap;
    }
    m->rows[m->n++] = (mrow){line, f[0], f[1], f[2]};
    return NN_OK;
}

static nn_status parse(manifest *m)
{
    char *p = m->text;
    if ((unsigned char)p[0] == 0xEF && (unsigned char)p[1] == 0xBB &&
        (unsigned char)p[2] == 0xBF)
        p += 3; /* a UTF-8 byte-order mark */
    bool header = false;
    for (int line = 1; *p; line++) {
        char *f[MAX_FIELDS];
        int n = 0;
        NN_TRY(parse_record(m, line, &p, f, &n));
        if (n == 1 && !f[0][0]) continue; /* a blank line */
        if (!header)
            NN_TRY(check_header(m, line, f, n));
        else
            NN_TRY(add_row(m, line, f, n));
        header = true;
    }
    NN_CHECK(header, NN_ERR_FORMAT,
             "manifest '%s' is empty (it needs the header "
             "'id,image_path,mask_path' and rows)",
             m->path);
    NN_CHECK(m->n > 0, NN_ERR_FORMAT, "manifest '%s' has no rows", m->path);
    return NN_OK;
}

/* ---------------- loading ---------------- */

/* A row's path, relative to the manifest's directory unless absolute. */
static nn_status resolve(manifest *m, const char *rel)
{
    size_t dir = rel[0] == '/' ? 0 : m->dir_len;
    size_t n = dir + strlen(rel) + 1;
    nn__free(m->file);
    m->file = nn__alloc(n);
    if (!m->file) return NN_ERR_NOMEM;
    memcpy(m->file, m->path, dir);
    memcpy(m->file + dir, rel, n - dir);
    return NN_OK;
}

typedef struct seg_out {
    nn_tensor *images, *masks;
    int channels;
    bool same_size; /* no size requested: every row must match the first */
} seg_out;

static nn_status check_sizes(const manifest *m, const mrow *row,
                             const nn_tensor *x, const nn_tensor *y,
                             const seg_out *out, const nn_image_opts *o)
{
    int64_t h = x->shape[0], w = x->shape[1];
    NN_CHECK(y->shape[0] == h && y->shape[1] == w, NN_ERR_SHAPE,
             "image '%s' is %lld x %lld (height x width) but mask '%s' is "
             "%lld x %lld",
             row->image, (long long)h, (long long)w, row->mask,
             (long long)y->shape[0], (long long)y->shape[1]);
    NN_CHECK(!out->same_size || (h == o->height && w == o->width),
             NN_ERR_SHAPE,
             "image '%s' is %lld x %lld, the first row's %d x %d; set "
             "nn_image_opts.height and width to resize",
             row->image, (long long)h, (long long)w, o->height, o->width);
    return NN_OK;
}

static nn_status make_outputs(int n, seg_out *out, const nn_image_opts *o)
{
    int64_t shape[4] = {n, o->height, o->width, out->channels};
    out->images = nn_tensor_create(4, shape);
    shape[3] = 1;
    if (out->images) out->masks = nn_tensor_create(4, shape);
    return out->masks ? NN_OK : nn_last_status();
}

static nn_status load_row(manifest *m, int i, seg_out *out, nn_image_opts *o)
{
    const mrow *row = &m->rows[i];
    nn_tensor *x = NULL, *y = NULL;
    nn_status s = resolve(m, row->image);
    if (s == NN_OK) s = nn__png_decode(m->file, out->channels, false, o, &x);
    if (s == NN_OK) s = resolve(m, row->mask);
    if (s == NN_OK) s = nn__png_decode(m->file, 1, true, o, &y);
    if (s == NN_OK && o->height == 0) {
        o->height = (int)x->shape[0];
        o->width = (int)x->shape[1];
        out->same_size = true;
    }
    if (s == NN_OK) s = check_sizes(m, row, x, y, out, o);
    if (s == NN_OK && !out->images) s = make_outputs(m->n, out, o);
    if (s == NN_OK) {
        int h = (int)x->shape[0], w = (int)x->shape[1];
        int64_t px = (int64_t)o->height * o->width;
        nn__image_resample(x->data, h, w, out->channels,
                           out->images->data + i * px * out->channels,
                           o->height, o->width, NN_INTERP_BILINEAR);
        nn__image_resample(y->data, h, w, 1, out->masks->data + i * px,
                           o->height, o->width, NN_INTERP_NEAREST);
    }
    nn_tensor_free(x);
    nn_tensor_free(y);
    return s;
}

/* Prefixes the last error with the row's place, keeping its status. */
static nn_status at_row(nn_status s, const manifest *m, const mrow *row)
{
    char msg[400];
    snprintf(msg, sizeof msg, "%s", nn_last_error());
    return nn__fail(s, "manifest '%s' line %d (id '%s'): %s", m->path,
                    row->line, row->id, msg);
}

nn_status nn_seg_load_manifest(const char *path, int channels,
                               const nn_image_opts *opts, nn_tensor **images,
                               nn_tensor **masks)
{
    NN_CHECK(images && masks, NN_ERR_INVALID,
             "nn_seg_load_manifest: output pointer is NULL");
    *images = *masks = NULL;
    NN_CHECK(path && path[0], NN_ERR_INVALID,
             "nn_seg_load_manifest: path is NULL or empty");
    NN_CHECK(channels == 1 || channels == 3, NN_ERR_INVALID,
             "nn_seg_load_manifest: channels %d must be 1 (gray) or 3 (RGB)",
             channels);
    nn_image_opts o;
    NN_TRY(nn__image_opts(opts, "nn_seg_load_manifest", &o));
    manifest m = {.path = path};
    const char *slash = strrchr(path, '/');
    m.dir_len = slash ? (size_t)(slash - path) + 1 : 0;
    seg_out out = {NULL, NULL, channels, false};
    nn_status s = read_text(&m);
    if (s == NN_OK) s = parse(&m);
    for (int i = 0; s == NN_OK && i < m.n; i++) {
        s = load_row(&m, i, &out, &o);
        if (s != NN_OK) s = at_row(s, &m, &m.rows[i]);
    }
    manifest_free(&m);
    if (s != NN_OK) {
        nn_tensor_free(out.images);
        nn_tensor_free(out.masks);
        return s;
    }
    *images = out.images;
    *masks = out.masks;
    return NN_OK;
}

/* ---------------- the paired flip ---------------- */

static void swap_floats(float *a, float *b, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        float t = a[i];
        a[i] = b[i];
        b[i] = t;
    }
}

/* Upside down: row y and row h-1-y trade places. */
static void flip_rows(float *img, int64_t h, int64_t row)
{
    for (int64_t y = 0; y < h / 2; y++)
        swap_floats(img + y * row, img + (h - 1 - y) * row, row);
}

/* Left-right: in every row, pixel x and pixel w-1-x trade places. */
static void flip_cols(float *img, int64_t h, int64_t w, int64_t c)
{
    for (int64_t y = 0; y < h; y++) {
        float *r = img + y * w * c;
        for (int64_t x = 0; x < w / 2; x++)
            swap_floats(r + x * c, r + (w - 1 - x) * c, c);
    }
}

static void flip_one(nn_tensor *t, int64_t i, bool h, bool v)
{
    int64_t rows = t->shape[1], w = t->shape[2], c = t->shape[3];
    float *img = t->data + i * rows * w * c;
    if (h) flip_cols(img, rows, w, c);
    if (v) flip_rows(img, rows, w * c);
}

nn_status nn_seg_random_flip(nn_tensor *images, nn_tensor *masks,
                             nn_flip_mode mode, uint64_t seed)
{
    NN_CHECK(images, NN_ERR_INVALID, "nn_seg_random_flip: images is NULL");
    NN_CHECK(mode >= NN_FLIP_HORIZONTAL &&
                 mode <= NN_FLIP_HORIZONTAL_AND_VERTICAL,
             NN_ERR_INVALID, "nn_seg_random_flip: unknown mode %d",
             (int)mode);
    NN_CHECK(images->rank == 4, NN_ERR_SHAPE,
             "nn_seg_random_flip: images must be [N, H, W, C], got rank %d",
             images->rank);
    if (masks) {
        NN_CHECK(masks->rank == 4 && masks->shape[0] == images->shape[0] &&
                     masks->shape[1] == images->shape[1] &&
                     masks->shape[2] == images->shape[2],
                 NN_ERR_SHAPE,
                 "nn_seg_random_flip: masks must be [N, H, W, C] with the "
                 "images' N, H and W");
    }
    for (int64_t i = 0; i < images->shape[0]; i++) {
        bool h = (mode & NN_FLIP_HORIZONTAL) &&
                 (nn__hash24(seed, 2 * (uint64_t)i) & 1);
        bool v = (mode & NN_FLIP_VERTICAL) &&
                 (nn__hash24(seed, 2 * (uint64_t)i + 1) & 1);
        flip_one(images, i, h, v);
        if (masks) flip_one(masks, i, h, v);
    }
    return NN_OK;
}
