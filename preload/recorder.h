/*
 * recorder: turns one allocation event into a record in the calling thread's
 * buffer. Every function here must be called with pm_thread.guard set by the
 * caller (the hook), and only while pm_recorder_on().
 * Runs inside malloc: no allocation, no stdio; no lock on the common path.
 */
#ifndef PM_RECORDER_H
#define PM_RECORDER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pymem/format.h"
#include "sampler.h"
#include "thread.h"

enum pm_state {
    PM_STATE_DORMANT = 0, /* passthrough: not Python, a child not followed, or gave up */
    PM_STATE_ON = 1,      /* recording */
    PM_STATE_CLOSED = 2,  /* the capture has ended */
};

extern _Atomic int pm_state;
/* The process-wide sequence counter that orders every event and snapshot. */
extern _Atomic uint64_t pm_seq;
/* Anonymous mmaps are recorded (set once Python's allocator hooks are in,
 * or at start in a process without Python). */
extern _Atomic int pm_mmap_recording;
/* Events the hooks saw but could not record (see thread.h, `recording`). */
extern _Atomic uint64_t pm_unrecorded;

static inline bool pm_recorder_on(void)
{
    return atomic_load_explicit(&pm_state, memory_order_relaxed) == PM_STATE_ON;
}

/* True when the hook that calls this should record; counts the calls that a
 * signal handler makes while this thread is inside the recorder. */
static inline bool pm_should_record(void)
{
    if (!pm_recorder_on())
        return false;
    if (pm_thread.guard) {
        if (pm_thread.recording == PM_IN_RECORDER)
            atomic_fetch_add_explicit(&pm_unrecorded, 1, memory_order_relaxed);
        return false;
    }
    return true;
}

void pm_record_alloc(void *p, size_t size, int domain);
void pm_record_free(void *p);

/* What the hooks call (guard set): in sampled mode the common case, an
 * allocation that is not a sample and a free of a block that was not, is
 * settled inline with a few thread-local adds and one load. */
static inline void pm_on_alloc(void *p, size_t size, int domain)
{
    if (pm_sample_mean && domain != PM_DOMAIN_MMAP && pm_sample_skip_alloc(size))
        return;
    pm_record_alloc(p, size, domain);
}

static inline void pm_on_free(void *p)
{
    if (pm_sample_mean && pm_sample_skip_free(p))
        return;
    pm_record_free(p);
}
/* The live block at `p` (a Python object recycled from a free list) now
 * belongs to the calling thread's current stack. */
void pm_record_retag(void *p);
/* Pages [p, p + length) are no longer mapped (mmap domain, ranged free). */
void pm_record_munmap(void *p, size_t length);
/* A snapshot marker ordered with the calling thread's events. */
void pm_record_snapshot(int kind, const char *label);

/* Encodes a SNAPSHOT record numbered `seq` into `rec` (room for 232 bytes:
 * labels are cut to 200). Returns its length. */
size_t pm_encode_snapshot(uint8_t *rec, uint64_t seq, int kind, const char *label);

/* Nanoseconds since the capture started (CLOCK_MONOTONIC). */
uint64_t pm_now_ns(void);
/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t pm_monotonic_ns(void);
void pm_clock_start(void);

#endif
