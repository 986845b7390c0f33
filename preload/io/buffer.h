/*
 * buffer: one single-producer single-consumer byte ring per thread.
 *
 * Producer: the owning thread, appending encoded records at `head`.
 * Consumer: whoever holds the writer's file lock (the writer thread, or the
 * owning thread flushing its own full ring), reading from `tail`.
 * Ordering: the producer fills bytes then stores `head` with release; the
 * consumer loads `head` with acquire, writes the bytes out, then stores `tail`
 * with release, which the producer loads with acquire before reusing space.
 * Full ring: the producer flushes it itself under the file lock (exact mode
 * never drops); only a dead writer (disk full, closed capture) drops, and
 * that is counted.
 *
 * `busy` is set around the short window in which the producer takes a
 * sequence number and publishes the record that carries it, so that the
 * writer can tell when every record below a given sequence number is in the
 * ring (see writer.c, watermarks).
 *
 * Buffers are never unmapped while the process runs: a thread that exits marks
 * its buffer EXITED (it may still free memory afterwards, from glibc's TLS
 * teardown); the writer drains it and frees it for reuse once the thread is
 * gone. Runs inside malloc: no allocation, no locks (but the flush), no stdio.
 */
#ifndef PM_BUFFER_H
#define PM_BUFFER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "pymem/encode.h"

enum pm_buffer_state { PM_BUF_LIVE = 0, PM_BUF_EXITED = 1, PM_BUF_FREE = 2 };

struct pm_stackcache;

struct pm_buffer {
    /* Written by the producer. */
    _Atomic uint64_t head;
    _Atomic int busy;
    struct pm_deltas deltas; /* the bases of the next event record */
    uint64_t limit; /* head may grow to here without reading `tail` again */
    struct pm_stackcache *stacks; /* stacks.c's, for the thread: kept when the buffer is reused */
    /* sequence.c's: the thread's last number from the atomic add, and how
     * many it took in a row before it (no other thread's in between) */
    uint64_t seq_last;
    uint32_t seq_run;
    /* Sampled mode: this thread's exact totals (read by the writer). */
    _Atomic uint64_t allocations, alloc_bytes, frees;
    char pad_[64];
    /* Written by the consumer. */
    _Atomic uint64_t tail;
    _Atomic int writing; /* the writer thread holds data taken from it, not yet written */
    /* Fixed after creation, except state and tid. */
    struct pm_buffer *next;
    _Atomic int state;
    pid_t tid;
    uint32_t stream;
    uint8_t *ring;
    uint64_t cap;           /* a power of two, PM_RING_MIN to PM_RING_MAX */
    uint64_t last_flush_ns; /* when the producer last had to flush it */
};

/* Rings start small (a pool of mostly idle threads stays cheap) and double
 * each time their thread fills them twice within 50 ms. */
#define PM_RING_MIN (64u * 1024u)
#define PM_RING_MAX (4096u * 1024u)

/* Takes a free buffer or maps a new one for the calling thread, and writes
 * its THREAD record. NULL when memory is exhausted. */
struct pm_buffer *pm_buffer_claim(pid_t tid);

/* Bytes the producer may append without waiting for the consumer. */
static inline uint64_t pm_buffer_space(struct pm_buffer *b)
{
    b->limit = atomic_load_explicit(&b->tail, memory_order_acquire) + b->cap;
    return b->limit - atomic_load_explicit(&b->head, memory_order_relaxed);
}

bool pm_buffer_make_room(struct pm_buffer *b, size_t n);
/* Who empties a full ring for its producer (the writer, registered by
 * lifecycle.c): returns false when the capture is no longer written. Until
 * one is registered a full ring drops (counted). */
void pm_buffer_on_full(bool (*flush)(struct pm_buffer *));

/* Makes room for `n` bytes, flushing the ring through the writer if needed.
 * Returns false if the capture can no longer be written (the caller drops).
 * The common case reads only the producer's own fields. */
static inline bool pm_buffer_ensure(struct pm_buffer *b, size_t n)
{
    if (atomic_load_explicit(&b->head, memory_order_relaxed) + n <= b->limit)
        return true;
    return pm_buffer_make_room(b, n);
}

/* Where the producer may write `n` bytes in place at `head`, or NULL when
 * they would wrap around the end of the ring. Requires pm_buffer_ensure. */
static inline uint8_t *pm_buffer_slot(struct pm_buffer *b, size_t n)
{
    uint64_t off = atomic_load_explicit(&b->head, memory_order_relaxed) & (b->cap - 1);
    return off + n <= b->cap ? b->ring + off : NULL;
}

/* Publishes `n` bytes written in place. */
static inline void pm_buffer_commit(struct pm_buffer *b, size_t n)
{
    atomic_store_explicit(&b->head, atomic_load_explicit(&b->head, memory_order_relaxed) + n,
                          memory_order_release);
}

/* Copies `n` bytes in at `head` without publishing them. Requires space. */
void pm_buffer_put(struct pm_buffer *b, uint64_t at, const void *data, size_t n);

/* Appends and publishes. Requires pm_buffer_ensure(b, n) first. */
void pm_buffer_append(struct pm_buffer *b, const void *data, size_t n);

/* Doubles an empty ring. Caller holds the file lock (no consumer runs) and
 * is its producer; false when memory is short (the ring stays as it was). */
bool pm_buffer_grow(struct pm_buffer *b);

/* Consumer: the published bytes not yet consumed, as at most two segments. */
size_t pm_buffer_peek(struct pm_buffer *b, const uint8_t **s1, size_t *n1, const uint8_t **s2,
                      size_t *n2);
void pm_buffer_consume(struct pm_buffer *b, size_t n);

/* Registry walk (every buffer ever created, newest first). */
struct pm_buffer *pm_buffer_first(void);

/* After fork, in the child: forget every buffer (their threads do not exist
 * here; their contents belong to the parent's capture). */
void pm_buffer_forget_all(void);

#endif
