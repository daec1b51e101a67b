/* A model's parameters as one flat buffer, in the order of the parameter
 * walk (src/graph/params.c): what data-parallel training broadcasts,
 * averages and reduces (include/nn.h, "Data-parallel training"). The
 * gradient hook's buffer (src/train/parallel.c) is the trainable part of
 * the gradients, copied by the same function. */
#include "nn_internal.h"

#include <string.h>

static bool in_part(const nn_param_iter *it, nn_state_part part)
{
    switch (part) {
    case NN_STATE_ALL: return true;
    case NN_STATE_TRAINABLE: return it->trains;
    case NN_STATE_STATISTICS: return !it->p->trainable;
    }
    return false;
}

static bool part_ok(int part)
{
    return part == NN_STATE_ALL || part == NN_STATE_TRAINABLE ||
           part == NN_STATE_STATISTICS;
}

int64_t nn__state_copy(const nn_model *m, nn_state_part part, bool grads,
                       float *out, const float *in)
{
    int64_t at = 0;
    nn_param_iter it;
    nn__param_iter_init(&it, m, NULL);
    while (nn__param_next(&it)) {
        if (!in_part(&it, part)) continue;
        nn_tensor *t = grads ? &it.p->grad : &it.p->value;
        size_t bytes = (size_t)it.p->value.size * sizeof(float);
        if (out) memcpy(out + at, t->data, bytes);
        if (in) memcpy(t->data, in + at, bytes);
        at += it.p->value.size;
    }
    return at;
}

int64_t nn_model_state_size(const nn_model *m, nn_state_part part)
{
    if (!m) return nn__fail(NN_ERR_INVALID, "nn_model_state_size: NULL model");
    if (!part_ok((int)part))
        return nn__fail(NN_ERR_INVALID,
                        "nn_model_state_size: unknown part %d; give an "
                        "nn_state_part",
                        (int)part);
    return nn__state_copy(m, part, false, NULL, NULL);
}

static nn_status check_state_call(const nn_model *m, int part, const void *buf,
                                  int64_t n, const char *fn)
{
    NN_CHECK(m && buf, NN_ERR_INVALID, "%s: NULL argument", fn);
    NN_CHECK(part_ok(part), NN_ERR_INVALID,
             "%s: unknown part %d; give an nn_state_part", fn, part);
    int64_t want =
        nn__state_copy(m, (nn_state_part)part, false, NULL, NULL);
    NN_CHECK(n == want, NN_ERR_SHAPE,
             "%s: the buffer has %lld floats, this part of the model's "
             "state %lld (nn_model_state_size)",
             fn, (long long)n, (long long)want);
    return NN_OK;
}

nn_status nn_model_get_state(const nn_model *m, nn_state_part part,
                             float *buf, int64_t n)
{
    NN_TRY(check_state_call(m, (int)part, buf, n, "nn_model_get_state"));
    nn__state_copy(m, part, false, buf, NULL);
    return NN_OK;
}

nn_status nn_model_set_state(nn_model *m, nn_state_part part,
                             const float *buf, int64_t n)
{
    NN_TRY(check_state_call(m, (int)part, buf, n, "nn_model_set_state"));
    nn__state_copy(m, part, false, NULL, buf);
    return NN_OK;
}
