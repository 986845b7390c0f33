/*
 * live: address -> live allocation (contract in live.h).
 */
#include "live.h"

#include <stdlib.h>
#include <string.h>

static inline size_t slot_of(uint64_t addr, size_t cap)
{
    uint64_t h = addr * 0x9e3779b97f4a7c15ULL;
    return (size_t)(h >> 20) & (cap - 1);
}

int pm_live_init(struct pm_live *t)
{
    memset(t, 0, sizeof *t);
    t->cap = 1 << 12; /* grows by doubling: small captures stay small */
    t->count = 0;
    t->slots = calloc(t->cap, sizeof *t->slots);
    return t->slots ? 0 : -1;
}

void pm_live_free(struct pm_live *t)
{
    free(t->slots);
    t->slots = NULL;
    t->cap = t->count = 0;
}

static int grow(struct pm_live *t)
{
    size_t cap = t->cap * 2;
    struct pm_live_entry *n = calloc(cap, sizeof *n);
    if (!n)
        return -1;
    for (size_t i = 0; i < t->cap; i++) {
        if (!t->slots[i].addr)
            continue;
        size_t s = slot_of(t->slots[i].addr, cap);
        while (n[s].addr)
            s = (s + 1) & (cap - 1);
        n[s] = t->slots[i];
    }
    free(t->slots);
    t->slots = n;
    t->cap = cap;
    return 0;
}

static void tell(struct pm_live *t, const struct pm_live_entry *e, int sign)
{
    if (t->observe && t->observe(t->observe_ctx, e, sign))
        t->observe_failed = true;
}

int pm_live_put(struct pm_live *t, const struct pm_live_entry *e, struct pm_live_entry *old)
{
    if ((t->count + 1) * 10 > t->cap * 7 && grow(t))
        return -1;
    size_t s = slot_of(e->addr, t->cap);
    for (; t->slots[s].addr; s = (s + 1) & (t->cap - 1)) {
        if (t->slots[s].addr == e->addr) {
            *old = t->slots[s];
            tell(t, old, +1);
            tell(t, e, -1);
            t->slots[s] = *e;
            return 1;
        }
    }
    tell(t, e, -1);
    t->slots[s] = *e;
    t->count++;
    return 0;
}

const struct pm_live_entry *pm_live_get(const struct pm_live *t, uint64_t addr)
{
    for (size_t s = slot_of(addr, t->cap); t->slots[s].addr; s = (s + 1) & (t->cap - 1))
        if (t->slots[s].addr == addr)
            return &t->slots[s];
    return NULL;
}

bool pm_live_take(struct pm_live *t, uint64_t addr, struct pm_live_entry *out)
{
    size_t mask = t->cap - 1;
    size_t s = slot_of(addr, t->cap);
    for (; t->slots[s].addr; s = (s + 1) & mask) {
        if (t->slots[s].addr != addr)
            continue;
        *out = t->slots[s];
        tell(t, out, +1);
        /* Backward-shift: pull later members of the cluster into the hole
         * when their home slot does not lie strictly between hole and them. */
        size_t hole = s;
        for (size_t j = (s + 1) & mask; t->slots[j].addr; j = (j + 1) & mask) {
            size_t home = slot_of(t->slots[j].addr, t->cap);
            bool movable = hole <= j ? (home <= hole || home > j) : (home <= hole && home > j);
            if (movable) {
                t->slots[hole] = t->slots[j];
                hole = j;
            }
        }
        t->slots[hole].addr = 0;
        t->count--;
        return true;
    }
    return false;
}
