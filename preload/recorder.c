/*
 * recorder: encodes events into the per-thread buffers. Runs inside malloc:
 * no allocation, no stdio; the only lock is the file lock when a full ring
 * is flushed by its own thread.
 */
#define _GNU_SOURCE
#include "recorder.h"

#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buffer.h"
#include "lifecycle.h"
#include "pymem/format.h"
#include "sampler.h"
#include "stacks.h"
#include "thread.h"

__thread struct pm_thread pm_thread __attribute__((tls_model("initial-exec")));
_Atomic int pm_state;
_Atomic uint64_t pm_seq = 1;
_Atomic uint64_t pm_unrecorded;
_Atomic int pm_mmap_recording;

static uint64_t clock_origin;

void pm_clock_start(void)
{
    clock_origin = 0;
    clock_origin = pm_now_ns();
}

uint64_t pm_monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t pm_now_ns(void)
{
    return pm_monotonic_ns() - clock_origin;
}

/* The thread's first event: its buffer. */
static __attribute__((noinline)) struct pm_buffer *thread_buffer_claim(void)
{
    struct pm_buffer *b = pm_buffer_claim((pid_t)gettid());
    pm_thread.buf = b;
    if (b)
        pm_lifecycle_thread_started(b);
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
 * fetch-and-add has release semantics, so a writer that reads the counter
 * past this number also sees `busy` set, or cleared after the publication.
 * The caller has ensured PM_EVENT_MAX_BYTES of space. */
static inline __attribute__((always_inline)) void publish_event(struct pm_buffer *b, enum event_kind kind,
                                                                uint8_t tag, uint64_t addr, size_t size,
                                                                uint32_t stack)
{
    uint8_t tmp[PM_EVENT_MAX_BYTES];
    uint8_t *rec = pm_buffer_slot(b, PM_EVENT_MAX_BYTES);
    uint8_t *out = rec ? rec : tmp;
    atomic_store_explicit(&b->busy, 1, memory_order_relaxed);
    uint64_t seq = atomic_fetch_add_explicit(&pm_seq, 1, memory_order_acq_rel);
    size_t n = 0;
    out[n++] = tag;
    n += pm_put_varint(out + n, seq - b->last_seq);
    n += pm_put_varint(out + n, pm_zigzag((int64_t)(addr - b->last_addr)));
    if (kind == EVENT_ALLOC || kind == EVENT_MUNMAP)
        n += pm_put_varint(out + n, size);
    if (kind == EVENT_ALLOC || kind == EVENT_RETAG) {
        n += pm_put_varint(out + n, pm_zigzag((int64_t)stack - (int64_t)b->last_stack));
        b->last_stack = stack;
    }
    b->last_seq = seq;
    b->last_addr = addr;
    if (__builtin_expect(rec != NULL, 1))
        pm_buffer_commit(b, n);
    else
        pm_buffer_append(b, tmp, n);
    atomic_store_explicit(&b->busy, 0, memory_order_release);
}

/* One event: its stack (allocations only), then the record. A full ring that
 * cannot be flushed any more costs the event, and is counted. */
static inline __attribute__((always_inline)) void record_event(enum event_kind kind, uint8_t tag, void *p,
                                                               size_t size)
{
    pm_thread.recording = PM_IN_RECORDER;
    struct pm_buffer *b = thread_buffer();
    if (__builtin_expect(b != NULL, 1)) {
        uint32_t stack = kind == EVENT_ALLOC    ? pm_stacks_current(b, tag & 0x0f)
                         : kind == EVENT_RETAG ? pm_stacks_current(b, PM_DOMAIN_PYOBJ)
                                               : 0;
        if (__builtin_expect(pm_buffer_ensure(b, PM_EVENT_MAX_BYTES), 1))
            publish_event(b, kind, tag, (uint64_t)(uintptr_t)p, size, stack);
        else
            atomic_fetch_add(&pm_unrecorded, 1);
    }
    pm_thread.recording = 0;
}

void pm_record_alloc(void *p, size_t size, int domain)
{
    if (pm_sample_mean && domain != PM_DOMAIN_MMAP) { /* mappings are all recorded */
        pm_thread.recording = PM_IN_RECORDER;
        struct pm_buffer *b = thread_buffer();
        pm_thread.recording = 0;
        if (!b)
            return;
        pm_count(&b->allocations, 1);
        pm_count(&b->alloc_bytes, size);
        if (!pm_sampler_take(size))
            return;
        pm_sampler_remember(p);
    }
    record_event(EVENT_ALLOC, (uint8_t)(PM_TAG_ALLOC | domain), p, size);
}

void pm_record_free(void *p)
{
    if (pm_sample_mean && !pm_sampler_forget(p))
        return; /* counted by the hook (pm_sample_skip_free) */
    record_event(EVENT_FREE, PM_TAG_FREE, p, 0);
}

void pm_record_retag(void *p)
{
    if (pm_sample_mean && !pm_sample_may_hold(p))
        return;
    record_event(EVENT_RETAG, PM_TAG_RETAG, p, 0);
}

void pm_record_munmap(void *p, size_t length)
{
    record_event(EVENT_MUNMAP, PM_TAG_MUNMAP, p, length);
}

size_t pm_encode_snapshot(uint8_t *rec, uint64_t seq, int kind, const char *label)
{
    size_t len = strnlen(label, 200), n = 0;
    rec[n++] = PM_TAG_SNAPSHOT;
    n += pm_put_varint(rec + n, seq);
    n += pm_put_varint(rec + n, (uint64_t)kind);
    n += pm_put_varint(rec + n, pm_now_ns());
    n += pm_put_varint(rec + n, len);
    memcpy(rec + n, label, len);
    return n + len;
}

void pm_record_snapshot(int kind, const char *label)
{
    pm_thread.recording = PM_IN_RECORDER;
    struct pm_buffer *b = thread_buffer();
    if (b && pm_buffer_ensure(b, 256)) {
        uint8_t rec[256];
        atomic_store_explicit(&b->busy, 1, memory_order_relaxed);
        uint64_t seq = atomic_fetch_add_explicit(&pm_seq, 1, memory_order_acq_rel);
        pm_buffer_append(b, rec, pm_encode_snapshot(rec, seq, kind, label));
        atomic_store_explicit(&b->busy, 0, memory_order_release);
    }
    pm_thread.recording = 0;
}
