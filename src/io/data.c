/* Small data-preparation helpers. */
#include "io/io.h"

#include <math.h>

#define MAX_CLASSES (1 << 24)

nn_status nn_one_hot(const nn_tensor *labels, int num_classes, nn_tensor **out)
{
    NN_CHECK(out, NN_ERR_INVALID, "nn_one_hot: out is NULL");
    *out = NULL;
    NN_CHECK(labels, NN_ERR_INVALID, "nn_one_hot: labels is NULL");
    NN_CHECK(labels->rank == 1 || (labels->rank == 2 && labels->shape[1] == 1),
             NN_ERR_SHAPE, "nn_one_hot: labels must be [N] or [N, 1], got "
             "rank %d", labels->rank);
    NN_CHECK(num_classes >= 1 && num_classes <= MAX_CLASSES, NN_ERR_INVALID,
             "nn_one_hot: num_classes %d outside 1..%d", num_classes,
             MAX_CLASSES);
    int64_t n = labels->shape[0];
    NN_CHECK(n <= ((int64_t)1 << 40) / num_classes, NN_ERR_INVALID,
             "nn_one_hot: %lld x %d values is too large", (long long)n,
             num_classes);
    /* Validate everything before allocating so a bad label costs nothing. */
    for (int64_t i = 0; i < n; i++) {
        float v = labels->data[i];
        NN_CHECK(isfinite(v) && v == floorf(v) && v >= 0.0f &&
                     v < (float)num_classes,
                 NN_ERR_INVALID,
                 "nn_one_hot: label %lld is %g, not a class id in [0, %d)",
                 (long long)i, (double)v, num_classes);
    }
    int64_t shape[2] = {n, num_classes};
    nn_tensor *t = nn_tensor_create(2, shape);
    if (!t) return NN_ERR_NOMEM;
    for (int64_t i = 0; i < n; i++)
        t->data[i * num_classes + (int64_t)labels->data[i]] = 1.0f;
    *out = t;
    return NN_OK;
}
