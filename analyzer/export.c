/*
 * export: folded stacks, speedscope and CSV (contract in export.h).
 */
#include "export.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "grow.h"
#include "json.h"


int pm_export_parse(const char *name, enum pm_export_format *out)
{
    static const struct {
        const char *name;
        enum pm_export_format format;
    } formats[] = {{"folded", PM_EXPORT_FOLDED},
                   {"speedscope", PM_EXPORT_SPEEDSCOPE},
                   {"csv", PM_EXPORT_CSV},
                   {"pprof", PM_EXPORT_PPROF}};
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++)
        if (!strcmp(name, formats[i].name)) {
            *out = formats[i].format;
            return 0;
        }
    return -1;
}

int64_t pm_export_weight(const struct pm_sites_header *h, const struct pm_site *x, bool blocks)
{
    if (h->kind == PM_REPORT_DIFF)
        return blocks ? x->count[1] - x->count[0] : x->bytes[1] - x->bytes[0];
    return blocks ? x->count[1] : x->bytes[1];
}

size_t pm_stack_root_first(const struct pm_capture *c, uint32_t node, uint32_t *out)
{
    size_t n = 0;
    struct pm_frame f;
    for (uint32_t id = node; n < PM_EXPORT_MAX_FRAMES && pm_tree_frame(&c->stacks, id, &f); id = f.parent)
        out[n++] = id;
    for (size_t i = 0; i < n / 2; i++) {
        uint32_t t = out[i];
        out[i] = out[n - 1 - i];
        out[n - 1 - i] = t;
    }
    return n;
}

/* One frame as folded text: "function (file:line)", or for a native frame
 * without line "function [library]". ';' separates frames and a newline
 * ends the stack: neither may appear inside a name. */
static void folded_frame(FILE *out, const struct pm_capture *c, uint32_t id)
{
    struct pm_frame f;
    pm_tree_frame(&c->stacks, id, &f);
    char text[1200];
    const char *func = pm_tree_string(&c->stacks, f.func), *file = pm_tree_string(&c->stacks, f.file);
    if (f.line || !pm_tree_native(&c->stacks, id).native)
        snprintf(text, sizeof text, "%s (%s:%u)", func, file, f.line);
    else
        snprintf(text, sizeof text, "%s [%s]", func, file);
    for (char *p = text; *p; p++)
        if (*p == ';' || *p == '\n' || *p == '\r')
            *p = *p == ';' ? ':' : ' ';
    fputs(text, out);
}

static int export_folded(FILE *out, const struct pm_capture *c, const struct pm_sites_header *h,
                         const struct pm_sites *s)
{
    uint32_t *nodes = malloc(PM_EXPORT_MAX_FRAMES * sizeof *nodes);
    if (!nodes)
        return -1;
    for (size_t i = 0; i < s->n; i++) {
        int64_t w = pm_export_weight(h, &s->v[i], false);
        if (w <= 0)
            continue;
        size_t n = pm_stack_root_first(c, s->v[i].stack, nodes);
        if (!n)
            fputs("<no frame>", out);
        for (size_t k = 0; k < n; k++) {
            if (k)
                fputc(';', out);
            folded_frame(out, c, nodes[k]);
        }
        fprintf(out, " %" PRId64 "\n", w);
    }
    free(nodes);
    return 0;
}

static uint64_t frame_hash(const uint32_t *k)
{
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < 4; i++)
        h = (h ^ k[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

static int frame_rehash(struct pm_frame_table *t)
{
    size_t cap = t->index_cap ? t->index_cap * 2 : 1024;
    uint32_t *idx = calloc(cap, sizeof *idx);
    if (!idx)
        return -1;
    for (size_t i = 0; i < t->n; i++) {
        size_t s = frame_hash(&t->keys[4 * i]) & (cap - 1);
        while (idx[s])
            s = (s + 1) & (cap - 1);
        idx[s] = (uint32_t)i + 1;
    }
    free(t->index);
    t->index = idx;
    t->index_cap = cap;
    return 0;
}

long pm_frame_table_index(struct pm_frame_table *t, const struct pm_capture *c, uint32_t id)
{
    struct pm_frame f;
    pm_tree_frame(&c->stacks, id, &f);
    return pm_frame_table_add(t, f.func, f.file, f.line, pm_tree_native(&c->stacks, id).native);
}

long pm_frame_table_add(struct pm_frame_table *t, uint32_t func, uint32_t file, uint32_t line, uint32_t kind)
{
    uint32_t key[4] = {func, file, line, kind};
    if ((t->n + 1) * 2 > t->index_cap && frame_rehash(t))
        return -1;
    size_t s = frame_hash(key) & (t->index_cap - 1);
    for (; t->index[s]; s = (s + 1) & (t->index_cap - 1))
        if (!memcmp(&t->keys[4 * (t->index[s] - 1)], key, sizeof key))
            return (long)t->index[s] - 1;
    if (pm_grow(&t->keys, &t->cap, 4 * sizeof *t->keys, t->n + 1, 256))
        return -1;
    memcpy(&t->keys[4 * t->n], key, sizeof key);
    t->index[s] = (uint32_t)++t->n;
    return (long)t->n - 1;
}

static void speedscope_profile(FILE *out, const struct pm_capture *c, const struct pm_sites_header *h,
                               const struct pm_sites *s, struct pm_frame_table *t, bool blocks, uint32_t *nodes)
{
    int64_t total = 0;
    for (size_t i = 0; i < s->n; i++) {
        int64_t w = pm_export_weight(h, &s->v[i], blocks);
        total += w > 0 ? w : 0;
    }
    fprintf(out, "{\"type\": \"sampled\", \"name\": \"%s\", \"unit\": \"%s\", \"startValue\": 0, "
                 "\"endValue\": %" PRId64 ", \"samples\": [",
            blocks ? "blocks" : "bytes", blocks ? "none" : "bytes", total);
    bool first = true;
    for (size_t i = 0; i < s->n; i++) {
        if (pm_export_weight(h, &s->v[i], blocks) <= 0)
            continue;
        size_t n = pm_stack_root_first(c, s->v[i].stack, nodes);
        fputs(first ? "[" : ", [", out);
        for (size_t k = 0; k < n; k++)
            fprintf(out, "%s%ld", k ? ", " : "", pm_frame_table_index(t, c, nodes[k]));
        fputc(']', out);
        first = false;
    }
    fputs("], \"weights\": [", out);
    first = true;
    for (size_t i = 0; i < s->n; i++) {
        int64_t w = pm_export_weight(h, &s->v[i], blocks);
        if (w <= 0)
            continue;
        fprintf(out, "%s%" PRId64, first ? "" : ", ", w);
        first = false;
    }
    fputs("]}", out);
}

static int export_speedscope(FILE *out, const struct pm_capture *c, const struct pm_sites_header *h,
                             const struct pm_sites *s)
{
    struct pm_frame_table t = {0};
    uint32_t *nodes = malloc(PM_EXPORT_MAX_FRAMES * sizeof *nodes);
    int rc = nodes ? 0 : -1;
    /* Every frame gets its index before the profiles are written. */
    for (size_t i = 0; !rc && i < s->n; i++) {
        if (pm_export_weight(h, &s->v[i], false) <= 0 && pm_export_weight(h, &s->v[i], true) <= 0)
            continue;
        size_t n = pm_stack_root_first(c, s->v[i].stack, nodes);
        for (size_t k = 0; !rc && k < n; k++)
            rc = pm_frame_table_index(&t, c, nodes[k]) < 0 ? -1 : 0;
    }
    if (!rc) {
        char name[600];
        if (h->kind == PM_REPORT_DIFF)
            snprintf(name, sizeof name, "pymem: growth from %s to %s", h->from_label, h->to_label);
        else if (h->kind == PM_REPORT_LEAKS)
            snprintf(name, sizeof name, "pymem: live at %s", h->to_label);
        else
            snprintf(name, sizeof name, "pymem: live at the peak");
        fputs("{\"$schema\": \"https://www.speedscope.app/file-format-schema.json\", \"exporter\": \"pymem\", "
              "\"name\": ",
              out);
        pm_json_str(out, name);
        fputs(", \"activeProfileIndex\": 0, \"shared\": {\"frames\": [", out);
        for (size_t i = 0; i < t.n; i++) {
            const uint32_t *k = &t.keys[4 * i];
            fputs(i ? ", {\"name\": " : "{\"name\": ", out);
            pm_json_str(out, pm_tree_string(&c->stacks, k[0]));
            fputs(", \"file\": ", out);
            pm_json_str(out, pm_tree_string(&c->stacks, k[1]));
            if (k[2])
                fprintf(out, ", \"line\": %u", k[2]);
            fputc('}', out);
        }
        fputs("]}, \"profiles\": [", out);
        speedscope_profile(out, c, h, s, &t, false, nodes);
        fputs(", ", out);
        speedscope_profile(out, c, h, s, &t, true, nodes);
        fputs("]}\n", out);
    }
    free(nodes);
    pm_frame_table_free(&t);
    return rc;
}

void pm_frame_table_free(struct pm_frame_table *t)
{
    free(t->keys);
    free(t->index);
    memset(t, 0, sizeof *t);
}

/* A CSV field: quoted, with quotes doubled (RFC 4180). */
static void csv_str(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', out);
        fputc(*s == '\n' || *s == '\r' ? ' ' : *s, out);
    }
    fputc('"', out);
}

static int export_csv(FILE *out, const struct pm_capture *c, const struct pm_sites_header *h,
                      const struct pm_sites *s)
{
    bool diff = h->kind == PM_REPORT_DIFF;
    fputs(diff ? "file,line,function,bytes,count,bytes_diff,count_diff,phase\n"
               : "file,line,function,bytes,count,phase\n",
          out);
    for (size_t i = 0; i < s->n; i++) {
        const struct pm_site *x = &s->v[i];
        csv_str(out, x->file ? pm_tree_string(&c->stacks, x->file) : "<native>");
        fprintf(out, ",%u,", x->line);
        csv_str(out, pm_tree_string(&c->stacks, x->func));
        fprintf(out, ",%" PRId64 ",%" PRId64, x->bytes[1], x->count[1]);
        if (diff)
            fprintf(out, ",%" PRId64 ",%" PRId64, x->bytes[1] - x->bytes[0], x->count[1] - x->count[0]);
        fprintf(out, ",%s\n", pm_phase_name(x->phase));
    }
    return 0;
}

int pm_export_sites(FILE *out, const struct pm_capture *c, const struct pm_sites_header *h,
                    const struct pm_sites *s, const struct pm_opts *o)
{
    int rc;
    switch (o->format) {
    case PM_EXPORT_FOLDED:
        rc = export_folded(out, c, h, s);
        break;
    case PM_EXPORT_SPEEDSCOPE:
        rc = export_speedscope(out, c, h, s);
        break;
    default:
        rc = export_csv(out, c, h, s);
        break;
    }
    if (rc)
        fprintf(stderr, "pymem: %s: out of memory\n", c->path);
    return rc ? 1 : 0;
}
