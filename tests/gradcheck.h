/* Finite-difference gradient checks of one layer, driven directly through
 * its nn_layer_ops with buffers owned by the test.
 *
 * The checked function is L = sum_i r_i * y_i with fixed random weights r,
 * where y is the layer's output (or, with use_logits, the logits its
 * `logits` op returns, backward then told dout_is_preact). Its analytic
 * gradient is the layer's backward with dout = r.
 *
 * Each coordinate is perturbed by +-eps and L summed in double. Where the
 * function has a kink (ReLU at 0, a max-pool near tie) the central
 * difference is off by half the jump between the one-sided slopes, so that
 * half is added to the tolerance; coordinates with a large jump are counted
 * as "kinky" and callers assert that they are few, so the check cannot
 * quietly pass by skipping everything.
 *
 * Include after cmocka.h and nn_internal.h. */
#ifndef NN_TEST_GRADCHECK_H
#define NN_TEST_GRADCHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct gc_opts {
    double eps;     /* perturbation */
    double atol;    /* absolute tolerance */
    double rtol;    /* relative tolerance */
    bool use_logits; /* check d(sum r * logits) with dout_is_preact */
    bool training;
    uint64_t key;   /* rng key of every forward */
    double in_scale; /* inputs uniform in [-in_scale, in_scale); 0: 1 */
} gc_opts;

#define GC_OPTS_INIT {1e-3, 2e-3, 1e-2, false, true, 12345, 1.0}

typedef struct gc_result {
    int64_t checked; /* coordinates compared */
    int64_t failed;  /* outside tolerance */
    int64_t kinky;   /* coordinates near a kink */
    double worst;    /* largest |numeric - analytic| seen */
} gc_result;

typedef struct gc_run {
    nn_layer *l;
    int batch;
    gc_opts o;
    float *in[NN_LAYER_MAX_INPUTS];
    int64_t in_n[NN_LAYER_MAX_INPUTS];
    float *out;
    int64_t out_n;
    void *state;
    float *scratch;
    double *r; /* weights of the loss */
} gc_run;

static uint64_t gc_rand_state = 88172645463325252ULL;

static inline double gc_uniform(void) /* [-1, 1) */
{
    gc_rand_state ^= gc_rand_state << 13;
    gc_rand_state ^= gc_rand_state >> 7;
    gc_rand_state ^= gc_rand_state << 17;
    return (double)(gc_rand_state >> 11) * 0x1.0p-52 - 1.0;
}

static inline void gc_fill(float *p, int64_t n, double scale)
{
    for (int64_t i = 0; i < n; i++) p[i] = (float)(scale * gc_uniform());
}

/* Parameter values uniform in [lo, hi), from the same generator. */
static inline void randomize(nn_param *p, double lo, double hi)
{
    for (int64_t i = 0; i < p->value.size; i++)
        p->value.data[i] = (float)(lo + (hi - lo) * 0.5 * (gc_uniform() + 1));
}

/* Allocates the buffers a context would, gradient buffers for the layer's
 * parameters (owned by the model, as the training code does) and random
 * inputs and loss weights. */
static inline gc_run *gc_setup(nn_layer *l, int batch, const gc_opts *o)
{
    gc_run *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->l = l;
    r->batch = batch;
    r->o = *o;
    for (int i = 0; i < l->n_inputs; i++) {
        r->in_n[i] = batch * nn__shape_size(&l->inputs[i]->out);
        r->in[i] = malloc((size_t)r->in_n[i] * sizeof(float));
        gc_fill(r->in[i], r->in_n[i], o->in_scale > 0 ? o->in_scale : 1.0);
    }
    r->out_n = batch * nn__shape_size(&l->out);
    r->out = malloc((size_t)r->out_n * sizeof(float));
    r->r = malloc((size_t)r->out_n * sizeof(double));
    for (int64_t i = 0; i < r->out_n; i++) r->r[i] = gc_uniform();
    size_t sb = l->ops->state_bytes ? l->ops->state_bytes(l, batch) : 0;
    r->state = sb ? malloc(sb) : NULL;
    size_t sf = l->ops->scratch_floats ? l->ops->scratch_floats(l, batch, true)
                                       : 0;
    /* Exactly the size asked for, so AddressSanitizer sees any overrun. */
    r->scratch = sf ? malloc(sf * sizeof(float)) : NULL;
    for (int i = 0; i < l->n_params; i++)
        if (!l->params[i].grad.data)
            l->params[i].grad.data =
                nn__calloc((size_t)l->params[i].value.size, sizeof(float));
    return r;
}

static inline void gc_free(gc_run *r)
{
    if (!r) return;
    for (int i = 0; i < r->l->n_inputs; i++) free(r->in[i]);
    free(r->out);
    free(r->r);
    free(r->state);
    free(r->scratch);
    free(r);
}

static inline nn_status gc_forward(gc_run *r)
{
    nn_fwd a = {
        .batch = r->batch,
        .training = r->o.training,
        .in = (const float *const *)r->in,
        .out = r->out,
        .state = r->state,
        .scratch = r->scratch,
        .rng_key = r->o.key,
    };
    return r->l->ops->forward(r->l, &a);
}

/* The values L is taken over: the output or the saved logits. */
static inline const float *gc_values(const gc_run *r)
{
    if (!r->o.use_logits) return r->out;
    return r->l->ops->logits ? r->l->ops->logits(r->l, r->state) : NULL;
}

static inline double gc_loss(gc_run *r)
{
    if (gc_forward(r) != NN_OK) return NAN;
    const float *y = gc_values(r);
    if (!y) return NAN;
    double s = 0.0;
    for (int64_t i = 0; i < r->out_n; i++) s += r->r[i] * y[i];
    return s;
}

/* Runs forward and backward; din[i] receive the input gradients (NULL
 * skips one). With accum, din must hold values to add to. */
static inline nn_status gc_backward(gc_run *r, float **din,
                                    const bool *accum)
{
    nn_status s = gc_forward(r);
    if (s != NN_OK) return s;
    float *dout = malloc((size_t)r->out_n * sizeof(float));
    for (int64_t i = 0; i < r->out_n; i++) dout[i] = (float)r->r[i];
    nn_bwd b = {
        .batch = r->batch,
        .in = (const float *const *)r->in,
        .out = r->out,
        .dout = dout,
        .din = din,
        .accum = accum,
        .dout_is_preact = r->o.use_logits,
        .state = r->state,
        .scratch = r->scratch,
    };
    s = r->l->ops->backward(r->l, &b);
    free(dout);
    return s;
}

/* Compares d L / d p[i] for every i with analytic[i]. */
static inline void gc_compare(gc_run *r, float *p, int64_t n,
                              const float *analytic, const char *what,
                              gc_result *res)
{
    const double eps = r->o.eps;
    double l0 = gc_loss(r);
    for (int64_t i = 0; i < n; i++) {
        float v = p[i];
        p[i] = (float)(v + eps);
        double hp = (double)p[i] - v;
        double lp = gc_loss(r);
        p[i] = (float)(v - eps);
        double hm = v - (double)p[i];
        double lm = gc_loss(r);
        p[i] = v;
        double dp = (lp - l0) / hp, dm = (l0 - lm) / hm;
        double num = (lp - lm) / (hp + hm);
        double jump = fabs(dp - dm);
        double scale = fmax(fabs(num), fabs((double)analytic[i]));
        double tol = r->o.atol + r->o.rtol * scale;
        double err = fabs(num - analytic[i]);
        res->checked++;
        if (jump > tol) res->kinky++;
        if (err > res->worst) res->worst = err;
        if (!(err <= tol + 0.5 * jump)) {
            res->failed++;
            if (res->failed <= 5)
                fprintf(stderr,
                        "gradcheck %s '%s' %s[%lld]: numeric %.6g analytic "
                        "%.6g (jump %.3g)\n",
                        r->l->ops->type_name, r->l->name, what, (long long)i,
                        num, (double)analytic[i], jump);
        }
    }
}

/* Checks the gradient w.r.t. every input and every parameter. */
static inline gc_result gc_check_layer(nn_layer *l, int batch,
                                       const gc_opts *o)
{
    gc_result res = {0, 0, 0, 0.0};
    gc_run *r = gc_setup(l, batch, o);
    float *din[NN_LAYER_MAX_INPUTS] = {0};
    bool accum[NN_LAYER_MAX_INPUTS] = {0};
    for (int i = 0; i < l->n_inputs; i++)
        din[i] = malloc((size_t)r->in_n[i] * sizeof(float));
    if (gc_backward(r, din, accum) != NN_OK || !gc_values(r)) {
        res.failed = 1;
        goto done;
    }
    float *pgrad[NN_LAYER_MAX_PARAMS];
    for (int j = 0; j < l->n_params; j++) {
        int64_t n = l->params[j].value.size;
        pgrad[j] = malloc((size_t)n * sizeof(float));
        memcpy(pgrad[j], l->params[j].grad.data, (size_t)n * sizeof(float));
    }
    for (int i = 0; i < l->n_inputs; i++)
        gc_compare(r, r->in[i], r->in_n[i], din[i], "input", &res);
    for (int j = 0; j < l->n_params; j++) {
        gc_compare(r, l->params[j].value.data, l->params[j].value.size,
                   pgrad[j], l->params[j].name, &res);
        free(pgrad[j]);
    }
done:
    for (int i = 0; i < l->n_inputs; i++) free(din[i]);
    gc_free(r);
    return res;
}

#endif
