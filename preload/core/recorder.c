/*
 * recorder: encodes events into the per-thread buffers. Runs inside malloc:
 * no allocation, no stdio; the only lock is the file lock when a full ring
 * is flushed by its own thread.
 */
#define _GNU_SOURCE
#include "core/recorder.h"

#include <string.h>
#include <time.h>
#include <unistd.h>

#include "io/buffer.h"
#include "io/sequence.h"
#include "pymem/encode.h"
#include "core/sampler.h"
#include "stacks/stacks.h"
#include "base/thread.h"

static void (*_Atomic thread_started)(struct pm_buffer *);

void pm_recorder_on_thread_start(void (*started)(struct pm_buffer *))
{
    atomic_store_explicit(&thread_started, started, memory_order_release);
}

/* The thread's first event: its buffer. */
static __attribute__((noinline)) struct pm_buffer *thread_buffer_claim(void)
{
    struct pm_buffer *b = pm_buffer_claim((pid_t)gettid());
    pm_thread.buf = b;
    if (b) {
        pm_stacks_thread_start(b);
        void (*started)(struct pm_buffer *) = atomic_load_explicit(&thread_started, memory_order_acquire);
        if (started)
            started(b);
    }
    return b;
}

static inline struct pm_buffer *thread_buffer(void)
{
    struct pm_buffer *b = pm_thread.buf;
    return __builtin_expect(b != NULL, 1) ? b : thread_buffer_claim();
}

/* What an event record carries; a constant at each call of record_event, so
 * that each entry point below gets its own straight-line copy. */
enum event_kind { EVENT_ALLOC, EVENT_FREE, EVENT_MUNMAP, EVENT_RETAG };

/* Takes the next sequence number and publishes the record that carries it.
 * `busy` brackets the window (see the watermark argument in writer.c): the
 * number is taken with release semantics, so a writer that reads the counter
 * past this number also sees `busy` set, or cleared after the publication.
 * The caller has ensured PM_EVENT_MAX_BYTES of space. */
static inline __attribute__((always_inline)) void publish_event(struct pm_buffer *b, enum event_kind kind,
                                                                int domain, uint64_t addr, size_t size,
                                                                uint32_t stack)
{
    uint8_t tmp[PM_EVENT_MAX_BYTES];
    uint8_t *rec = pm_buffer_slot(b, PM_EVENT_MAX_BYTES);
    uint8_t *out = rec ? rec : tmp;
    atomic_store_explicit(&b->busy, 1, memory_order_relaxed);
    uint64_t seq = pm_sequence_take(b);
    size_t n = kind == EVENT_ALLOC    ? pm_encode_alloc(out, &b->deltas, domain, seq, addr, size, stack)
               : kind == EVENT_FREE   ? pm_encode_free(out, &b->deltas, seq, addr)
               : kind == EVENT_MUNMAP ? pm_encode_munmap(out, &b->deltas, seq, addr, size)
                                      : pm_encode_retag(out, &b->deltas, seq, addr, stack);
    if (__builtin_expect(rec != NULL, 1))
        pm_buffer_commit(b, n);
    else
        pm_buffer_append(b, tmp, n);
    atomic_store_explicit(&b->busy, 0, memory_order_release);
}

/* One event: its stack (allocations and retags, walked for `domain`), then
 * the record. A full ring that cannot be flushed any more costs the event,
 * and is counted. */
static inline __attribute__((always_inline)) void record_event(enum event_kind kind, int domain, void *p,
                                                               size_t size)
{
    pm_thread.recording = PM_IN_RECORDER;
    struct pm_buffer *b = thread_buffer();
    if (__builtin_expect(b != NULL, 1)) {
        uint32_t stack = kind == EVENT_ALLOC || kind == EVENT_RETAG ? pm_stacks_current(b, domain) : 0;
        if (__builtin_expect(pm_buffer_ensure(b, PM_EVENT_MAX_BYTES), 1))
            publish_event(b, kind, domain, (uint64_t)(uintptr_t)p, size, stack);
        else
            atomic_fetch_add(&pm_unrecorded, 1);
    }
    pm_thread.recording = 0;
}

/* Whether an allocation is one to record: in sampled mode, the totals count
 * every allocation (mappings are all recorded too), and a sample is
 * remembered so that its free is recorded. */
static inline bool alloc_wanted(void *p, size_t size, int domain)
{
    if (!pm_sample_mean)
        return true;
    pm_thread.recording = PM_IN_RECORDER;
    struct pm_buffer *b = thread_buffer();
    pm_thread.recording = 0;
    if (!b)
        return false;
    pm_count(&b->allocations, 1);
    pm_count(&b->alloc_bytes, size);
    if (domain == PM_DOMAIN_MMAP)
        return true;
    if (!pm_sampler_take(size))
        return false;
    pm_sampler_remember(p);
    return true;
}

/* The entry points below leave errno as they found it: a ring flushed by
 * its own thread, or the sampler's table grown, makes system calls, and the
 * hooks do not keep errno around them (a hook's common case in sampled mode
 * calls none of these). */
void pm_record_alloc(void *p, size_t size, int domain)
{
    int *e = pm_errno(), err = *e;
    if (alloc_wanted(p, size, domain))
        record_event(EVENT_ALLOC, domain, p, size);
    *e = err;
}

void pm_record_free(void *p)
{
    int *e = pm_errno(), err = *e;
    /* in sampled mode, a free that is not a sample's was counted by the hook
     * (pm_sample_skip_free) */
    if (!pm_sample_mean || pm_sampler_forget(p))
        record_event(EVENT_FREE, PM_DOMAIN_MALLOC, p, 0);
    *e = err;
}

void pm_record_retag(void *p)
{
    int *e = pm_errno(), err = *e;
    record_event(EVENT_RETAG, PM_DOMAIN_PYOBJ, p, 0); /* a recycled object */
    *e = err;
}

void pm_record_munmap(void *p, size_t length)
{
    int *e = pm_errno(), err = *e;
    record_event(EVENT_MUNMAP, PM_DOMAIN_MMAP, p, length);
    *e = err;
}

/* A record that takes a sequence number but is no event: `encode` lays it
 * out, numbered `seq`, in at most PM_SNAPSHOT_MAX_BYTES. One that finds no
 * room is counted as unrecorded. */
struct numbered {
    const char *label; /* snapshot */
    int kind;
    void *p;           /* arena */
    size_t length;
    bool freed;
};

typedef size_t (*numbered_fn)(uint8_t *rec, struct pm_buffer *b, uint64_t seq, const struct numbered *n);

static void publish_numbered(numbered_fn encode, const struct numbered *n)
{
    pm_thread.recording = PM_IN_RECORDER;
    struct pm_buffer *b = thread_buffer();
    if (b && pm_buffer_ensure(b, PM_SNAPSHOT_MAX_BYTES)) {
        uint8_t rec[PM_SNAPSHOT_MAX_BYTES];
        atomic_store_explicit(&b->busy, 1, memory_order_relaxed);
        uint64_t seq = pm_sequence_take(b);
        pm_buffer_append(b, rec, encode(rec, b, seq, n));
        atomic_store_explicit(&b->busy, 0, memory_order_release);
    } else if (b) {
        atomic_fetch_add(&pm_unrecorded, 1);
    }
    pm_thread.recording = 0;
}

static size_t encode_arena(uint8_t *rec, struct pm_buffer *b, uint64_t seq, const struct numbered *n)
{
    return pm_encode_arena(rec, &b->deltas, seq, (uint64_t)(uintptr_t)n->p, n->length, n->freed);
}

static size_t encode_snapshot(uint8_t *rec, struct pm_buffer *b, uint64_t seq, const struct numbered *n)
{
    (void)b;
    return pm_encode_snapshot(rec, seq, n->kind, pm_now_ns(), n->label);
}

void pm_record_arena(void *p, size_t length, bool freed)
{
    publish_numbered(encode_arena, &(struct numbered){.p = p, .length = length, .freed = freed});
}

void pm_record_snapshot(int kind, const char *label)
{
    publish_numbered(encode_snapshot, &(struct numbered){.label = label, .kind = kind});
}
