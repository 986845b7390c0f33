/*
 * replay: applies allocation events to the live table and keeps the totals
 * (contract in replay.h).
 */
#include "replay.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

double pm_estimate_count(uint64_t sample_bytes, uint64_t size)
{
    if (!sample_bytes)
        return 1;
    if (!size)
        return 0; /* never sampled: no bytes to cross */
    return 1 / -expm1(-(double)size / (double)sample_bytes);
}

void pm_estimate_halved(uint64_t sample_bytes, uint64_t addr, uint64_t size, double *bytes, double *count,
                        double *var)
{
    if (!pm_halves_split(sample_bytes, size)) {
        *bytes = (double)pm_estimate_bytes(sample_bytes, size);
        *count = pm_estimate_count(sample_bytes, size);
        *var = pm_estimate_var(sample_bytes, size);
        return;
    }
    if (!pm_half(addr)) {
        *bytes = *count = *var = 0;
        return;
    }
    /* kept with probability q/2: stands for 2 size/q, variance (2 size/q)^2 (1 - q/2) */
    double n = 2 * pm_estimate_count(sample_bytes, size);
    *bytes = (double)size * n;
    *count = n;
    *var = *bytes * *bytes * (1 - 0.5 * -expm1(-(double)size / (double)sample_bytes));
}

double pm_estimate_var(uint64_t sample_bytes, uint64_t size)
{
    if (!sample_bytes || !size)
        return 0;
    /* Horvitz-Thompson: a block kept with probability q stands for size/q;
     * the variance of that term, estimated from the sample, is
     * (size/q)^2 (1 - q). */
    double est = (double)size * pm_estimate_count(sample_bytes, size);
    return est * est * exp(-(double)size / (double)sample_bytes);
}

uint64_t pm_estimate_bytes(uint64_t sample_bytes, uint64_t size)
{
    if (!sample_bytes)
        return size;
    return (uint64_t)llround((double)size * pm_estimate_count(sample_bytes, size));
}

/* Live blocks one recorded block stands for, as a whole number (the same
 * rounding on the way in and out keeps the count consistent). */
static uint64_t blocks(uint64_t sample_bytes, uint64_t size)
{
    return sample_bytes ? (uint64_t)llround(pm_estimate_count(sample_bytes, size)) : 1;
}

uint64_t pm_sample_rate(uint64_t sample_bytes, int domain)
{
    return domain == PM_DOMAIN_MMAP ? 0 : sample_bytes;
}

static uint64_t rate(const struct pm_capture *c, int domain)
{
    return pm_sample_rate(c->sample_bytes, domain);
}

/* The live table's observer: what leaves it (or comes back) counts for the
 * points it was allocated before. */
static int observe(void *ctx, const struct pm_live_entry *e, int sign)
{
    struct pm_replay *r = ctx;
    for (int i = 0; i < r->point_count; i++) {
        struct pm_point *p = r->points[i];
        if (!p->set || e->seq > p->seq)
            continue;
        uint64_t R = rate(r->cap, e->domain);
        bool early = !r->main_seen || e->seq < r->main_seq;
        double bytes = (double)pm_estimate_bytes(R, e->size), count = pm_estimate_count(R, e->size),
               var = pm_estimate_var(R, e->size);
        if (p->halved)
            pm_estimate_halved(R, e->addr, e->size, &bytes, &count, &var);
        if (count > 0 &&
            pm_point_add(p, e->stack, e->domain, early, r->split_threads ? e->thread : 0, bytes, count, var, sign))
            return -1;
    }
    return 0;
}

/* Starts (or moves) a kept point. The live table tells the observer of
 * what leaves it only from the first point on: a pass whose points never
 * come (a diff from 'start') pays nothing for them. */
static void keep_point(struct pm_replay *r, struct pm_point *p, uint64_t seq, uint64_t time_ns)
{
    if (r->cap->aggregated) {
        if (pm_point_copy(p, &r->state, seq, time_ns))
            r->live.observe_failed = true;
        return;
    }
    pm_point_reset(p, seq, time_ns);
    r->live.observe = observe;
    r->live.observe_ctx = r;
}

/* A sampled capture's running sums by half (pm_half); `sign` +1 or -1. */
static void track_halves(struct pm_replay *r, uint64_t addr, uint64_t size, int domain, int sign)
{
    if (!r->cap->sample_bytes)
        return;
    uint64_t R = rate(r->cap, domain);
    if (!pm_halves_split(R, size))
        r->t.live_whole += sign * (double)pm_estimate_bytes(R, size);
    else
        r->t.live_half[pm_half(addr)] += sign * (double)pm_estimate_bytes(R, size);
}

/* A new high-water mark. Sampled: of half 0's estimate, measured by half 1's
 * (pm_half). */
static void check_peak(struct pm_replay *r, uint64_t seq)
{
    struct pm_totals *t = &r->t;
    if (r->cap->sample_bytes) {
        double a = t->live_whole + 2 * t->live_half[0];
        if (a <= t->peak_half0)
            return;
        t->peak_half0 = a;
        double b = t->live_whole + 2 * t->live_half[1];
        t->peak_bytes = b > 0 ? (uint64_t)llround(b) : 0;
    } else if (t->live_bytes > t->peak_bytes) {
        t->peak_bytes = t->live_bytes;
    } else {
        return;
    }
    t->peak_seq = seq;
    t->peak_time_ns = t->now_ns;
    if (r->track_peak) {
        keep_point(r, &r->peak, seq, t->now_ns);
        r->peak.halved = r->cap->sample_bytes != 0; /* known once META is read */
    }
}

static int fire_stops(struct pm_replay *r, uint64_t before_seq)
{
    while (r->next_stop < r->stop_count && r->stops[r->next_stop] < before_seq) {
        if (r->on_stop(r->stop_ctx, r->next_stop, r))
            return -1;
        r->next_stop++;
    }
    return 0;
}

static int apply(void *ctx, const struct pm_event *ev)
{
    struct pm_replay *r = ctx;
    struct pm_totals *t = &r->t;
    if (fire_stops(r, ev->seq))
        return -1;
    struct pm_live_entry old;
    switch (ev->type) {
    case PM_EV_ALLOC: {
        uint64_t R = rate(r->cap, ev->domain);
        struct pm_live_entry e = {ev->addr, ev->size, ev->seq, ev->stack, ev->domain, ev->thread};
        int put = pm_live_put(&r->live, &e, &old);
        if (put < 0) {
            snprintf(r->cap->error, sizeof r->cap->error, "%s: out of memory", r->cap->path);
            return -1;
        }
        if (put == 1) {
            /* Its free was never seen (made where pymem cannot record). */
            t->domain_live[old.domain] -= pm_estimate_bytes(rate(r->cap, old.domain), old.size);
            t->live_bytes -= pm_estimate_bytes(rate(r->cap, old.domain), old.size);
            t->live_count -= blocks(rate(r->cap, old.domain), old.size);
            track_halves(r, old.addr, old.size, old.domain, -1);
        }
        if (ev->domain == PM_DOMAIN_MMAP && pm_ranges_add(&r->mappings, ev->addr, ev->size)) {
            snprintf(r->cap->error, sizeof r->cap->error, "%s: out of memory", r->cap->path);
            return -1;
        }
        t->allocations++;
        t->samples++;
        t->total_allocated += pm_estimate_bytes(R, ev->size);
        t->domain_allocations[ev->domain] += (uint64_t)llround(pm_estimate_count(R, ev->size));
        t->domain_bytes[ev->domain] += pm_estimate_bytes(R, ev->size);
        t->live_bytes += pm_estimate_bytes(R, ev->size);
        t->domain_live[ev->domain] += pm_estimate_bytes(R, ev->size);
        t->live_count += blocks(R, ev->size);
        track_halves(r, ev->addr, ev->size, ev->domain, 1);
        check_peak(r, ev->seq);
        break;
    }
    case PM_EV_FREE:
        r->freed.addr = 0;
        if (pm_live_take(&r->live, ev->addr, &old)) {
            r->freed = old;
            t->frees++;
            t->live_bytes -= pm_estimate_bytes(rate(r->cap, old.domain), old.size);
            t->domain_live[old.domain] -= pm_estimate_bytes(rate(r->cap, old.domain), old.size);
            t->live_count -= blocks(rate(r->cap, old.domain), old.size);
            track_halves(r, old.addr, old.size, old.domain, -1);
        } else {
            t->unmatched_frees++;
        }
        break;
    case PM_EV_RETAG: {
        /* A recycled object: the same block, allocated anew at this point
         * and this stack as far as every analysis is concerned (points
         * taken before it still see it at its old stack), with no change to
         * the totals. Not live: allocated before recording, as tracemalloc
         * ignores what it did not trace. */
        const struct pm_live_entry *cur = pm_live_get(&r->live, ev->addr);
        if (!cur || cur->domain == PM_DOMAIN_MMAP)
            break;
        struct pm_live_entry e = *cur;
        e.seq = ev->seq;
        e.stack = ev->stack;
        if (pm_live_put(&r->live, &e, &old) < 0) {
            snprintf(r->cap->error, sizeof r->cap->error, "%s: out of memory", r->cap->path);
            return -1;
        }
        t->retagged++;
        break;
    }
    case PM_EV_MUNMAP: {
        /* Ranges never mapped through a recorded mmap (files, stacks, an
         * allocator's own) are not in the table and change nothing. */
        uint64_t bytes, whole;
        size_t live_before = r->live.count;
        if (pm_ranges_remove(&r->mappings, &r->live, ev->addr, ev->size, &bytes, &whole)) {
            snprintf(r->cap->error, sizeof r->cap->error, "%s: out of memory", r->cap->path);
            return -1;
        }
        t->live_bytes -= bytes;
        t->domain_live[PM_DOMAIN_MMAP] -= bytes;
        if (r->cap->sample_bytes)
            t->live_whole -= (double)bytes;
        /* Mappings weigh 1 even in sampled captures: the table's change in
         * size is the change in live blocks (a hole makes one mapping two). */
        t->live_count += (uint64_t)r->live.count - (uint64_t)live_before;
        t->frees += whole;
        break;
    }
    case PM_EV_SNAPSHOT: {
        t->now_ns = ev->time > t->now_ns ? ev->time : t->now_ns;
        struct pm_snapshot *snap = &r->cap->snapshots[ev->stack];
        snap->live_bytes = t->live_bytes;
        if (snap->kind == PM_SNAP_MAIN && !r->main_seen) {
            r->main_seen = true;
            r->main_seq = ev->seq;
        }
        if (snap->kind == PM_SNAP_EXIT && r->track_exit)
            keep_point(r, &r->exit, ev->seq, ev->time);
        /* Events come in sequence order: this is snapshot number
         * snapshots_seen in `pymem snapshots`. */
        char index[16];
        snprintf(index, sizeof index, "%u", r->snapshots_seen++);
        for (int i = 0; i < r->name_count; i++)
            if (!strcmp(snap->label, r->names[i]) || !strcmp(index, r->names[i]))
                keep_point(r, &r->named[i], ev->seq, ev->time);
        break;
    }
    case PM_EV_STATES: {
        const struct pm_point_total *v = pm_capture_states(r->cap, ev);
        if (!v) {
            snprintf(r->cap->error, sizeof r->cap->error, "%s: corrupted capture (state records out of order)",
                     r->cap->path);
            return -1;
        }
        for (uint64_t i = 0; i < ev->size; i++) {
            if (pm_point_set(&r->state, &v[i])) {
                snprintf(r->cap->error, sizeof r->cap->error, "%s: out of memory", r->cap->path);
                return -1;
            }
        }
        break;
    }
    case PM_EV_LIVE:
        t->now_ns = ev->time > t->now_ns ? ev->time : t->now_ns;
        t->live_bytes = ev->size;
        t->live_count = ev->addr;
        break;
    case PM_EV_TICK:
        t->now_ns = ev->time > t->now_ns ? ev->time : t->now_ns;
        if (ev->size > t->max_rss)
            t->max_rss = ev->size;
        if (ev->addr > t->max_profiler_bytes)
            t->max_profiler_bytes = ev->addr;
        break;
    case PM_EV_ARENA:
        t->arena_bytes = ev->size > UINT64_MAX - t->arena_bytes ? UINT64_MAX : t->arena_bytes + ev->size;
        break;
    case PM_EV_ARENA_FREE:
        t->arena_bytes -= ev->size < t->arena_bytes ? ev->size : t->arena_bytes;
        break;
    case PM_EV_HEAPSTATS: {
        struct pm_heapstats *h = &r->cap->heapstats[ev->stack];
        h->live_bytes = t->live_bytes;
        h->arena_bytes = t->arena_bytes;
        break;
    }
    }
    return r->watch ? r->watch(r->watch_ctx, r, ev) : 0;
}

/* After the pass: the end's time, a sampled or aggregated capture's exact
 * totals, and an aggregated capture's peak. */
static int finish(struct pm_replay *r, struct pm_capture *cap)
{
    if (cap->has_end && cap->end_time_ns > r->t.now_ns)
        r->t.now_ns = cap->end_time_ns;
    if (cap->aggregated && cap->peak_state.set) {
        r->t.peak_bytes = cap->peak_bytes;
        r->t.peak_seq = cap->peak_state.seq;
        r->t.peak_time_ns = cap->peak_state.time_ns;
        if (r->track_peak &&
            pm_point_copy(&r->peak, &cap->peak_state, cap->peak_state.seq, cap->peak_state.time_ns)) {
            snprintf(cap->error, sizeof cap->error, "%s: out of memory", cap->path);
            return -1;
        }
        r->peak.halved = false; /* the writer weighed the peak's blocks already */
    }
    if ((cap->sample_bytes || cap->aggregated) && cap->has_counters) {
        r->t.allocations = cap->counted_allocations;
        r->t.total_allocated = cap->counted_bytes;
        r->t.frees = cap->counted_frees;
    }
    return 0;
}

/* The pass itself, once `r` is set up; observer failures are out of memory. */
static int run(struct pm_replay *r, struct pm_capture *cap)
{
    if (pm_capture_replay(cap, apply, r))
        return -1;
    if (r->live.observe_failed) {
        snprintf(cap->error, sizeof cap->error, "%s: out of memory", cap->path);
        return -1;
    }
    return finish(r, cap);
}

static int start(struct pm_replay *r, struct pm_capture *cap)
{
    memset(r, 0, sizeof *r);
    r->split_threads = cap->split_threads;
    r->cap = cap;
    pm_point_reset(&r->state, UINT64_MAX, 0);
    if (pm_live_init(&r->live)) {
        snprintf(cap->error, sizeof cap->error, "%s: out of memory", cap->path);
        return -1;
    }
    return 0;
}

int pm_replay_run(struct pm_replay *r, struct pm_capture *cap, const uint64_t *stops,
                  size_t stop_count, pm_stop_fn on_stop, void *ctx)
{
    if (start(r, cap))
        return -1;
    r->stops = stops;
    r->stop_count = stop_count;
    r->on_stop = on_stop;
    r->stop_ctx = ctx;
    if (run(r, cap))
        return -1;
    while (r->next_stop < r->stop_count) {
        if (r->on_stop(r->stop_ctx, r->next_stop, r))
            return -1;
        r->next_stop++;
    }
    return 0;
}

int pm_replay_named(struct pm_replay *r, struct pm_capture *cap, bool peak, bool exit, const char *const *names,
                    int count, pm_watch_fn watch, void *watch_ctx)
{
    if (start(r, cap))
        return -1;
    r->watch = watch;
    r->watch_ctx = watch_ctx;
    r->track_peak = peak;
    r->track_exit = exit;
    r->name_count = count < 2 ? count : 2;
    for (int i = 0; i < r->name_count; i++)
        r->names[i] = names[i];
    if (peak)
        r->points[r->point_count++] = &r->peak;
    if (exit)
        r->points[r->point_count++] = &r->exit;
    for (int i = 0; i < r->name_count; i++)
        r->points[r->point_count++] = &r->named[i];
    return run(r, cap);
}

const struct pm_point *pm_replay_point_at(const struct pm_replay *r, uint64_t seq)
{
    static const struct pm_point start_point = {.set = true};
    if (seq == 0)
        return &start_point;
    if (seq == UINT64_MAX && r->cap->aggregated)
        return &r->state;
    for (int i = 0; i < r->name_count; i++)
        if (r->named[i].set && r->named[i].seq == seq)
            return &r->named[i];
    if (r->track_exit && r->exit.set && r->exit.seq == seq)
        return &r->exit;
    if (r->track_peak && r->peak.set && r->peak.seq == seq)
        return &r->peak;
    return NULL;
}

int pm_replay_points(struct pm_replay *r, struct pm_capture *cap, bool peak, bool exit)
{
    return pm_replay_named(r, cap, peak, exit, NULL, 0, NULL, NULL);
}

void pm_replay_free(struct pm_replay *r)
{
    pm_point_free(&r->peak);
    pm_point_free(&r->exit);
    pm_point_free(&r->state);
    for (int i = 0; i < 2; i++)
        pm_point_free(&r->named[i]);
    pm_live_free(&r->live);
    pm_ranges_free(&r->mappings);
}
