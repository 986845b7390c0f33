/*
 * sequence: the numbers that order every record of every thread (pm_seq in
 * runstate.h), taken without a shared read-modify-write in the common case.
 *
 * A thread that has taken 8192 numbers in a row (more where threads switch
 * often: sequence.c), with no other thread's in between, becomes the
 * counter's owner: it then takes a number with a plain load and store of
 * pm_seq.next, without the locked add and its full barrier (2% of exact
 * mode's CPU time on small_objects, 3.11). Any other taker first revokes
 * the ownership and takes numbers with the atomic add again until it owns
 * the counter in turn (under the GIL, about once per switch interval).
 *
 * The owner's window is guarded asymmetrically. A taker sets its `busy`
 * flag (buffer.h), then reads the owner: two plain accesses, with only a
 * compiler barrier between them. Whoever changes the owner writes it, then
 * runs membarrier(2), which makes every running thread of the process pass
 * a full barrier, then waits until the threads concerned have cleared
 * `busy`. So either a taker sees the new owner, or the one who changed it
 * sees that taker busy and waits for its number to be taken. A thread that
 * waits here for another has cleared its own `busy` first, so two waiters
 * never wait for each other.
 *
 * Without membarrier (an old kernel), or under a seccomp filter, no thread
 * owns the counter: every number is the atomic add's.
 * Runs inside malloc: no allocation, no locks, no stdio.
 */
#ifndef PM_SEQUENCE_H
#define PM_SEQUENCE_H

#include <stdatomic.h>
#include <stdint.h>

#include "base/runstate.h"
#include "io/buffer.h"

uint64_t pm_sequence_take_shared(_Atomic int *busy, struct pm_buffer *b);

/* The next number, for a record that `b`'s thread publishes before it
 * clears b->busy, which it has set (relaxed) before this call. */
static inline __attribute__((always_inline)) uint64_t pm_sequence_take(struct pm_buffer *b)
{
    /* `busy` is stored before the owner is read: the membarrier of whoever
     * changes the owner stands for the fence this barrier leaves out. */
    atomic_signal_fence(memory_order_seq_cst);
    if (__builtin_expect(atomic_load_explicit(&pm_seq.owner, memory_order_relaxed) == b, 1)) {
        uint64_t seq = atomic_load_explicit(&pm_seq.next, memory_order_relaxed);
        atomic_store_explicit(&pm_seq.next, seq + 1, memory_order_release);
        return seq;
    }
    return pm_sequence_take_shared(&b->busy, b);
}

/* The next number for a record of the writer thread's own (a snapshot it
 * takes). The writer never owns the counter. */
uint64_t pm_sequence_take_writer(void);

/* Tests: how many numbers in a row make a thread the owner, fixed (1:
 * ownership changes hands at nearly every number of threads that race);
 * 0 puts back the run that adapts. */
void pm_sequence_set_run(uint32_t run);

/* Registers the process for membarrier while it may still have a single
 * thread: the activation calls it before the writer thread starts. With
 * more than one thread the registration waits for an RCU grace period
 * (8-15 ms measured here), and the first acquisition would pay it inside
 * its window, with `busy` set and the writer spinning on it. */
void pm_sequence_prepare(void);

/* In a forked child: no owner (runstate resets the counter) and
 * membarrier's registration, which is the parent's process's, to make
 * again. */
void pm_sequence_reset_after_fork(void);

#endif
