/*
 * runstate: the run state's transitions, the sequence counter and the
 * capture's clock (contract in runstate.h). Called inside malloc: no
 * allocation, no locks, no stdio.
 */
#define _GNU_SOURCE
#include "base/runstate.h"

#include <time.h>

_Atomic int pm_state;
struct pm_seq_line pm_seq __attribute__((aligned(4096))) = {.next = 1};
_Atomic uint64_t pm_unrecorded;
_Atomic int pm_mmap_recording;

static uint64_t clock_origin;

void pm_run_start(void)
{
    atomic_store(&pm_state, PM_STATE_ON);
}

void pm_run_stop(void)
{
    atomic_store(&pm_state, PM_STATE_DORMANT);
}

bool pm_run_close(void)
{
    int expected = PM_STATE_ON;
    return atomic_compare_exchange_strong(&pm_state, &expected, PM_STATE_CLOSED);
}

void pm_run_reopen(void)
{
    atomic_store(&pm_state, PM_STATE_ON);
}

bool pm_run_reset_after_fork(void)
{
    bool was_on = atomic_exchange(&pm_state, PM_STATE_DORMANT) == PM_STATE_ON;
    atomic_store(&pm_seq.next, 1);
    atomic_store(&pm_unrecorded, 0);
    return was_on;
}

uint64_t pm_monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void pm_clock_start(void)
{
    clock_origin = pm_monotonic_ns();
}

uint64_t pm_now_ns(void)
{
    return pm_monotonic_ns() - clock_origin;
}
