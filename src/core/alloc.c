/* Allocation wrappers: one place to check sizes and to inject failures. */
#include "nn_internal.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* Fault injection for tests: the k-th allocation from now on fails. */
static _Atomic int64_t fail_countdown;
static _Atomic int64_t alloc_count;

int64_t nn__debug_fail_alloc_after(int64_t k)
{
    int64_t n = atomic_exchange(&alloc_count, 0);
    atomic_store(&fail_countdown, k);
    return n;
}

static bool injected_failure(void)
{
    atomic_fetch_add(&alloc_count, 1);
    int64_t c = atomic_load(&fail_countdown);
    if (c <= 0) return false;
    if (atomic_fetch_sub(&fail_countdown, 1) == 1) return true;
    return false;
}

bool nn__mul_ok(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a) return false;
    *out = a * b;
    return true;
}

void *nn__try_alloc(size_t bytes)
{
    if (bytes == 0) bytes = 1;
    /* Round up so aligned_alloc's size is a multiple of the alignment. */
    if (bytes > SIZE_MAX - 63 || injected_failure()) return NULL;
    return aligned_alloc(64, (bytes + 63) & ~(size_t)63);
}

void *nn__alloc(size_t bytes)
{
    void *p = nn__try_alloc(bytes);
    if (!p) nn__fail(NN_ERR_NOMEM, "out of memory (%zu bytes)", bytes);
    return p;
}

void *nn__calloc(size_t count, size_t size)
{
    size_t bytes;
    if (!nn__mul_ok(count, size, &bytes)) {
        nn__fail(NN_ERR_NOMEM, "allocation size overflows (%zu x %zu)", count,
                 size);
        return NULL;
    }
    void *p = nn__alloc(bytes);
    if (p) memset(p, 0, bytes);
    return p;
}

void *nn__realloc(void *p, size_t bytes)
{
    if (bytes == 0) bytes = 1;
    if (injected_failure()) {
        nn__fail(NN_ERR_NOMEM, "out of memory (%zu bytes)", bytes);
        return NULL;
    }
    void *q = realloc(p, bytes);
    if (!q) nn__fail(NN_ERR_NOMEM, "out of memory (%zu bytes)", bytes);
    return q;
}

void nn__free(void *p) { free(p); }
