/* Keras-style summary table, written into a caller's buffer. */
#include "nn_internal.h"

#include <stdio.h>
#include <string.h>


/* 42442 -> "42,442" */
static void with_commas(int64_t v, char *out, size_t cap)
{
    char digits[32];
    snprintf(digits, sizeof digits, "%lld", (long long)v);
    size_t n = strlen(digits), j = 0;
    for (size_t i = 0; i < n && j + 2 < cap; i++) {
        out[j++] = digits[i];
        if (i + 1 < n && (n - i - 1) % 3 == 0 && digits[0] != '-') out[j++] = ',';
    }
    out[j] = '\0';
}

/* A row of the table: one layer, or a run of layers applied from another
 * model (nn_model_apply), shown as one block as Keras shows a nested
 * model. */
typedef struct row {
    int first, last;
} row;

static row row_at(const nn_model *m, int i)
{
    row r = {i, i};
    const char *g = m->layers[i]->group;
    while (g[0] && r.last + 1 < m->n_layers &&
           strcmp(m->layers[r.last + 1]->group, g) == 0)
        r.last++;
    return r;
}

/* The inputs of the row's layers that come from outside the row. */
static int external_inputs(const nn_model *m, row r, const nn_layer **out,
                           int cap)
{
    int n = 0;
    for (int i = r.first; i <= r.last; i++) {
        const nn_layer *l = m->layers[i];
        for (int j = 0; j < l->n_inputs && n < cap; j++)
            if (l->inputs[j]->index < r.first) out[n++] = l->inputs[j];
    }
    return n;
}

/* A chain: every row takes only the row before it. */
static bool is_chain(const nn_model *m)
{
    const nn_layer *prev = NULL, *in[NN_LAYER_MAX_INPUTS];
    for (int i = 0; i < m->n_layers;) {
        row r = row_at(m, i);
        int n = external_inputs(m, r, in, NN_LAYER_MAX_INPUTS);
        for (int k = 0; k < n; k++)
            if (in[k] != prev) return false;
        if (prev && n == 0) return false;
        prev = m->layers[r.last];
        i = r.last + 1;
    }
    return true;
}

static void rule(nn_sbuf *s, char c, int width)
{
    char line[160];
    memset(line, c, (size_t)width);
    line[width] = '\0';
    nn__sbuf_put(s, "%s\n", line);
}

static void layer_row(nn_sbuf *s, const nn_model *m, row r, bool chain)
{
    const nn_layer *l = m->layers[r.last];
    char name[160], shape[96], params[32];
    int64_t n = 0;
    for (int i = r.first; i <= r.last; i++) n += nn_layer_num_params(m->layers[i]);
    if (l->group[0])
        snprintf(name, sizeof name, "%s (Functional)", l->group);
    else
        snprintf(name, sizeof name, "%s (%s)", l->name, l->ops->type_name);
    nn__shape_str(&l->out, shape, sizeof shape);
    with_commas(n, params, sizeof params);
    if (chain) {
        nn__sbuf_put(s, " %-42s %-25s %-10s\n", name, shape, params);
        return;
    }
    const nn_layer *in[NN_LAYER_MAX_INPUTS];
    int k = external_inputs(m, r, in, NN_LAYER_MAX_INPUTS);
    nn__sbuf_put(s, " %-42s %-25s %-10s %s\n", name, shape, params,
        k ? in[0]->name : "[]");
    for (int i = 1; i < k; i++)
        nn__sbuf_put(s, " %-42s %-25s %-10s %s\n", "", "", "", in[i]->name);
}

nn_status nn_model_summary(const nn_model *m, char *buf, size_t cap,
                           size_t *needed)
{
    NN_CHECK(m, NN_ERR_INVALID, "nn_model_summary: model is NULL");
    NN_CHECK(buf || cap == 0, NN_ERR_INVALID, "nn_model_summary: buf is NULL");
    nn_sbuf s = {buf, cap, 0};
    bool chain = is_chain(m);
    int width = chain ? 80 : 113;
    nn__sbuf_put(&s, "Model: \"%s\"\n",
        m->name[0] ? m->name : chain ? "sequential" : "model");
    rule(&s, '_', width);
    if (chain)
        nn__sbuf_put(&s, " %-42s %-25s %-10s\n", "Layer (type)", "Output Shape",
            "Param #");
    else
        nn__sbuf_put(&s, " %-42s %-25s %-10s %s\n", "Layer (type)", "Output Shape",
            "Param #", "Connected to");
    rule(&s, '=', width);
    for (int i = 0; i < m->n_layers;) {
        row r = row_at(m, i);
        /* Keras lists the input layer only in functional models. */
        if (!chain || m->layers[i]->kind != NN_KIND_INPUT)
            layer_row(&s, m, r, chain);
        i = r.last + 1;
    }
    rule(&s, '=', width);
    int64_t total = nn_model_num_params(m);
    int64_t trainable = nn_model_num_trainable_params(m);
    char a[32], b[32], c[32];
    with_commas(total, a, sizeof a);
    with_commas(trainable, b, sizeof b);
    with_commas(total - trainable, c, sizeof c);
    nn__sbuf_put(&s, "Total params: %s\nTrainable params: %s\nNon-trainable params: %s\n",
        a, b, c);
    rule(&s, '_', width);
    nn__sbuf_finish(&s, needed);
    return NN_OK;
}
