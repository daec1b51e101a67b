/* Data-parallel training support (include/nn.h, "Data-parallel
 * training"; docs/mpi.md): the gradient hook, and what a sharded fit
 * needs: the shard rule, the start-up agreement check and the epoch's
 * sums. libnn knows no transport: the hooks it is given move the data. */
#include "nn_internal.h"
#include "train/train.h"
#include "loss/loss.h"

#include <string.h>

/* ---------------- the gradient hook ---------------- */

nn_status nn_model_set_grad_hook(nn_model *m, nn_grad_hook_fn fn, void *user)
{
    NN_CHECK(m, NN_ERR_INVALID, "nn_model_set_grad_hook: NULL model");
    m->grad_hook = fn;
    m->grad_hook_user = fn ? user : NULL;
    return NN_OK;
}

/* A trainable parameter without a gradient (a layer added after the last
 * backward pass): the optimizer step reports it, the hook is not run. */
static bool grads_ready(const nn_model *m)
{
    nn_param_iter it;
    nn__param_iter_init(&it, m, NULL);
    while (nn__param_next_slot(&it))
        if (!it.p->grad.data) return false;
    return true;
}

static nn_status hook_failed(nn_status s)
{
    if (s > 0)
        return nn__fail(NN_ERR_INVALID,
                        "gradient hook: returned %d, not an nn_status; the "
                        "step was not applied",
                        (int)s);
    /* A hook that set no message of its own still gets one. */
    if (nn_last_status() == NN_OK)
        return nn__fail(s, "gradient hook: failed with %s; the step was not "
                           "applied",
                        nn_status_name(s));
    return s;
}

nn_status nn__grad_hook_run(nn_model *m, int64_t total)
{
    if (!m->grad_hook || !grads_ready(m)) return NN_OK;
    int64_t n = nn__state_copy(m, NN_STATE_TRAINABLE, true, NULL, NULL);
    if (n > m->grad_fused_cap) {
        float *b = nn__realloc(m->grad_fused, (size_t)n * sizeof(float));
        NN_CHECK(b, NN_ERR_NOMEM,
                 "gradient hook: out of memory for %lld gradients",
                 (long long)n);
        m->grad_fused = b;
        m->grad_fused_cap = n;
    }
    nn__state_copy(m, NN_STATE_TRAINABLE, true, m->grad_fused, NULL);
    nn_grad_info info = {.size = sizeof info,
                         .step = m->opt ? m->opt->iterations : 0,
                         .samples = m->grad_samples,
                         .total_samples = total};
    nn_clear_error();
    nn_status s = m->grad_hook(m->grad_fused, n, &info, m->grad_hook_user);
    if (s != NN_OK) return hook_failed(s);
    nn__state_copy(m, NN_STATE_TRAINABLE, true, NULL, m->grad_fused);
    return NN_OK;
}

/* ---------------- a sharded fit ---------------- */

/* The start-up check's sums stay exact in doubles up to this many
 * processes (below). */
#define NN_MAX_WORLD (1 << 16)

int nn__fit_world(const nn_fit_opts *o)
{
    return o->world_size > 1 ? o->world_size : 1;
}

nn_status nn__fit_check_parallel(const nn_model *m, const nn_fit_opts *o)
{
    NN_CHECK(o->world_size >= 0 && o->world_size <= NN_MAX_WORLD,
             NN_ERR_INVALID, "nn_model_fit: world_size %d; give the number "
                             "of processes, at most %d (0 or 1: one)",
             o->world_size, NN_MAX_WORLD);
    int world = nn__fit_world(o);
    NN_CHECK(o->rank >= 0 && o->rank < world, NN_ERR_INVALID,
             "nn_model_fit: rank %d outside 0 .. %d (world_size %d)",
             o->rank, world - 1, world);
    NN_CHECK((int64_t)o->batch_size * world <= (1 << 30), NN_ERR_INVALID,
             "nn_model_fit: the global batch, %d x %d, is too large",
             world, o->batch_size);
    if (world == 1) return NN_OK;
    /* ROC AUC needs every score; the sums of a sync cannot carry them. */
    NN_CHECK(!o->decision_metrics, NN_ERR_UNSUPPORTED,
             "nn_model_fit: decision_metrics with world_size %d: the "
             "processes' scores are not gathered; evaluate them after fit "
             "(nn_model_evaluate_binary) instead",
             world);
    NN_CHECK(o->sync, NN_ERR_INVALID,
             "nn_model_fit: world_size %d needs opts->sync to sum the "
             "processes' figures (libnn_mpi: nn_mpi_fit_opts)",
             world);
    NN_CHECK(m->grad_hook, NN_ERR_STATE,
             "nn_model_fit: world_size %d needs a gradient hook that "
             "combines the processes' gradients (nn_model_set_grad_hook; "
             "libnn_mpi: nn_mpi_create)",
             world);
    return NN_OK;
}

void nn__shard(int64_t total, int rank, int world, int64_t *start,
               int64_t *count)
{
    int64_t lo = total * rank / world, hi = total * (rank + 1) / world;
    *start = lo;
    *count = hi - lo;
}

static nn_status call_sync(nn_model *m, const nn_fit_opts *o, double *v,
                           int n, nn_sync_point point)
{
    nn_clear_error();
    nn_status s = o->sync(m, v, n, (int)point, o->sync_user);
    if (s == NN_OK) return NN_OK;
    if (s > 0 || nn_last_status() == NN_OK)
        return nn__fail(s < 0 ? s : NN_ERR_INVALID,
                        "nn_model_fit: the sync hook failed (%d)", (int)s);
    return s;
}

/* What every process must agree on before the first step: a process that
 * trained with other sample counts or options would run a different
 * number of steps and leave the others waiting in a collective. Each
 * value is folded to 16 bits and sent with its square: the sums equal
 * world_size times this process's value and square exactly when every
 * process has the same value (sum of (v_i - v)^2 = 0), and doubles hold
 * them exactly for up to 2^16 processes. */
#define FOLD_BITS 16
#define N_AGREE 9

static const char *const agree_what[N_AGREE] = {
    "the number of training samples",
    "the number of validation samples",
    "the batch size",
    "the number of epochs",
    "whether to shuffle",
    "world_size",
    "the model's parameter count",
    "the model's trainable parameter count",
    ("the model's random generator (create the model with the same seed "
     "on every process)")};

static double fold(uint64_t v)
{
    return (double)(v & ((1u << FOLD_BITS) - 1));
}

nn_status nn__fit_sync_start(nn_model *m, int64_t n, const nn_fit_opts *o)
{
    nn_rng probe = m->rng; /* a copy: fit's own draws stay the same */
    uint64_t mine[N_AGREE] = {
        (uint64_t)n,
        o->val_x ? (uint64_t)o->val_x->shape[0] : 0,
        (uint64_t)o->batch_size,
        (uint64_t)o->epochs,
        o->shuffle != 0,
        (uint64_t)nn__fit_world(o),
        (uint64_t)nn__state_copy(m, NN_STATE_ALL, false, NULL, NULL),
        (uint64_t)nn__state_copy(m, NN_STATE_TRAINABLE, false, NULL, NULL),
        nn__rng_u64(&probe)};
    double v[2 * N_AGREE + 2];
    for (int k = 0; k < N_AGREE; k++) {
        v[2 * k] = fold(mine[k]);
        v[2 * k + 1] = fold(mine[k]) * fold(mine[k]);
    }
    double world = nn__fit_world(o), r = o->rank;
    v[2 * N_AGREE] = r;
    v[2 * N_AGREE + 1] = r * r;
    NN_TRY(call_sync(m, o, v, 2 * N_AGREE + 2, NN_SYNC_START));
    for (int k = 0; k < N_AGREE; k++)
        NN_CHECK(v[2 * k] == world * fold(mine[k]) &&
                     v[2 * k + 1] == world * fold(mine[k]) * fold(mine[k]),
                 NN_ERR_INVALID,
                 "nn_model_fit: the %d processes disagree on %s (this one, "
                 "rank %d: %llu); each must fit the same data with the same "
                 "options",
                 (int)world, agree_what[k], o->rank,
                 (unsigned long long)mine[k]);
    /* Ranks 0 .. world - 1, once each: their sum and sum of squares. */
    NN_CHECK(v[2 * N_AGREE] == world * (world - 1) / 2 &&
                 v[2 * N_AGREE + 1] ==
                     (world - 1) * world * (2 * world - 1) / 6,
             NN_ERR_INVALID,
             "nn_model_fit: the ranks of the %d processes are not 0 .. %d "
             "once each (this one: %d)",
             (int)world, (int)world - 1, o->rank);
    return NN_OK;
}

/* The epoch's sums over every process: loss x samples, correct
 * predictions, predictions, samples, then the confusion counts (exact in
 * a double up to 2^53). */
nn_status nn__fit_sync_epoch(nn_model *m, const nn_fit_opts *o,
                             nn_fit_sums *sums, nn_confusion *cm)
{
    int cells = cm ? cm->classes * cm->classes : 0;
    double *v = nn__calloc((size_t)(4 + cells), sizeof(double));
    NN_CHECK(v, NN_ERR_NOMEM, "nn_model_fit: out of memory for the sums");
    v[0] = sums->loss_sum;
    v[1] = (double)sums->correct;
    v[2] = (double)sums->predictions;
    v[3] = (double)sums->samples;
    for (int i = 0; i < cells; i++) v[4 + i] = (double)cm->counts[i];
    nn_status s = call_sync(m, o, v, 4 + cells, NN_SYNC_EPOCH_END);
    if (s == NN_OK) {
        sums->loss_sum = v[0];
        sums->correct = (int64_t)v[1];
        sums->predictions = (int64_t)v[2];
        sums->samples = (int64_t)v[3];
        for (int i = 0; i < cells; i++) cm->counts[i] = (int64_t)v[4 + i];
    }
    nn__free(v);
    return s;
}
