/*
 * buffer: per-thread SPSC rings and the registry that lists them (the
 * protocol is described in buffer.h). Runs inside malloc: no allocation
 * through the hooks, no locks, no stdio.
 */
#define _GNU_SOURCE
#include "io/buffer.h"

#include <string.h>
#include <sys/prctl.h>

#include "pymem/encode.h"
#include "base/rawmem.h"

static _Atomic(struct pm_buffer *) registry;
static _Atomic uint32_t next_stream = 1;
static bool (*_Atomic flush_full)(struct pm_buffer *);

void pm_buffer_on_full(bool (*flush)(struct pm_buffer *))
{
    atomic_store_explicit(&flush_full, flush, memory_order_release);
}

static struct pm_buffer *buffer_create(void)
{
    struct pm_buffer *b = pm_rawmem_alloc_at(sizeof *b, PM_OFFSET_BUFFER);
    if (!b)
        return NULL;
    b->ring = pm_rawmem_alloc(PM_RING_MIN);
    b->cap = PM_RING_MIN;
    if (!b->ring) {
        pm_rawmem_free_at(b, sizeof *b, PM_OFFSET_BUFFER);
        return NULL;
    }
    b->stream = atomic_fetch_add(&next_stream, 1);
    atomic_store(&b->state, PM_BUF_LIVE);
    struct pm_buffer *old = atomic_load(&registry);
    do {
        b->next = old;
    } while (!atomic_compare_exchange_weak(&registry, &old, b));
    return b;
}

static struct pm_buffer *buffer_reuse(void)
{
    for (struct pm_buffer *b = atomic_load(&registry); b; b = b->next) {
        int expected = PM_BUF_FREE;
        if (atomic_load(&b->state) == PM_BUF_FREE &&
            atomic_compare_exchange_strong(&b->state, &expected, PM_BUF_LIVE))
            return b;
    }
    return NULL;
}

struct pm_buffer *pm_buffer_claim(pid_t tid)
{
    struct pm_buffer *b = buffer_reuse();
    if (!b)
        b = buffer_create();
    if (!b)
        return NULL;
    b->tid = tid;
    b->limit = 0; /* the totals of a reused buffer go on adding up */

    char name[17] = {0};
    prctl(PR_GET_NAME, name, 0, 0, 0);
    size_t len = strlen(name);
    uint8_t rec[64];
    size_t n = pm_encode_thread(rec, &b->deltas, (uint64_t)tid, name, len);
    if (pm_buffer_ensure(b, n))
        pm_buffer_append(b, rec, n);
    return b;
}

bool pm_buffer_make_room(struct pm_buffer *b, size_t n)
{
    if (pm_buffer_space(b) >= n)
        return true;
    bool (*flush)(struct pm_buffer *) = atomic_load_explicit(&flush_full, memory_order_acquire);
    return flush && flush(b) && pm_buffer_space(b) >= n;
}

bool pm_buffer_grow(struct pm_buffer *b)
{
    if (b->cap >= PM_RING_MAX || atomic_load(&b->head) != atomic_load(&b->tail))
        return false;
    uint8_t *ring = pm_rawmem_alloc(b->cap * 2);
    if (!ring)
        return false;
    pm_rawmem_free(b->ring, b->cap);
    b->ring = ring;
    b->cap *= 2;
    b->limit = 0; /* recomputed from the new size at the next append */
    return true;
}

void pm_buffer_put(struct pm_buffer *b, uint64_t at, const void *data, size_t n)
{
    uint64_t off = at & (b->cap - 1);
    size_t first = n;
    if (off + n > b->cap)
        first = (size_t)(b->cap - off);
    memcpy(b->ring + off, data, first);
    if (first < n)
        memcpy(b->ring, (const uint8_t *)data + first, n - first);
}

void pm_buffer_append(struct pm_buffer *b, const void *data, size_t n)
{
    uint64_t head = atomic_load_explicit(&b->head, memory_order_relaxed);
    pm_buffer_put(b, head, data, n);
    atomic_store_explicit(&b->head, head + n, memory_order_release);
}

size_t pm_buffer_peek(struct pm_buffer *b, const uint8_t **s1, size_t *n1, const uint8_t **s2,
                      size_t *n2)
{
    uint64_t head = atomic_load_explicit(&b->head, memory_order_acquire);
    uint64_t tail = atomic_load_explicit(&b->tail, memory_order_relaxed);
    size_t avail = (size_t)(head - tail);
    uint64_t off = tail & (b->cap - 1);
    *s1 = b->ring + off;
    *n1 = avail;
    *s2 = b->ring;
    *n2 = 0;
    if (off + avail > b->cap) {
        *n1 = (size_t)(b->cap - off);
        *n2 = avail - *n1;
    }
    return avail;
}

void pm_buffer_consume(struct pm_buffer *b, size_t n)
{
    uint64_t tail = atomic_load_explicit(&b->tail, memory_order_relaxed);
    atomic_store_explicit(&b->tail, tail + n, memory_order_release);
}

struct pm_buffer *pm_buffer_first(void)
{
    return atomic_load(&registry);
}

void pm_buffer_forget_all(void)
{
    atomic_store(&registry, NULL);
    atomic_store(&next_stream, 1);
}
