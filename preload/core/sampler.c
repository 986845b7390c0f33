/*
 * sampler: the countdown and the set of live sampled blocks (contract in
 * sampler.h). Runs inside malloc: memory from rawmem, no stdio; the lock is
 * taken only for sampled blocks and for frees whose filter slot is set.
 */
#define _GNU_SOURCE
#include "core/sampler.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/hash.h"
#include "base/rawmem.h"
#include "base/thread.h"

uint64_t pm_sample_mean;
static uint64_t seed_base;

/* A counting filter in front of the exact set: a free whose slot count is 0
 * was not sampled, and costs one load. Counts, not bits, so that a slot goes
 * back to 0 when the last sampled block hashing there is freed. It is kept
 * small enough to stay in the cache (16 slots per live sample, from 4096) and
 * replaced by a bigger one under the lock as samples accumulate; replaced
 * filters are left mapped (a reader may still hold one), which costs at most
 * as much again as the current one. */
#define FILTER_MIN 4096u
struct pm_filter *_Atomic pm_sample_filter;
static struct pm_filter *filter_new(size_t slots)
{
    struct pm_filter *f = pm_rawmem_alloc(sizeof *f + slots * sizeof f->counts[0]);
    if (f)
        f->mask = slots - 1;
    return f;
}

/* The exact set: open addressing under the lock, backward-shift deletion. */
static struct {
    pthread_mutex_t lock;
    uintptr_t *slots;
    size_t cap, count;
} S = {.lock = PTHREAD_MUTEX_INITIALIZER};

static uint64_t next_random(void)
{
    if (!pm_thread.rng)
        pm_thread.rng = pm_mix64(seed_base ^ ((uint64_t)gettid() << 17)) | 1;
    /* xorshift64* */
    uint64_t x = pm_thread.rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    pm_thread.rng = x;
    return x * 0x2545f4914f6cdd1dULL;
}

/* Bytes to the next sample: exponential of mean R (the Poisson process's
 * gaps), at least 1. */
static int64_t draw(void)
{
    double u = ((double)(next_random() >> 11) + 0.5) / 9007199254740992.0; /* (0, 1) */
    double d = -log(u) * (double)pm_sample_mean;
    return d < 1 ? 1 : d > 9e18 ? (int64_t)9e18 : (int64_t)d;
}

bool pm_sampler_init(uint64_t mean, uint64_t seed)
{
    /* A forked child keeps the tables pm_sampler_reset_after_fork emptied. */
    if (!atomic_load(&pm_sample_filter)) {
        struct pm_filter *f = filter_new(FILTER_MIN);
        S.cap = 1u << 12;
        S.slots = pm_rawmem_alloc(S.cap * sizeof *S.slots);
        if (!f || !S.slots)
            return false;
        atomic_store_explicit(&pm_sample_filter, f, memory_order_release);
    }
    if (!seed) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ (uint64_t)getpid();
    }
    seed_base = pm_mix64(seed);
    pm_sample_mean = mean;
    return true;
}

bool pm_sampler_take(size_t size)
{
    int64_t left = pm_thread.sample_left;
    if (__builtin_expect(left == 0, 0))
        left = draw();
    left -= (int64_t)(size > INT64_MAX ? INT64_MAX : size);
    if (left > 0) {
        pm_thread.sample_left = left;
        return false;
    }
    /* Exponential gaps forget their past: the next sample lies a fresh draw
     * past the end of this block. */
    pm_thread.sample_left = draw();
    return true;
}

/* Rebuilds the filter for the set as it is, bigger. Under the lock. */
static void filter_grow(void)
{
    struct pm_filter *old = atomic_load_explicit(&pm_sample_filter, memory_order_relaxed);
    size_t slots = (old->mask + 1) * 4;
    struct pm_filter *f = filter_new(slots);
    if (!f)
        return; /* the old one still answers correctly, only more often "maybe" */
    for (size_t i = 0; i < S.cap; i++)
        if (S.slots[i])
            f->counts[pm_filter_slot(f, (const void *)S.slots[i])]++;
    atomic_store_explicit(&pm_sample_filter, f, memory_order_release);
}

static size_t home(uintptr_t a, size_t cap)
{
    return (size_t)(pm_mix64(a) >> 7) & (cap - 1);
}

static bool grow_set(void)
{
    size_t ncap = S.cap * 2;
    uintptr_t *n = pm_rawmem_alloc(ncap * sizeof *n);
    if (!n)
        return false;
    for (size_t i = 0; i < S.cap; i++) {
        uintptr_t a = S.slots[i];
        if (!a)
            continue;
        size_t j = home(a, ncap);
        while (n[j])
            j = (j + 1) & (ncap - 1);
        n[j] = a;
    }
    pm_rawmem_free(S.slots, S.cap * sizeof *S.slots);
    S.slots = n;
    S.cap = ncap;
    return true;
}

void pm_sampler_remember(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    pthread_mutex_lock(&S.lock);
    if ((S.count + 1) * 2 > S.cap && !grow_set()) {
        pthread_mutex_unlock(&S.lock);
        return; /* its free will not be recorded: it stays live in the estimate */
    }
    size_t i = home(a, S.cap);
    while (S.slots[i] && S.slots[i] != a)
        i = (i + 1) & (S.cap - 1);
    if (!S.slots[i]) {
        S.slots[i] = a;
        S.count++;
        struct pm_filter *f = atomic_load_explicit(&pm_sample_filter, memory_order_relaxed);
        if (S.count * 16 > f->mask + 1) {
            filter_grow();
            f = atomic_load_explicit(&pm_sample_filter, memory_order_relaxed);
        } else {
            atomic_fetch_add_explicit(&f->counts[pm_filter_slot(f, p)], 1, memory_order_relaxed);
        }
    }
    pthread_mutex_unlock(&S.lock);
}

bool pm_sampler_forget(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    bool found = false;
    pthread_mutex_lock(&S.lock);
    size_t i = home(a, S.cap);
    for (; S.slots[i]; i = (i + 1) & (S.cap - 1)) {
        if (S.slots[i] == a) {
            found = true;
            break;
        }
    }
    if (found) {
        /* backward-shift deletion: no tombstones */
        size_t j = i;
        for (;;) {
            j = (j + 1) & (S.cap - 1);
            if (!S.slots[j])
                break;
            size_t h = home(S.slots[j], S.cap);
            if ((j > i && (h <= i || h > j)) || (j < i && (h <= i && h > j))) {
                S.slots[i] = S.slots[j];
                i = j;
            }
        }
        S.slots[i] = 0;
        S.count--;
        struct pm_filter *f = atomic_load_explicit(&pm_sample_filter, memory_order_relaxed);
        atomic_fetch_sub_explicit(&f->counts[pm_filter_slot(f, p)], 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&S.lock);
    return found;
}

void pm_sampler_reset_after_fork(void)
{
    pthread_mutex_init(&S.lock, NULL);
    struct pm_filter *f = atomic_load(&pm_sample_filter);
    if (f)
        memset((void *)f->counts, 0, (f->mask + 1) * sizeof f->counts[0]);
    if (S.slots)
        memset(S.slots, 0, S.cap * sizeof *S.slots);
    S.count = 0;
    pm_thread.rng = 0;
    pm_thread.sample_left = 0;
}
