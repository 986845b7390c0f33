/*
 * runstate: whether the process records, and the clock and sequence that
 * order what it records. The one owner of the run state: every change of it
 * goes through a function here, and recording stops in one way,
 * pm_run_stop(). Read on every event (one relaxed load): no lock, no
 * allocation, no stdio.
 */
#ifndef PM_RUNSTATE_H
#define PM_RUNSTATE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/rawmem.h"

enum pm_state {
    PM_STATE_DORMANT = 0, /* passthrough: not Python, a child not followed, or gave up */
    PM_STATE_ON = 1,      /* recording */
    PM_STATE_CLOSED = 2,  /* the capture has ended */
};

/* Read through pm_run_on()/pm_run_state(); written only by runstate.c. */
extern _Atomic int pm_state;
/* The process-wide sequence counter that orders every event and snapshot
 * (`next`), on a line of its own past its page's first (rawmem.h), with
 * the thread buffer that owns it, if any (io/sequence.h: the only code that
 * takes a number). */
struct pm_seq_line {
    uint8_t past_page_head_[PM_OFFSET_SEQ];
    _Atomic uint64_t next;
    _Atomic(void *) owner;
};
extern struct pm_seq_line pm_seq;
/* Anonymous mmaps are recorded (set once Python's allocator hooks are in,
 * or at start in a process without Python). */
extern _Atomic int pm_mmap_recording;
/* Events the hooks saw but could not record (see thread.h, `recording`). */
extern _Atomic uint64_t pm_unrecorded;

static inline bool pm_run_on(void)
{
    return atomic_load_explicit(&pm_state, memory_order_relaxed) == PM_STATE_ON;
}

static inline int pm_run_state(void)
{
    return atomic_load(&pm_state);
}

/* The capture is open: record. */
void pm_run_start(void);
/* The one way to stop recording, for good in this process (the capture
 * failed, or a forked child that is not followed): the hooks pass through. */
void pm_run_stop(void);
/* ON -> CLOSED, at the capture's END; true for the caller that closed it. */
bool pm_run_close(void);
/* CLOSED -> ON, after an exec that failed reopened the capture. */
void pm_run_reopen(void);
/* In a forked child: dormant, with the sequence and counters of a new run.
 * Returns whether the parent was recording. */
bool pm_run_reset_after_fork(void);

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t pm_monotonic_ns(void);
/* Nanoseconds since the capture started (pm_clock_start). */
uint64_t pm_now_ns(void);
void pm_clock_start(void);

#endif
