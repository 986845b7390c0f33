/*
 * sequence: who owns pm_seq, and the slow way to a number (contract and
 * argument in sequence.h). Runs inside malloc: no allocation, no locks, no
 * stdio; waits (spinning, then yielding) only for another thread's window
 * of a few dozen instructions.
 */
#define _GNU_SOURCE
#include "io/sequence.h"

#include <linux/membarrier.h>
#include <sched.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Numbers in a row that make a thread the owner. An acquisition and the
 * revocation that follows cost two membarriers (a few microseconds, an
 * interrupt on each CPU running the process) and a prctl each, which
 * RUN_MIN plain takes repay. Where owners keep losing the counter before
 * they have taken RUN_KEEP times the run in plain numbers (threads that
 * switch often), the run doubles, up to RUN_MAX; it halves again as owners
 * keep it longer. */
#define RUN_MIN 8192u
#define RUN_MAX (1u << 20)
#define RUN_KEEP 4
static _Atomic uint32_t run_now = RUN_MIN, run_min = RUN_MIN, run_max = RUN_MAX;
/* pm_seq.next when the present owner had the counter (a hint: read
 * without ordering by the next revoker) */
static _Atomic uint64_t owned_from;
/* A window that stays busy this long belongs to a thread that will not
 * finish it (a signal handler that jumped out of pymem): it is passed over,
 * and no thread owns the counter again in this process. */
#define STUCK_NS 1000000000ull
#define SPINS 128

static char revoking_mark;
#define REVOKING ((void *)&revoking_mark)

/* 1: membarrier's expedited command is registered for this process; 0: not
 * tried yet; -1: unavailable, filtered, or a window got stuck: the atomic
 * add only, for good. */
static _Atomic int barrier_state;
/* The writer thread's `busy`, as a buffer's. */
static _Atomic int writer_busy;

static void give_up_owning(void)
{
    atomic_store(&barrier_state, -1);
}

/* A seccomp filter may forbid membarrier, or kill the process that calls
 * it: under one, pymem does not call it. (Filters are never taken off.) */
static bool filtered(void)
{
    return prctl(PR_GET_SECCOMP, 0, 0, 0, 0) != 0;
}

/* Whether a thread may own the counter: checked at each acquisition, so
 * that a filter the program has installed since is seen. */
static bool barrier_ready(void)
{
    if (atomic_load_explicit(&barrier_state, memory_order_acquire) < 0)
        return false;
    if (filtered()) {
        give_up_owning();
        return false;
    }
    if (atomic_load_explicit(&barrier_state, memory_order_acquire) > 0)
        return true;
    long commands = syscall(__NR_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
    bool ok = commands > 0 && (commands & MEMBARRIER_CMD_PRIVATE_EXPEDITED) &&
              syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
    int expected = 0;
    atomic_compare_exchange_strong(&barrier_state, &expected, ok ? 1 : -1);
    return atomic_load(&barrier_state) > 0;
}

/* Every running thread of the process passes a full barrier. Should a
 * filter installed while a thread owned the counter forbid membarrier, a
 * wait stands in for it that is far longer than a store buffer takes to
 * drain (well under a microsecond, and at any switch of thread); and no
 * thread owns the counter again. */
static void barrier(void)
{
    if (!filtered() && syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0)
        return;
    give_up_owning();
    struct timespec drain = {0, 1000000};
    nanosleep(&drain, NULL);
}

/* One step of a wait that began at *since (0: not yet timed); false once
 * it has lasted STUCK_NS. */
static bool wait_step(unsigned *spins, uint64_t *since)
{
    if (++*spins < SPINS)
        return true;
    sched_yield();
    uint64_t now = pm_monotonic_ns();
    if (!*since)
        *since = now;
    return now - *since < STUCK_NS;
}

/* Waits until `busy` is clear, or `owner` no longer owns the counter (when
 * `owner` is not NULL). */
static void wait_idle(_Atomic int *busy, const void *owner)
{
    unsigned spins = 0;
    uint64_t since = 0;
    while (atomic_load_explicit(busy, memory_order_acquire)) {
        if (owner && atomic_load_explicit(&pm_seq.owner, memory_order_acquire) != owner)
            return;
        if (!wait_step(&spins, &since)) {
            give_up_owning();
            return;
        }
    }
}

/* Makes `b` the owner. On return `b` owns the counter, or someone took it
 * from `b` meanwhile, or it is still unowned; the caller looks again. */
static void acquire(struct pm_buffer *b)
{
    b->seq_run = 0;
    atomic_store_explicit(&b->busy, 0, memory_order_release);
    void *none = NULL;
    if (atomic_compare_exchange_strong(&pm_seq.owner, &none, b)) {
        /* Every other taker now either sees `b` or is seen busy, and its
         * number from the atomic add is in pm_seq.next once it is idle. */
        barrier();
        for (struct pm_buffer *x = pm_buffer_first(); x; x = x->next)
            if (x != b)
                wait_idle(&x->busy, b);
        wait_idle(&writer_busy, b);
        if (atomic_load(&barrier_state) < 0) {
            void *self = b;
            atomic_compare_exchange_strong(&pm_seq.owner, &self, NULL);
        }
        atomic_store_explicit(&owned_from, atomic_load(&pm_seq.next), memory_order_relaxed);
    }
    atomic_store_explicit(&b->busy, 1, memory_order_relaxed);
}

/* Takes ownership away from `owner`; the caller holds REVOKING. */
static void take_from(struct pm_buffer *owner)
{
    barrier();
    wait_idle(&owner->busy, NULL);
    uint64_t held = atomic_load(&pm_seq.next) - atomic_load_explicit(&owned_from, memory_order_relaxed);
    uint32_t run = atomic_load_explicit(&run_now, memory_order_relaxed);
    run = held < (uint64_t)run * RUN_KEEP ? run * 2 : run / 2;
    uint32_t lo = atomic_load_explicit(&run_min, memory_order_relaxed);
    uint32_t hi = atomic_load_explicit(&run_max, memory_order_relaxed);
    atomic_store_explicit(&run_now, run < lo ? lo : run > hi ? hi : run, memory_order_relaxed);
}

static void wait_revoked(void)
{
    unsigned spins = 0;
    uint64_t since = 0;
    while (atomic_load_explicit(&pm_seq.owner, memory_order_acquire) == REVOKING) {
        if (!wait_step(&spins, &since)) {
            give_up_owning();
            void *revoking = REVOKING;
            atomic_compare_exchange_strong(&pm_seq.owner, &revoking, NULL);
        }
    }
}

static void count_run(struct pm_buffer *b, uint64_t seq)
{
    b->seq_run = seq == b->seq_last + 1 ? b->seq_run + 1 : 0;
    b->seq_last = seq;
}

void pm_sequence_prepare(void)
{
    barrier_ready();
}

uint64_t pm_sequence_take_shared(_Atomic int *busy, struct pm_buffer *b)
{
    for (;;) {
        atomic_signal_fence(memory_order_seq_cst);
        void *owner = atomic_load_explicit(&pm_seq.owner, memory_order_acquire);
        if (owner == NULL) {
            if (b && b->seq_run >= atomic_load_explicit(&run_now, memory_order_relaxed) && barrier_ready()) {
                acquire(b);
                continue;
            }
            uint64_t seq = atomic_fetch_add_explicit(&pm_seq.next, 1, memory_order_acq_rel);
            if (b)
                count_run(b, seq);
            return seq;
        }
        if (owner == b) {
            uint64_t seq = atomic_load_explicit(&pm_seq.next, memory_order_relaxed);
            atomic_store_explicit(&pm_seq.next, seq + 1, memory_order_release);
            return seq;
        }
        /* Another thread's: nothing of this one is in flight while it waits. */
        atomic_store_explicit(busy, 0, memory_order_release);
        if (owner != REVOKING && atomic_compare_exchange_strong(&pm_seq.owner, &owner, REVOKING)) {
            take_from(owner);
            atomic_store_explicit(busy, 1, memory_order_relaxed);
            uint64_t seq = atomic_fetch_add_explicit(&pm_seq.next, 1, memory_order_acq_rel);
            atomic_store_explicit(&pm_seq.owner, NULL, memory_order_release);
            if (b)
                count_run(b, seq);
            return seq;
        }
        wait_revoked();
        atomic_store_explicit(busy, 1, memory_order_relaxed);
    }
}

void pm_sequence_set_run(uint32_t run)
{
    atomic_store(&run_min, run ? run : RUN_MIN);
    atomic_store(&run_max, run ? run : RUN_MAX);
    atomic_store(&run_now, run ? run : RUN_MIN);
}

uint64_t pm_sequence_take_writer(void)
{
    atomic_store_explicit(&writer_busy, 1, memory_order_relaxed);
    uint64_t seq = pm_sequence_take_shared(&writer_busy, NULL);
    atomic_store_explicit(&writer_busy, 0, memory_order_release);
    return seq;
}

void pm_sequence_reset_after_fork(void)
{
    atomic_store(&pm_seq.owner, NULL);
    atomic_store(&barrier_state, 0);
    atomic_store(&writer_busy, 0);
}
