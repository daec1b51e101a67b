/* Fuzz target: nn_load_idx, plain and gzip. The first byte's bit 0 asks
 * for the rest to be gzip-compressed before it is written (so mutations
 * reach the IDX parser through zlib too; seeds that are gzip files already
 * exercise the stream itself), bit 1 for scaling. A loaded tensor must
 * have the shape its header gives and values a byte can give. */
#include "fuzz.h"

#include <zlib.h>

static void write_gzip(const char *path, const uint8_t *p, size_t n)
{
    gzFile g = gzopen(path, "wb1");
    FUZZ_CHECK(g, "gzopen %s", path);
    FUZZ_CHECK(n == 0 || gzwrite(g, p, (unsigned)n) == (int)n, "gzwrite");
    FUZZ_CHECK(gzclose(g) == Z_OK, "gzclose");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_init();
    if (size < 1) return 0;
    bool gz = data[0] & 1, scale = data[0] & 2;
    const char *path = fuzz_path(gz ? "input.idx.gz" : "input.idx");
    if (gz)
        write_gzip(path, data + 1, size - 1);
    else
        fuzz_write(path, data + 1, size - 1);
    nn_tensor *t = NULL;
    nn_status s = nn_load_idx(path, scale, &t);
    if (s != NN_OK) {
        FUZZ_CHECK(!t, "a failed load returned a tensor");
        fuzz_check_failure(s, "nn_load_idx");
        return 0;
    }
    int64_t n = 1;
    for (int i = 0; i < t->rank; i++) n *= t->shape[i];
    FUZZ_CHECK(n == t->size && n > 0, "shape and size disagree");
    FUZZ_CHECK(t->size * 4 <= FUZZ_DATA_BYTES, "the data limit was passed");
    float top = scale && t->rank != 1 ? 1.0f : 255.0f;
    for (int64_t i = 0; i < t->size; i++)
        FUZZ_CHECK(t->data[i] >= 0 && t->data[i] <= top, "value %g",
                   (double)t->data[i]);
    nn_tensor_free(t);
    return 0;
}
