/*
 * point: per-(stack, domain) sums of what left the live table since a point
 * (contract in point.h).
 */
#include "point.h"

#include <stdlib.h>
#include <string.h>

#include "grow.h"

static uint64_t hash(uint32_t stack, uint8_t domain, uint8_t early, uint16_t thread)
{
    uint64_t h = ((uint64_t)thread << 48 | (uint64_t)stack << 16 | (uint64_t)domain << 8 | early) * 0x9e3779b97f4a7c15ULL;
    return h ^ (h >> 31);
}

void pm_point_reset(struct pm_point *p, uint64_t seq, uint64_t time_ns)
{
    p->set = true;
    p->seq = seq;
    p->time_ns = time_ns;
    p->n = 0;
    if (p->index)
        memset(p->index, 0, p->index_cap * sizeof *p->index);
}

static int rehash(struct pm_point *p)
{
    size_t cap = p->index_cap ? p->index_cap * 2 : 1024;
    uint32_t *idx = calloc(cap, sizeof *idx);
    if (!idx)
        return -1;
    for (size_t i = 0; i < p->n; i++) {
        size_t s = hash(p->v[i].stack, p->v[i].domain, p->v[i].early, p->v[i].thread) & (cap - 1);
        while (idx[s])
            s = (s + 1) & (cap - 1);
        idx[s] = (uint32_t)i + 1;
    }
    free(p->index);
    p->index = idx;
    p->index_cap = cap;
    return 0;
}

/* The totals of (stack, domain, early), made (zero) if new; NULL when
 * memory ran out. */
static struct pm_point_total *total_of(struct pm_point *p, uint32_t stack, uint8_t domain, bool early,
                                       uint16_t thread)
{
    if ((p->n + 1) * 2 > p->index_cap && rehash(p))
        return NULL;
    size_t s = hash(stack, domain, early, thread) & (p->index_cap - 1);
    for (; p->index[s]; s = (s + 1) & (p->index_cap - 1)) {
        struct pm_point_total *t = &p->v[p->index[s] - 1];
        if (t->stack == stack && t->domain == domain && t->early == early && t->thread == thread)
            return t;
    }
    if (pm_grow(&p->v, &p->cap, sizeof *p->v, p->n + 1, 256))
        return NULL;
    p->v[p->n] = (struct pm_point_total){.stack = stack, .domain = domain, .early = early, .thread = thread};
    p->index[s] = (uint32_t)++p->n;
    return &p->v[p->n - 1];
}

int pm_point_add(struct pm_point *p, uint32_t stack, uint8_t domain, bool early, uint16_t thread, double bytes,
                 double count, double var, int sign)
{
    struct pm_point_total *t = total_of(p, stack, domain, early, thread);
    if (!t)
        return -1;
    t->bytes += sign * bytes;
    t->count += sign * count;
    t->var += sign * var;
    t->samples += sign;
    return 0;
}

int pm_point_set(struct pm_point *p, const struct pm_point_total *v)
{
    struct pm_point_total *t = total_of(p, v->stack, v->domain, v->early, v->thread);
    if (!t)
        return -1;
    *t = *v;
    return 0;
}

int pm_point_copy(struct pm_point *to, const struct pm_point *from, uint64_t seq, uint64_t time_ns)
{
    pm_point_reset(to, seq, time_ns);
    for (size_t i = 0; i < from->n; i++)
        if ((from->v[i].bytes || from->v[i].count) && pm_point_set(to, &from->v[i]))
            return -1;
    return 0;
}

void pm_point_free(struct pm_point *p)
{
    free(p->v);
    free(p->index);
    memset(p, 0, sizeof *p);
}
