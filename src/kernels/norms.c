/* Sums of squares and finite checks over raw float buffers, the same
 * whatever the thread count (the gradient diagnostics and clipping use
 * them). */
#include "kernels/kernels.h"

#include <math.h>

/* A sum is split into at most MAX_CHUNKS chunks of at least MIN_CHUNK
 * values; each chunk is summed in double and the partial sums are added in
 * chunk order, which fixes the rounding whatever the thread count. */
#define MIN_CHUNK 16384
#define MAX_CHUNKS 256

static int64_t chunk_len(int64_t n)
{
    int64_t c = (n + MAX_CHUNKS - 1) / MAX_CHUNKS;
    return c < MIN_CHUNK ? MIN_CHUNK : c;
}

static double sumsq_serial(const float *x, int64_t n)
{
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; i++) s += (double)x[i] * (double)x[i];
    return s;
}

static double sumsq_diff_serial(const float *a, const float *b, int64_t n)
{
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        s += d * d;
    }
    return s;
}

/* Runs f over the chunks of [0, n) in parallel and adds the results in
 * chunk order. b may be NULL for one-buffer sums. */
static double chunked(double (*one)(const float *, int64_t),
                      double (*two)(const float *, const float *, int64_t),
                      const float *a, const float *b, int64_t n)
{
    int64_t len = chunk_len(n);
    int chunks = (int)((n + len - 1) / len);
    if (chunks <= 1) return one ? one(a, n) : two(a, b, n);
    double part[MAX_CHUNKS];
    int nt = nn__threads();
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int k = 0; k < chunks; k++) {
        int64_t lo = (int64_t)k * len;
        int64_t cnt = n - lo < len ? n - lo : len;
        part[k] = one ? one(a + lo, cnt) : two(a + lo, b + lo, cnt);
    }
    double s = 0;
    for (int k = 0; k < chunks; k++) s += part[k];
    return s;
}

double nn__sumsq(const float *x, int64_t n)
{
    return n > 0 ? chunked(sumsq_serial, NULL, x, NULL, n) : 0.0;
}

double nn__sumsq_diff(const float *a, const float *b, int64_t n)
{
    return n > 0 ? chunked(NULL, sumsq_diff_serial, a, b, n) : 0.0;
}

/* x * 0 is 0 for every finite x and NaN for NaN and +-Inf, so one sum
 * answers the question without a branch per value. */
static double nonfinite_serial(const float *x, int64_t n)
{
    float s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; i++) s += x[i] * 0.0f;
    return (double)s;
}

bool nn__all_finite(const float *x, int64_t n)
{
    if (n <= 0) return true;
    return !isnan(chunked(nonfinite_serial, NULL, x, NULL, n));
}

int64_t nn__first_nonfinite(const float *x, int64_t n, const char **what)
{
    for (int64_t i = 0; i < n; i++) {
        if (isfinite(x[i])) continue;
        if (what) *what = isnan(x[i]) ? "NaN" : (x[i] > 0 ? "+Inf" : "-Inf");
        return i;
    }
    if (what) *what = "NaN";
    return -1;
}
