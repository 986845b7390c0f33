/*
 * point: the live allocations at one past moment of a replay, known in the
 * same pass that goes on past it. The state at seq P is every entry still in
 * the live table that was allocated at or before P, plus what was removed
 * from the table since P among entries allocated by then: that second part
 * is summed here per (stack, domain) as the replay goes, so a point costs
 * memory in distinct stacks, not in events. Removal counts +1, putting back
 * (a mapping shrunk, split or restored) -1.
 *
 * The peak is such a point that moves: each new high-water mark starts it
 * again, and the last one is the peak. The `exit` snapshot is one that
 * stays.
 *
 * In an aggregated capture (format.h) there is no live table: a point holds
 * the whole state, copied from what the STATES records set.
 */
#ifndef PMA_POINT_H
#define PMA_POINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pm_point_total {
    uint32_t stack;
    uint8_t domain;
    uint8_t early; /* allocated before the `main` snapshot (start-up) */
    uint16_t thread; /* 0, or the thread when the replay splits threads */
    double bytes, count;
    double var;      /* sampled capture: variance of the bytes' estimate */
    int64_t samples; /* recorded blocks behind the estimate */
};

struct pm_point {
    bool set;
    bool halved; /* a sampled capture's peak: weights of pm_estimate_halved */
    uint64_t seq, time_ns;
    struct pm_point_total *v;
    size_t n, cap;
    uint32_t *index;
    size_t index_cap;
};

/* Moves the point to `seq` and forgets what was summed for the old one. */
void pm_point_reset(struct pm_point *p, uint64_t seq, uint64_t time_ns);
/* Adds `sign` times (bytes, count, var, one sample) to the totals of
 * (stack, domain, early, thread). */
int pm_point_add(struct pm_point *p, uint32_t stack, uint8_t domain, bool early, uint16_t thread, double bytes,
                 double count, double var, int sign);
/* Sets the totals of (v->stack, v->domain, v->early) to v's (aggregated
 * captures: a STATES or PEAK entry). Returns 0 or -1 (out of memory). */
int pm_point_set(struct pm_point *p, const struct pm_point_total *v);
/* `to` becomes what `from` holds, as a point at `seq`. */
int pm_point_copy(struct pm_point *to, const struct pm_point *from, uint64_t seq, uint64_t time_ns);
void pm_point_free(struct pm_point *p);

#endif
