/* Fuzz target: nn_load_cifar10 over one to three files. The first byte
 * picks how many, the next two 16-bit little-endian numbers the sizes of
 * the first two (clamped to what is left); the rest of the input is the
 * files' bytes in order. Loaded images must lie in [0, 1], labels be class
 * ids, and the record count be the files'. */
#include "fuzz.h"

enum { HEAD = 5 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_init();
    if (size < HEAD) return 0;
    int count = 1 + data[0] % 3;
    const uint8_t *body = data + HEAD;
    size_t left = size - HEAD, bytes = 0;
    static const char *const names[3] = {"a.bin", "b.bin", "c.bin"};
    const char *paths[3];
    for (int i = 0; i < count; i++) {
        size_t n = i == count - 1 ? left
                                  : (size_t)(data[1 + 2 * i] |
                                             data[2 + 2 * i] << 8);
        if (n > left) n = left;
        paths[i] = fuzz_path(names[i]);
        fuzz_write(paths[i], body, n);
        body += n;
        left -= n;
        bytes += n;
    }
    nn_tensor *x = NULL, *y = NULL;
    nn_status s = nn_load_cifar10(paths, count, &x, &y);
    if (s != NN_OK) {
        FUZZ_CHECK(!x && !y, "a failed load returned tensors");
        fuzz_check_failure(s, "nn_load_cifar10");
        return 0;
    }
    int64_t n = y->shape[0];
    FUZZ_CHECK(n * 3073 == (int64_t)bytes, "%lld records from %zu bytes",
               (long long)n, bytes);
    FUZZ_CHECK(x->rank == 4 && x->shape[0] == n && x->shape[1] == 32 &&
                   x->shape[2] == 32 && x->shape[3] == 3,
               "image shape");
    for (int64_t i = 0; i < n; i++)
        FUZZ_CHECK(y->data[i] >= 0 && y->data[i] <= 9 &&
                       y->data[i] == (float)(int)y->data[i],
                   "label %g", (double)y->data[i]);
    for (int64_t i = 0; i < x->size; i++)
        FUZZ_CHECK(x->data[i] >= 0 && x->data[i] <= 1, "pixel %g",
                   (double)x->data[i]);
    nn_tensor_free(x);
    nn_tensor_free(y);
    return 0;
}
