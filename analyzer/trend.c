/*
 * trend: growth of each site over the snapshots of one capture or of a run
 * (contract in trend.h). Sites are matched by text (pm_site_key), so that the
 * captures of a run add up; series are kept per label.
 */
#define _GNU_SOURCE
#include "trend.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "capture.h"
#include "combine.h"
#include "grow.h"
#include "json.h"
#include "replay.h"
#include "report.h"
#include "textindex.h"
#include "symbolize.h"

enum trend_class { STEADY, PLATEAU, FLUCTUATING, SHRINKING, FLAT };
static const char *const class_names[] = {"steady", "plateau", "fluctuating", "shrinking", "flat"};

/* Below this change over the run a site is flat: a few objects coming and
 * going are no trend. */
#define FLAT_BYTES 4096

struct label {
    char text[220];
    double time_sum; /* seconds since each capture's start, summed */
    int present;     /* in how many captures */
};

struct tsite {
    char *key, *file, *func;
    uint32_t line;
    char *stack_text, *stack_json;
    int64_t stack_bytes;
    double *bytes, *count; /* by label */
    /* the analysis */
    enum trend_class cls;
    double rate, r2; /* bytes per second; fit of the line */
    int grew, intervals;
    double first, last;
};

struct trend {
    enum pm_group by;
    struct label *labels;
    size_t nlabels, label_cap;
    struct tsite *v;
    size_t n, cap;
    uint32_t *index;
    size_t index_cap;
    int captures;
    /* the capture being read */
    struct pm_capture *c;
    const struct pm_opts *o;
    uint32_t *stop_label; /* label index of each stop */
    uint64_t main_seq;
    char error[256];
};

static void trend_free(struct trend *t)
{
    for (size_t i = 0; i < t->n; i++) {
        struct tsite *x = &t->v[i];
        free(x->key);
        free(x->file);
        free(x->func);
        free(x->stack_text);
        free(x->stack_json);
        free(x->bytes);
        free(x->count);
    }
    free(t->v);
    free(t->index);
    free(t->labels);
    memset(t, 0, sizeof *t);
}

static const char *site_key_of(const void *records, size_t i)
{
    return ((const struct tsite *)records)[i].key;
}

/* Series arrays follow the label table's capacity. */
static int fit_series(struct trend *t, struct tsite *x, size_t old_cap)
{
    double *b = realloc(x->bytes, t->label_cap * sizeof *b), *c;
    if (!b)
        return -1;
    x->bytes = b;
    if (!(c = realloc(x->count, t->label_cap * sizeof *c)))
        return -1;
    x->count = c;
    for (size_t i = old_cap; i < t->label_cap; i++)
        x->bytes[i] = x->count[i] = 0;
    return 0;
}

static int label_index(struct trend *t, const char *text, double time_s, bool *used, uint32_t *out)
{
    size_t i = 0;
    while (i < t->nlabels && (strcmp(t->labels[i].text, text) || used[i]))
        i++;
    if (i == t->nlabels) {
        size_t old_cap = t->label_cap;
        if (pm_grow(&t->labels, &t->label_cap, sizeof *t->labels, t->nlabels + 1, 64))
            return -1;
        if (t->label_cap != old_cap)
            for (size_t k = 0; k < t->n; k++)
                if (fit_series(t, &t->v[k], old_cap))
                    return -1;
        memset(&t->labels[i], 0, sizeof t->labels[i]);
        snprintf(t->labels[i].text, sizeof t->labels[i].text, "%s", text);
        t->nlabels++;
    }
    t->labels[i].time_sum += time_s;
    t->labels[i].present++;
    *out = (uint32_t)i;
    return 0;
}

static struct tsite *site_for(struct trend *t, const struct pm_site *y)
{
    char *key = pm_site_key(t->by, t->c, y);
    if (!key)
        return NULL;
    if ((t->n + 1) * 2 > t->index_cap && pm_text_index_grow(&t->index, &t->index_cap, t->n, site_key_of, t->v)) {
        free(key);
        return NULL;
    }
    size_t s = pm_text_hash(key) & (t->index_cap - 1);
    for (; t->index[s]; s = (s + 1) & (t->index_cap - 1)) {
        struct tsite *x = &t->v[t->index[s] - 1];
        if (!strcmp(x->key, key)) {
            free(key);
            return x;
        }
    }
    if (pm_grow(&t->v, &t->cap, sizeof *t->v, t->n + 1, 256)) {
        free(key);
        return NULL;
    }
    struct tsite *x = &t->v[t->n];
    memset(x, 0, sizeof *x);
    x->key = key;
    x->line = y->line;
    x->stack_bytes = INT64_MIN;
    x->file = y->file ? strdup(pm_tree_string(&t->c->stacks, y->file)) : NULL;
    x->func = strdup(pm_tree_string(&t->c->stacks, y->func));
    if ((y->file && !x->file) || !x->func || fit_series(t, x, 0)) {
        free(x->file);
        free(x->func);
        free(x->bytes);
        free(key);
        return NULL;
    }
    t->index[s] = (uint32_t)++t->n;
    return x;
}

static int on_stop(void *ctx, size_t i, struct pm_replay *r)
{
    struct trend *t = ctx;
    struct pm_sites sites;
    pm_sites_init(&sites, t->by);
    pm_sites_filter(&sites, t->o->view, t->o->domains);
    sites.sample_bytes = t->c->sample_bytes;
    int rc = pm_sites_collect_replay(&sites, r, t->main_seq, 1);
    uint32_t label = t->stop_label[i];
    for (size_t k = 0; !rc && k < sites.n; k++) {
        const struct pm_site *y = &sites.v[k];
        struct tsite *x = site_for(t, y);
        if (!x) {
            rc = -1;
            break;
        }
        x->bytes[label] += (double)y->bytes[1];
        x->count[label] += (double)y->count[1];
        if (y->bytes[1] > x->stack_bytes) {
            char *text = pm_render_stack(t->c, y->stack, t->by == PM_BY_TRACEBACK ? 64 : 6, y, false);
            char *json = pm_render_stack(t->c, y->stack, 0, NULL, true);
            if (!text || !json) {
                free(text);
                free(json);
                rc = -1;
                break;
            }
            free(x->stack_text);
            free(x->stack_json);
            x->stack_text = text;
            x->stack_json = json;
            x->stack_bytes = y->bytes[1];
        }
    }
    pm_sites_free(&sites);
    if (rc)
        snprintf(r->cap->error, sizeof r->cap->error, "%s: out of memory", r->cap->path);
    return rc;
}

static bool trended(int kind)
{
    return kind == PM_SNAP_USER || kind == PM_SNAP_SIGNAL || kind == PM_SNAP_PERIODIC;
}

/* Adds one capture's snapshots to the table. */
static int add_capture(struct trend *t, const char *path, const struct pm_opts *o)
{
    struct pm_capture c;
    struct pm_replay r;
    memset(&r, 0, sizeof r);
    int rc = pm_capture_open(&c, path) || pm_replay_run(&r, &c, NULL, 0, NULL, NULL);
    pm_replay_free(&r);
    if (!rc && c.native_depth && o->view != PM_VIEW_PYTHON && pm_symbolize(&c.stacks, &c.modules)) {
        snprintf(c.error, sizeof c.error, "%s: out of memory while naming native frames", path);
        rc = 1;
    }
    bool *used = calloc(t->nlabels + c.snapshot_count + 1, sizeof *used);
    uint64_t *stops = calloc(c.snapshot_count + 1, sizeof *stops);
    t->stop_label = calloc(c.snapshot_count + 1, sizeof *t->stop_label);
    if (!rc && (!used || !t->stop_label || !stops)) {
        snprintf(c.error, sizeof c.error, "%s: out of memory", path);
        rc = 1;
    }
    size_t n = 0;
    t->main_seq = 0;
    for (uint32_t i = 0; i < c.snapshot_count && !t->main_seq; i++)
        if (c.snapshots[i].kind == PM_SNAP_MAIN)
            t->main_seq = c.snapshots[i].seq;
    bool finalising = false;
    for (uint32_t i = 0; !rc && i < c.snapshot_count; i++) {
        const struct pm_snapshot *s = &c.snapshots[i];
        /* Start-up (the interpreter's, and the imports before the program's
         * own code runs) is no trend, nor finalisation (from the `exit`
         * snapshot on, until another interpreter starts), which frees the
         * program's memory. */
        if (s->kind == PM_SNAP_EXIT)
            finalising = true;
        else if (s->kind == PM_SNAP_USER && !strncmp(s->label, "interpreter-", 12))
            finalising = false;
        if (!trended(s->kind) || finalising || (t->main_seq && s->seq < t->main_seq))
            continue;
        if (label_index(t, s->label, s->time_ns / 1e9, used, &t->stop_label[n])) {
            snprintf(c.error, sizeof c.error, "%s: out of memory", path);
            rc = 1;
            break;
        }
        used[t->stop_label[n]] = true;
        stops[n++] = s->seq;
    }
    if (!rc && n) {
        t->c = &c;
        t->o = o;
        memset(&r, 0, sizeof r);
        rc = pm_replay_run(&r, &c, stops, n, on_stop, t) != 0;
        pm_replay_free(&r);
    }
    if (rc)
        fprintf(stderr, "pymem: %s\n", *c.error ? c.error : "cannot read the capture");
    else if (!c.has_end)
        fprintf(stderr, "pymem: warning: %s is truncated (the process was killed or is still running); "
                        "reading what was complete\n", path);
    t->captures++;
    free(used);
    free(stops);
    free(t->stop_label);
    t->stop_label = NULL;
    t->c = NULL;
    pm_capture_close(&c);
    return rc;
}

/* Least squares over the kept labels (`keep`, in time order). */
static void analyse(struct tsite *x, const size_t *keep, size_t k, const double *times)
{
    double mx = 0, my = 0;
    for (size_t i = 0; i < k; i++) {
        mx += times[i];
        my += x->bytes[keep[i]];
    }
    mx /= (double)k;
    my /= (double)k;
    double sxy = 0, sxx = 0, syy = 0, lo = INFINITY, hi = -INFINITY;
    x->grew = 0;
    for (size_t i = 0; i < k; i++) {
        double dx = times[i] - mx, y = x->bytes[keep[i]], dy = y - my;
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
        lo = y < lo ? y : lo;
        hi = y > hi ? y : hi;
        if (i && y > x->bytes[keep[i - 1]])
            x->grew++;
    }
    x->intervals = (int)k - 1;
    x->rate = sxx > 0 ? sxy / sxx : 0;
    x->r2 = sxx > 0 && syy > 0 ? sxy * sxy / (sxx * syy) : 0;
    x->first = x->bytes[keep[0]];
    x->last = x->bytes[keep[k - 1]];
    double mid = x->bytes[keep[k / 2]];
    double g1 = mid - x->first, g2 = x->last - mid;
    double lo2 = INFINITY, hi2 = -INFINITY; /* the second half's range */
    for (size_t i = k / 2; i < k; i++) {
        double y = x->bytes[keep[i]];
        lo2 = y < lo2 ? y : lo2;
        hi2 = y > hi2 ? y : hi2;
    }
    if (hi - lo < FLAT_BYTES)
        x->cls = FLAT;
    else if (x->rate > 0 && x->r2 >= 0.9 && g1 > 0 && g2 > 0 && g2 >= 0.5 * g1 && g1 >= 0.5 * g2)
        x->cls = STEADY; /* each half of the run grew at about the same pace */
    else if (x->rate < 0 && x->r2 >= 0.5)
        x->cls = SHRINKING;
    else if (g1 > 0 && g2 < 0.5 * g1 && hi - x->last < 0.25 * (hi - lo) && hi2 - lo2 < 0.25 * (hi - lo))
        x->cls = PLATEAU; /* grew early, then stayed near its top */
    else
        x->cls = FLUCTUATING;
}

static int cmp_sites(const void *a, const void *b)
{
    const struct tsite *x = a, *y = b;
    if ((x->cls == STEADY) != (y->cls == STEADY))
        return x->cls == STEADY ? -1 : 1;
    if (x->cls == STEADY && x->rate != y->rate)
        return x->rate > y->rate ? -1 : 1;
    double dx = fabs(x->last - x->first), dy = fabs(y->last - y->first);
    if (dx != dy)
        return dx > dy ? -1 : 1;
    return strcmp(x->key, y->key);
}

static void site_name(FILE *out, enum pm_group by, const struct tsite *x)
{
    if (by == PM_BY_FILENAME || !x->file)
        fprintf(out, "%s", x->file ? x->file : "<native>");
    else if (!x->line)
        fprintf(out, "%s  [%s]", x->func, x->file);
    else
        fprintf(out, "%s:%u %s", x->file, x->line, x->func);
}

static void report_json(FILE *out, const struct trend *t, char **paths, size_t np, const size_t *keep, size_t k,
                        const double *times, size_t shown)
{
    fputs("{\"files\": [", out);
    for (size_t i = 0; i < np; i++) {
        fputs(i ? ", " : "", out);
        pm_json_str(out, paths[i]);
    }
    fputs("], \"snapshots\": [", out);
    for (size_t i = 0; i < k; i++) {
        fputs(i ? ", {\"label\": " : "{\"label\": ", out);
        pm_json_str(out, t->labels[keep[i]].text);
        fprintf(out, ", \"time_s\": %.6f}", times[i]);
    }
    fputs("], \"sites\": [", out);
    for (size_t i = 0; i < shown; i++) {
        const struct tsite *x = &t->v[i];
        fputs(i ? ", {\"file\": " : "{\"file\": ", out);
        pm_json_str(out, x->file ? x->file : "<native>");
        fprintf(out, ", \"line\": %u, \"function\": ", x->line);
        pm_json_str(out, x->func);
        fprintf(out, ", \"class\": \"%s\", \"rate_bytes_per_min\": %.1f, \"r2\": %.4f, \"grew_intervals\": %d, "
                     "\"intervals\": %d, \"first_bytes\": %.0f, \"last_bytes\": %.0f, \"series\": [",
                class_names[x->cls], x->rate * 60, x->r2, x->grew, x->intervals, x->first, x->last);
        for (size_t j = 0; j < k; j++)
            fprintf(out, "%s{\"bytes\": %.0f, \"count\": %.0f}", j ? ", " : "", x->bytes[keep[j]],
                    x->count[keep[j]]);
        fprintf(out, "], \"stack\": %s}", x->stack_json ? x->stack_json : "[]");
    }
    fputs("]}\n", out);
}

static void report_text(FILE *out, const struct trend *t, char **paths, size_t np, const size_t *keep, size_t k,
                        const double *times, long top)
{
    char b1[32], b2[32];
    fprintf(out, "Trend over %zu snapshots, from '%s' (%.3f s) to '%s' (%.3f s), in %s%s\n", k,
            t->labels[keep[0]].text, times[0], t->labels[keep[k - 1]].text, times[k - 1], paths[0],
            np > 1 ? " and the captures beside it" : "");
    size_t steady = 0;
    while (steady < t->n && t->v[steady].cls == STEADY)
        steady++;
    if (!steady)
        fputs("No site grew steadily through the run.\n", out);
    else
        fputs("Growing steadily through the run (leak candidates):\n", out);
    size_t limit = top > 0 ? (size_t)top : SIZE_MAX, shown = 0;
    for (size_t i = 0; i < t->n && shown < limit; i++) {
        const struct tsite *x = &t->v[i];
        if (x->cls == FLAT)
            break;
        if (i == steady)
            fputs("Other sites that changed:\n", out);
        if (x->cls == STEADY)
            fprintf(out, "%4zu. +%s/min  now %s in %.0f blocks  ", ++shown, pm_human_bytes(b1, sizeof b1, x->rate * 60),
                    pm_human_bytes(b2, sizeof b2, x->last), x->count[keep[k - 1]]);
        else
            fprintf(out, "%4zu. %-11s  %s -> %s  ", ++shown, class_names[x->cls],
                    pm_human_bytes(b1, sizeof b1, x->first), pm_human_bytes(b2, sizeof b2, x->last));
        site_name(out, t->by, x);
        fprintf(out, "  (fit %.2f, grew in %d of %d intervals)\n", x->r2, x->grew, x->intervals);
        if (t->by != PM_BY_FILENAME && x->stack_text && x->cls == STEADY)
            fputs(x->stack_text, out);
    }
}

static int compare_times(const void *a, const void *b, void *ctx)
{
    const struct label *l = ctx;
    const size_t *x = a, *y = b;
    double tx = l[*x].time_sum / l[*x].present, ty = l[*y].time_sum / l[*y].present;
    return tx < ty ? -1 : tx > ty;
}

static int trend_of(FILE *out, char **paths, size_t np, const struct pm_opts *o)
{
    struct trend t;
    memset(&t, 0, sizeof t);
    t.by = o->by;
    int rc = 0;
    for (size_t i = 0; i < np && !rc; i++)
        rc = add_capture(&t, paths[i], o);
    size_t *keep = calloc(t.nlabels + 1, sizeof *keep);
    double *times = calloc(t.nlabels + 1, sizeof *times);
    if (!rc && (!keep || !times)) {
        fputs("pymem: out of memory\n", stderr);
        rc = 1;
    }
    /* Merged: the labels every capture has, summed. */
    size_t k = 0;
    for (size_t i = 0; !rc && i < t.nlabels; i++)
        if (t.labels[i].present == t.captures)
            keep[k++] = i;
    if (!rc && k < 3) {
        fprintf(stderr, "pymem: %s%s: a trend needs at least 3 snapshots%s (found %zu); record with "
                        "--snapshot-every SECONDS, or take them with 'pymem snapshot PID'\n",
                paths[0], np > 1 ? " and the captures beside it" : "", np > 1 ? " with the same labels" : "", k);
        rc = 1;
    }
    if (!rc) {
        qsort_r(keep, k, sizeof *keep, compare_times, t.labels);
        for (size_t i = 0; i < k; i++)
            times[i] = t.labels[keep[i]].time_sum / t.labels[keep[i]].present;
        for (size_t i = 0; i < t.n; i++)
            analyse(&t.v[i], keep, k, times);
        if (t.n)
            qsort(t.v, t.n, sizeof *t.v, cmp_sites);
        /* The index points at the old order. */
        free(t.index);
        t.index = NULL;
        t.index_cap = 0;
        if (o->json) {
            size_t changed = 0;
            while (changed < t.n && t.v[changed].cls != FLAT)
                changed++;
            report_json(out, &t, paths, np, keep, k, times,
                        o->top > 0 && (size_t)o->top < changed ? (size_t)o->top : changed);
        } else {
            report_text(out, &t, paths, np, keep, k, times, o->top);
        }
    }
    free(keep);
    free(times);
    trend_free(&t);
    return rc;
}

int pm_cmd_trend(FILE *out, char **paths, size_t n, bool merge, const struct pm_opts *o)
{
    if (merge || n == 1)
        return trend_of(out, paths, n, o);
    int rc = 0;
    if (o->json)
        fputs("[\n", out);
    for (size_t i = 0; i < n; i++) {
        if (!o->json)
            fprintf(out, "%s== %s\n", i ? "\n" : "", paths[i]);
        else if (i)
            fputs(",\n", out);
        fflush(out);
        rc |= trend_of(out, &paths[i], 1, o);
    }
    if (o->json)
        fputs("]\n", out);
    return rc;
}
