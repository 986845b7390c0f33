/*
 * plot: memory over time as a standalone SVG, with no script in it (for CI
 * logs and bug reports; contract in plot.h). Live bytes are exact (all
 * domains); decimated to BUCKETS columns, each drawn from its lowest to its
 * highest value, so that no peak is lost. RSS comes from the writer's ticks
 * (every 10 ms). Snapshots, the peak and the exit are marked.
 */
#include "plot.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "capture.h"
#include "replay.h"
#include "report.h"
#include "sites.h"

#define BUCKETS 1600
#define W 1000.0
#define H 440.0
#define LEFT 90.0
#define RIGHT 30.0
#define TOP 40.0
#define BOTTOM 60.0

struct series {
    uint64_t duration_ns;
    double lo[BUCKETS], hi[BUCKETS], last[BUCKETS], rss[BUCKETS];
    bool seen[BUCKETS], rss_seen[BUCKETS];
    /* the allocator's heap (HEAPSTATS, format 4): what glibc's arenas and
     * mapped chunks take from the system, or jemalloc's resident bytes */
    double heap[BUCKETS];
    bool heap_seen[BUCKETS], has_heap;
    bool by_domain;
    double domain[PM_DOMAIN_COUNT][BUCKETS]; /* each column's highest live bytes of the domain */
    double domain_last[PM_DOMAIN_COUNT][BUCKETS];
};

static const char *const domain_colour[PM_DOMAIN_COUNT] = {"#7b3294", "#008837", "#e66101", "#0571b0", "#a6611a"};

static size_t bucket_of(const struct series *s, uint64_t t)
{
    if (!s->duration_ns)
        return 0;
    /* compared before the conversion: a damaged capture's time far past its
     * duration does not fit an integer */
    double b = (double)t / (double)s->duration_ns * BUCKETS;
    return b >= BUCKETS ? BUCKETS - 1 : (size_t)b;
}

static int watch(void *ctx, const struct pm_replay *r, const struct pm_event *ev)
{
    struct series *s = ctx;
    size_t b = bucket_of(s, r->t.now_ns);
    double live = (double)r->t.live_bytes;
    if (!s->seen[b] || live < s->lo[b])
        s->lo[b] = live;
    if (!s->seen[b] || live > s->hi[b])
        s->hi[b] = live;
    s->last[b] = live;
    s->seen[b] = true;
    for (int d = 0; s->by_domain && d < PM_DOMAIN_COUNT; d++) {
        if ((double)r->t.domain_live[d] > s->domain[d][b])
            s->domain[d][b] = (double)r->t.domain_live[d];
        s->domain_last[d][b] = (double)r->t.domain_live[d];
    }
    if (ev->type == PM_EV_TICK && (double)ev->size > s->rss[b]) {
        s->rss[b] = (double)ev->size;
        s->rss_seen[b] = true;
    }
    if (ev->type == PM_EV_HEAPSTATS) {
        const struct pm_heapstats *h = &r->cap->heapstats[ev->stack];
        double held = h->allocator == PM_ALLOCATOR_GLIBC
                          ? (double)(h->value[PM_HS_GLIBC_SYSTEM] + h->value[PM_HS_GLIBC_MMAPPED])
                      : h->allocator == PM_ALLOCATOR_JEMALLOC ? (double)h->value[PM_HS_JE_RESIDENT]
                                                             : -1;
        size_t hb = bucket_of(s, h->time_ns);
        if (held >= 0 && (!s->heap_seen[hb] || held > s->heap[hb])) {
            s->heap[hb] = held;
            s->heap_seen[hb] = s->has_heap = true;
        }
    }
    return 0;
}

/* A round number >= v: 1, 2 or 5 times a power of ten. */
static double nice(double v)
{
    double step = 1e-9;
    while (step * 10 <= v)
        step *= 10;
    static const double m[] = {1, 2, 5, 10};
    for (int i = 0; i < 4; i++)
        if (step * m[i] >= v)
            return step * m[i];
    return step * 10;
}

/* The same in the binary unit the labels use (KiB, MiB...), so that the
 * axis reads 0, 2, 4 ... MiB. */
static double nice_bytes(double v)
{
    double unit = 1;
    while (v / unit >= 1024)
        unit *= 1024;
    return nice(v / unit) * unit;
}

static double x_of(const struct series *s, uint64_t t)
{
    return LEFT + (W - LEFT - RIGHT) * (s->duration_ns ? (double)t / (double)s->duration_ns : 0);
}

static double y_of(double bytes, double top)
{
    return TOP + (H - TOP - BOTTOM) * (1 - bytes / top);
}

static void draw(FILE *out, const struct pm_capture *c, const struct pm_totals *t, const struct series *s,
                 bool inline_svg)
{
    double maxv = (double)t->peak_bytes;
    for (size_t i = 0; i < BUCKETS; i++) {
        if (s->rss_seen[i] && s->rss[i] > maxv)
            maxv = s->rss[i];
        if (s->heap_seen[i] && s->heap[i] > maxv)
            maxv = s->heap[i];
    }
    double top = nice_bytes(maxv > 0 ? maxv * 1.05 : 1);
    char b1[32], b2[32];
    if (!inline_svg)
        fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", out);
    /* data-*: where time runs on the x axis, for the flame graph page's
     * window selection */
    fprintf(out, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
                 "font-family=\"sans-serif\" font-size=\"12\" data-plot-left=\"%.1f\" data-plot-right=\"%.1f\" "
                 "data-plot-top=\"%.1f\" data-plot-bottom=\"%.1f\" data-duration-ns=\"%" PRIu64 "\">\n",
            W, H, W, H, LEFT, W - RIGHT, TOP, H - BOTTOM, s->duration_ns);
    fputs("<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"10\" y=\"20\" font-size=\"14\">", out);
    fputs("pymem: memory over time, ", out);
    pm_markup_str(out, c->path);
    fputs("</text>\n<text x=\"10\" y=\"34\" fill=\"#555\">", out);
    pm_markup_str(out, c->command);
    fputs("</text>\n", out);
    /* axes and grid */
    for (int i = 0; i <= 5; i++) {
        double v = top * i / 5, y = y_of(v, top);
        fprintf(out, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>"
                     "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n",
                LEFT, y, W - RIGHT, y, LEFT - 6, y + 4, pm_human_bytes(b1, sizeof b1, v));
    }
    double step = nice((double)s->duration_ns / 8);
    for (double tt = 0; tt <= (double)s->duration_ns; tt += step) {
        uint64_t tn = (uint64_t)tt;
        double x = x_of(s, tn);
        fprintf(out, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>"
                     "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.3g s</text>\n",
                x, TOP, x, H - BOTTOM, x, H - BOTTOM + 16, tn / 1e9);
    }
    /* live bytes: the band from each column's lowest to its highest */
    fputs("<path class=\"live\" fill=\"#4a90d9\" fill-opacity=\"0.45\" stroke=\"#2a70b9\" stroke-width=\"1\" d=\"", out);
    for (size_t i = 0; i < BUCKETS; i++) {
        double x = LEFT + (W - LEFT - RIGHT) * ((double)i + 0.5) / BUCKETS;
        fprintf(out, "%s%.1f,%.1f", i ? " L" : "M", x, y_of(s->hi[i], top));
    }
    for (size_t i = BUCKETS; i-- > 0;)
        fprintf(out, " L%.1f,%.1f", LEFT + (W - LEFT - RIGHT) * ((double)i + 0.5) / BUCKETS, y_of(s->lo[i], top));
    fputs(" Z\"/>\n", out);
    /* RSS */
    fputs("<polyline class=\"rss\" fill=\"none\" stroke=\"#d0602a\" stroke-width=\"1.5\" stroke-dasharray=\"5,3\" "
          "points=\"",
          out);
    for (size_t i = 0; i < BUCKETS; i++)
        if (s->rss_seen[i])
            fprintf(out, "%.1f,%.1f ", LEFT + (W - LEFT - RIGHT) * ((double)i + 0.5) / BUCKETS, y_of(s->rss[i], top));
    fputs("\"/>\n", out);
    /* the allocator's heap, where the capture has it */
    if (s->has_heap) {
        fputs("<polyline class=\"allocator\" fill=\"none\" stroke=\"#2e8b57\" stroke-width=\"1.5\" "
              "stroke-dasharray=\"1,3\" points=\"",
              out);
        for (size_t i = 0; i < BUCKETS; i++)
            if (s->heap_seen[i])
                fprintf(out, "%.1f,%.1f ", LEFT + (W - LEFT - RIGHT) * ((double)i + 0.5) / BUCKETS,
                        y_of(s->heap[i], top));
        fputs("\"/>\n", out);
    }
    /* one line per domain, on request */
    for (int d = 0; s->by_domain && d < PM_DOMAIN_COUNT; d++) {
        double most = 0;
        for (size_t i = 0; i < BUCKETS; i++)
            most = s->domain[d][i] > most ? s->domain[d][i] : most;
        fprintf(out, "<polyline class=\"domain-%s\" data-max-bytes=\"%.0f\" fill=\"none\" stroke=\"%s\" "
                     "stroke-width=\"1.2\" points=\"",
                pm_domain_names[d], most, domain_colour[d]);
        for (size_t i = 0; i < BUCKETS; i++)
            fprintf(out, "%.1f,%.1f ", LEFT + (W - LEFT - RIGHT) * ((double)i + 0.5) / BUCKETS,
                    y_of(s->domain[d][i], top));
        fputs("\"/>\n", out);
    }
    /* snapshots: every one drawn (with its label as a tooltip), labels
     * written where they do not overlap the one before */
    double labelled = -1e9;
    for (uint32_t i = 0; i < c->snapshot_count; i++) {
        const struct pm_snapshot *sn = &c->snapshots[i];
        double x = x_of(s, sn->time_ns);
        fputs("<g class=\"snapshot\"><title>", out);
        pm_markup_str(out, sn->label);
        fprintf(out, "</title><line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#888\" "
                     "stroke-dasharray=\"2,2\"/>",
                x, TOP, x, H - BOTTOM);
        if (x - labelled >= 14) {
            fprintf(out, "<text x=\"%.1f\" y=\"%.1f\" fill=\"#555\" font-size=\"10\" text-anchor=\"end\" "
                         "transform=\"rotate(-90 %.1f %.1f)\">",
                    x - 3, TOP + 4, x - 3, TOP + 4);
            pm_markup_str(out, sn->label);
            fputs("</text>", out);
            labelled = x;
        }
        fputs("</g>\n", out);
    }
    /* the peak */
    double px = x_of(s, t->peak_time_ns), py = y_of((double)t->peak_bytes, top);
    fprintf(out, "<circle class=\"peak\" cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"#c00\" data-bytes=\"%" PRIu64
                 "\" data-time-ns=\"%" PRIu64 "\"><title>peak %s at %.3f s</title></circle>"
                 "<text x=\"%.1f\" y=\"%.1f\" fill=\"#c00\">peak %s%s at %.3f s</text>\n",
            px, py, t->peak_bytes, t->peak_time_ns, pm_human_bytes(b1, sizeof b1, (double)t->peak_bytes),
            t->peak_time_ns / 1e9, px + 6 > W - 220 ? W - 220 : px + 6, py - 6 < TOP + 10 ? TOP + 10 : py - 6,
            c->sample_bytes ? "~" : "", pm_human_bytes(b2, sizeof b2, (double)t->peak_bytes), t->peak_time_ns / 1e9);
    /* legend */
    fprintf(out, "<rect x=\"%.1f\" y=\"%.1f\" width=\"14\" height=\"8\" fill=\"#4a90d9\" fill-opacity=\"0.45\"/>"
                 "<text x=\"%.1f\" y=\"%.1f\">live bytes%s</text>"
                 "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#d0602a\" stroke-dasharray=\"5,3\"/>"
                 "<text x=\"%.1f\" y=\"%.1f\">RSS</text>\n",
            LEFT, H - 22, LEFT + 20, H - 14, c->sample_bytes ? " (estimated: sampled capture)" : c->aggregated ? " (exact, every 100 ms: aggregated)" : " (exact, all domains)",
            LEFT + 310, H - 18, LEFT + 330, H - 18, LEFT + 336, H - 14);
    double shift = 0;
    if (s->has_heap) {
        fprintf(out, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#2e8b57\" "
                     "stroke-dasharray=\"1,3\"/><text x=\"%.1f\" y=\"%.1f\">allocator's heap</text>\n",
                LEFT + 370, H - 18, LEFT + 390, H - 18, LEFT + 396, H - 14);
        shift = 120;
    }
    for (int d = 0; s->by_domain && d < PM_DOMAIN_COUNT; d++)
        fprintf(out, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\"/>"
                     "<text x=\"%.1f\" y=\"%.1f\">%s</text>\n",
                LEFT + 390 + shift + 75 * d, H - 18, LEFT + 404 + shift + 75 * d, H - 18, domain_colour[d],
                LEFT + 410 + shift + 75 * d, H - 14, pm_domain_names[d]);
    if (!c->has_end)
        fprintf(out, "<text x=\"%.1f\" y=\"%.1f\" fill=\"#c00\">capture truncated</text>\n", W - 160, H - 34);
    fputs("</svg>\n", out);
}

int pm_plot_capture(FILE *out, struct pm_capture *c, const struct pm_totals *t, bool inline_svg, bool by_domain)
{
    if (by_domain && c->aggregated) {
        fprintf(stderr, "pymem: %s: an aggregated capture has live totals over all domains only (record without "
                        "--aggregate for --domains)\n", c->path);
        return 1;
    }
    struct series *s = calloc(1, sizeof *s);
    if (!s) {
        fputs("pymem: out of memory\n", stderr);
        return 1;
    }
    /* The pass already made gave the duration the columns divide. */
    s->duration_ns = t->now_ns ? t->now_ns : 1;
    s->by_domain = by_domain;
    struct pm_replay r;
    memset(&r, 0, sizeof r);
    int rc = pm_replay_named(&r, c, false, false, NULL, 0, watch, s);
    pm_replay_free(&r);
    /* A column without events holds what the one before ended with. */
    for (size_t i = 0; !rc && i < BUCKETS; i++)
        if (!s->seen[i]) {
            double v = i ? s->last[i - 1] : 0;
            s->lo[i] = s->hi[i] = s->last[i] = v;
            for (int d = 0; d < PM_DOMAIN_COUNT; d++)
                s->domain[d][i] = s->domain_last[d][i] = i ? s->domain_last[d][i - 1] : 0;
        }
    if (rc)
        fprintf(stderr, "pymem: %s\n", *c->error ? c->error : "cannot read the capture");
    else
        draw(out, c, t, s, inline_svg);
    free(s);
    return rc ? 1 : 0;
}

int pm_plot_svg(FILE *out, const char *path, bool inline_svg, bool by_domain)
{
    struct pm_capture c;
    struct pm_replay r;
    memset(&r, 0, sizeof r);
    int rc = pm_capture_open(&c, path) || pm_replay_run(&r, &c, NULL, 0, NULL, NULL);
    struct pm_totals first = r.t;
    pm_replay_free(&r);
    if (rc)
        fprintf(stderr, "pymem: %s\n", *c.error ? c.error : "cannot read the capture");
    else
        rc = pm_plot_capture(out, &c, &first, inline_svg, by_domain);
    pm_capture_close(&c);
    return rc ? 1 : 0;
}
