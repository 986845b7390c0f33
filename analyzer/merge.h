/*
 * merge: the events of a capture's streams, held until a watermark says
 * nothing older can still come, then delivered in sequence order by a k-way
 * merge. Each thread stream arrives already in order (a thread numbers its
 * events one after the other), so nothing is ever sorted: a heap of streams
 * keyed by their oldest event picks the next one. Queue 0 is the control
 * stream, whose few records may arrive slightly out of order and are placed
 * by insertion.
 *
 * Fast path: every event and snapshot takes a number of its own from one
 * counter, so once all numbers below N are delivered, the event numbered N
 * can go at once. A single-threaded capture arrives in that order and is
 * delivered as it is decoded, without being held.
 */
#ifndef PMA_MERGE_H
#define PMA_MERGE_H

#include <stddef.h>
#include <stdint.h>

struct pm_event;

struct pm_queue {
    struct pm_event *v;
    size_t head, count, cap;
    uint32_t heap_pos; /* position in the heap + 1; 0: not in it */
};

struct pm_merge {
    struct pm_queue *q;
    uint32_t nq;
    uint32_t *heap; /* queue ids */
    uint32_t heap_n;
    size_t held;
    uint64_t next; /* every numbered event below this one has been delivered */
};

typedef int (*pm_merge_fn)(void *ctx, const struct pm_event *ev);

void pm_merge_init(struct pm_merge *m);
void pm_merge_free(struct pm_merge *m);
/* Forgets every held event (a new pass). */
void pm_merge_clear(struct pm_merge *m);
/* Delivers `ev` now if its turn has come, else holds it in queue `id`.
 * Returns 0, -1 when out of memory, -2 when `fn` failed. */
int pm_merge_push(struct pm_merge *m, uint32_t id, const struct pm_event *ev, pm_merge_fn fn, void *ctx);
/* Delivers, oldest first, every held event with seq < limit, or `most` of
 * the oldest ones if fewer. Stops at the first non-zero return of `fn`. */
int pm_merge_deliver(struct pm_merge *m, uint64_t limit, size_t most, pm_merge_fn fn, void *ctx);

#endif
