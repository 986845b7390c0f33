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

struct tree {
    int32_t *parent, *frame;
    int64_t *bytes, *blocks;
    int64_t *delta; /* a diff: growth from A to B (bytes are at B) */
    size_t n, cap;
    uint64_t *keys; /* (parent << 32 | frame) + 1 per index slot; node in slot_node */
    uint32_t *slot_node;
    size_t slots;
};

static uint64_t mix(uint64_t k)
{
    k *= 0x9e3779b97f4a7c15ull;
    return k ^ (k >> 29);
}

static int add_node(struct tree *t, int32_t parent, int32_t frame)
{
    size_t cap = t->cap;
    if (t->n + 1 > cap) {
        cap = cap ? cap * 2 : 4096;
        int32_t *p = realloc(t->parent, cap * sizeof *p), *f;
        if (!p)
            return -1;
        t->parent = p;
        if (!(f = realloc(t->frame, cap * sizeof *f)))
            return -1;
        t->frame = f;
        int64_t *b = realloc(t->bytes, cap * sizeof *b), *k;
        if (!b)
            return -1;
        t->bytes = b;
        if (!(k = realloc(t->blocks, cap * sizeof *k)))
            return -1;
        t->blocks = k;
        if (!(k = realloc(t->delta, cap * sizeof *k)))
            return -1;
        t->delta = k;
        t->cap = cap;
    }
    t->parent[t->n] = parent;
    t->frame[t->n] = frame;
    t->bytes[t->n] = t->blocks[t->n] = t->delta[t->n] = 0;
    return (int)t->n++;
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
    free(t->bytes);
    free(t->blocks);
    free(t->delta);
    free(t->keys);
    free(t->slot_node);
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

static int write_data(FILE *out, const struct pm_capture *c, const struct pm_frame_table *ft,
                      const struct tree *t, const char *title, bool diff)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *j = open_memstream(&buf, &len);
    if (!j)
        return -1;
    fputs("{\"title\": ", j);
    pm_json_str(j, title);
    fprintf(j, ", \"total\": %" PRId64 ", \"frames\": {\"n\": [", t->bytes[0]);
    for (size_t i = 0; i < ft->n; i++) {
        fputs(i ? ", " : "", j);
        pm_json_str(j, pm_stacks_string(&c->stacks, ft->keys[4 * i]));
    }
    fputs("], \"f\": [", j);
    for (size_t i = 0; i < ft->n; i++) {
        fputs(i ? ", " : "", j);
        pm_json_str(j, pm_stacks_string(&c->stacks, ft->keys[4 * i + 1]));
    }
    fputs("], \"l\": [", j);
    for (size_t i = 0; i < ft->n; i++)
        fprintf(j, "%s%u", i ? "," : "", ft->keys[4 * i + 2]);
    fputs("], \"k\": [", j);
    for (size_t i = 0; i < ft->n; i++)
        fprintf(j, "%s%u", i ? "," : "", ft->keys[4 * i + 3]);
    fputs("], \"lib\": [", j);
    for (size_t i = 0; i < ft->n; i++)
        fprintf(j, "%s%d", i ? "," : "", ft->keys[4 * i + 3] || pm_path_is_library(pm_stacks_string(&c->stacks, ft->keys[4 * i + 1])));
    fputs("]}, \"nodes\": {\"p\": [", j);
    for (size_t i = 0; i < t->n; i++)
        fprintf(j, "%s%d", i ? "," : "", t->parent[i]);
    fputs("], \"f\": [", j);
    for (size_t i = 0; i < t->n; i++)
        fprintf(j, "%s%d", i ? "," : "", t->frame[i]);
    fputs("], \"v\": [", j);
    for (size_t i = 0; i < t->n; i++)
        fprintf(j, "%s%" PRId64, i ? "," : "", t->bytes[i]);
    fputs("], \"b\": [", j);
    for (size_t i = 0; i < t->n; i++)
        fprintf(j, "%s%" PRId64, i ? "," : "", t->blocks[i]);
    if (diff) {
        fputs("], \"d\": [", j);
        for (size_t i = 0; i < t->n; i++)
            fprintf(j, "%s%" PRId64, i ? "," : "", t->delta[i]);
    }
    fprintf(j, "]}, \"diff\": %s}", diff ? "true" : "false");
    if (fclose(j) != 0) {
        free(buf);
        return -1;
    }
    put_json_safe(out, buf, len);
    free(buf);
    return 0;
}

/* The tree as shown: nodes under SMALL_SHARE of the total left out, each
 * parent's left-out children summed into one "other" child; parents before
 * children (depth first). */
static int pruned(const struct tree *t, struct tree *out)
{
    memset(out, 0, sizeof *out);
    size_t n = t->n;
    uint32_t *first = calloc(n + 1, sizeof *first), *next = calloc(n, sizeof *next);
    int32_t *map = malloc(n * sizeof *map);
    size_t *stack = malloc(n * sizeof *stack);
    int rc = first && next && map && stack ? 0 : -1;
    /* children lists, in the order made */
    for (size_t i = n; !rc && i-- > 1;) {
        next[i] = first[t->parent[i]];
        first[t->parent[i]] = (uint32_t)i;
    }
    double small = (double)t->bytes[0] * SMALL_SHARE;
    size_t top = 0;
    if (!rc) {
        stack[top++] = 0;
        map[0] = add_node(out, -1, -1);
        rc = map[0] < 0;
    }
    while (!rc && top) {
        size_t x = stack[--top];
        int64_t other = 0, other_blocks = 0, other_delta = 0;
        for (uint32_t k = first[x]; k; k = next[k]) {
            if ((double)t->bytes[k] < small || t->bytes[k] <= 0) {
                other += t->bytes[k] > 0 ? t->bytes[k] : 0;
                other_blocks += t->blocks[k] > 0 ? t->blocks[k] : 0;
                other_delta += t->delta[k];
                continue;
            }
            int m = add_node(out, map[x], t->frame[k]);
            if (m < 0) {
                rc = -1;
                break;
            }
            map[k] = m;
            out->bytes[m] = t->bytes[k];
            out->blocks[m] = t->blocks[k];
            out->delta[m] = t->delta[k];
            stack[top++] = k;
        }
        if (!rc && other) {
            int m = add_node(out, map[x], OTHER_FRAME);
            rc = m < 0;
            if (!rc) {
                out->bytes[m] = other;
                out->blocks[m] = other_blocks;
                out->delta[m] = other_delta;
            }
        }
    }
    if (!rc) {
        out->bytes[0] = t->bytes[0];
        out->blocks[0] = t->blocks[0];
        out->delta[0] = t->delta[0];
    }
    free(first);
    free(next);
    free(map);
    free(stack);
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
    struct tree t = {0}, shown = {0};
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
        w = w > 0 ? w : 0;
        size_t n = pm_stack_root_first(c, s->v[i].stack, nodes);
        int32_t at = 0;
        t.bytes[0] += w;
        t.blocks[0] += wb > 0 ? wb : 0;
        t.delta[0] += d;
        for (size_t k = 0; !rc && k < n; k++) {
            long fi = pm_frame_table_index(&ft, c, nodes[k]);
            int x = fi < 0 ? -1 : child(&t, at, (int32_t)fi);
            if (x < 0) {
                rc = -1;
                break;
            }
            t.bytes[x] += w;
            t.blocks[x] += wb > 0 ? wb : 0;
            t.delta[x] += d;
            at = x;
        }
    }
    if (!rc)
        rc = pruned(&t, &shown);
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
              "frames</label></div>\n<div class=\"bar\" id=\"crumbs\"></div>\n<canvas id=\"fg\"></canvas>\n"
              "<div id=\"tip\"></div>\n<div id=\"chart\">\n",
              out);
        pm_plot_capture(out, c, totals, true, false);
        fputs("</div>\n<script type=\"application/json\" id=\"pymem-data\">", out);
        rc = write_data(out, c, &ft, &shown, title, diff);
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
    return rc ? 1 : 0;
}
