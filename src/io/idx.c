/* IDX files (MNIST, Fashion-MNIST): magic 00 00 <type> <rank>, then `rank`
 * big-endian u32 dimensions, then the elements row-major. zlib's gz*
 * functions read plain and gzip files alike. The header is untrusted: its
 * claimed size is capped (and checked against the caller's data limit,
 * nn_set_limits) before anything is allocated, and for compressed
 * input the buffer grows with the data actually decompressed, so a tiny
 * hostile file cannot make us allocate gigabytes. */
#include "io/io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define IDX_UBYTE 0x08
#define IDX_MAX_RANK 4
#define FIRST_CHUNK ((size_t)1 << 20)

typedef struct idx_reader {
    const char *path;
    gzFile gz;
    int64_t plain_size; /* file size when uncompressed, else -1 */
} idx_reader;

static const char *type_name(int type)
{
    switch (type) {
    case 0x08: return "ubyte";
    case 0x09: return "sbyte";
    case 0x0B: return "int16";
    case 0x0C: return "int32";
    case 0x0D: return "float32";
    case 0x0E: return "float64";
    }
    return NULL;
}

static nn_status reader_open(idx_reader *r, const char *path)
{
    r->path = path;
    int fd = -1;
    uint64_t size = 0;
    NN_TRY(nn__file_open(path, "idx", &fd, &size));
    r->gz = gzdopen(fd, "rb");
    if (!r->gz) {
        close(fd);
        return nn__fail(NN_ERR_NOMEM, "idx: '%s': cannot start zlib", path);
    }
    gzbuffer(r->gz, 1u << 17); /* must precede the first read */
    r->plain_size = gzdirect(r->gz) ? (int64_t)size : -1;
    return NN_OK;
}

/* Reads up to n bytes into buf; *got receives how many were read. A short
 * count means end of input; a damaged stream is an error. */
static nn_status reader_read(idx_reader *r, uint8_t *buf, size_t n,
                             size_t *got)
{
    size_t done = 0;
    while (done < n) {
        size_t left = n - done;
        unsigned chunk = left > (1u << 30) ? 1u << 30 : (unsigned)left;
        int k = gzread(r->gz, buf + done, chunk);
        if (k <= 0) {
            int err = Z_OK;
            const char *msg = gzerror(r->gz, &err);
            if (err == Z_ERRNO)
                return nn__fail(NN_ERR_IO, "idx: reading '%s': %s", r->path,
                                strerror(errno));
            if (err != Z_OK && err != Z_STREAM_END)
                return nn__fail(NN_ERR_FORMAT,
                                "idx: '%s': corrupt or truncated gzip data "
                                "(%s)",
                                r->path, msg);
            break;
        }
        done += (size_t)k;
    }
    *got = done;
    return NN_OK;
}

typedef struct idx_header {
    int type, rank;
    int64_t dims[IDX_MAX_RANK];
    uint64_t elems;
    uint64_t bytes; /* header bytes */
} idx_header;

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           (uint32_t)p[3];
}

static nn_status check_magic(const idx_reader *r, const uint8_t *m,
                             idx_header *h)
{
    NN_CHECK(m[0] == 0 && m[1] == 0, NN_ERR_FORMAT,
             "idx: '%s' is not an IDX file (bad magic %02x %02x)", r->path,
             m[0], m[1]);
    h->type = m[2];
    h->rank = m[3];
    NN_CHECK(type_name(h->type), NN_ERR_FORMAT,
             "idx: '%s': unknown element type 0x%02x", r->path, h->type);
    NN_CHECK(h->type == IDX_UBYTE, NN_ERR_UNSUPPORTED,
             "idx: '%s': element type %s (0x%02x) is not supported, only "
             "ubyte (0x08)",
             r->path, type_name(h->type), h->type);
    NN_CHECK(h->rank >= 1 && h->rank <= IDX_MAX_RANK, NN_ERR_FORMAT,
             "idx: '%s': rank %d outside 1..%d", r->path, h->rank,
             IDX_MAX_RANK);
    return NN_OK;
}

static nn_status read_header(idx_reader *r, idx_header *h)
{
    uint8_t buf[4 + 4 * IDX_MAX_RANK];
    size_t got = 0;
    NN_TRY(reader_read(r, buf, 4, &got));
    NN_CHECK(got > 0, NN_ERR_FORMAT, "idx: '%s' is empty", r->path);
    NN_CHECK(got == 4, NN_ERR_FORMAT, "idx: '%s': truncated header", r->path);
    NN_TRY(check_magic(r, buf, h));
    size_t dim_bytes = 4 * (size_t)h->rank;
    NN_TRY(reader_read(r, buf + 4, dim_bytes, &got));
    NN_CHECK(got == dim_bytes, NN_ERR_FORMAT,
             "idx: '%s': truncated header (%zu of %zu dimension bytes)",
             r->path, got, dim_bytes);
    h->elems = 1;
    for (int i = 0; i < h->rank; i++) {
        uint64_t d = be32(buf + 4 + 4 * i);
        NN_CHECK(d > 0, NN_ERR_FORMAT, "idx: '%s': dimension %d is 0",
                 r->path, i);
        NN_CHECK(d <= NN_IDX_MAX_ELEMS / h->elems, NN_ERR_FORMAT,
                 "idx: '%s': the header claims more than %llu elements",
                 r->path, (unsigned long long)NN_IDX_MAX_ELEMS);
        h->elems *= d;
        h->dims[i] = (int64_t)d;
    }
    h->bytes = 4 + dim_bytes;
    return NN_OK;
}

/* For an uncompressed file the size is known, so a wrong claim fails
 * before any allocation. */
static nn_status check_plain_size(const idx_reader *r, const idx_header *h)
{
    if (r->plain_size < 0) return NN_OK;
    uint64_t have = (uint64_t)r->plain_size - h->bytes;
    NN_CHECK(have >= h->elems, NN_ERR_FORMAT,
             "idx: '%s': truncated: expected %llu bytes of data, the file "
             "has %llu",
             r->path, (unsigned long long)h->elems, (unsigned long long)have);
    NN_CHECK(have == h->elems, NN_ERR_FORMAT,
             "idx: '%s': %llu bytes of trailing garbage after the data",
             r->path, (unsigned long long)(have - h->elems));
    return NN_OK;
}

/* The tensor the header promises must fit the caller's data limit
 * (nn_set_limits), checked before any data is read: compressed data cannot
 * inflate past it. */
static nn_status check_limit(const idx_reader *r, const idx_header *h)
{
    char what[300];
    snprintf(what, sizeof what, "idx: '%.280s'", r->path);
    return nn__check_data_bytes(what, h->elems * sizeof(float));
}

/* Reads exactly h->elems bytes into a buffer that grows with the data. */
static nn_status read_data(idx_reader *r, const idx_header *h, uint8_t **out)
{
    size_t want = (size_t)h->elems;
    size_t cap = r->plain_size >= 0 || want < FIRST_CHUNK ? want : FIRST_CHUNK;
    size_t have = 0;
    uint8_t *buf = nn__alloc(cap);
    if (!buf) return NN_ERR_NOMEM;
    nn_status s = NN_OK;
    for (;;) {
        size_t got = 0;
        s = reader_read(r, buf + have, cap - have, &got);
        have += got;
        if (s != NN_OK || have < cap || have == want) break;
        size_t next = cap > want / 2 ? want : 2 * cap;
        uint8_t *p = nn__realloc(buf, next);
        if (!p) {
            s = NN_ERR_NOMEM;
            break;
        }
        buf = p;
        cap = next;
    }
    if (s == NN_OK && have < want)
        s = nn__fail(NN_ERR_FORMAT,
                     "idx: '%s': truncated: expected %zu bytes of data, got "
                     "%zu",
                     r->path, want, have);
    if (s == NN_OK) {
        uint8_t extra = 0;
        size_t got = 0;
        s = reader_read(r, &extra, 1, &got);
        if (s == NN_OK && got)
            s = nn__fail(NN_ERR_FORMAT,
                         "idx: '%s': trailing garbage after %zu bytes of "
                         "data",
                         r->path, want);
    }
    if (s != NN_OK) {
        nn__free(buf);
        return s;
    }
    *out = buf;
    return NN_OK;
}

/* Images (rank 3) gain a channel axis; labels (rank 1) are never scaled. */
static nn_status to_tensor(const idx_header *h, const uint8_t *bytes,
                           int scale, nn_tensor **out)
{
    int64_t shape[IDX_MAX_RANK + 1];
    int rank = h->rank;
    memcpy(shape, h->dims, (size_t)rank * sizeof *shape);
    if (rank == 3) shape[rank++] = 1;
    nn_tensor *t = nn_tensor_create(rank, shape);
    if (!t) return NN_ERR_NOMEM;
    /* Divide rather than multiply by 1/255 so values match x / 255 in
     * float32 exactly, as Keras' preprocessing computes them. */
    float k = (scale && h->rank != 1) ? 255.0f : 1.0f;
    for (size_t i = 0; i < (size_t)h->elems; i++)
        t->data[i] = (float)bytes[i] / k;
    *out = t;
    return NN_OK;
}

nn_status nn_load_idx(const char *path, int scale, nn_tensor **out)
{
    NN_CHECK(out, NN_ERR_INVALID, "nn_load_idx: out is NULL");
    *out = NULL;
    NN_CHECK(path, NN_ERR_INVALID, "nn_load_idx: path is NULL");
    idx_reader r = {0};
    NN_TRY(reader_open(&r, path));
    idx_header h = {0};
    uint8_t *bytes = NULL;
    nn_status s = read_header(&r, &h);
    if (s == NN_OK) s = check_plain_size(&r, &h);
    if (s == NN_OK) s = check_limit(&r, &h);
    if (s == NN_OK) s = read_data(&r, &h, &bytes);
    gzclose_r(r.gz);
    if (s == NN_OK) s = to_tensor(&h, bytes, scale, out);
    nn__free(bytes);
    return s;
}
