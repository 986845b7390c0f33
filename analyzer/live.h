/*
 * live: the table of allocations live at the current point of a replay,
 * keyed by address (open addressing, linear probing, backward-shift delete:
 * no tombstones, so a long replay never degrades). Its size is the number of
 * live allocations, whatever the number of events.
 */
#ifndef PMA_LIVE_H
#define PMA_LIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pm_live_entry {
    uint64_t addr; /* 0: empty slot (no allocator returns address 0) */
    uint64_t size;
    uint64_t seq;
    uint32_t stack;
    uint8_t domain;
    uint16_t thread; /* pm_event.thread */
};

/* Told of every entry that leaves the table (+1) or enters it (-1). */
typedef int (*pm_live_observer)(void *ctx, const struct pm_live_entry *e, int sign);

struct pm_live {
    struct pm_live_entry *slots;
    size_t cap;   /* power of two */
    size_t count;
    pm_live_observer observe; /* NULL: none */
    void *observe_ctx;
    bool observe_failed; /* the observer ran out of memory */
};

int pm_live_init(struct pm_live *t);
void pm_live_free(struct pm_live *t);
/* Inserts or replaces. If `addr` was live, its old entry goes to *old and
 * the function returns 1; 0 if it was new; -1 on out of memory. */
int pm_live_put(struct pm_live *t, const struct pm_live_entry *e, struct pm_live_entry *old);
/* The live entry at `addr`, or NULL. */
const struct pm_live_entry *pm_live_get(const struct pm_live *t, uint64_t addr);
/* Removes `addr`; false if it was not live. */
bool pm_live_take(struct pm_live *t, uint64_t addr, struct pm_live_entry *out);

#define PM_LIVE_FOREACH(t, e)                                                                      \
    for (struct pm_live_entry *e = (t)->slots; e < (t)->slots + (t)->cap; e++)                     \
        if (e->addr)

#endif
