/*
 * recorder: turns one allocation event into a record in the calling thread's
 * buffer. Every function here must be called with pm_thread.guard set by the
 * caller (the hook), and only while pm_run_on(); those that record an event
 * leave errno as they found it.
 * Runs inside malloc: no allocation, no stdio; no lock on the common path.
 */
#ifndef PM_RECORDER_H
#define PM_RECORDER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pymem/format.h"
#include "base/runstate.h"
#include "base/thread.h"
#include "core/sampler.h"

/* True when the hook that calls this should record; counts the calls that a
 * signal handler makes while this thread is inside the recorder. */
static inline bool pm_should_record(void)
{
    if (!pm_run_on())
        return false;
    if (pm_thread.guard) {
        if (pm_thread.recording == PM_IN_RECORDER)
            atomic_fetch_add_explicit(&pm_unrecorded, 1, memory_order_relaxed);
        return false;
    }
    return true;
}

/* Who hears of a thread's first event, with its new buffer (lifecycle.c,
 * which arranges to hear of the thread's exit). */
struct pm_buffer;
void pm_recorder_on_thread_start(void (*started)(struct pm_buffer *));

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
 * belongs to the calling thread's current stack. In sampled mode, only for
 * a block the sampler may hold (pm_sample_may_hold). */
void pm_record_retag(void *p);
/* Pages [p, p + length) are no longer mapped (mmap domain, ranged free). */
void pm_record_munmap(void *p, size_t length);
/* Pages [p, p + length) pymalloc mapped for an arena, or returned
 * (`freed`): ARENA and ARENA_FREE records (format.h), outside the domains. */
void pm_record_arena(void *p, size_t length, bool freed);
/* A snapshot marker ordered with the calling thread's events. */
void pm_record_snapshot(int kind, const char *label);

#endif
