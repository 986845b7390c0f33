/*
 * commands: summary, snapshots, peak, leaks and diff over one capture
 * (contract in commands.h).
 */
#include "commands.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "capture.h"
#include "replay.h"
#include "report.h"

static const char *group_name(enum pm_group by)
{
    return by == PM_BY_FILENAME ? "filename" : by == PM_BY_TRACEBACK ? "traceback" : "lineno";
}

static int error(struct pm_capture *c)
{
    fprintf(stderr, "pymem: %s\n", c->error);
    return 1;
}

/* Opens `path` and runs the first pass. On failure prints the error. */
static int first_pass(struct pm_capture *c, struct pm_replay *r, const char *path)
{
    memset(r, 0, sizeof *r);
    if (pm_capture_open(c, path))
        return error(c);
    if (pm_replay_run(r, c, NULL, 0, NULL, NULL))
        return error(c);
    if (!c->has_end)
        fprintf(stderr,
                "pymem: warning: %s is truncated at offset %llu (the process was killed or is still running); "
                "reading what was complete\n",
                path, (unsigned long long)c->reader.offset);
    return 0;
}

static uint64_t main_seq(const struct pm_capture *c)
{
    for (uint32_t i = 0; i < c->snapshot_count; i++)
        if (c->snapshots[i].kind == PM_SNAP_MAIN)
            return c->snapshots[i].seq;
    return 0;
}

struct point {
    uint64_t seq;
    uint64_t time_ns;
    char label[220];
};

/* Resolves a point name: an index or a label from the snapshot list, or one
 * of the built-in names start, peak, end. Labels win over built-ins, so a
 * user snapshot called "end" is found by its name. */
static int resolve(const struct pm_capture *c, const struct pm_totals *t, const char *name,
                   struct point *p)
{
    snprintf(p->label, sizeof p->label, "%s", name);
    for (uint32_t i = c->snapshot_count; i-- > 0;) {
        if (!strcmp(c->snapshots[i].label, name)) {
            p->seq = c->snapshots[i].seq;
            p->time_ns = c->snapshots[i].time_ns;
            return 0;
        }
    }
    bool digits = *name != 0;
    for (const char *q = name; *q; q++)
        digits = digits && isdigit((unsigned char)*q);
    if (digits) {
        unsigned long i = strtoul(name, NULL, 10);
        if (i >= c->snapshot_count) {
            fprintf(stderr, "pymem: %s: no snapshot with index %lu (there are %u)\n", c->path, i,
                    c->snapshot_count);
            return -1;
        }
        p->seq = c->snapshots[i].seq;
        p->time_ns = c->snapshots[i].time_ns;
        snprintf(p->label, sizeof p->label, "%s", c->snapshots[i].label);
        return 0;
    }
    if (!strcmp(name, "start")) {
        p->seq = 0;
        p->time_ns = 0;
    } else if (!strcmp(name, "peak")) {
        p->seq = t->peak_seq;
        p->time_ns = t->peak_time_ns;
    } else if (!strcmp(name, "end")) {
        p->seq = UINT64_MAX;
        p->time_ns = c->has_end ? c->end_time_ns : t->now_ns;
    } else {
        fprintf(stderr, "pymem: %s: no snapshot named '%s' (see 'pymem snapshots %s')\n", c->path, name, c->path);
        return -1;
    }
    return 0;
}

struct collect {
    struct pm_sites *sites;
    uint64_t main_seq;
    int slot_of_stop[2];
};

static int on_stop(void *ctx, size_t i, struct pm_replay *r)
{
    struct collect *k = ctx;
    if (pm_sites_collect(k->sites, &r->cap->stacks, &r->live, k->main_seq, k->slot_of_stop[i])) {
        snprintf(r->cap->error, sizeof r->cap->error, "%s: out of memory", r->cap->path);
        return -1;
    }
    return 0;
}

/* Second pass: collects the live table at up to two points into `sites`. */
static int collect_at(struct pm_capture *c, struct pm_sites *sites, const uint64_t *seqs, int n)
{
    struct collect k = {sites, main_seq(c), {0, 1}};
    uint64_t stops[2];
    if (n == 1) {
        stops[0] = seqs[0];
        k.slot_of_stop[0] = 1;
    } else if (seqs[0] <= seqs[1]) {
        stops[0] = seqs[0];
        stops[1] = seqs[1];
    } else {
        stops[0] = seqs[1];
        stops[1] = seqs[0];
        k.slot_of_stop[0] = 1;
        k.slot_of_stop[1] = 0;
    }
    struct pm_replay r;
    int rc = pm_replay_run(&r, c, stops, (size_t)n, on_stop, &k);
    pm_replay_free(&r);
    return rc ? error(c) : 0;
}

int pm_cmd_summary(FILE *out, const char *path, const struct pm_opts *o)
{
    struct pm_capture c;
    struct pm_replay r;
    int rc = first_pass(&c, &r, path);
    if (!rc)
        pm_report_summary(out, &c, &r.t, o->json);
    pm_replay_free(&r);
    pm_capture_close(&c);
    return rc;
}

int pm_cmd_snapshots(FILE *out, const char *path, const struct pm_opts *o)
{
    struct pm_capture c;
    struct pm_replay r;
    int rc = first_pass(&c, &r, path);
    if (!rc)
        pm_report_snapshots(out, &c, o->json);
    pm_replay_free(&r);
    pm_capture_close(&c);
    return rc;
}

int pm_cmd_peak(FILE *out, const char *path, const struct pm_opts *o)
{
    struct pm_capture c;
    struct pm_replay r;
    struct pm_sites sites;
    pm_sites_init(&sites, o->by);
    int rc = first_pass(&c, &r, path);
    if (!rc) {
        struct pm_totals t = r.t;
        rc = collect_at(&c, &sites, &t.peak_seq, 1);
        if (!rc) {
            pm_sites_sort(&sites, PM_ORDER_BYTES);
            struct pm_sites_header h = {.kind = PM_REPORT_PEAK, .by = group_name(o->by),
                                        .to_time_ns = t.peak_time_ns, .total_bytes = t.peak_bytes,
                                        .truncated = !c.has_end};
            pm_report_sites(out, &c, &h, &sites, o->top, o->json);
        }
    }
    pm_sites_free(&sites);
    pm_replay_free(&r);
    pm_capture_close(&c);
    return rc;
}

int pm_cmd_leaks(FILE *out, const char *path, const struct pm_opts *o)
{
    struct pm_capture c;
    struct pm_replay r;
    struct pm_sites sites;
    pm_sites_init(&sites, o->by);
    int rc = first_pass(&c, &r, path);
    if (!rc) {
        struct pm_totals t = r.t;
        struct point p;
        const char *at = o->at;
        if (!at) {
            at = "end";
            for (uint32_t i = 0; i < c.snapshot_count; i++)
                if (c.snapshots[i].kind == PM_SNAP_EXIT)
                    at = "exit";
        }
        rc = resolve(&c, &t, at, &p) ? 1 : collect_at(&c, &sites, &p.seq, 1);
        if (!rc) {
            pm_sites_sort(&sites, PM_ORDER_PHASE_BYTES);
            unsigned long long total = 0, runtime = 0;
            for (size_t i = 0; i < sites.n; i++) {
                total += (unsigned long long)sites.v[i].bytes[1];
                if (sites.v[i].phase == PM_PHASE_RUNTIME)
                    runtime += (unsigned long long)sites.v[i].bytes[1];
            }
            struct pm_sites_header h = {.kind = PM_REPORT_LEAKS, .by = group_name(o->by), .to_label = p.label,
                                        .to_time_ns = p.time_ns, .total_bytes = total,
                                        .runtime_bytes = runtime, .truncated = !c.has_end};
            pm_report_sites(out, &c, &h, &sites, o->top, o->json);
        }
    }
    pm_sites_free(&sites);
    pm_replay_free(&r);
    pm_capture_close(&c);
    return rc;
}

int pm_cmd_diff(FILE *out, const char *path, const struct pm_opts *o)
{
    struct pm_capture c;
    struct pm_replay r;
    struct pm_sites sites;
    pm_sites_init(&sites, o->by);
    int rc = first_pass(&c, &r, path);
    if (!rc) {
        struct pm_totals t = r.t;
        struct point a, b;
        rc = resolve(&c, &t, o->from, &a) || resolve(&c, &t, o->to, &b);
        if (!rc) {
            uint64_t seqs[2] = {a.seq, b.seq};
            rc = collect_at(&c, &sites, seqs, 2);
        }
        if (!rc) {
            /* Sites unchanged between the two points say nothing about growth. */
            size_t kept = 0;
            for (size_t i = 0; i < sites.n; i++)
                if (sites.v[i].bytes[0] != sites.v[i].bytes[1] || sites.v[i].count[0] != sites.v[i].count[1])
                    sites.v[kept++] = sites.v[i];
            sites.n = kept;
            pm_sites_sort(&sites, PM_ORDER_DIFF);
            struct pm_sites_header h = {.kind = PM_REPORT_DIFF, .by = group_name(o->by), .from_label = a.label,
                                        .to_label = b.label, .to_time_ns = b.time_ns, .truncated = !c.has_end};
            pm_report_sites(out, &c, &h, &sites, o->top, o->json);
        }
    }
    pm_sites_free(&sites);
    pm_replay_free(&r);
    pm_capture_close(&c);
    return rc;
}

/* The few lines `pymem run` prints when the program ends. */
int pm_cmd_brief(FILE *out, const char *path)
{
    struct pm_capture c;
    struct pm_replay r;
    struct pm_sites peak, leaks;
    pm_sites_init(&peak, PM_BY_LINENO);
    pm_sites_init(&leaks, PM_BY_LINENO);
    int rc = first_pass(&c, &r, path);
    if (!rc) {
        struct pm_totals t = r.t;
        uint64_t exit_seq = UINT64_MAX;
        for (uint32_t i = 0; i < c.snapshot_count; i++)
            if (c.snapshots[i].kind == PM_SNAP_EXIT)
                exit_seq = c.snapshots[i].seq;
        rc = collect_at(&c, &peak, &t.peak_seq, 1) || collect_at(&c, &leaks, &exit_seq, 1);
        if (!rc) {
            char b1[32], b2[32];
            pm_sites_sort(&peak, PM_ORDER_BYTES);
            pm_sites_sort(&leaks, PM_ORDER_PHASE_BYTES);
            fprintf(out, "pymem: %llu allocations (%s), peak %s at %.3f s%s\n", (unsigned long long)t.allocations,
                    pm_human_bytes(b1, sizeof b1, (double)t.total_allocated),
                    pm_human_bytes(b2, sizeof b2, (double)t.peak_bytes), t.peak_time_ns / 1e9,
                    c.has_end ? "" : " [capture truncated]");
            if (peak.n) {
                const struct pm_site *x = &peak.v[0];
                fprintf(out, "pymem: top site at the peak: %s in %lld blocks at %s:%u %s\n",
                        pm_human_bytes(b1, sizeof b1, (double)x->bytes[1]), (long long)x->count[1],
                        x->file ? pm_stacks_string(&c.stacks, x->file) : "<native>", x->line,
                        pm_stacks_string(&c.stacks, x->func));
            }
            int shown = 0;
            for (size_t i = 0; i < leaks.n && shown < 3; i++) {
                const struct pm_site *x = &leaks.v[i];
                if (x->phase != PM_PHASE_RUNTIME || !x->file)
                    continue;
                if (!shown++)
                    fprintf(out, "pymem: leak candidates (live at %s):\n", exit_seq == UINT64_MAX ? "end" : "exit");
                fprintf(out, "pymem:   %s in %lld blocks at %s:%u %s\n", pm_human_bytes(b1, sizeof b1, (double)x->bytes[1]),
                        (long long)x->count[1], pm_stacks_string(&c.stacks, x->file), x->line,
                        pm_stacks_string(&c.stacks, x->func));
            }
            fprintf(out, "pymem: capture: %s (pymem summary|peak|leaks|diff %s)\n", path, path);
        }
    }
    pm_sites_free(&peak);
    pm_sites_free(&leaks);
    pm_replay_free(&r);
    pm_capture_close(&c);
    return rc;
}
