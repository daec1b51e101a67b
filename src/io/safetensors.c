/* safetensors import and export (format summary in docs/zoo.md):
 *
 *   u64 little-endian N   length of the header
 *   N bytes               JSON: {"<name>": {"dtype": "F32", "shape": [..],
 *                         "data_offsets": [begin, end]}, ...,
 *                         "__metadata__": {"<key>": "<value>", ...}}
 *   the rest              the data buffer; offsets are relative to its start
 *
 * The file is hostile until proven otherwise. Its header length is checked
 * against the file's size from the first 8 bytes, then it is read whole
 * (size capped), the header is parsed by a strict parser for exactly this
 * JSON subset, and every entry is checked against the data buffer (sizes,
 * bounds, no overlap, no gap, as the format demands) and against the model
 * (names, dtypes, shapes, finite values) before a single weight is
 * written: on any error the model is unchanged and the message names the
 * tensor. */
#include "io/io.h"
#include "zoo/zoo.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ST_MAX_FILE ((uint64_t)1 << 36)       /* 64 GiB */
#define ST_MAX_HEADER ((uint64_t)100 << 20)   /* as the reference reader */
#define ST_MAX_TENSORS (1 << 18)
#define ST_MAX_KEY 256                        /* bytes of a tensor name */
#define ST_MAX_DIM ((uint64_t)1 << 40)
#define ST_MAX_NUMBER ((uint64_t)1 << 53)     /* exact in every JSON reader */

/* ---------------- dtypes ---------------- */

typedef struct st_dtype {
    const char *name;
    unsigned bytes;
} st_dtype;

/* The format's dtypes; only F32 loads, the others are recognised so their
 * entries can be checked and named in messages. */
static const st_dtype dtypes[] = {
    {"F32", 4},  {"F16", 2},     {"BF16", 2},    {"F64", 8}, {"I64", 8},
    {"I32", 4},  {"I16", 2},     {"I8", 1},      {"U64", 8}, {"U32", 4},
    {"U16", 2},  {"U8", 1},      {"BOOL", 1},    {"F8_E4M3", 1},
    {"F8_E5M2", 1}};
#define DTYPE_F32 0

typedef struct st_tensor {
    const char *name; /* decoded, in the name pool */
    int dtype;        /* index in dtypes[] */
    int rank;
    int64_t shape[NN_MAX_RANK];
    uint64_t begin, end;
    bool used;
} st_tensor;

typedef struct st_file {
    const char *path;
    uint8_t *buf; /* the whole file */
    size_t size;
    const uint8_t *data; /* data buffer */
    uint64_t data_len;
    st_tensor *t;
    int n, cap;
    char *pool; /* decoded names */
    size_t pool_used, pool_cap;
} st_file;

/* A name made safe to print: control bytes become '?', long ones cut. */
static const char *shown(const char *name, char *out, size_t cap)
{
    size_t i = 0;
    for (; name[i] && i + 1 < cap; i++)
        out[i] = (unsigned char)name[i] < 0x20 || name[i] == 0x7f ? '?'
                                                                  : name[i];
    out[i] = '\0';
    return out;
}

static nn_status fail_tensor(nn_status s, const st_file *f, const char *name,
                             const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static nn_status fail_tensor(nn_status s, const st_file *f, const char *name,
                             const char *fmt, ...)
{
    char msg[384], nbuf[ST_MAX_KEY + 1];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return nn__fail(s, "safetensors '%s': tensor '%s': %s", f->path,
                    shown(name, nbuf, sizeof nbuf), msg);
}

/* ---------------- JSON header ---------------- */

typedef struct json {
    const uint8_t *p, *start, *end;
    st_file *f;
    char tensor[ST_MAX_KEY + 1]; /* the entry being read or last read */
    bool inside;                 /* inside that entry */
} json;

static nn_status jfail(const json *j, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static nn_status jfail(const json *j, const char *fmt, ...)
{
    char msg[256], nbuf[ST_MAX_KEY + 1];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t at = (size_t)(j->p - j->start);
    if (!j->tensor[0])
        return nn__fail(NN_ERR_FORMAT,
                        "safetensors '%s': bad header JSON at byte %zu: %s",
                        j->f->path, at, msg);
    return nn__fail(NN_ERR_FORMAT,
                    "safetensors '%s': tensor '%s': bad header JSON %s its "
                    "entry (byte %zu): %s",
                    j->f->path, shown(j->tensor, nbuf, sizeof nbuf),
                    j->inside ? "in" : "after", at, msg);
}

static void ws(json *j)
{
    while (j->p < j->end &&
           (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

/* Skips white space, then consumes c if it is next. */
static bool take(json *j, char c)
{
    ws(j);
    if (j->p < j->end && *j->p == (uint8_t)c) {
        j->p++;
        return true;
    }
    return false;
}

static nn_status expect(json *j, char c)
{
    if (take(j, c)) return NN_OK;
    if (j->p >= j->end) return jfail(j, "expected '%c', found the end", c);
    return jfail(j, "expected '%c', found '%c'", c,
                 *j->p >= 0x20 && *j->p < 0x7f ? *j->p : '?');
}

static int hex4(const uint8_t *p)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        int c = p[i], d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else return -1;
        v = v * 16 + d;
    }
    return v;
}

/* Appends a code point as UTF-8 if it fits; *len counts it either way. */
static void put_utf8(char *out, size_t cap, size_t *len, uint32_t cp)
{
    uint8_t b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = (uint8_t)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (uint8_t)(0xc0 | cp >> 6);
        b[1] = (uint8_t)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (uint8_t)(0xe0 | cp >> 12);
        b[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
        b[2] = (uint8_t)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        b[0] = (uint8_t)(0xf0 | cp >> 18);
        b[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
        b[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
        b[3] = (uint8_t)(0x80 | (cp & 0x3f));
        n = 4;
    }
    for (size_t i = 0; i < n; i++, (*len)++)
        if (out && *len < cap) out[*len] = (char)b[i];
}

/* The code point of the escape after a backslash at j->p (consumed). */
static nn_status escape(json *j, uint32_t *cp)
{
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    if (j->p >= j->end) return jfail(j, "unterminated string");
    const char *e = strchr(from, *j->p);
    if (e && *j->p) {
        *cp = (uint8_t)to[e - from];
        j->p++;
        return NN_OK;
    }
    if (*j->p != 'u')
        return jfail(j, "bad escape '\\%c'",
                     *j->p >= 0x20 && *j->p < 0x7f ? *j->p : '?');
    int hi = j->end - j->p >= 5 ? hex4(j->p + 1) : -1;
    if (hi < 0) return jfail(j, "bad \\u escape");
    j->p += 5;
    if (hi >= 0xdc00 && hi <= 0xdfff) return jfail(j, "lone low surrogate");
    if (hi >= 0xd800 && hi <= 0xdbff) {
        int lo = j->end - j->p >= 6 && j->p[0] == '\\' && j->p[1] == 'u'
                     ? hex4(j->p + 2)
                     : -1;
        if (lo < 0xdc00 || lo > 0xdfff) return jfail(j, "lone high surrogate");
        j->p += 6;
        *cp = 0x10000 + (((uint32_t)hi - 0xd800) << 10) +
              ((uint32_t)lo - 0xdc00);
        return NN_OK;
    }
    if (hi == 0) return jfail(j, "\\u0000 in a string");
    *cp = (uint32_t)hi;
    return NN_OK;
}

/* A string, decoded into out (NUL-terminated) when out is not NULL; fails
 * when it needs more than cap - 1 bytes. */
static nn_status string(json *j, char *out, size_t cap, const char *what)
{
    NN_TRY(expect(j, '"'));
    size_t len = 0;
    for (;;) {
        if (j->p >= j->end) return jfail(j, "unterminated string");
        uint8_t c = *j->p++;
        if (c == '"') break;
        if (c < 0x20) return jfail(j, "control byte 0x%02x in a string", c);
        if (c == '\\') {
            uint32_t cp = 0;
            NN_TRY(escape(j, &cp));
            put_utf8(out, cap, &len, cp);
        } else {
            if (out && len < cap) out[len] = (char)c;
            len++;
        }
        if (out && len >= cap)
            return jfail(j, "%s longer than %zu bytes", what, cap - 1);
    }
    if (out) out[len] = '\0';
    return NN_OK;
}

static nn_status number(json *j, uint64_t *v, const char *what)
{
    ws(j);
    const uint8_t *s = j->p;
    uint64_t x = 0;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
        x = x * 10 + (uint64_t)(*j->p++ - '0');
        if (x > ST_MAX_NUMBER)
            return jfail(j, "%s is larger than 2^53", what);
    }
    if (j->p == s) return jfail(j, "%s must be a non-negative integer", what);
    if (*s == '0' && j->p - s > 1)
        return jfail(j, "%s has a leading zero", what);
    if (j->p < j->end && (*j->p == '.' || *j->p == 'e' || *j->p == 'E'))
        return jfail(j, "%s must be an integer", what);
    *v = x;
    return NN_OK;
}

static nn_status field_dtype(json *j, st_tensor *t)
{
    char name[16];
    NN_TRY(string(j, name, sizeof name, "dtype"));
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (!strcmp(name, dtypes[i].name)) {
            t->dtype = (int)i;
            return NN_OK;
        }
    return jfail(j, "unknown dtype '%s'", name);
}

static nn_status field_shape(json *j, st_tensor *t)
{
    NN_TRY(expect(j, '['));
    t->rank = 0;
    if (take(j, ']')) return NN_OK;
    do {
        uint64_t d;
        if (t->rank == NN_MAX_RANK)
            return jfail(j, "shape has more than %d dimensions", NN_MAX_RANK);
        NN_TRY(number(j, &d, "a dimension"));
        if (d > ST_MAX_DIM) return jfail(j, "dimension %llu is too large",
                                         (unsigned long long)d);
        t->shape[t->rank++] = (int64_t)d;
    } while (take(j, ','));
    return expect(j, ']');
}

static nn_status field_offsets(json *j, st_tensor *t)
{
    NN_TRY(expect(j, '['));
    NN_TRY(number(j, &t->begin, "data_offsets[0]"));
    NN_TRY(expect(j, ','));
    NN_TRY(number(j, &t->end, "data_offsets[1]"));
    return expect(j, ']');
}

/* {"dtype": ..., "shape": [...], "data_offsets": [b, e]}, each once. */
static nn_status entry(json *j, st_tensor *t)
{
    static const char *const fields[3] = {"dtype", "shape", "data_offsets"};
    bool seen[3] = {false, false, false};
    j->inside = true;
    NN_TRY(expect(j, '{'));
    if (!take(j, '}')) {
        do {
            char key[16];
            NN_TRY(string(j, key, sizeof key, "field name"));
            NN_TRY(expect(j, ':'));
            int k = 0;
            while (k < 3 && strcmp(key, fields[k])) k++;
            if (k == 3) return jfail(j, "unknown field '%s'", key);
            if (seen[k]) return jfail(j, "field '%s' given twice", key);
            seen[k] = true;
            if (k == 0) NN_TRY(field_dtype(j, t));
            if (k == 1) NN_TRY(field_shape(j, t));
            if (k == 2) NN_TRY(field_offsets(j, t));
        } while (take(j, ','));
        NN_TRY(expect(j, '}'));
    }
    for (int k = 0; k < 3; k++)
        if (!seen[k]) return jfail(j, "field '%s' is missing", fields[k]);
    j->inside = false;
    return NN_OK;
}

/* "__metadata__": an object of string values, which we do not use. */
static nn_status metadata(json *j)
{
    NN_TRY(expect(j, '{'));
    if (take(j, '}')) return NN_OK;
    do {
        NN_TRY(string(j, NULL, 0, "metadata key"));
        NN_TRY(expect(j, ':'));
        NN_TRY(string(j, NULL, 0, "metadata value"));
    } while (take(j, ','));
    return expect(j, '}');
}

static nn_status add_tensor(json *j, const char *name)
{
    st_file *f = j->f;
    if (f->n == ST_MAX_TENSORS)
        return jfail(j, "more than %d tensors", ST_MAX_TENSORS);
    if (f->n == f->cap) {
        int cap = f->cap ? 2 * f->cap : 64;
        st_tensor *t = nn__realloc(f->t, (size_t)cap * sizeof *t);
        if (!t) return NN_ERR_NOMEM;
        f->t = t;
        f->cap = cap;
    }
    size_t len = strlen(name) + 1;
    /* A decoded name is shorter than its JSON text, so the pool (as large
     * as the header) cannot overflow; the check is a seat belt. */
    if (len > f->pool_cap - f->pool_used) return jfail(j, "name pool full");
    char *copy = f->pool + f->pool_used;
    memcpy(copy, name, len);
    f->pool_used += len;
    st_tensor *t = &f->t[f->n++];
    memset(t, 0, sizeof *t);
    t->name = copy;
    return entry(j, t);
}

static nn_status parse_header(st_file *f, const uint8_t *h, size_t len)
{
    json j = {.p = h, .start = h, .end = h + len, .f = f};
    bool have_meta = false;
    f->pool = nn__alloc(len + 1);
    if (!f->pool) return NN_ERR_NOMEM;
    f->pool_cap = len + 1;
    NN_TRY(expect(&j, '{'));
    if (!take(&j, '}')) {
        do {
            char key[ST_MAX_KEY + 1];
            NN_TRY(string(&j, key, sizeof key, "tensor name"));
            NN_TRY(expect(&j, ':'));
            if (!strcmp(key, "__metadata__")) {
                if (have_meta) return jfail(&j, "__metadata__ given twice");
                have_meta = true;
                NN_TRY(metadata(&j));
                continue;
            }
            snprintf(j.tensor, sizeof j.tensor, "%s", key);
            NN_TRY(add_tensor(&j, key));
        } while (take(&j, ','));
        NN_TRY(expect(&j, '}'));
    }
    ws(&j);
    if (j.p != j.end) return jfail(&j, "bytes after the header object");
    return NN_OK;
}

/* ---------------- the data buffer ---------------- */

static nn_status check_extent(const st_file *f, const st_tensor *t)
{
    uint64_t count = 1;
    for (int i = 0; i < t->rank; i++) {
        if (t->shape[i] && count > ST_MAX_DIM / (uint64_t)t->shape[i])
            return fail_tensor(NN_ERR_FORMAT, f, t->name, "shape is too large");
        count *= (uint64_t)t->shape[i];
    }
    uint64_t bytes = count * dtypes[t->dtype].bytes;
    if (t->end < t->begin)
        return fail_tensor(NN_ERR_FORMAT, f, t->name,
                           "data_offsets [%llu, %llu] run backwards",
                           (unsigned long long)t->begin,
                           (unsigned long long)t->end);
    if (t->end > f->data_len)
        return fail_tensor(NN_ERR_FORMAT, f, t->name,
                           "data_offsets [%llu, %llu] reach past the data "
                           "(%llu bytes): the file is truncated or corrupt",
                           (unsigned long long)t->begin,
                           (unsigned long long)t->end,
                           (unsigned long long)f->data_len);
    if (t->end - t->begin != bytes)
        return fail_tensor(NN_ERR_FORMAT, f, t->name,
                           "data_offsets [%llu, %llu] hold %llu bytes, its "
                           "shape and dtype %s need %llu",
                           (unsigned long long)t->begin,
                           (unsigned long long)t->end,
                           (unsigned long long)(t->end - t->begin),
                           dtypes[t->dtype].name, (unsigned long long)bytes);
    return NN_OK;
}

static int by_begin(const void *a, const void *b)
{
    const st_tensor *x = *(st_tensor *const *)a, *y = *(st_tensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp((*(st_tensor *const *)a)->name,
                  (*(st_tensor *const *)b)->name);
}

/* The tensors must tile the data buffer exactly: no overlap, no gap, no
 * trailing bytes (the format forbids holes, so no file is two formats). */
static nn_status check_tiling(const st_file *f, st_tensor **order)
{
    qsort(order, (size_t)f->n, sizeof *order, by_begin);
    uint64_t at = 0;
    const st_tensor *prev = NULL;
    for (int i = 0; i < f->n; i++) {
        const st_tensor *t = order[i];
        char pb[ST_MAX_KEY + 1];
        if (t->begin < at)
            return fail_tensor(NN_ERR_FORMAT, f, t->name,
                               "its data [%llu, %llu] overlaps tensor '%s'",
                               (unsigned long long)t->begin,
                               (unsigned long long)t->end,
                               shown(prev->name, pb, sizeof pb));
        if (t->begin > at)
            return fail_tensor(NN_ERR_FORMAT, f, t->name,
                               "a gap of %llu unused bytes precedes its data",
                               (unsigned long long)(t->begin - at));
        at = t->end;
        prev = t;
    }
    if (at != f->data_len) {
        if (!prev)
            return nn__fail(NN_ERR_FORMAT,
                            "safetensors '%s': %llu data bytes but no tensor",
                            f->path, (unsigned long long)f->data_len);
        return fail_tensor(NN_ERR_FORMAT, f, prev->name,
                           "%llu unused bytes follow its data, the last",
                           (unsigned long long)(f->data_len - at));
    }
    return NN_OK;
}

static nn_status check_data(st_file *f, st_tensor **order)
{
    for (int i = 0; i < f->n; i++) {
        NN_TRY(check_extent(f, &f->t[i]));
        order[i] = &f->t[i];
    }
    NN_TRY(check_tiling(f, order));
    qsort(order, (size_t)f->n, sizeof *order, by_name);
    for (int i = 1; i < f->n; i++)
        if (!strcmp(order[i - 1]->name, order[i]->name))
            return fail_tensor(NN_ERR_FORMAT, f, order[i]->name,
                               "appears twice in the header");
    return NN_OK;
}

/* ---------------- reading the file ---------------- */

/* The 8-byte header length, checked against the file before it is read. */
static nn_status check_envelope(const uint8_t *head, size_t n, uint64_t size,
                                void *ctx)
{
    const char *path = ctx;
    NN_CHECK(size >= 8, NN_ERR_FORMAT,
             "safetensors '%s': %llu bytes, too short for the 8-byte header "
             "length", path, (unsigned long long)size);
    uint64_t len = nn__get_le64(head);
    NN_CHECK(len >= 2 && len <= size - 8, NN_ERR_FORMAT,
             "safetensors '%s': header length %llu does not fit the file "
             "(%llu bytes): truncated or not a safetensors file",
             path, (unsigned long long)len, (unsigned long long)size);
    NN_CHECK(len <= ST_MAX_HEADER, NN_ERR_FORMAT,
             "safetensors '%s': header of %llu bytes, more than the limit of "
             "100 MiB", path, (unsigned long long)len);
    return NN_OK;
}

static nn_status open_file(st_file *f, st_tensor ***order)
{
    nn_file_head head = {8, check_envelope, (void *)f->path};
    NN_TRY(nn__file_read_all(f->path, "safetensors", ST_MAX_FILE, &head,
                             &f->buf, &f->size));
    uint64_t n = nn__get_le64(f->buf);
    f->data = f->buf + 8 + n;
    f->data_len = f->size - 8 - n;
    NN_TRY(parse_header(f, f->buf + 8, (size_t)n));
    *order = nn__calloc(f->n ? (size_t)f->n : 1, sizeof **order);
    if (!*order) return NN_ERR_NOMEM;
    return check_data(f, *order);
}

static void close_file(st_file *f)
{
    nn__free(f->buf);
    nn__free(f->t);
    nn__free(f->pool);
}

/* ---------------- binding tensors to parameters ---------------- */

typedef struct binding {
    nn_layer *layer;
    nn_param *param;
    st_tensor *t;
    nn_torch_layout layout;
} binding;

static nn_status key_of(nn_weight_map map, nn_layer *l, nn_param *p,
                        char *key, size_t cap, nn_torch_layout *layout)
{
    const nn_torch_map *tm = nn__torch_map(map);
    if (tm) {
        NN_CHECK(tm->key(l, p, key, cap, layout), NN_ERR_UNSUPPORTED,
                 "safetensors: layer '%s' (%s) has no torchvision %s name; "
                 "load torchvision %s weights into a model built by %s",
                 l->name, l->ops->type_name, tm->model, tm->model,
                 tm->builder);
        return NN_OK;
    }
    *layout = NN_TORCH_SAME;
    int n = snprintf(key, cap, "%s/%s", l->name, p->name);
    NN_CHECK(n > 0 && (size_t)n < cap, NN_ERR_UNSUPPORTED,
             "safetensors: weight name of layer '%s' is too long", l->name);
    return NN_OK;
}

/* The file's shape for a parameter of libnn shape `s`. */
static void file_shape(const nn_tensor *s, nn_torch_layout layout,
                       int64_t *out)
{
    for (int i = 0; i < s->rank; i++) out[i] = s->shape[i];
    if (layout == NN_TORCH_CONV && s->rank == 4) {
        out[0] = s->shape[3];
        out[1] = s->shape[2];
        out[2] = s->shape[0];
        out[3] = s->shape[1];
    } else if (layout == NN_TORCH_LINEAR && s->rank == 2) {
        out[0] = s->shape[1];
        out[1] = s->shape[0];
    } else if (layout == NN_TORCH_DEPTHWISE && s->rank == 4) {
        out[0] = s->shape[2] * s->shape[3];
        out[1] = 1;
        out[2] = s->shape[0];
        out[3] = s->shape[1];
    }
}

static void shape_text(const int64_t *d, int rank, char *out, size_t cap)
{
    nn_sbuf s = {out, cap, 0};
    nn__sbuf_put(&s, "[");
    for (int i = 0; i < rank; i++)
        nn__sbuf_put(&s, "%s%lld", i ? ", " : "", (long long)d[i]);
    nn__sbuf_put(&s, "]");
    nn__sbuf_finish(&s, NULL);
}

static st_tensor *find(st_tensor **sorted, int n, const char *key)
{
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(sorted[mid]->name, key);
        if (c == 0) return sorted[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

static float f32_at(const uint8_t *p, size_t i)
{
    uint32_t u = nn__get_le32(p + 4 * i);
    float v;
    memcpy(&v, &u, sizeof v);
    return v;
}

static nn_status check_binding(const st_file *f, const binding *b,
                               const char *key)
{
    const st_tensor *t = b->t;
    if (t->dtype != DTYPE_F32)
        return fail_tensor(NN_ERR_UNSUPPORTED, f, key,
                           "dtype %s; only F32 can be loaded (convert with "
                           "tensor.float() before exporting)",
                           dtypes[t->dtype].name);
    int64_t want[NN_MAX_RANK];
    const nn_tensor *v = &b->param->value;
    file_shape(v, b->layout, want);
    bool same = t->rank == v->rank;
    for (int i = 0; same && i < v->rank; i++) same = t->shape[i] == want[i];
    if (!same) {
        char got[128], exp[128];
        shape_text(t->shape, t->rank, got, sizeof got);
        shape_text(want, v->rank, exp, sizeof exp);
        return fail_tensor(NN_ERR_SHAPE, f, key,
                           "shape %s, but '%s/%s' needs %s", got,
                           b->layer->name, b->param->name, exp);
    }
    const uint8_t *p = f->data + t->begin;
    for (int64_t i = 0; i < v->size; i++)
        if (!isfinite(f32_at(p, (size_t)i)))
            return fail_tensor(NN_ERR_NUMERIC, f, key,
                               "value %lld is NaN or infinite", (long long)i);
    return NN_OK;
}

static nn_status missing(const st_file *f, nn_weight_map map,
                         const binding *b, const char *key)
{
    const nn_torch_map *tm = nn__torch_map(map);
    bool conv_bias = tm && b->layer->kind == NN_KIND_CONV2D &&
                     !strcmp(b->param->name, "bias");
    return fail_tensor(NN_ERR_FORMAT, f, key,
                       "missing from the file (needed for '%s/%s')%s%s",
                       b->layer->name, b->param->name,
                       conv_bias ? "; torchvision's convolutions have no "
                                   "bias: build the model with "
                                 : "",
                       conv_bias ? tm->builder : "");
}

/* Pairs every parameter of m with its tensor and checks each pair. */
static nn_status bind(const st_file *f, st_tensor **sorted, nn_model *m,
                      nn_weight_map map, binding *b, int *nb)
{
    int k = 0;
    for (int i = 0; i < m->n_layers; i++) {
        nn_layer *l = m->layers[i];
        for (int j = 0; j < l->n_params; j++, k++) {
            char key[ST_MAX_KEY + NN_NAME_MAX];
            binding *x = &b[k];
            x->layer = l;
            x->param = &l->params[j];
            NN_TRY(key_of(map, l, x->param, key, sizeof key, &x->layout));
            x->t = find(sorted, f->n, key);
            if (!x->t) return missing(f, map, x, key);
            if (x->t->used)
                return fail_tensor(NN_ERR_FORMAT, f, key,
                                   "claimed by two weights of the model");
            x->t->used = true;
            NN_TRY(check_binding(f, x, key));
        }
    }
    *nb = k;
    return NN_OK;
}

/* Tensors of a torchvision file that a model may leave unused: BatchNorm's
 * step counters, and the classifier when the model has no top (as Keras
 * loads ImageNet weights into include_top=False). */
static bool skippable(nn_weight_map map, bool has_top, const char *name)
{
    static const char tail[] = ".num_batches_tracked";
    size_t n = strlen(name), t = sizeof tail - 1;
    const nn_torch_map *tm = nn__torch_map(map);
    if (!tm) return false;
    if (n > t && !strcmp(name + n - t, tail)) return true;
    return !has_top &&
           !strncmp(name, tm->top_prefix, strlen(tm->top_prefix));
}

static nn_status check_extra(const st_file *f, const nn_model *m,
                             nn_weight_map map)
{
    bool has_top = false;
    for (int i = 0; i < m->n_layers; i++)
        has_top = has_top || !strcmp(m->layers[i]->name, "predictions");
    for (int i = 0; i < f->n; i++)
        if (!f->t[i].used && !skippable(map, has_top, f->t[i].name))
            return fail_tensor(NN_ERR_FORMAT, f, f->t[i].name,
                               "not a weight of the model (extra tensor)");
    return NN_OK;
}

static void store(const st_file *f, const binding *b)
{
    const nn_tensor *v = &b->param->value;
    const uint8_t *p = f->data + b->t->begin;
    float *dst = v->data;
    if (b->layout == NN_TORCH_CONV && v->rank == 4) {
        /* [out, in, kh, kw] -> [kh, kw, in, out] */
        int64_t kh = v->shape[0], kw = v->shape[1], ci = v->shape[2],
                co = v->shape[3];
        for (int64_t o = 0; o < co; o++)
            for (int64_t i = 0; i < ci; i++)
                for (int64_t y = 0; y < kh; y++)
                    for (int64_t x = 0; x < kw; x++)
                        dst[((y * kw + x) * ci + i) * co + o] = f32_at(
                            p, (size_t)(((o * ci + i) * kh + y) * kw + x));
    } else if (b->layout == NN_TORCH_LINEAR && v->rank == 2) {
        /* [out, in] -> [in, out] */
        int64_t in = v->shape[0], out = v->shape[1];
        for (int64_t o = 0; o < out; o++)
            for (int64_t i = 0; i < in; i++)
                dst[i * out + o] = f32_at(p, (size_t)(o * in + i));
    } else if (b->layout == NN_TORCH_DEPTHWISE && v->rank == 4) {
        /* [in * mult, 1, kh, kw] -> [kh, kw, in, mult]: torch's output
         * channel c * mult + k is libnn's (c, k), so both index the
         * channels in the same order */
        int64_t kh = v->shape[0], kw = v->shape[1],
                ch = v->shape[2] * v->shape[3];
        for (int64_t c = 0; c < ch; c++)
            for (int64_t y = 0; y < kh; y++)
                for (int64_t x = 0; x < kw; x++)
                    dst[(y * kw + x) * ch + c] =
                        f32_at(p, (size_t)((c * kh + y) * kw + x));
    } else {
        for (int64_t i = 0; i < v->size; i++) dst[i] = f32_at(p, (size_t)i);
    }
}

static int count_params(const nn_model *m)
{
    int n = 0;
    for (int i = 0; i < m->n_layers; i++) n += m->layers[i]->n_params;
    return n;
}

nn_status nn_model_load_safetensors(nn_model *m, const char *path,
                                    nn_weight_map map)
{
    NN_CHECK(m && path, NN_ERR_INVALID,
             "nn_model_load_safetensors: NULL argument");
    NN_CHECK(map == NN_WEIGHTS_LIBNN || nn__torch_map(map), NN_ERR_INVALID,
             "nn_model_load_safetensors: unknown map %d", (int)map);
    st_file f = {.path = path};
    st_tensor **sorted = NULL;
    binding *b = NULL;
    int nb = 0;
    int np = count_params(m);
    nn_status s = open_file(&f, &sorted);
    if (s == NN_OK && !(b = nn__calloc(np ? (size_t)np : 1, sizeof *b)))
        s = NN_ERR_NOMEM;
    if (s == NN_OK) s = bind(&f, sorted, m, map, b, &nb);
    if (s == NN_OK) s = check_extra(&f, m, map);
    if (s == NN_OK)
        for (int i = 0; i < nb; i++) store(&f, &b[i]);
    nn__free(b);
    nn__free(sorted);
    close_file(&f);
    return s;
}

/* ---------------- writing ---------------- */

/* A JSON string literal. */
static void put_quoted(nn_sbuf *t, const char *s)
{
    nn__sbuf_put(t, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            nn__sbuf_put(t, "\\%c", c);
        else if (c < 0x20)
            nn__sbuf_put(t, "\\u%04x", c);
        else
            nn__sbuf_put(t, "%c", c);
    }
    nn__sbuf_put(t, "\"");
}

/* The header, padded with spaces so the data starts 8-byte aligned. */
static void header_text(nn_sbuf *t, const nn_model *m)
{
    uint64_t off = 0;
    nn__sbuf_put(t, "{\"__metadata__\":{\"format\":\"libnn\"}");
    for (int i = 0; i < m->n_layers; i++) {
        const nn_layer *l = m->layers[i];
        for (int j = 0; j < l->n_params; j++) {
            const nn_tensor *v = &l->params[j].value;
            char key[2 * NN_NAME_MAX];
            snprintf(key, sizeof key, "%s/%s", l->name, l->params[j].name);
            nn__sbuf_put(t, ",");
            put_quoted(t, key);
            nn__sbuf_put(t, ":{\"dtype\":\"F32\",\"shape\":[");
            for (int d = 0; d < v->rank; d++)
                nn__sbuf_put(t, "%s%lld", d ? "," : "", (long long)v->shape[d]);
            uint64_t end = off + (uint64_t)v->size * 4;
            nn__sbuf_put(t, "],\"data_offsets\":[%llu,%llu]}",
                         (unsigned long long)off, (unsigned long long)end);
            off = end;
        }
    }
    nn__sbuf_put(t, "}");
    while (t->len % 8) nn__sbuf_put(t, " ");
}

/* Keeps the first error in *err; writes nothing after one. */
static void write_all(FILE *fp, const void *p, size_t n, int *err)
{
    if (!*err && fwrite(p, 1, n, fp) != n) *err = errno ? errno : EIO;
}

static void write_floats(FILE *fp, const nn_tensor *v, int *err)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    write_all(fp, v->data, (size_t)v->size * 4, err);
#else
    for (int64_t i = 0; i < v->size && !*err; i++) {
        uint8_t b[4];
        uint32_t u;
        memcpy(&u, &v->data[i], 4);
        nn__put_le32(b, u);
        write_all(fp, b, 4, err);
    }
#endif
}

typedef struct st_job {
    const nn_model *m;
    const nn_sbuf *header;
} st_job;

static nn_status write_body(FILE *fp, void *ctx)
{
    const st_job *job = ctx;
    const nn_model *m = job->m;
    int err = 0;
    uint8_t len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (uint8_t)((uint64_t)job->header->len >> (8 * i));
    write_all(fp, len, 8, &err);
    write_all(fp, job->header->buf, job->header->len, &err);
    for (int i = 0; i < m->n_layers; i++)
        for (int j = 0; j < m->layers[i]->n_params; j++)
            write_floats(fp, &m->layers[i]->params[j].value, &err);
    if (err) errno = err; /* ferror(fp) is set; the replacer reports errno */
    return NN_OK;
}

nn_status nn_model_save_safetensors(const nn_model *m, const char *path)
{
    NN_CHECK(m && path, NN_ERR_INVALID,
             "nn_model_save_safetensors: NULL argument");
    NN_CHECK(path[0], NN_ERR_INVALID, "nn_model_save_safetensors: empty path");
    nn_sbuf h = {0};
    header_text(&h, m);
    NN_CHECK(h.len <= ST_MAX_HEADER, NN_ERR_UNSUPPORTED,
             "nn_model_save_safetensors: header of %zu bytes is too large",
             h.len);
    h.cap = h.len + 1;
    h.buf = nn__alloc(h.cap);
    if (!h.buf) return NN_ERR_NOMEM;
    h.len = 0;
    header_text(&h, m);
    nn__sbuf_finish(&h, NULL);
    st_job job = {m, &h};
    nn_status s = nn__file_replace(path, "nn_model_save_safetensors",
                                   write_body, &job);
    nn__free(h.buf);
    return s;
}
