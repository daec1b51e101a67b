/* Tensors: a shape and a float32 buffer, owned or borrowed; per-sample
 * shapes. */
#include "nn_internal.h"

#include <string.h>

#define MAX_ELEMS ((int64_t)1 << 40)

static nn_status check_shape(int rank, const int64_t *shape, int64_t *size)
{
    NN_CHECK(rank >= 1 && rank <= NN_MAX_RANK, NN_ERR_INVALID,
             "tensor: rank %d outside 1..%d", rank, NN_MAX_RANK);
    NN_CHECK(shape, NN_ERR_INVALID, "tensor: shape is NULL");
    int64_t n = 1;
    for (int i = 0; i < rank; i++) {
        NN_CHECK(shape[i] > 0 && shape[i] <= MAX_ELEMS / n, NN_ERR_INVALID,
                 "tensor: bad dimension %lld at axis %d", (long long)shape[i],
                 i);
        n *= shape[i];
    }
    *size = n;
    return NN_OK;
}

int64_t nn__shape_size(const nn_shape *s)
{
    int64_t n = 1;
    for (int i = 0; i < s->rank; i++) n *= s->d[i];
    return n;
}

void nn__shape_str(const nn_shape *s, char *out, size_t cap)
{
    nn_sbuf b = {out, cap, 0};
    nn__sbuf_put(&b, "(None");
    for (int i = 0; i < s->rank; i++) nn__sbuf_put(&b, ", %d", s->d[i]);
    nn__sbuf_put(&b, ")");
    nn__sbuf_finish(&b, NULL);
}

void nn__tensor_shape_str(const nn_tensor *t, char *out, size_t cap)
{
    nn_sbuf b = {out, cap, 0};
    for (int i = 0; i < t->rank; i++)
        nn__sbuf_put(&b, "%s%lld", i ? ", " : "(", (long long)t->shape[i]);
    nn__sbuf_put(&b, t->rank == 1 ? ",)" : ")");
    nn__sbuf_finish(&b, NULL);
}

void nn__tensor_view(nn_tensor *t, int rank, const int64_t *shape, float *data)
{
    memset(t, 0, sizeof *t);
    t->rank = rank;
    t->size = 1;
    for (int i = 0; i < rank; i++) {
        t->shape[i] = shape[i];
        t->size *= shape[i];
    }
    t->data = data;
}

static nn_tensor *tensor_new(int rank, const int64_t *shape, float *data)
{
    int64_t size = 0;
    if (check_shape(rank, shape, &size) != NN_OK) return NULL;
    nn_tensor *t = nn__calloc(1, sizeof *t);
    if (!t) return NULL;
    nn__tensor_view(t, rank, shape, data);
    if (!data) {
        t->data = nn__calloc((size_t)size, sizeof(float));
        if (!t->data) {
            nn__free(t);
            return NULL;
        }
        t->owned = true;
    }
    return t;
}

nn_tensor *nn_tensor_create(int rank, const int64_t *shape)
{
    return tensor_new(rank, shape, NULL);
}

nn_tensor *nn_tensor_wrap(int rank, const int64_t *shape, float *data)
{
    if (!data) {
        nn__fail(NN_ERR_INVALID, "nn_tensor_wrap: data is NULL");
        return NULL;
    }
    return tensor_new(rank, shape, data);
}

void nn_tensor_free(nn_tensor *t)
{
    if (!t) return;
    if (t->owned) nn__free(t->data);
    nn__free(t);
}

int nn_tensor_rank(const nn_tensor *t)
{
    if (!t) return nn__fail(NN_ERR_INVALID, "nn_tensor_rank: NULL tensor");
    return t->rank;
}

int64_t nn_tensor_dim(const nn_tensor *t, int axis)
{
    if (!t) return nn__fail(NN_ERR_INVALID, "nn_tensor_dim: NULL tensor");
    if (axis < 0) axis += t->rank;
    if (axis < 0 || axis >= t->rank)
        return nn__fail(NN_ERR_INVALID, "nn_tensor_dim: axis out of range");
    return t->shape[axis];
}

int64_t nn_tensor_size(const nn_tensor *t)
{
    if (!t) return nn__fail(NN_ERR_INVALID, "nn_tensor_size: NULL tensor");
    return t->size;
}

nn_status nn_tensor_shape(const nn_tensor *t, int64_t *shape, int cap)
{
    NN_CHECK(t && shape, NN_ERR_INVALID, "nn_tensor_shape: NULL argument");
    NN_CHECK(cap >= t->rank, NN_ERR_INVALID,
             "nn_tensor_shape: capacity %d below rank %d", cap, t->rank);
    memcpy(shape, t->shape, (size_t)t->rank * sizeof *shape);
    return NN_OK;
}

float *nn_tensor_data(nn_tensor *t)
{
    if (!t) nn__fail(NN_ERR_INVALID, "nn_tensor_data: NULL tensor");
    return t ? t->data : NULL;
}

const float *nn_tensor_data_const(const nn_tensor *t)
{
    if (!t) nn__fail(NN_ERR_INVALID, "nn_tensor_data_const: NULL tensor");
    return t ? t->data : NULL;
}

nn_status nn_tensor_reshape(nn_tensor *t, int rank, const int64_t *shape)
{
    NN_CHECK(t, NN_ERR_INVALID, "nn_tensor_reshape: NULL tensor");
    int64_t size = 0;
    NN_TRY(check_shape(rank, shape, &size));
    NN_CHECK(size == t->size, NN_ERR_SHAPE,
             "nn_tensor_reshape: %lld elements cannot take a shape of %lld",
             (long long)t->size, (long long)size);
    bool owned = t->owned;
    nn__tensor_view(t, rank, shape, t->data);
    t->owned = owned;
    return NN_OK;
}
