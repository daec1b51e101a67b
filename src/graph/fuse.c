/* Fusion of inference passes: a Conv2D or DepthwiseConv2D whose output
 * only feeds an inference-mode BatchNormalization, optionally followed by
 * an Add (with an input computed before the convolution) and/or a ReLU or
 * ReLU6, computes all of them while its product is still in registers:
 * the normalization becomes a per-filter scale and shift, the Add a
 * residual read, the ReLU a max (ReLU6 a max and a min). That saves a
 * pass over memory per fused layer (ResNet50: 3 of its 5 layers per
 * convolution; MobileNetV2: 2 of 3 after each expansion and depthwise
 * convolution).
 *
 * Only layers no gradient reaches fuse: every layer of an inference
 * plan, a frozen backbone in a training plan (whose BatchNormalization
 * layers, frozen, run in inference mode). Only a layer that nothing else
 * reads, that is not the model's output, is fused away: its output never
 * exists.
 *
 * A ZeroPadding2D whose sole reader can add the zeros itself
 * (nn_layer_ops.reads_padded: DepthwiseConv2D, whose kernel treats what
 * lies outside its input as zeros) is folded into it: the convolution
 * reads the padding's input with the pads added to its geometry, the same
 * products in the same order, and the padded copy (MobileNetV2's, before
 * each stride-2 depthwise convolution) never exists. Conv2D declines: its
 * im2col of a padded window clips every row, and on MobileNetV2's Conv1
 * (3 channels) that cost more than the copy it saved. */
#include "nn_internal.h"

#include <string.h>

static bool fusion_off; /* nn__fusion_disable */

static bool pad_fold_off; /* nn__pad_fold_disable */

void nn__fusion_disable(bool off) { fusion_off = off; }

void nn__pad_fold_disable(bool off) { pad_fold_off = off; }

/* reader[i]: the layer reading layer i's output when exactly one reads
 * it, once, and i is not the model's output; else NULL. One pass over the
 * graph's edges. */
static void sole_readers(const nn_model *m, nn_layer **reader, int *reads)
{
    for (int i = 0; i < m->n_layers; i++) {
        nn_layer *l = m->layers[i];
        for (int k = 0; k < l->n_inputs; k++) {
            int in = l->inputs[k]->index;
            reads[in]++;
            reader[in] = l;
        }
    }
    for (int i = 0; i < m->n_layers; i++)
        if (reads[i] != 1 || m->layers[i] == m->output) reader[i] = NULL;
}

/* The other input of a two-input Add reading `from`, when it is computed
 * before the head (so the head can read it); else -1. */
static int residual_of(const nn_layer *add, const nn_layer *from,
                       const nn_layer *head)
{
    if (add->kind != NN_KIND_ADD || add->n_inputs != 2) return -1;
    const nn_layer *other =
        add->inputs[0] == from ? add->inputs[1] : add->inputs[0];
    return other->index < head->index ? other->index : -1;
}

/* The sole reader of l when it may fuse: no gradient reaches it. */
static nn_layer *fusable_reader(nn_layer *const *reader, const nn_layer *l,
                                const bool *needs)
{
    nn_layer *r = reader[l->index];
    return r && !needs[r->index] ? r : NULL;
}

/* The kinds whose forward pass takes a fused epilogue (nn_fwd.fuse). */
static bool is_head(const nn_layer *l)
{
    return l->kind == NN_KIND_CONV2D || l->kind == NN_KIND_DEPTHWISE_CONV2D;
}

/* Grows head's chain into f; members[] receives the fused layers in
 * order. Returns their count (0: nothing fuses). */
static int chain(nn_layer *const *reader, nn_layer *head, const bool *needs,
                 bool training, nn_fuse *f, nn_layer *members[3])
{
    int n = 0;
    nn_layer *bn = fusable_reader(reader, head, needs);
    /* A trainable one normalizes with batch statistics in training. */
    if (!bn || bn->kind != NN_KIND_BATCHNORM || (training && bn->trainable))
        return 0;
    f->bn = members[n++] = bn;
    nn_layer *next = fusable_reader(reader, bn, needs);
    if (next && (f->residual = residual_of(next, bn, head)) >= 0) {
        members[n++] = next;
        next = fusable_reader(reader, next, needs);
    }
    if (next && (next->kind == NN_KIND_RELU || next->kind == NN_KIND_RELU6)) {
        f->relu = next->kind == NN_KIND_RELU;
        f->relu6 = next->kind == NN_KIND_RELU6;
        members[n++] = next;
    }
    f->tail = members[n - 1]->index;
    return n;
}

/* Folds each ZeroPadding2D into its sole reader when that can add the
 * zeros itself. */
static void fold_pads(nn_context *c, nn_layer *const *reader, const bool *needs)
{
    const nn_model *m = c->model;
    for (int i = 0; i < m->n_layers; i++) {
        nn_layer *l = m->layers[i];
        int pad[4];
        if (needs[i] || !l->ops->zero_pad || !l->ops->zero_pad(l, pad))
            continue;
        nn_layer *r = fusable_reader(reader, l, needs);
        if (!r || r->inputs[0] != l || !r->ops->reads_padded ||
            !r->ops->reads_padded(r, pad))
            continue;
        c->fuse[r->index].pad_of = i;
        memcpy(c->fuse[r->index].pad, pad, sizeof pad);
        c->fused_into[i] = r->index;
    }
}

nn_status nn__plan_fusion(nn_context *c, const bool *needs, bool training)
{
    const nn_model *m = c->model;
    int n = m->n_layers;
    if (fusion_off) return NN_OK;
    c->fuse = nn__calloc((size_t)n, sizeof *c->fuse);
    c->fused_into = nn__calloc((size_t)n, sizeof *c->fused_into);
    nn_layer **reader = nn__calloc((size_t)n, sizeof *reader);
    int *reads = nn__calloc((size_t)n, sizeof *reads);
    if (!c->fuse || !c->fused_into || !reader || !reads) {
        nn__free(reader);
        nn__free(reads);
        return NN_ERR_NOMEM;
    }
    sole_readers(m, reader, reads);
    for (int i = 0; i < n; i++) {
        c->fuse[i] = (nn_fuse){.tail = -1, .residual = -1, .pad_of = -1};
        c->fused_into[i] = -1;
    }
    for (int i = 0; i < n; i++) {
        nn_layer *l = m->layers[i], *members[3];
        /* An activation inside the convolution would come before the
         * normalization, which the epilogue cannot do. */
        if (!is_head(l) || l->activation != NN_ACT_NONE || needs[i])
            continue;
        nn_fuse f = {.tail = -1, .residual = -1, .pad_of = -1};
        int count = chain(reader, l, needs, training, &f, members);
        if (!count) continue;
        c->fuse[i] = f;
        for (int j = 0; j < count; j++) c->fused_into[members[j]->index] = i;
    }
    if (!pad_fold_off) fold_pads(c, reader, needs);
    nn__free(reader);
    nn__free(reads);
    return NN_OK;
}
