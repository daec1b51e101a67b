/* Keras-style summary table, written into a caller's buffer. */
#include "nn_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

typedef struct sbuf {
    char *buf;
    size_t cap, len; /* len counts everything, even what did not fit */
} sbuf;

static void put(sbuf *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void put(sbuf *s, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n >= sizeof tmp) n = sizeof tmp - 1;
    if (s->len < s->cap) {
        size_t room = s->cap - s->len;
        memcpy(s->buf + s->len, tmp, (size_t)n < room ? (size_t)n : room);
    }
    s->len += (size_t)n;
}

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

static void shape_str(const nn_shape *s, char *out, size_t cap)
{
    size_t j = (size_t)snprintf(out, cap, "(None");
    for (int i = 0; i < s->rank && j < cap; i++)
        j += (size_t)snprintf(out + j, cap - j, ", %d", s->d[i]);
    if (j < cap) snprintf(out + j, cap - j, ")");
}

/* A chain is a graph where every layer takes only the previous layer. */
static bool is_chain(const nn_model *m)
{
    for (int i = 1; i < m->n_layers; i++) {
        const nn_layer *l = m->layers[i];
        if (l->n_inputs != 1 || l->inputs[0] != m->layers[i - 1]) return false;
    }
    return true;
}

static void rule(sbuf *s, char c, int width)
{
    char line[160];
    memset(line, c, (size_t)width);
    line[width] = '\0';
    put(s, "%s\n", line);
}

static void layer_row(sbuf *s, const nn_layer *l, bool chain)
{
    char name[160], shape[96], params[32];
    snprintf(name, sizeof name, "%s (%s)", l->name, l->ops->type_name);
    shape_str(&l->out, shape, sizeof shape);
    with_commas(nn_layer_num_params(l), params, sizeof params);
    if (chain) {
        put(s, " %-33s %-25s %-10s\n", name, shape, params);
        return;
    }
    put(s, " %-33s %-25s %-10s %s\n", name, shape, params,
        l->n_inputs ? l->inputs[0]->name : "[]");
    for (int i = 1; i < l->n_inputs; i++)
        put(s, " %-33s %-25s %-10s %s\n", "", "", "", l->inputs[i]->name);
}

nn_status nn_model_summary(const nn_model *m, char *buf, size_t cap,
                           size_t *needed)
{
    NN_CHECK(m, NN_ERR_INVALID, "nn_model_summary: model is NULL");
    NN_CHECK(buf || cap == 0, NN_ERR_INVALID, "nn_model_summary: buf is NULL");
    sbuf s = {buf, cap, 0};
    bool chain = is_chain(m);
    int width = chain ? 71 : 104;
    put(&s, "Model: \"%s\"\n", chain ? "sequential" : "model");
    rule(&s, '_', width);
    if (chain)
        put(&s, " %-33s %-25s %-10s\n", "Layer (type)", "Output Shape",
            "Param #");
    else
        put(&s, " %-33s %-25s %-10s %s\n", "Layer (type)", "Output Shape",
            "Param #", "Connected to");
    rule(&s, '=', width);
    for (int i = 0; i < m->n_layers; i++) {
        /* Keras lists the input layer only in functional models. */
        if (chain && m->layers[i]->kind == NN_KIND_INPUT) continue;
        layer_row(&s, m->layers[i], chain);
    }
    rule(&s, '=', width);
    int64_t total = nn_model_num_params(m);
    int64_t trainable = nn_model_num_trainable_params(m);
    char a[32], b[32], c[32];
    with_commas(total, a, sizeof a);
    with_commas(trainable, b, sizeof b);
    with_commas(total - trainable, c, sizeof c);
    put(&s, "Total params: %s\nTrainable params: %s\nNon-trainable params: %s\n",
        a, b, c);
    rule(&s, '_', width);
    if (cap > 0) buf[s.len < cap ? s.len : cap - 1] = '\0';
    if (needed) *needed = s.len + 1;
    return NN_OK;
}
