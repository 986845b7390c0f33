/*
 * temporaries: allocations freed right after they were made (contract in
 * temporaries.h). One pass: the replay tells of each event; what it freed is
 * in r->freed. Counted per (stack, domain, start-up) as points, then grouped
 * into sites like any report.
 */
#include "temporaries.h"

#include <stdlib.h>
#include <string.h>

#include "grow.h"
#include "replay.h"
#include "report.h"
#include "symbolize.h"

/* A thread's last `gap` allocations, newest at head - 1 (0: freed), by
 * thread number. */
struct recent {
    uint64_t *addr;
    size_t head;
};

struct tick {
    uint64_t seq, time_ns;
};

struct temps {
    double within_ns; /* > 0: by time */
    bool finalising;  /* after the `exit` snapshot: what the teardown frees is no temporary */
    size_t gap;       /* otherwise: freed before `gap` more allocations of its thread */
    struct recent *recent;
    size_t recent_cap;
    struct tick *ticks;
    size_t nticks, ticks_cap;
    struct pm_point all, temporary; /* seq 0: no live entry counts besides */
    uint64_t allocations, temporaries, temporary_bytes;
    bool oom;
};

/* When the event numbered `seq` happened, as the replay's clock said. */
static uint64_t time_of(const struct temps *T, uint64_t seq)
{
    size_t lo = 0, hi = T->nticks;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (T->ticks[mid].seq <= seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo ? T->ticks[lo - 1].time_ns : 0;
}

static struct recent *recent_of(struct temps *T, uint16_t thread)
{
    if (pm_grow_zeroed(&T->recent, &T->recent_cap, sizeof *T->recent, (size_t)thread + 1, 64)) {
        T->oom = true;
        return NULL;
    }
    struct recent *x = &T->recent[thread];
    if (!x->addr && !(x->addr = calloc(T->gap, sizeof *x->addr)))
        T->oom = true;
    return x->addr ? x : NULL;
}

/* Whether `addr` is among the thread's last `gap` allocations (and then
 * forgets it). */
static bool recent_take(struct temps *T, struct recent *x, uint64_t addr)
{
    for (size_t i = 0; i < T->gap; i++) {
        size_t at = (x->head + T->gap - 1 - i) % T->gap;
        if (x->addr[at] == addr) {
            x->addr[at] = 0;
            return true;
        }
    }
    return false;
}

static int watch(void *ctx, const struct pm_replay *r, const struct pm_event *ev)
{
    struct temps *T = ctx;
    /* The replay's clock moves at ticks and snapshots: an event's time is
     * the clock as the replay reached it, at both ends of a lifetime. */
    if (!T->nticks || T->ticks[T->nticks - 1].time_ns != r->t.now_ns) {
        if (pm_grow(&T->ticks, &T->ticks_cap, sizeof *T->ticks, T->nticks + 1, 1024))
            return T->oom = true, -1;
        T->ticks[T->nticks++] = (struct tick){ev->seq, r->t.now_ns};
    }
    if (ev->type == PM_EV_SNAPSHOT && r->cap->snapshots[ev->stack].kind == PM_SNAP_EXIT)
        T->finalising = true;
    if ((ev->type != PM_EV_ALLOC && ev->type != PM_EV_FREE) || T->finalising)
        return 0;
    struct recent *x = T->within_ns > 0 ? NULL : recent_of(T, ev->thread);
    if (T->oom)
        return -1;
    if (ev->type == PM_EV_ALLOC) {
        bool early = !r->main_seen || ev->seq < r->main_seq;
        T->allocations++;
        if (pm_point_add(&T->all, ev->stack, ev->domain, early, 0, (double)ev->size, 1, 0, 1))
            return T->oom = true, -1;
        if (x) {
            x->addr[x->head] = ev->addr;
            x->head = (x->head + 1) % T->gap;
        }
        return 0;
    }
    if (r->freed.addr != ev->addr)
        return 0; /* not a recorded block */
    const struct pm_live_entry *e = &r->freed;
    bool temporary = x ? recent_take(T, x, ev->addr)
                       : (double)(r->t.now_ns - time_of(T, e->seq)) <= T->within_ns;
    if (temporary) {
        bool early = !r->main_seen || e->seq < r->main_seq;
        T->temporaries++;
        T->temporary_bytes += e->size;
        if (pm_point_add(&T->temporary, e->stack, e->domain, early, 0, (double)e->size, 1, 0, 1))
            return T->oom = true, -1;
    }
    return 0;
}

int pm_cmd_temporaries(FILE *out, const char *path, const struct pm_opts *o)
{
    struct pm_capture c;
    struct pm_replay r;
    struct temps T = {.within_ns = o->within_ms * 1e6, .gap = o->within_allocations ? o->within_allocations : 1};
    struct pm_sites sites;
    pm_sites_init(&sites, o->by);
    pm_sites_filter(&sites, o->view, o->domains);
    memset(&r, 0, sizeof r);
    int rc = pm_capture_open(&c, path) || pm_replay_named(&r, &c, false, false, NULL, 0, watch, &T);
    if (!rc && (c.aggregated || c.sample_bytes)) {
        snprintf(c.error, sizeof c.error,
                 "%s: temporaries need every allocation and free in order, and this capture is %s", path,
                 c.aggregated ? "aggregated (totals per stack)" : "sampled");
        rc = 1;
    }
    if (!rc && o->wrappers)
        pm_tree_set_wrappers(&c.stacks, o->wrappers);
    if (!rc && pm_symbolize(&c.stacks, &c.modules))
        T.oom = true;
    uint64_t main_seq = 0;
    for (uint32_t i = 0; i < c.snapshot_count && !main_seq; i++)
        if (c.snapshots[i].kind == PM_SNAP_MAIN)
            main_seq = c.snapshots[i].seq;
    T.all.seq = T.temporary.seq = 0;
    if (!rc && !T.oom &&
        (pm_sites_collect_point(&sites, &c.stacks, &r.live, &T.all, main_seq, 0) ||
         pm_sites_collect_point(&sites, &c.stacks, &r.live, &T.temporary, main_seq, 1)))
        T.oom = true;
    if (T.oom && !rc) {
        snprintf(c.error, sizeof c.error, "%s: out of memory", path);
        rc = 1;
    }
    if (rc) {
        fprintf(stderr, "pymem: %s\n", *c.error ? c.error : "cannot read the capture");
    } else {
        /* Sites that made no temporary say nothing here. */
        size_t kept = 0;
        for (size_t i = 0; i < sites.n; i++)
            if (sites.v[i].count[1])
                sites.v[kept++] = sites.v[i];
        sites.n = kept;
        pm_sites_sort(&sites, PM_ORDER_PHASE_COUNT); /* the program's own first, as leaks */
        struct pm_sites_header h = {.kind = PM_REPORT_TEMPORARIES, .by = pm_group_name(o->by),
                                    .total_bytes = T.temporary_bytes, .count = T.temporaries,
                                    .of_count = T.allocations, .within_ms = o->within_ms, .gap = T.gap,
                                    .truncated = !c.has_end};
        pm_report_sites(out, &c, &h, &sites, o->top, o->json);
    }
    pm_sites_free(&sites);
    pm_point_free(&T.all);
    pm_point_free(&T.temporary);
    for (size_t i = 0; i < T.recent_cap; i++)
        free(T.recent[i].addr);
    free(T.recent);
    free(T.ticks);
    pm_replay_free(&r);
    pm_capture_close(&c);
    return rc ? 1 : 0;
}
