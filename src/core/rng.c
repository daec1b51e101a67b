/* xoshiro256** seeded by splitmix64; a counter-based hash for parallel
 * draws. Reference: Blackman & Vigna, "Scrambled linear pseudorandom
 * number generators" (2018). */
#include "nn_internal.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void nn__rng_seed(nn_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

uint64_t nn__rng_u64(nn_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

float nn__rng_uniform(nn_rng *r)
{
    return (float)(nn__rng_u64(r) >> 40) * (1.0f / 16777216.0f);
}

float nn__rng_normal(nn_rng *r)
{
    /* Box-Muller; u1 in (0, 1] so log is finite. */
    double u1 = ((double)(nn__rng_u64(r) >> 11) + 1.0) * 0x1.0p-53;
    double u2 = (double)(nn__rng_u64(r) >> 11) * 0x1.0p-53;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

uint64_t nn__rng_below(nn_rng *r, uint64_t n)
{
    if (n <= 1) return 0;
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = nn__rng_u64(r);
    while (x >= limit);
    return x % n;
}

float nn__hash_uniform(uint64_t key, uint64_t index)
{
    return (float)nn__hash24(key, index) * (1.0f / 16777216.0f);
}
