/* Stochastic gradient descent with Keras' momentum form.
 *
 * Keras:   v = mu * v - lr * g;  w += v   (nesterov: w += mu * v - lr * g)
 * PyTorch: b = mu * b + g;       w -= lr * b  (nesterov: w -= lr*(g + mu*b))
 * With a constant learning rate v == -lr * b at every step, so the two give
 * the same weights. They part only when the learning rate changes during
 * training: Keras' velocity keeps the old rate's steps, PyTorch rescales the
 * whole buffer by the new rate. Momentum 0 is plain w -= lr * g. */
#include "nn_internal.h"
#include "optim/optim.h"

#define PAR_MIN 32768

void nn__sgd_update(const nn_sgd_opts *o, float *restrict w,
                    const float *restrict g, float *restrict vel, int64_t n)
{
    float lr = o->learning_rate, mu = o->momentum;
    int nt = nn__threads();
    if (mu == 0) {
#pragma omp parallel for simd if (parallel: n >= PAR_MIN) num_threads(nt) schedule(static)
        for (int64_t i = 0; i < n; i++) w[i] -= lr * g[i];
    } else if (o->nesterov) {
#pragma omp parallel for simd if (parallel: n >= PAR_MIN) num_threads(nt) schedule(static)
        for (int64_t i = 0; i < n; i++) {
            float vi = mu * vel[i] - lr * g[i];
            vel[i] = vi;
            w[i] += mu * vi - lr * g[i];
        }
    } else {
#pragma omp parallel for simd if (parallel: n >= PAR_MIN) num_threads(nt) schedule(static)
        for (int64_t i = 0; i < n; i++) {
            float vi = mu * vel[i] - lr * g[i];
            vel[i] = vi;
            w[i] += vi;
        }
    }
}
