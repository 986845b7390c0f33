/*
 * sampler: byte-based Poisson sampling for staging (PYMEM_SAMPLE=BYTES).
 * Each thread counts down the bytes it allocates; when the count runs out the
 * allocation that crossed it is sampled and a new distance is drawn from an
 * exponential of mean R. A block of s bytes is thus sampled with probability
 * 1 - exp(-s/R), independently of every other block, and the analyzer weighs
 * it by the inverse. Only the frees of sampled blocks are recorded: the set of
 * live sampled addresses answers "was this one sampled?" for every free with
 * one load from a small table, taking a lock only when the answer may be yes.
 *
 * Runs inside malloc: no allocation (rawmem only), no stdio; the one lock is
 * taken for sampled blocks (rare by construction).
 */
#ifndef PM_SAMPLER_H
#define PM_SAMPLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <stdatomic.h>

#include "io/buffer.h"
#include "base/thread.h"

/* the default mean: pymem/env.h */

/* Mean bytes between samples; 0 when every allocation is recorded. */
extern uint64_t pm_sample_mean;

struct pm_filter {
    size_t mask;
    _Atomic uint16_t counts[];
};
extern struct pm_filter *_Atomic pm_sample_filter;

static inline size_t pm_filter_slot(const struct pm_filter *f, const void *p)
{
    uint64_t h = (uint64_t)(uintptr_t)p * 0x9e3779b97f4a7c15ULL;
    return (size_t)(h >> 40) & f->mask;
}

/* Adds to one of the calling thread's exact totals (only it writes them). */
static inline void pm_count(_Atomic uint64_t *counter, uint64_t n)
{
    atomic_store_explicit(counter, atomic_load_explicit(counter, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

/* The hooks' fast path in sampled mode, for an allocation of `size` bytes
 * that succeeded: counts it and moves the countdown. True when that is all
 * there is to do; false when it may be a sample (or the thread has no buffer
 * yet): then pm_record_alloc decides and records. */
static inline bool pm_sample_skip_alloc(size_t size)
{
    struct pm_buffer *b = pm_thread.buf;
    /* one test for a countdown not drawn yet (0), run out, or too big a size */
    if (!b || (uint64_t)pm_thread.sample_left <= size)
        return false;
    pm_thread.sample_left -= (int64_t)size;
    pm_count(&b->allocations, 1);
    pm_count(&b->alloc_bytes, size);
    return true;
}

/* False when `p` is certainly not a live sampled block (one load). */
static inline bool pm_sample_may_hold(const void *p)
{
    struct pm_filter *f = atomic_load_explicit(&pm_sample_filter, memory_order_acquire);
    return atomic_load_explicit(&f->counts[pm_filter_slot(f, p)], memory_order_relaxed) != 0;
}

/* The same for a free: counts it; true unless `p` may be a sampled block. */
static inline bool pm_sample_skip_free(const void *p)
{
    struct pm_buffer *b = pm_thread.buf;
    if (b)
        pm_count(&b->frees, 1);
    return !pm_sample_may_hold(p);
}

/* Turns sampling on (before recording starts). `seed` 0: from the clock. */
bool pm_sampler_init(uint64_t mean, uint64_t seed);
/* Counts `size` bytes against the calling thread's countdown; true if this
 * allocation is a sample. */
bool pm_sampler_take(size_t size);
/* A sampled block is live at `p` / was freed: true if it was sampled. */
void pm_sampler_remember(const void *p);
bool pm_sampler_forget(const void *p);
/* In a forked child: the parent's samples are not this capture's. */
void pm_sampler_reset_after_fork(void);

#endif
