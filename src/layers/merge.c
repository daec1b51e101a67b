/* Merging layers of n >= 2 inputs: Add (element-wise sum of equal shapes)
 * and Concatenate (along the last axis). An input may be given more than
 * once; backward then adds into its gradient once per use, in order, as
 * the accum flags say. */
#include "kernels/kernels.h"
#include "layers/layers.h"

#include <string.h>

static nn_status merge_inputs(const nn_layer *l)
{
    NN_CHECK(l->n_inputs >= 2 && l->n_inputs <= NN_LAYER_MAX_INPUTS,
             NN_ERR_INVALID, "%s '%s': takes 2 to %d inputs, got %d",
             l->ops->type_name, l->name, NN_LAYER_MAX_INPUTS, l->n_inputs);
    return NN_OK;
}

static nn_status add_build(nn_layer *l)
{
    NN_TRY(merge_inputs(l));
    const nn_shape *s0 = &l->inputs[0]->out;
    for (int i = 1; i < l->n_inputs; i++) {
        const nn_shape *s = &l->inputs[i]->out;
        bool same = s->rank == s0->rank;
        for (int k = 0; same && k < s->rank; k++) same = s->d[k] == s0->d[k];
        NN_CHECK(same, NN_ERR_SHAPE,
                 "Add '%s': input '%s' and input '%s' differ in shape",
                 l->name, l->inputs[0]->name, l->inputs[i]->name);
    }
    l->out = *s0;
    return nn__check_out_size(l);
}

static nn_status add_forward(const nn_layer *l, const nn_fwd *a)
{
    int64_t n = (int64_t)a->batch * nn__shape_size(&l->out);
    nn__copy_or_add(a->in[0], a->out, n, false);
    for (int i = 1; i < l->n_inputs; i++)
        nn__copy_or_add(a->in[i], a->out, n, true);
    return NN_OK;
}

static nn_status add_backward(nn_layer *l, const nn_bwd *a)
{
    int64_t n = (int64_t)a->batch * nn__shape_size(&l->out);
    for (int i = 0; i < l->n_inputs; i++)
        if (a->din[i]) nn__copy_or_add(a->dout, a->din[i], n, a->accum[i]);
    return NN_OK;
}

static nn_status concat_build(nn_layer *l)
{
    NN_TRY(merge_inputs(l));
    const nn_shape *s0 = &l->inputs[0]->out;
    int64_t last = 0;
    for (int i = 0; i < l->n_inputs; i++) {
        const nn_shape *s = &l->inputs[i]->out;
        bool same = s->rank == s0->rank;
        for (int k = 0; same && k + 1 < s->rank; k++)
            same = s->d[k] == s0->d[k];
        NN_CHECK(same, NN_ERR_SHAPE,
                 "Concatenate '%s': input '%s' and input '%s' differ in "
                 "shape outside the last axis",
                 l->name, l->inputs[0]->name, l->inputs[i]->name);
        last += s->d[s->rank - 1];
    }
    NN_CHECK(last <= NN_SAMPLE_MAX, NN_ERR_SHAPE,
             "Concatenate '%s': %lld channels", l->name, (long long)last);
    l->out = *s0;
    l->out.d[l->out.rank - 1] = (int)last;
    return nn__check_out_size(l);
}

static int64_t last_dim(const nn_shape *s) { return s->d[s->rank - 1]; }

/* Rows: every axis but the last, over the batch. */
static int64_t concat_rows(const nn_layer *l, int batch)
{
    return (int64_t)batch * (nn__shape_size(&l->out) / last_dim(&l->out));
}

static nn_status concat_forward(const nn_layer *l, const nn_fwd *a)
{
    int64_t rows = concat_rows(l, a->batch), width = last_dim(&l->out);
    int64_t off = 0;
    for (int i = 0; i < l->n_inputs; i++) {
        int64_t c = last_dim(&l->inputs[i]->out);
        for (int64_t r = 0; r < rows; r++)
            memcpy(a->out + r * width + off, a->in[i] + r * c,
                   (size_t)c * sizeof(float));
        off += c;
    }
    return NN_OK;
}

static nn_status concat_backward(nn_layer *l, const nn_bwd *a)
{
    int64_t rows = concat_rows(l, a->batch), width = last_dim(&l->out);
    int64_t off = 0;
    for (int i = 0; i < l->n_inputs; i++) {
        int64_t c = last_dim(&l->inputs[i]->out);
        float *d = a->din[i];
        for (int64_t r = 0; d && r < rows; r++) {
            const float *g = a->dout + r * width + off;
            float *dr = d + r * c;
            if (a->accum[i])
                for (int64_t j = 0; j < c; j++) dr[j] += g[j];
            else
                memcpy(dr, g, (size_t)c * sizeof(float));
        }
        off += c;
    }
    return NN_OK;
}

const nn_layer_ops nn__add_ops = {
    .type_name = "Add",
    .stem = "add",
    .build = add_build,
    .forward = add_forward,
    .backward = add_backward,
    .save_config = nn__save_no_config,
    .load_config = nn__load_no_config,
};

const nn_layer_ops nn__concatenate_ops = {
    .type_name = "Concatenate",
    .stem = "concatenate",
    .build = concat_build,
    .forward = concat_forward,
    .backward = concat_backward,
    .save_config = nn__save_no_config,
    .load_config = nn__load_no_config,
};

static nn_layer *add_merge(nn_model *m, nn_layer_kind kind, int n,
                           nn_layer *const *inputs, const nn_layer_opts *opts,
                           const char *who)
{
    nn_layer_opts o = NN_LAYER_OPTS_INIT;
    if (nn__read_opts(&o, opts, who) != NN_OK) return NULL;
    if (!m || !inputs) {
        nn__fail(NN_ERR_INVALID, "%s: %s is NULL", who, m ? "inputs" : "model");
        return NULL;
    }
    if (n < 2 || n > NN_LAYER_MAX_INPUTS) {
        nn__fail(NN_ERR_INVALID, "%s: %d inputs (2 to %d allowed)", who, n,
                 NN_LAYER_MAX_INPUTS);
        return NULL;
    }
    nn_layer proto = {0};
    return nn__add_layer(m, kind, n, inputs, o.name, &proto);
}

nn_layer *nn_add(nn_model *m, int n, nn_layer *const *inputs,
                 const nn_layer_opts *opts)
{
    return add_merge(m, NN_KIND_ADD, n, inputs, opts, "nn_add");
}

nn_layer *nn_concatenate(nn_model *m, int n, nn_layer *const *inputs,
                         const nn_layer_opts *opts)
{
    return add_merge(m, NN_KIND_CONCATENATE, n, inputs, opts,
                     "nn_concatenate");
}
