/*
 * flamegraph: `pymem flamegraph`: one self-contained HTML page (contract in
 * flamegraph.h). The tree of stacks is built here, frames below 0.01% of the
 * total merged into one "other" node per parent; the page's script
 * (flamegraph.js, linked into the binary) draws it on a canvas. The memory
 * over time chart is pymem plot's SVG, inline. Nothing in the page is
 * fetched: a Content-Security-Policy forbids every request.
 */
#define _GNU_SOURCE
#include "flamegraph.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "export.h"
#include "grow.h"
#include "json.h"
#include "plot.h"

/* flamegraph.js, linked in as data (ld -r -b binary). */
extern const char _binary_analyzer_flamegraph_js_start[], _binary_analyzer_flamegraph_js_end[];

#define OTHER_FRAME (-2)
/* Below this share of the total a node joins its parent's "other". */
#define SMALL_SHARE 1e-4

/* A tree of frames with `cols` values per node (val[node * cols + col]):
 * the page's tree has bytes, blocks and a diff's growth; the time series
 * one value per checkpoint. */
struct tree {
    int32_t *parent, *frame;
    int64_t *val;
    int cols;
    size_t n, cap;
    uint64_t *keys; /* (parent << 32 | frame) + 1 per index slot; node in slot_node */
    uint32_t *slot_node;
    size_t slots;
};

enum { COL_BYTES, COL_BLOCKS, COL_DELTA, PAGE_COLS };

static uint64_t mix(uint64_t k)
{
    k *= 0x9e3779b97f4a7c15ull;
    return k ^ (k >> 29);
}

static int add_node(struct tree *t, int32_t parent, int32_t frame)
{
    if (t->n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 4096;
        int32_t *p = realloc(t->parent, cap * sizeof *p), *f;
        if (!p)
            return -1;
        t->parent = p;
        if (!(f = realloc(t->frame, cap * sizeof *f)))
            return -1;
        t->frame = f;
        int64_t *v = realloc(t->val, cap * (size_t)t->cols * sizeof *v);
        if (!v)
            return -1;
        t->val = v;
        t->cap = cap;
    }
    t->parent[t->n] = parent;
    t->frame[t->n] = frame;
    memset(t->val + t->n * (size_t)t->cols, 0, (size_t)t->cols * sizeof *t->val);
    return (int)t->n++;
}

static int64_t *vals(const struct tree *t, size_t node)
{
    return t->val + node * (size_t)t->cols;
}

static int grow_slots(struct tree *t)
{
    size_t slots = t->slots ? t->slots * 2 : 8192;
    uint64_t *keys = calloc(slots, sizeof *keys);
    uint32_t *nodes = calloc(slots, sizeof *nodes);
    if (!keys || !nodes) {
        free(keys);
        free(nodes);
        return -1;
    }
    for (size_t i = 0; i < t->slots; i++) {
        if (!t->keys[i])
            continue;
        size_t s = mix(t->keys[i]) & (slots - 1);
        while (keys[s])
            s = (s + 1) & (slots - 1);
        keys[s] = t->keys[i];
        nodes[s] = t->slot_node[i];
    }
    free(t->keys);
    free(t->slot_node);
    t->keys = keys;
    t->slot_node = nodes;
    t->slots = slots;
    return 0;
}

/* The child of `parent` for `frame`, made if new; -1 when memory runs out. */
static int child(struct tree *t, int32_t parent, int32_t frame)
{
    if ((t->n + 1) * 2 > t->slots && grow_slots(t))
        return -1;
    uint64_t key = ((uint64_t)(uint32_t)parent << 32 | (uint32_t)frame) + 1;
    size_t s = mix(key) & (t->slots - 1);
    for (; t->keys[s]; s = (s + 1) & (t->slots - 1))
        if (t->keys[s] == key)
            return (int)t->slot_node[s];
    int n = add_node(t, parent, frame);
    if (n < 0)
        return -1;
    t->keys[s] = key;
    t->slot_node[s] = (uint32_t)n;
    return n;
}

static void tree_free(struct tree *t)
{
    free(t->parent);
    free(t->frame);
    free(t->val);
    free(t->keys);
    free(t->slot_node);
}

/* The frame that stands for thread number `thread` at the root of a graph
 * split by thread: "thread N: name (tid T)". */
static long thread_frame(struct pm_frame_table *ft, struct pm_capture *c, uint16_t thread)
{
    char label[96];
    if (thread && thread <= c->thread_info_n)
        snprintf(label, sizeof label, "thread %u: %s (tid %llu)%s", thread, c->thread_info[thread - 1].name,
                 (unsigned long long)c->thread_info[thread - 1].tid, thread == PM_THREADS_MAX ? " and later ones" : "");
    else
        snprintf(label, sizeof label, "thread unknown");
    uint32_t sid = pm_tree_add_string(&c->stacks, label);
    return sid ? pm_frame_table_add(ft, sid, 0, 0, PM_FRAME_THREAD) : -1;
}

/* Adds `v` (cols values) to every node on `path` (frame table numbers, root
 * first) and to the root; under a thread's frame when `thread` >= 0. */
static int add_path(struct tree *t, struct pm_frame_table *ft, const struct pm_capture *c, const uint32_t *nodes,
                    size_t n, const int64_t *v, long thread)
{
    int32_t at = 0;
    for (int k = 0; k < t->cols; k++)
        vals(t, 0)[k] += v[k];
    if (thread >= 0) {
        int x = child(t, 0, (int32_t)thread);
        if (x < 0)
            return -1;
        for (int k = 0; k < t->cols; k++)
            vals(t, (size_t)x)[k] += v[k];
        at = x;
    }
    for (size_t i = 0; i < n; i++) {
        long fi = pm_frame_table_index(ft, c, nodes[i]);
        int x = fi < 0 ? -1 : child(t, at, (int32_t)fi);
        if (x < 0)
            return -1;
        for (int k = 0; k < t->cols; k++)
            vals(t, (size_t)x)[k] += v[k];
        at = x;
    }
    return 0;
}

/* JSON text with "</" written "<\/", so that no name can close the script
 * element it sits in. */
static void put_json_safe(FILE *out, const char *text, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        fputc(text[i], out);
        if (text[i] == '<' && i + 1 < len && text[i + 1] == '/')
            fputc('\\', out);
    }
}

/* The memory at checkpoints through the run, for the page's time window:
 * each snapshot (at most MAX_CHECKPOINTS, evenly chosen) and the end, with
 * a tree of every stack live at any of them, one value per checkpoint. */
#define MAX_CHECKPOINTS 48

struct series {
    uint64_t seq[MAX_CHECKPOINTS + 1], time_ns[MAX_CHECKPOINTS + 1];
    char label[MAX_CHECKPOINTS + 1][sizeof ((struct pm_snapshot *)0)->label];
    int n;
    struct tree tree, shown;
};

static void put_values(FILE *j, const char *key, const struct tree *t, int col)
{
    fprintf(j, "\"%s\": [", key);
    for (size_t i = 0; i < t->n; i++)
        fprintf(j, "%s%" PRId64, i ? "," : "", vals(t, i)[col]);
    fputc(']', j);
}

static void put_shape(FILE *j, const struct tree *t)
{
    fputs("\"p\": [", j);
    for (size_t i = 0; i < t->n; i++)
        fprintf(j, "%s%d", i ? "," : "", t->parent[i]);
    fputs("], \"f\": [", j);
    for (size_t i = 0; i < t->n; i++)
        fprintf(j, "%s%d", i ? "," : "", t->frame[i]);
    fputc(']', j);
}

static int write_data(FILE *out, const struct pm_capture *c, const struct pm_frame_table *ft,
                      const struct tree *t, const char *title, bool diff, bool split, const struct series *ts)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *j = open_memstream(&buf, &len);
    if (!j)
        return -1;
    fputs("{\"title\": ", j);
    pm_json_str(j, title);
    fprintf(j, ", \"total\": %" PRId64 ", \"frames\": {\"n\": [", vals(t, 0)[COL_BYTES]);
    for (size_t i = 0; i < ft->n; i++) {
        fputs(i ? ", " : "", j);
        pm_json_str(j, pm_tree_string(&c->stacks, ft->keys[4 * i]));
    }
    fputs("], \"f\": [", j);
    for (size_t i = 0; i < ft->n; i++) {
        fputs(i ? ", " : "", j);
        pm_json_str(j, pm_tree_string(&c->stacks, ft->keys[4 * i + 1]));
    }
    fputs("], \"l\": [", j);
    for (size_t i = 0; i < ft->n; i++)
        fprintf(j, "%s%u", i ? "," : "", ft->keys[4 * i + 2]);
    fputs("], \"k\": [", j);
    for (size_t i = 0; i < ft->n; i++)
        fprintf(j, "%s%u", i ? "," : "", ft->keys[4 * i + 3]);
    fputs("], \"lib\": [", j);
    for (size_t i = 0; i < ft->n; i++)
        fprintf(j, "%s%d", i ? "," : "", ft->keys[4 * i + 3] == 1 ||
                (!ft->keys[4 * i + 3] && pm_path_is_library(pm_tree_string(&c->stacks, ft->keys[4 * i + 1]))));
    fputs("]}, \"nodes\": {", j);
    put_shape(j, t);
    fputs(", ", j);
    put_values(j, "v", t, COL_BYTES);
    fputs(", ", j);
    put_values(j, "b", t, COL_BLOCKS);
    if (diff) {
        fputs(", ", j);
        put_values(j, "d", t, COL_DELTA);
    }
    fprintf(j, "}, \"diff\": %s, \"threads\": %s", diff ? "true" : "false", split ? "true" : "false");
    if (ts && ts->n > 1) {
        /* "time": the checkpoints and their tree, values by checkpoint */
        fputs(", \"time\": {\"t\": [", j);
        for (int k = 0; k < ts->n; k++)
            fprintf(j, "%s%" PRIu64, k ? "," : "", ts->time_ns[k]);
        fputs("], \"labels\": [", j);
        for (int k = 0; k < ts->n; k++) {
            fputs(k ? ", " : "", j);
            pm_json_str(j, ts->label[k]);
        }
        fputs("], ", j);
        put_shape(j, &ts->shown);
        fputs(", \"v\": [", j);
        for (size_t i = 0; i < ts->shown.n; i++)
            for (int k = 0; k < ts->n; k++)
                fprintf(j, "%s%" PRId64, i || k ? "," : "", vals(&ts->shown, i)[k]);
        fputs("]}", j);
    }
    fputc('}', j);
    if (fclose(j) != 0) {
        free(buf);
        return -1;
    }
    put_json_safe(out, buf, len);
    free(buf);
    return 0;
}

/* A stop of the series' replay: the stacks live there, into column i. */
struct series_pass {
    struct series *ts;
    struct pm_frame_table *ft;
    const struct pm_sites *like; /* view, domains, sampling of the page's sites */
    uint32_t *nodes;
    uint64_t main_seq;
};

static int series_stop(void *ctx, size_t i, struct pm_replay *r)
{
    struct series_pass *sp = ctx;
    struct pm_sites sites;
    pm_sites_init(&sites, PM_BY_TRACEBACK);
    pm_sites_filter(&sites, sp->like->view, sp->like->domains);
    sites.sample_bytes = sp->like->sample_bytes;
    sites.split_threads = sp->like->split_threads;
    int rc = pm_sites_collect_replay(&sites, r, sp->main_seq, 1);
    int64_t v[MAX_CHECKPOINTS + 1] = {0};
    for (size_t k = 0; !rc && k < sites.n; k++) {
        if (sites.v[k].bytes[1] <= 0)
            continue;
        v[i] = sites.v[k].bytes[1];
        size_t n = pm_stack_root_first(r->cap, sites.v[k].stack, sp->nodes);
        long thread = sites.split_threads ? thread_frame(sp->ft, r->cap, sites.v[k].thread) : -1;
        rc = (sites.split_threads && thread < 0) || add_path(&sp->ts->tree, sp->ft, r->cap, sp->nodes, n, v, thread);
    }
    pm_sites_free(&sites);
    if (rc)
        snprintf(r->cap->error, sizeof r->cap->error, "%s: out of memory", r->cap->path);
    return rc;
}

static int pruned(const struct tree *t, struct tree *out, bool largest);

/* The checkpoints and their tree: one more pass over the capture. */
static int build_series(struct series *ts, struct pm_capture *c, struct pm_frame_table *ft,
                        const struct pm_sites *like, uint32_t *nodes)
{
    uint32_t m = c->snapshot_count;
    int want = m < MAX_CHECKPOINTS ? (int)m : MAX_CHECKPOINTS;
    uint64_t main_seq = 0;
    for (uint32_t i = 0; i < m; i++)
        if (c->snapshots[i].kind == PM_SNAP_MAIN && !main_seq)
            main_seq = c->snapshots[i].seq;
    for (int k = 0; k < want; k++) {
        const struct pm_snapshot *sn = &c->snapshots[(size_t)k * m / (size_t)want];
        ts->seq[ts->n] = sn->seq;
        ts->time_ns[ts->n] = sn->time_ns;
        snprintf(ts->label[ts->n++], sizeof ts->label[0], "%s", sn->label);
    }
    ts->seq[ts->n] = UINT64_MAX;
    ts->time_ns[ts->n] = c->has_end ? c->end_time_ns : c->last_time_ns;
    snprintf(ts->label[ts->n++], sizeof ts->label[0], "end");
    ts->tree.cols = ts->n;
    if (add_node(&ts->tree, -1, -1) < 0)
        return -1;
    struct series_pass sp = {ts, ft, like, nodes, main_seq};
    struct pm_replay r;
    memset(&r, 0, sizeof r);
    int rc = pm_replay_run(&r, c, ts->seq, (size_t)ts->n, series_stop, &sp);
    pm_replay_free(&r);
    return rc || pruned(&ts->tree, &ts->shown, true) ? -1 : 0;
}


/* What decides whether a node is shown: its bytes, or for a time series
 * its largest value. */
static int64_t weight(const struct tree *t, size_t node, bool largest)
{
    const int64_t *v = vals(t, node);
    int64_t w = v[0];
    for (int k = 1; largest && k < t->cols; k++)
        w = v[k] > w ? v[k] : w;
    return w;
}

/* The tree as shown: nodes under SMALL_SHARE of the total (of the largest
 * column's total, `largest`) left out, each parent's left-out children
 * summed into one "other" child; parents before children (depth first). */
static int pruned(const struct tree *t, struct tree *out, bool largest)
{
    memset(out, 0, sizeof *out);
    out->cols = t->cols;
    size_t n = t->n;
    uint32_t *first = calloc(n + 1, sizeof *first), *next = calloc(n, sizeof *next);
    int32_t *map = malloc(n * sizeof *map);
    size_t *stack = malloc(n * sizeof *stack);
    int64_t *other = calloc((size_t)t->cols, sizeof *other);
    int rc = first && next && map && stack && other ? 0 : -1;
    /* children lists, in the order made */
    for (size_t i = n; !rc && i-- > 1;) {
        next[i] = first[t->parent[i]];
        first[t->parent[i]] = (uint32_t)i;
    }
    double small = (double)weight(t, 0, largest) * SMALL_SHARE;
    size_t top = 0;
    if (!rc) {
        stack[top++] = 0;
        map[0] = add_node(out, -1, -1);
        rc = map[0] < 0;
    }
    if (!rc)
        memcpy(vals(out, 0), vals(t, 0), (size_t)t->cols * sizeof *other);
    while (!rc && top) {
        size_t x = stack[--top];
        bool any = false;
        memset(other, 0, (size_t)t->cols * sizeof *other);
        for (uint32_t k = first[x]; k; k = next[k]) {
            int64_t w = weight(t, k, largest);
            if ((double)w < small || w <= 0) {
                for (int col = 0; col < t->cols; col++)
                    other[col] += col == COL_DELTA && !largest ? vals(t, k)[col]
                                  : vals(t, k)[col] > 0 ? vals(t, k)[col] : 0;
                any = any || w > 0;
                continue;
            }
            int m = add_node(out, map[x], t->frame[k]);
            if (m < 0) {
                rc = -1;
                break;
            }
            map[k] = m;
            memcpy(vals(out, (size_t)m), vals(t, k), (size_t)t->cols * sizeof *other);
            stack[top++] = k;
        }
        if (!rc && any) {
            int m = add_node(out, map[x], OTHER_FRAME);
            rc = m < 0;
            if (!rc)
                memcpy(vals(out, (size_t)m), other, (size_t)t->cols * sizeof *other);
        }
    }
    free(first);
    free(next);
    free(map);
    free(stack);
    free(other);
    return rc;
}

static const char PAGE_HEAD[] =
    "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
    "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; script-src 'unsafe-inline'; "
    "style-src 'unsafe-inline'; img-src data:\">\n"
    "<style>body{font:13px sans-serif;margin:12px}#fg{width:100%;display:block;cursor:pointer}"
    "#tip{position:absolute;display:none;background:#ffe;border:1px solid #999;padding:4px;white-space:pre;"
    "pointer-events:none}#crumbs a{color:#236;text-decoration:none}.bar{margin:6px 0}"
    "#chart svg{max-width:100%;height:auto}</style>\n";

int pm_flamegraph_write(FILE *out, struct pm_capture *c, const struct pm_totals *totals,
                        const struct pm_sites_header *h, const struct pm_sites *s)
{
    struct pm_frame_table ft = {0};
    struct tree t = {.cols = PAGE_COLS}, shown = {0};
    uint32_t *nodes = malloc(PM_EXPORT_MAX_FRAMES * sizeof *nodes);
    int rc = nodes && add_node(&t, -1, -1) == 0 ? 0 : -1;
    /* A diff is drawn as differential flame graphs are: widths are what is
     * live at B, colours how much it grew (red) or shrank (blue) since A. */
    bool diff = h->kind == PM_REPORT_DIFF;
    for (size_t i = 0; !rc && i < s->n; i++) {
        int64_t w = diff ? s->v[i].bytes[1] : pm_export_weight(h, &s->v[i], false);
        int64_t wb = diff ? s->v[i].count[1] : pm_export_weight(h, &s->v[i], true);
        int64_t d = diff ? s->v[i].bytes[1] - s->v[i].bytes[0] : 0;
        if (w <= 0 && !d)
            continue;
        int64_t v[PAGE_COLS] = {w > 0 ? w : 0, wb > 0 ? wb : 0, d};
        size_t n = pm_stack_root_first(c, s->v[i].stack, nodes);
        long thread = s->split_threads ? thread_frame(&ft, c, s->v[i].thread) : -1;
        rc = (s->split_threads && thread < 0) || add_path(&t, &ft, c, nodes, n, v, thread);
    }
    if (!rc)
        rc = pruned(&t, &shown, false);
    struct series ts = {0};
    if (!rc)
        rc = build_series(&ts, c, &ft, s, nodes);
    char title[700];
    if (h->kind == PM_REPORT_DIFF)
        snprintf(title, sizeof title, "from '%s' to '%s': widths live at '%s', red grew, blue shrank",
                 h->from_label, h->to_label, h->to_label);
    else if (h->kind == PM_REPORT_LEAKS)
        snprintf(title, sizeof title, "live at '%s'", h->to_label);
    else
        snprintf(title, sizeof title, "live at the peak (%.3f s)", h->to_time_ns / 1e9);
    if (!rc) {
        fputs(PAGE_HEAD, out);
        fputs("<title>pymem: ", out);
        pm_markup_str(out, c->path);
        fputs("</title></head><body>\n<h3>pymem: ", out);
        pm_markup_str(out, title);
        fputs(" in ", out);
        pm_markup_str(out, c->path);
        fputs("</h3>\n<div class=\"bar\">", out);
        pm_markup_str(out, c->command);
        fprintf(out, "</div>\n<div class=\"bar\">total <span id=\"total\"></span>%s; frames under %.2g%% of it are "
                     "merged into one \"other\" per parent (%zu of %zu nodes shown)</div>\n",
                c->sample_bytes ? " (estimated: sampled capture)" : "", SMALL_SHARE * 100, shown.n, t.n);
        fputs("<div class=\"bar\"><input id=\"search\" placeholder=\"search functions and files\" size=\"40\"> "
              "<span id=\"found\"></span> <label><input type=\"checkbox\" id=\"inverted\"> icicle (root at the "
              "top)</label> <label><input type=\"checkbox\" id=\"hidelib\"> hide library frames (standard library, "
              "site-packages, frozen)</label> <label><input type=\"checkbox\" id=\"hidenative\"> hide native "
              "frames</label> <select id=\"threadsel\" hidden></select></div>\n<div class=\"bar\" id=\"crumbs\"></div>\n<canvas id=\"fg\"></canvas>\n"
              "<div id=\"tip\"></div>\n<div id=\"chart\">\n",
              out);
        pm_plot_capture(out, c, totals, true, false);
        fputs("</div>\n<script type=\"application/json\" id=\"pymem-data\">", out);
        rc = write_data(out, c, &ft, &shown, title, diff, s->split_threads, &ts);
        fputs("</script>\n<script>\n", out);
        fwrite(_binary_analyzer_flamegraph_js_start, 1,
               (size_t)(_binary_analyzer_flamegraph_js_end - _binary_analyzer_flamegraph_js_start), out);
        fputs("</script>\n</body></html>\n", out);
    }
    if (rc)
        fprintf(stderr, "pymem: %s: out of memory\n", c->path);
    free(nodes);
    pm_frame_table_free(&ft);
    tree_free(&t);
    tree_free(&shown);
    tree_free(&ts.tree);
    tree_free(&ts.shown);
    return rc ? 1 : 0;
}
