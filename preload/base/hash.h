/*
 * hash: the preload's two hash functions, for its open-addressing tables.
 * Runs inside malloc: pure functions, no state.
 */
#ifndef PM_HASH_H
#define PM_HASH_H

#include <stddef.h>
#include <stdint.h>

/* A 64-bit finaliser (MurmurHash3's fmix64): every input bit moves every
 * output bit, so low bits can index a table. */
static inline uint64_t pm_mix64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    return h ^ (h >> 33);
}

/* FNV-1a over `n` bytes, then mixed. */
static inline uint64_t pm_hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return pm_mix64(h);
}

#endif
