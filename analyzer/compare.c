/*
 * compare: `pymem compare A B`, two runs of the same program side by side,
 * typically on two allocators (`pymem run --allocator`): RSS and the live
 * heap over time (at the writer's 10 ms ticks), their peaks and their values
 * at exit, and a one-line verdict. Each capture is replayed once.
 */
#include "compare.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "grow.h"
#include "json.h"
#include "replay.h"
#include "report.h"

#define TENTHS 11
#define AGREE 0.05 /* live heaps within 5%: the runs did the same work */

struct tick {
    uint64_t time_ns, rss, live;
};

struct run {
    const char *path;
    struct tick *ticks;
    size_t n, cap;
    uint64_t peak_rss, peak_live, exit_rss, exit_live;
    bool exit_seen;
    int allocator;
    bool oom;
};

static int watch(void *ctx, const struct pm_replay *r, const struct pm_event *ev)
{
    struct run *R = ctx;
    if (r->t.live_bytes > R->peak_live)
        R->peak_live = r->t.live_bytes;
    if (ev->type == PM_EV_HEAPSTATS)
        R->allocator = r->cap->heapstats[ev->stack].allocator;
    if (ev->type == PM_EV_SNAPSHOT && r->cap->snapshots[ev->stack].kind == PM_SNAP_EXIT && !R->exit_seen) {
        R->exit_seen = true;
        R->exit_live = r->t.live_bytes;
        R->exit_rss = R->n ? R->ticks[R->n - 1].rss : 0;
    }
    if (ev->type != PM_EV_TICK)
        return 0;
    if (pm_grow(&R->ticks, &R->cap, sizeof *R->ticks, R->n + 1, 1024))
        return R->oom = true, -1;
    R->ticks[R->n++] = (struct tick){ev->time, ev->size, r->t.live_bytes};
    if (ev->size > R->peak_rss)
        R->peak_rss = ev->size;
    return 0;
}

static int load(struct run *R, const char *path)
{
    struct pm_capture c;
    struct pm_replay r;
    memset(R, 0, sizeof *R);
    memset(&r, 0, sizeof r);
    R->path = path;
    int rc = pm_capture_open(&c, path) || pm_replay_named(&r, &c, false, false, NULL, 0, watch, R);
    if (!rc && !R->n) {
        snprintf(c.error, sizeof c.error, "%s: no RSS figures in this capture (it ended at once)", path);
        rc = 1;
    }
    if (R->oom && !rc) {
        snprintf(c.error, sizeof c.error, "%s: out of memory", path);
        rc = 1;
    }
    if (rc)
        fprintf(stderr, "pymem: %s\n", *c.error ? c.error : "cannot read the capture");
    if (!rc && !R->exit_seen) {
        R->exit_rss = R->ticks[R->n - 1].rss;
        R->exit_live = r.t.live_bytes;
    }
    pm_replay_free(&r);
    pm_capture_close(&c);
    return rc ? -1 : 0;
}

/* The tick at `tenth` tenths of the run's duration. */
static const struct tick *at_tenth(const struct run *R, int tenth)
{
    uint64_t end = R->ticks[R->n - 1].time_ns;
    uint64_t t = end / 10 * (uint64_t)tenth;
    size_t lo = 0, hi = R->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (R->ticks[mid].time_ns < t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return &R->ticks[lo < R->n ? lo : R->n - 1];
}

static double change(uint64_t a, uint64_t b)
{
    return a ? ((double)b - (double)a) / (double)a : 0;
}

static void verdict(const struct run *A, const struct run *B, char *line, size_t cap)
{
    char a[32], b[32], ea[32], eb[32], la[32], lb[32];
    double peak = change(A->peak_rss, B->peak_rss), exit = change(A->exit_rss, B->exit_rss);
    pm_human_bytes(a, sizeof a, (double)A->peak_rss);
    pm_human_bytes(b, sizeof b, (double)B->peak_rss);
    pm_human_bytes(ea, sizeof ea, (double)A->exit_rss);
    pm_human_bytes(eb, sizeof eb, (double)B->exit_rss);
    pm_human_bytes(la, sizeof la, (double)A->peak_live);
    pm_human_bytes(lb, sizeof lb, (double)B->peak_live);
    double live = fabs(change(A->peak_live, B->peak_live));
    snprintf(line, cap,
             "B's RSS at exit is %.0f%% %s than A's (%s against %s), its peak RSS %.0f%% %s (%s against %s); "
             "the live heaps %s (peak %s against %s)",
             fabs(exit) * 100, exit < 0 ? "lower" : "higher", eb, ea, fabs(peak) * 100, peak < 0 ? "lower" : "higher",
             b, a, live <= AGREE ? "agree" : "differ: did the runs do the same work?", lb, la);
}

static void row(FILE *out, const char *what, uint64_t a, uint64_t b)
{
    char x[32], y[32], z[32], signed_z[40];
    double d = (double)b - (double)a;
    pm_human_bytes(z, sizeof z, fabs(d));
    snprintf(signed_z, sizeof signed_z, "%c%s", d < 0 ? '-' : '+', z);
    fprintf(out, "  %-18s %12s %12s %12s\n", what, pm_human_bytes(x, sizeof x, (double)a),
            pm_human_bytes(y, sizeof y, (double)b), signed_z);
}

static void json_ticks(FILE *out, const struct run *R)
{
    /* At most 200 points, each the highest RSS of its stretch. */
    size_t step = R->n > 200 ? (R->n + 199) / 200 : 1;
    fputc('[', out);
    for (size_t i = 0; i < R->n; i += step) {
        const struct tick *best = &R->ticks[i];
        for (size_t j = i; j < i + step && j < R->n; j++)
            if (R->ticks[j].rss > best->rss)
                best = &R->ticks[j];
        fprintf(out, "%s{\"time_s\": %.3f, \"rss\": %" PRIu64 ", \"live\": %" PRIu64 "}", i ? ", " : "",
                (double)best->time_ns / 1e9, best->rss, best->live);
    }
    fputc(']', out);
}

static void json_run(FILE *out, const struct run *R)
{
    fputs("{\"file\": ", out);
    pm_json_str(out, R->path);
    fputs(", \"allocator\": ", out);
    pm_json_str(out, pm_allocator_name(R->allocator));
    fprintf(out, ", \"duration_s\": %.3f, \"peak_rss\": %" PRIu64 ", \"peak_live\": %" PRIu64
                 ", \"exit_rss\": %" PRIu64 ", \"exit_live\": %" PRIu64 ", \"ticks\": ",
            (double)R->ticks[R->n - 1].time_ns / 1e9, R->peak_rss, R->peak_live, R->exit_rss, R->exit_live);
    json_ticks(out, R);
    fputc('}', out);
}

int pm_cmd_compare(FILE *out, const char *a, const char *b, const struct pm_opts *o)
{
    struct run A, B;
    if (load(&A, a))
        return 1;
    if (load(&B, b)) {
        free(A.ticks);
        return 1;
    }
    char line[512];
    verdict(&A, &B, line, sizeof line);
    if (o->json) {
        fputs("{\"a\": ", out);
        json_run(out, &A);
        fputs(", \"b\": ", out);
        json_run(out, &B);
        fprintf(out, ", \"peak_rss_change\": %.4f, \"exit_rss_change\": %.4f, \"peak_live_change\": %.4f, "
                     "\"message\": ",
                change(A.peak_rss, B.peak_rss), change(A.exit_rss, B.exit_rss), change(A.peak_live, B.peak_live));
        pm_json_str(out, line);
        fputs("}\n", out);
    } else {
        fprintf(out, "A:         %s (%s)\nB:         %s (%s)\nVerdict:   %s\n\n", a, pm_allocator_name(A.allocator), b,
                pm_allocator_name(B.allocator), line);
        fprintf(out, "  %-18s %12s %12s %12s\n", "", "A", "B", "B - A");
        row(out, "peak RSS", A.peak_rss, B.peak_rss);
        row(out, "peak live heap", A.peak_live, B.peak_live);
        row(out, "RSS at exit", A.exit_rss, B.exit_rss);
        row(out, "live heap at exit", A.exit_live, B.exit_live);
        fprintf(out, "\nOver each run's own time:  RSS A        RSS B     live A     live B\n");
        for (int t = 0; t < TENTHS; t++) {
            const struct tick *x = at_tenth(&A, t), *y = at_tenth(&B, t);
            char p[32], q[32], r[32], s[32];
            fprintf(out, "  %3d%%  %20s %10s %10s %10s\n", t * 10, pm_human_bytes(p, sizeof p, (double)x->rss),
                    pm_human_bytes(q, sizeof q, (double)y->rss), pm_human_bytes(r, sizeof r, (double)x->live),
                    pm_human_bytes(s, sizeof s, (double)y->live));
        }
    }
    free(A.ticks);
    free(B.ticks);
    return 0;
}
