/* CIFAR-10 binary batches: records of 1 label byte then a 32x32 image as
 * three row-major planes (all red, all green, all blue). We de-interleave
 * into NHWC. File sizes are checked up front so the tensors are allocated
 * once, at the size the data really has. */
#include "io/io.h"

#include <string.h>
#include <unistd.h>

#define CIFAR_SIDE 32
#define CIFAR_PLANE (CIFAR_SIDE * CIFAR_SIDE)
#define CIFAR_PIXELS (3 * CIFAR_PLANE)
#define CIFAR_RECORD (1 + CIFAR_PIXELS)
#define CIFAR_CLASSES 10
#define CIFAR_MAX_FILES 1024
#define CIFAR_MAX_RECORDS ((int64_t)1 << 24)
#define CIFAR_BLOCK 256 /* records per read */

static nn_status open_batch(const char *path, int *fd, int64_t *records)
{
    uint64_t size = 0;
    NN_TRY(nn__file_open(path, "cifar10", fd, &size));
    if (size == 0 || size % CIFAR_RECORD != 0) {
        close(*fd);
        *fd = -1;
        return nn__fail(NN_ERR_FORMAT,
                        "cifar10: '%s' has %llu bytes, not a positive "
                        "multiple of the %d-byte record",
                        path, (unsigned long long)size, CIFAR_RECORD);
    }
    *records = (int64_t)(size / CIFAR_RECORD);
    return NN_OK;
}

static nn_status count_records(const char *const *paths, int count,
                               int64_t *total)
{
    *total = 0;
    for (int i = 0; i < count; i++) {
        NN_CHECK(paths[i], NN_ERR_INVALID, "nn_load_cifar10: paths[%d] is NULL",
                 i);
        int fd = 0;
        int64_t n = 0;
        NN_TRY(open_batch(paths[i], &fd, &n));
        close(fd);
        NN_CHECK(n <= CIFAR_MAX_RECORDS - *total, NN_ERR_INVALID,
                 "cifar10: more than %lld records in %d files",
                 (long long)CIFAR_MAX_RECORDS, count);
        *total += n;
    }
    return NN_OK;
}

static nn_status decode(const char *path, const uint8_t *rec, int64_t index,
                        float *image, float *label)
{
    NN_CHECK(rec[0] < CIFAR_CLASSES, NN_ERR_FORMAT,
             "cifar10: '%s': record %lld has label %d, not a class id in "
             "[0, 10)", path,
             (long long)index, rec[0]);
    *label = (float)rec[0];
    const uint8_t *px = rec + 1;
    for (int p = 0; p < CIFAR_PLANE; p++)
        for (int c = 0; c < 3; c++)
            image[3 * p + c] = (float)px[c * CIFAR_PLANE + p] / 255.0f;
    return NN_OK;
}

/* Decodes the file's records into rows first.. of the tensors, which hold
 * `total` rows; *records receives how many the file had. */
static nn_status read_batch(const char *path, uint8_t *buf, int64_t first,
                            int64_t total, float *images, float *labels,
                            int64_t *records)
{
    int fd = 0;
    NN_TRY(open_batch(path, &fd, records));
    nn_status s = NN_OK;
    if (*records > total - first)
        s = nn__fail(NN_ERR_IO, "cifar10: '%s' grew while reading", path);
    for (int64_t r = 0; s == NN_OK && r < *records; r += CIFAR_BLOCK) {
        int64_t n = *records - r < CIFAR_BLOCK ? *records - r : CIFAR_BLOCK;
        size_t got = 0;
        s = nn__file_read(fd, path, "cifar10", buf, (size_t)n * CIFAR_RECORD,
                          &got);
        if (s == NN_OK && got != (size_t)n * CIFAR_RECORD)
            s = nn__fail(NN_ERR_IO, "cifar10: '%s' shrank while reading",
                         path);
        for (int64_t i = 0; s == NN_OK && i < n; i++) {
            int64_t row = first + r + i;
            s = decode(path, buf + i * CIFAR_RECORD, r + i,
                       images + row * CIFAR_PIXELS, labels + row);
        }
    }
    close(fd);
    return s;
}

nn_status nn_load_cifar10(const char *const *paths, int count,
                          nn_tensor **images, nn_tensor **labels)
{
    NN_CHECK(images && labels, NN_ERR_INVALID,
             "nn_load_cifar10: output pointer is NULL");
    *images = *labels = NULL;
    NN_CHECK(paths, NN_ERR_INVALID, "nn_load_cifar10: paths is NULL");
    NN_CHECK(count >= 1 && count <= CIFAR_MAX_FILES, NN_ERR_INVALID,
             "nn_load_cifar10: count %d outside 1..%d", count,
             CIFAR_MAX_FILES);
    int64_t total = 0;
    NN_TRY(count_records(paths, count, &total));
    NN_TRY(nn__check_data_bytes("cifar10: the files",
                                (uint64_t)total * (CIFAR_PIXELS + 1) *
                                    sizeof(float)));
    int64_t ishape[4] = {total, CIFAR_SIDE, CIFAR_SIDE, 3};
    nn_tensor *x = nn_tensor_create(4, ishape);
    nn_tensor *y = nn_tensor_create(1, &total);
    uint8_t *buf = nn__alloc((size_t)CIFAR_BLOCK * CIFAR_RECORD);
    nn_status s = (x && y && buf) ? NN_OK : NN_ERR_NOMEM;
    int64_t first = 0;
    for (int i = 0; s == NN_OK && i < count; i++) {
        int64_t n = 0;
        s = read_batch(paths[i], buf, first, total, x->data, y->data, &n);
        first += n;
    }
    if (s == NN_OK && first != total)
        s = nn__fail(NN_ERR_IO, "cifar10: files changed while reading");
    nn__free(buf);
    if (s != NN_OK) {
        nn_tensor_free(x);
        nn_tensor_free(y);
        return s;
    }
    *images = x;
    *labels = y;
    return NN_OK;
}
