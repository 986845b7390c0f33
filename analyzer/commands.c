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
#include "combine.h"
#include "export.h"
#include "flamegraph.h"
#include "pprof.h"
#include "replay.h"
#include "runfiles.h"
#include "report.h"
#include "symbolize.h"

static int error(struct pm_capture *c)
{
    fprintf(stderr, "pymem: %s\n", c->error);
    return 1;
}

static void warn_truncated(const struct pm_capture *c, const char *path)
{
    if (!c->has_end)
        fprintf(stderr,
                "pymem: warning: %s is truncated at offset %llu (the process was killed or is still running); "
                "reading what was complete\n",
                path, (unsigned long long)c->reader.offset);
}

/* Opens `path` and runs the first pass: with `peak`, `exit` or `names`, one
 * that also keeps what those points saw (point.h). On failure prints the
 * error. */
static int first_pass(struct pm_capture *c, struct pm_replay *r, const char *path, bool peak, bool exit,
                      const char *const *names, int count, bool split_threads)
{
    memset(r, 0, sizeof *r);
    if (pm_capture_open(c, path))
        return error(c);
    c->split_threads = split_threads;
    if (peak || exit || count ? pm_replay_named(r, c, peak, exit, names, count, NULL, NULL)
                              : pm_replay_run(r, c, NULL, 0, NULL, NULL))
        return error(c);
    warn_truncated(c, path);
    return 0;
}

/* The first snapshot of `kind` (main: start-up ends; exit: finalisation). */
static uint64_t snapshot_seq(const struct pm_capture *c, int kind, uint64_t otherwise)
{
    for (uint32_t i = 0; i < c->snapshot_count; i++)
        if (c->snapshots[i].kind == kind)
            return c->snapshots[i].seq;
    return otherwise;
}

struct point {
    uint64_t seq;
    uint64_t time_ns;
    char label[220];
};

/* Resolves a point name: an index or a label from the snapshot list, or one
 * of the built-in names start, peak, end. Labels win over built-ins, so a
 * user snapshot called "end" is found by its name. A capture without it is
 * an error (1), or, among the captures of a directory or a run, PM_SKIPPED
 * (the caller notes it). */
static int resolve(const struct pm_capture *c, const struct pm_totals *t, const char *name, struct point *p,
                   const struct pm_opts *o)
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
            if (o->one_of_many)
                return PM_SKIPPED;
            fprintf(stderr, "pymem: %s: no snapshot with index %lu (there are %u)\n", c->path, i,
                    c->snapshot_count);
            return 1;
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
    } else if (o->one_of_many) {
        return PM_SKIPPED;
    } else {
        if (!strcmp(name, "exit"))
            fprintf(stderr,
                    "pymem: %s: no 'exit' snapshot: the interpreter never began to finalise "
                    "(os._exit, a signal, or a kill); use 'end'\n",
                    c->path);
        else
            fprintf(stderr, "pymem: %s: no snapshot named '%s' (see 'pymem snapshots %s')\n", c->path, name,
                    c->path);
        return 1;
    }
    return 0;
}

/* Where a stop's live table goes: a sites table and its slot. */
struct target {
    struct pm_sites *sites;
    int slot;
};

struct collect {
    struct target at[2]; /* by stop, in the order of the stops */
    uint64_t main_seq;
};

static int on_stop(void *ctx, size_t i, struct pm_replay *r)
{
    struct collect *k = ctx;
    if (pm_sites_collect_replay(k->at[i].sites, r, k->main_seq, k->at[i].slot)) {
        snprintf(r->cap->error, sizeof r->cap->error, "%s: out of memory", r->cap->path);
        return -1;
    }
    return 0;
}

/* Second pass: the live table at up to two points, each into its target. */
static int collect_at(struct pm_capture *c, const uint64_t *seqs, const struct target *targets, int n)
{
    struct collect k = {.main_seq = snapshot_seq(c, PM_SNAP_MAIN, 0)};
    uint64_t stops[2];
    bool swap = n == 2 && seqs[0] > seqs[1];
    for (int i = 0; i < n; i++) {
        int from = swap ? 1 - i : i;
        stops[i] = seqs[from];
        k.at[i] = targets[from];
    }
    struct pm_replay r;
    int rc = pm_replay_run(&r, c, stops, (size_t)n, on_stop, &k);
    pm_replay_free(&r);
    return rc ? error(c) : 0;
}

/* A capture after its first pass, and a sites table for the report. The
 * pass's replay is kept when it tracked points. */
struct session {
    struct pm_capture c;
    struct pm_totals t;
    struct pm_sites sites;
    struct pm_replay r;
};

/* `o` is NULL for reports that show no stacks; otherwise native frames are
 * named before the sites are collected. `peak`/`exit`: keep those points. */
static int session_open_named(struct session *s, const char *path, enum pm_group by, const struct pm_opts *o,
                              bool peak, bool exit, const char *const *names, int count)
{
    pm_sites_init(&s->sites, by);
    if (o)
        pm_sites_filter(&s->sites, o->view, o->domains);
    s->sites.split_threads = o && o->split_threads;
    int rc = first_pass(&s->c, &s->r, path, peak, exit, names, count, s->sites.split_threads);
    if (o && o->wrappers)
        pm_tree_set_wrappers(&s->c.stacks, o->wrappers);
    s->t = s->r.t;
    s->sites.sample_bytes = s->c.sample_bytes;
    if (!rc && o && pm_symbolize(&s->c.stacks, &s->c.modules)) {
        fprintf(stderr, "pymem: %s: out of memory while naming native frames\n", path);
        rc = 1;
    }
    return rc;
}

static int session_open_points(struct session *s, const char *path, enum pm_group by, const struct pm_opts *o,
                               bool peak, bool exit)
{
    return session_open_named(s, path, by, o, peak, exit, NULL, 0);
}

static int session_open(struct session *s, const char *path, enum pm_group by, const struct pm_opts *o)
{
    return session_open_points(s, path, by, o, false, false);
}

/* The point the first pass kept at `seq` (the end for UINT64_MAX), or NULL. */
static const struct pm_point *kept_point(const struct session *s, uint64_t seq)
{
    static const struct pm_point end = {.set = true, .seq = UINT64_MAX};
    const struct pm_point *p = pm_replay_point_at(&s->r, seq);
    return p || seq != UINT64_MAX ? p : &end;
}

/* Sites at a point the first pass kept, into slot `slot` of `sites`. */
static int collect_point_in(struct session *s, struct pm_sites *sites, const struct pm_point *p, int slot)
{
    if (pm_sites_collect_point(sites, &s->c.stacks, &s->r.live, p, snapshot_seq(&s->c, PM_SNAP_MAIN, 0), slot)) {
        fprintf(stderr, "pymem: %s: out of memory\n", s->c.path);
        return 1;
    }
    return 0;
}

/* Sites at a point the first pass kept, into slot 1 of `sites`. */
static int collect_point(struct session *s, struct pm_sites *sites, const struct pm_point *p)
{
    if (pm_sites_collect_point(sites, &s->c.stacks, &s->r.live, p, snapshot_seq(&s->c, PM_SNAP_MAIN, 0), 1)) {
        fprintf(stderr, "pymem: %s: out of memory\n", s->c.path);
        return 1;
    }
    return 0;
}

/* The report of one capture, its part of a merged one (--merge), or its
 * export (pymem export). */
static int emit_sites(FILE *out, struct session *s, const struct pm_sites_header *h, const struct pm_opts *o)
{
    if (o->format == PM_EXPORT_HTML) {
        /* The sites are collected: the replay's tables go before the page's
         * tree is built, and its chart's pass made. */
        pm_replay_free(&s->r);
        memset(&s->r, 0, sizeof s->r);
        return pm_flamegraph_write(out, &s->c, &s->t, h, &s->sites);
    }
    if (o->format == PM_EXPORT_PPROF)
        return pm_pprof_write(out, &s->c, h, &s->sites);
    if (o->format)
        return pm_export_sites(out, &s->c, h, &s->sites, o);
    if (!o->combined) {
        pm_report_sites(out, &s->c, h, &s->sites, o->top, o->json);
        return 0;
    }
    if (pm_combined_add(o->combined, &s->c, &s->t, h, &s->sites)) {
        fprintf(stderr, "pymem: %s: out of memory\n", s->c.path);
        return 1;
    }
    return 0;
}

static void session_close(struct session *s)
{
    pm_replay_free(&s->r);
    pm_sites_free(&s->sites);
    pm_capture_close(&s->c);
}

int pm_cmd_summary(FILE *out, const char *path, const struct pm_opts *o)
{
    struct session s;
    int rc = session_open(&s, path, o->by, NULL);
    if (!rc && o->combined && pm_combined_add(o->combined, &s.c, &s.t, &(struct pm_sites_header){0}, NULL)) {
        fprintf(stderr, "pymem: %s: out of memory\n", path);
        rc = 1;
    } else if (!rc && !o->combined) {
        pm_report_summary(out, &s.c, &s.t, o->json);
    }
    session_close(&s);
    return rc;
}

int pm_cmd_snapshots(FILE *out, const char *path, const struct pm_opts *o)
{
    struct session s;
    int rc = session_open(&s, path, o->by, NULL);
    if (!rc)
        pm_report_snapshots(out, &s.c, o->json);
    session_close(&s);
    return rc;
}

int pm_cmd_peak(FILE *out, const char *path, const struct pm_opts *o)
{
    struct session s;
    int rc = session_open_points(&s, path, o->by, o, true, false);
    if (!rc && s.r.peak.set)
        rc = collect_point(&s, &s.sites, &s.r.peak);
    if (!rc) {
        pm_sites_sort(&s.sites, PM_ORDER_BYTES);
        struct pm_sites_header h = {.kind = PM_REPORT_PEAK, .by = pm_group_name(o->by), .to_time_ns = s.t.peak_time_ns,
                                    .total_bytes = s.t.peak_bytes, .truncated = !s.c.has_end};
        rc = emit_sites(out, &s, &h, o);
    }
    session_close(&s);
    return rc;
}

int pm_cmd_leaks(FILE *out, const char *path, const struct pm_opts *o)
{
    struct session s;
    struct point p;
    struct point since = {.seq = 0};
    /* The point is kept by the first pass, unless only later allocations
     * count: then a second pass stops there (a kept point no longer knows
     * when its blocks were made). */
    const char *names[1] = {o->at};
    bool keep = !o->since;
    int rc = session_open_named(&s, path, o->by, o, keep && o->at && !strcmp(o->at, "peak"), keep && !o->at,
                                names, keep && o->at ? 1 : 0);
    if (!rc && o->since && s.c.aggregated) {
        fprintf(stderr, "pymem: %s: --since needs the events, and an aggregated capture holds totals only; "
                "use 'pymem diff'\n", path);
        rc = 1;
    }
    if (!rc) {
        const char *at = o->at ? o->at : snapshot_seq(&s.c, PM_SNAP_EXIT, 0) ? "exit" : "end";
        rc = resolve(&s.c, &s.t, at, &p, o);
        if (!rc && o->since)
            rc = resolve(&s.c, &s.t, o->since, &since, o);
    }
    if (!rc) {
        const struct pm_point *kept = keep ? kept_point(&s, p.seq) : NULL;
        if (o->since && since.seq >= p.seq) {
            fprintf(stderr, "pymem: %s: --since %s does not come before %s\n", path, since.label, p.label);
            rc = 1;
        } else if (o->since) {
            s.sites.since_seq = since.seq;
            rc = collect_at(&s.c, &p.seq, &(struct target){&s.sites, 1}, 1);
        } else if (kept) {
            rc = collect_point(&s, &s.sites, kept);
        } else {
            rc = collect_at(&s.c, &p.seq, &(struct target){&s.sites, 1}, 1);
        }
    }
    if (!rc) {
        pm_sites_sort(&s.sites, PM_ORDER_PHASE_BYTES);
        unsigned long long total = 0, runtime = 0;
        for (size_t i = 0; i < s.sites.n; i++) {
            total += (unsigned long long)s.sites.v[i].bytes[1];
            if (s.sites.v[i].phase == PM_PHASE_RUNTIME)
                runtime += (unsigned long long)s.sites.v[i].bytes[1];
        }
        struct pm_sites_header h = {.kind = PM_REPORT_LEAKS, .by = pm_group_name(o->by), .to_label = p.label,
                                    .from_label = o->since ? since.label : NULL,
                                    .to_time_ns = p.time_ns, .total_bytes = total, .runtime_bytes = runtime,
                                    .truncated = !s.c.has_end};
        rc = emit_sites(out, &s, &h, o);
    }
    session_close(&s);
    return rc;
}

int pm_cmd_diff(FILE *out, const char *path, const struct pm_opts *o)
{
    struct session s;
    struct point a, b;
    /* The two points are kept by the first pass; one it could not keep (a
     * name it did not know as such) takes a second pass. */
    const char *names[2] = {o->from, o->to};
    bool peak = !strcmp(o->from, "peak") || !strcmp(o->to, "peak");
    int rc = session_open_named(&s, path, o->by, o, peak, false, names, 2);
    if (!rc)
        rc = resolve(&s.c, &s.t, o->from, &a, o);
    if (!rc)
        rc = resolve(&s.c, &s.t, o->to, &b, o);
    const struct pm_point *pa = rc ? NULL : kept_point(&s, a.seq), *pb = rc ? NULL : kept_point(&s, b.seq);
    if (!rc && pa && pb) {
        rc = collect_point_in(&s, &s.sites, pa, 0);
        if (!rc)
            rc = collect_point_in(&s, &s.sites, pb, 1);
    } else if (!rc) {
        uint64_t seqs[2] = {a.seq, b.seq};
        struct target targets[2] = {{&s.sites, 0}, {&s.sites, 1}};
        rc = collect_at(&s.c, seqs, targets, 2);
    }
    if (!rc) {
        /* Sites unchanged between the two points say nothing about growth. */
        size_t kept = 0;
        for (size_t i = 0; i < s.sites.n; i++)
            if (s.sites.v[i].bytes[0] != s.sites.v[i].bytes[1] || s.sites.v[i].count[0] != s.sites.v[i].count[1])
                s.sites.v[kept++] = s.sites.v[i];
        s.sites.n = kept;
        pm_sites_sort(&s.sites, PM_ORDER_DIFF);
        struct pm_sites_header h = {.kind = PM_REPORT_DIFF, .by = pm_group_name(o->by), .from_label = a.label,
                                    .to_label = b.label, .to_time_ns = b.time_ns, .truncated = !s.c.has_end};
        rc = emit_sites(out, &s, &h, o);
    }
    session_close(&s);
    return rc;
}

static void brief_site(FILE *out, const struct pm_capture *c, const char *prefix, const struct pm_site *x)
{
    char b[32];
    fprintf(out, "%s%s in %lld blocks at %s:%u %s\n", prefix, pm_human_bytes(b, sizeof b, (double)x->bytes[1]),
            (long long)x->count[1], x->file ? pm_tree_string(&c->stacks, x->file) : "<native>", x->line,
            pm_tree_string(&c->stacks, x->func));
}

/* The few lines `pymem run` prints when the program ends: one more pass,
 * stopping at the peak and at the exit snapshot. */
int pm_cmd_brief(FILE *out, const char *path)
{
    struct session s;
    struct pm_sites leaks;
    pm_sites_init(&leaks, PM_BY_OWN);
    static const struct pm_opts hybrid = {.by = PM_BY_OWN};
    int rc = session_open_points(&s, path, PM_BY_OWN, &hybrid, true, true);
    uint64_t exit_seq = UINT64_MAX;
    if (!rc) {
        leaks.sample_bytes = s.c.sample_bytes;
        exit_seq = s.r.exit.set ? s.r.exit.seq : UINT64_MAX;
        if (s.r.peak.set)
            rc = collect_point(&s, &s.sites, &s.r.peak);
        if (!rc)
            rc = collect_point(&s, &leaks, s.r.exit.set ? &s.r.exit : kept_point(&s, UINT64_MAX));
    }
    if (!rc) {
        char b1[32], b2[32];
        pm_sites_sort(&s.sites, PM_ORDER_BYTES);
        pm_sites_sort(&leaks, PM_ORDER_PHASE_BYTES);
        fprintf(out, "pymem: %llu allocations (%s), peak %s%s at %.3f s%s\n", (unsigned long long)s.t.allocations,
                pm_human_bytes(b1, sizeof b1, (double)s.t.total_allocated),
                s.c.sample_bytes ? "~" : "", pm_human_bytes(b2, sizeof b2, (double)s.t.peak_bytes),
                s.t.peak_time_ns / 1e9, s.c.has_end ? "" : " [capture truncated]");
        if (s.c.sample_bytes) {
            char rate[32];
            fprintf(out, "pymem: sampled (one sample per %s allocated on average): peak and sites are estimates\n",
                    pm_human_bytes(rate, sizeof rate, (double)s.c.sample_bytes));
        }
        if (s.sites.n)
            brief_site(out, &s.c, "pymem: top site at the peak: ", &s.sites.v[0]);
        int shown = 0;
        for (size_t i = 0; i < leaks.n && shown < 3; i++) {
            if (leaks.v[i].phase != PM_PHASE_RUNTIME || !leaks.v[i].file)
                continue;
            if (!shown++)
                fprintf(out, "pymem: leak candidates (live at %s):\n", exit_seq == UINT64_MAX ? "end" : "exit");
            brief_site(out, &s.c, "pymem:   ", &leaks.v[i]);
        }
        if (s.c.forks_unrecorded)
            fprintf(out, "pymem: %llu process%s forked with os.fork %s not recorded: pymem run --follow-fork records them\n",
                    (unsigned long long)s.c.forks_unrecorded, s.c.forks_unrecorded == 1 ? "" : "es",
                    s.c.forks_unrecorded == 1 ? "was" : "were");
        fprintf(out, "pymem: capture: %s (pymem summary|peak|leaks|diff %s)\n", path, path);
    }
    pm_sites_free(&leaks);
    session_close(&s);
    return rc;
}

/* The end-of-run lines of a run with followed children: each process in
 * one line, then the leak candidates summed over all of them. */
static int run_brief(FILE *out, char **paths, size_t n)
{
    struct pm_combined m;
    pm_combined_init(&m, PM_REPORT_LEAKS, PM_BY_OWN);
    static const struct pm_opts hybrid = {.by = PM_BY_OWN};
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        struct session s;
        rc = session_open_points(&s, paths[i], PM_BY_OWN, &hybrid, false, true);
        if (!rc)
            rc = collect_point(&s, &s.sites, s.r.exit.set ? &s.r.exit : kept_point(&s, UINT64_MAX));
        if (!rc) {
            pm_sites_sort(&s.sites, PM_ORDER_PHASE_BYTES);
            uint64_t total = 0;
            for (size_t k = 0; k < s.sites.n; k++)
                total += (uint64_t)s.sites.v[k].bytes[1];
            struct pm_sites_header h = {.kind = PM_REPORT_LEAKS, .total_bytes = total};
            if (pm_combined_add(&m, &s.c, &s.t, &h, &s.sites)) {
                fprintf(stderr, "pymem: %s: out of memory\n", paths[i]);
                rc = 1;
            }
        }
        session_close(&s);
    }
    if (!rc) {
        pm_combined_sort(&m, PM_ORDER_PHASE_BYTES);
        char b1[32], b2[32];
        fprintf(out, "pymem: run of %zu processes:\n", m.nprocs);
        for (size_t i = 0; i < m.nprocs; i++) {
            const struct pm_combined_proc *p = &m.procs[i];
            if (i == 20) {
                fprintf(out, "pymem:   ... and %zu more\n", m.nprocs - i);
                break;
            }
            fprintf(out, "pymem:   %-5s pid %-7lld peak %s%-10s live at exit %-10s %-9s %s\n", p->role, p->pid,
                    p->sample_bytes ? "~" : "", pm_human_bytes(b1, sizeof b1, (double)p->peak_bytes),
                    pm_human_bytes(b2, sizeof b2, (double)p->total), p->end, p->path);
        }
        int shown = 0;
        for (size_t i = 0; i < m.n && shown < 3; i++) {
            const struct pm_combined_site *x = &m.v[i];
            if (x->phase != PM_PHASE_RUNTIME || !x->file)
                continue;
            if (!shown++)
                fputs("pymem: leak candidates across the run (live at each process's exit):\n", out);
            fprintf(out, "pymem:   %s in %lld blocks at %s:%u %s (%zu process%s)\n",
                    pm_human_bytes(b1, sizeof b1, (double)x->bytes[1]), (long long)x->count[1], x->file, x->line,
                    x->func, x->nshares, x->nshares == 1 ? "" : "es");
        }
        fprintf(out, "pymem: captures: %s and %zu beside it (pymem summary|peak|leaks|diff --merge %s)\n", paths[0],
                n - 1, paths[0]);
    }
    pm_combined_free(&m);
    return rc;
}

int pm_cmd_run_brief(FILE *out, const char *root)
{
    char **paths;
    size_t n;
    if (pm_run_captures(root, &paths, &n)) {
        fprintf(stderr, "pymem: out of memory\n");
        return 1;
    }
    int rc = n > 1 ? run_brief(out, paths, n) : pm_cmd_brief(out, root);
    pm_run_captures_free(paths, n);
    return rc;
}
