/*
 * lines: memory per source line of the program's own files (contract in
 * lines.h). An allocation belongs to the innermost frame of its stack that
 * lies in one of those files (the line of the program that asked, even when
 * a library did the allocating); allocations with no such frame are left
 * out. One pass: totals through the replay's watch, the peak and exit kept
 * as points.
 */
#define _GNU_SOURCE
#include "lines.h"

#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "capture.h"
#include "grow.h"
#include "json.h"
#include "replay.h"
#include "report.h"

struct line_total {
    uint32_t file, line; /* string id in the capture, line number */
    int64_t bytes, blocks;  /* allocated over the run */
    int64_t peak, exit;     /* live bytes at the peak, at exit */
};

struct lines {
    const struct pm_capture *c;
    char **files;  /* files asked for (NULL: the program's own, by path) */
    int nfiles;
    uint8_t *own;  /* by string id: 0 not yet known, 1 own, 2 not */
    size_t own_cap;
    uint32_t *by_node; /* by node id: index + 1 into v, or UINT32_MAX for none; 0 not yet known */
    size_t node_cap;
    struct line_total *v;
    size_t n, cap;
    uint32_t *idx; /* open addressing over (file, line): index + 1 into v */
    size_t idx_cap;
    bool oom;
};

/* A file asked for names `path` whole, or its last components. */
static bool names_path(const char *name, const char *path)
{
    size_t n = strlen(path), m = strlen(name);
    return !strcmp(path, name) || (n > m && path[n - m - 1] == '/' && !strcmp(path + n - m, name));
}

/* The program's own code: a file asked for, or else any file that is not
 * the interpreter's (frozen modules, <string>), its standard library or an
 * installed package. */
static bool own_path(const struct lines *L, const char *path)
{
    if (L->nfiles) {
        for (int i = 0; i < L->nfiles; i++)
            if (names_path(L->files[i], path))
                return true;
        return false;
    }
    return !pm_path_is_library(path);
}

/* The files asked for that no allocation was made at, each said on stderr
 * (a misspelt name, or a file that allocated nothing): how many. */
static int files_unseen(const struct lines *L, const char *capture)
{
    int unseen = 0;
    for (int i = 0; i < L->nfiles; i++) {
        bool seen = false;
        for (size_t k = 0; k < L->n && !seen; k++)
            seen = names_path(L->files[i], pm_tree_string(&L->c->stacks, L->v[k].file));
        if (!seen) {
            fprintf(stderr, "pymem: %s: no allocation was made at %s (a file is named by its path or its last "
                            "components, as 'pymem lines %s' lists them)\n",
                    capture, L->files[i], capture);
            unseen++;
        }
    }
    return unseen;
}

static bool own_file(struct lines *L, uint32_t file)
{
    /* A string the capture never defined (a damaged file) sizes nothing: it
     * names no file of the program's. */
    if (file >= L->c->stacks.string_cap)
        return false;
    if (pm_grow_zeroed(&L->own, &L->own_cap, 1, (size_t)file + 1, 256)) {
        L->oom = true;
        return false;
    }
    if (!L->own[file])
        L->own[file] = own_path(L, pm_tree_string(&L->c->stacks, file)) ? 1 : 2;
    return L->own[file] == 1;
}

static uint64_t key_hash(uint64_t k)
{
    k *= 0x9e3779b97f4a7c15ull;
    return k ^ (k >> 31);
}

/* Index of (file, line) in v, added if new; SIZE_MAX when memory runs out. */
static size_t line_index(struct lines *L, uint32_t file, uint32_t line)
{
    uint64_t key = (uint64_t)file << 32 | line;
    if ((L->n + 1) * 2 > L->idx_cap) {
        size_t cap = L->idx_cap ? L->idx_cap * 2 : 1024;
        uint32_t *idx = calloc(cap, sizeof *idx);
        if (!idx)
            return SIZE_MAX;
        for (size_t i = 0; i < L->n; i++) {
            size_t s = key_hash((uint64_t)L->v[i].file << 32 | L->v[i].line) & (cap - 1);
            while (idx[s])
                s = (s + 1) & (cap - 1);
            idx[s] = (uint32_t)i + 1;
        }
        free(L->idx);
        L->idx = idx;
        L->idx_cap = cap;
    }
    size_t s = key_hash(key) & (L->idx_cap - 1);
    for (; L->idx[s]; s = (s + 1) & (L->idx_cap - 1)) {
        const struct line_total *t = &L->v[L->idx[s] - 1];
        if (t->file == file && t->line == line)
            return L->idx[s] - 1;
    }
    if (pm_grow(&L->v, &L->cap, sizeof *L->v, L->n + 1, 256))
        return SIZE_MAX;
    L->v[L->n] = (struct line_total){.file = file, .line = line};
    L->idx[s] = (uint32_t)++L->n;
    return L->n - 1;
}

/* The line a stack belongs to (index into v), or SIZE_MAX for none. */
static size_t line_of(struct lines *L, uint32_t stack)
{
    /* An id the capture never defined (a damaged file) sizes nothing. */
    if (stack >= L->c->stacks.node_cap)
        return SIZE_MAX;
    if (pm_grow_zeroed(&L->by_node, &L->node_cap, sizeof *L->by_node, (size_t)stack + 1, 1024)) {
        L->oom = true;
        return SIZE_MAX;
    }
    if (L->by_node[stack])
        return L->by_node[stack] == UINT32_MAX ? SIZE_MAX : L->by_node[stack] - 1;
    size_t found = SIZE_MAX;
    struct pm_frame f;
    for (uint32_t id = stack; pm_tree_frame(&L->c->stacks, id, &f); id = f.parent) {
        if (pm_tree_native(&L->c->stacks, id).native || !own_file(L, f.file))
            continue;
        found = line_index(L, f.file, f.line);
        if (found == SIZE_MAX)
            L->oom = true;
        break;
    }
    L->by_node[stack] = found == SIZE_MAX ? UINT32_MAX : (uint32_t)found + 1;
    return found;
}

/* Totals of allocated bytes only grow: a hostile capture's sizes (up to
 * 2^64 each) stop at INT64_MAX instead of wrapping to negative figures. */
static int64_t add_bytes(int64_t total, uint64_t n)
{
    return n > (uint64_t)(INT64_MAX - total) ? INT64_MAX : total + (int64_t)n;
}

static int watch(void *ctx, const struct pm_replay *r, const struct pm_event *ev)
{
    struct lines *L = ctx;
    if (ev->type != PM_EV_ALLOC)
        return 0;
    size_t i = line_of(L, ev->stack);
    if (i != SIZE_MAX) {
        uint64_t R = pm_sample_rate(r->cap->sample_bytes, ev->domain);
        L->v[i].bytes = add_bytes(L->v[i].bytes, pm_estimate_bytes(R, ev->size));
        L->v[i].blocks += llround(pm_estimate_count(R, ev->size));
    }
    return L->oom ? -1 : 0;
}

/* Live bytes at a kept point, into `peak` or `exit` of each line. */
static void at_point(struct lines *L, const struct pm_replay *r, const struct pm_point *p, bool exit)
{
    PM_LIVE_FOREACH(&r->live, e)
    {
        if (e->seq > p->seq)
            continue;
        size_t i = line_of(L, e->stack);
        if (i == SIZE_MAX)
            continue;
        uint64_t R = pm_sample_rate(r->cap->sample_bytes, e->domain);
        double bytes = (double)pm_estimate_bytes(R, e->size), count, var;
        if (p->halved)
            pm_estimate_halved(R, e->addr, e->size, &bytes, &count, &var);
        *(exit ? &L->v[i].exit : &L->v[i].peak) += (int64_t)llround(bytes);
    }
    for (size_t k = 0; k < p->n; k++) {
        size_t i = line_of(L, p->v[k].stack);
        if (i != SIZE_MAX)
            *(exit ? &L->v[i].exit : &L->v[i].peak) += (int64_t)llround(p->v[k].bytes);
    }
}

struct file_sum {
    uint32_t file;
    int64_t bytes;
};

static int by_bytes(const void *a, const void *b)
{
    const struct file_sum *x = a, *y = b;
    return x->bytes != y->bytes ? (x->bytes > y->bytes ? -1 : 1) : (x->file > y->file) - (x->file < y->file);
}

static int by_line(const void *a, const void *b)
{
    const struct line_total *x = a, *y = b;
    if (x->file != y->file)
        return x->file < y->file ? -1 : 1;
    return (x->line > y->line) - (x->line < y->line);
}

/* The file's lines, read now; NULL when it cannot be read. `note` says why
 * the source shown may not be what ran. */
static char **read_source(const char *path, const struct pm_capture *c, size_t *count, const char **note)
{
    struct stat st;
    *count = 0;
    *note = NULL;
    FILE *f = stat(path, &st) == 0 && S_ISREG(st.st_mode) ? fopen(path, "r") : NULL;
    if (!f) {
        *note = "source not found";
        return NULL;
    }
    if ((unsigned long long)st.st_mtime * 1000000000ull > c->start_unix_ns && c->start_unix_ns)
        *note = "changed since the capture: source lines may not match";
    char **lines = NULL, *buf = NULL;
    size_t cap = 0, bcap = 0;
    ssize_t n;
    while ((n = getline(&buf, &bcap, f)) >= 0) {
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
            buf[--n] = 0;
        char *copy = strdup(buf);
        if (!copy || pm_grow(&lines, &cap, sizeof *lines, *count + 1, 256)) {
            free(copy);
            break;
        }
        lines[(*count)++] = copy;
    }
    free(buf);
    fclose(f);
    return lines;
}

static void report(FILE *out, struct lines *L, bool json)
{
    /* files by their total, biggest first */
    struct file_sum *files = calloc(L->n + 1, sizeof *files);
    size_t nf = 0;
    if (L->n)
        qsort(L->v, L->n, sizeof *L->v, by_line);
    for (size_t i = 0; files && i < L->n; i++) {
        if (!nf || files[nf - 1].file != L->v[i].file)
            files[nf++] = (struct file_sum){L->v[i].file, 0};
        files[nf - 1].bytes = add_bytes(files[nf - 1].bytes, (uint64_t)L->v[i].bytes);
    }
    if (files)
        qsort(files, nf, sizeof *files, by_bytes);
    int64_t top = 1;
    for (size_t i = 0; i < L->n; i++)
        top = L->v[i].bytes > top ? L->v[i].bytes : top;
    if (json)
        fputs("{\"files\": [", out);
    for (size_t fi = 0; files && fi < nf; fi++) {
        const char *path = pm_tree_string(&L->c->stacks, files[fi].file), *note;
        size_t nsrc;
        char **src = read_source(path, L->c, &nsrc, &note);
        char b1[32], b2[32], b3[32];
        if (json) {
            fputs(fi ? ", {\"file\": " : "{\"file\": ", out);
            pm_json_str(out, path);
            fprintf(out, ", \"bytes\": %" PRId64 ", \"note\": ", files[fi].bytes);
            if (note)
                pm_json_str(out, note);
            else
                fputs("null", out);
            fputs(", \"lines\": [", out);
        } else {
            fprintf(out, "%s%s: %s allocated%s%s%s\n", fi ? "\n" : "", path,
                    pm_human_bytes(b1, sizeof b1, (double)files[fi].bytes), note ? " [" : "", note ? note : "",
                    note ? "]" : "");
            fputs("   line    allocated     blocks      at peak      at exit\n", out);
        }
        bool first = true;
        for (size_t i = 0; i < L->n; i++) {
            const struct line_total *t = &L->v[i];
            if (t->file != files[fi].file)
                continue;
            const char *text = src && t->line >= 1 && t->line <= nsrc ? src[t->line - 1] : "";
            if (json) {
                fprintf(out, "%s{\"line\": %u, \"bytes\": %" PRId64 ", \"blocks\": %" PRId64 ", \"peak_bytes\": %" PRId64
                             ", \"exit_bytes\": %" PRId64 ", \"source\": ",
                        first ? "" : ", ", t->line, t->bytes, t->blocks, t->peak, t->exit);
                pm_json_str(out, text);
                fputc('}', out);
            } else {
                char bar[21];
                double share = (double)t->bytes / (double)top;
                int w = share > 0 ? (int)(20 * (share < 1 ? share : 1) + 0.5) : 0;
                memset(bar, '#', (size_t)w);
                bar[w] = 0;
                fprintf(out, " %6u %12s %10" PRId64 " %12s %12s  %-20s  %.100s\n", t->line,
                        pm_human_bytes(b1, sizeof b1, (double)t->bytes), t->blocks,
                        pm_human_bytes(b2, sizeof b2, (double)t->peak), pm_human_bytes(b3, sizeof b3, (double)t->exit),
                        bar, text);
            }
            first = false;
        }
        if (json)
            fputs("]}", out);
        for (size_t k = 0; k < nsrc; k++)
            free(src[k]);
        free(src);
    }
    if (json)
        fputs("]}\n", out);
    else if (!nf)
        fputs("pymem: no allocation was made from the program's own files (name them: pymem lines CAPTURE FILE.py)\n",
              out);
    free(files);
}

int pm_cmd_lines(FILE *out, const char *path, char **files, int nfiles, bool json)
{
    struct pm_capture c;
    struct pm_replay r;
    struct lines L = {.c = &c, .files = files, .nfiles = nfiles};
    memset(&r, 0, sizeof r);
    int rc = pm_capture_open(&c, path) || pm_replay_named(&r, &c, true, true, NULL, 0, watch, &L);
    if (!rc && c.aggregated) {
        snprintf(c.error, sizeof c.error,
                 "%s: an aggregated capture holds totals per stack, not the events 'pymem lines' counts "
                 "(record without --aggregate)", path);
        rc = 1;
    }
    if (!rc) {
        if (r.peak.set)
            at_point(&L, &r, &r.peak, false);
        /* exit: the last exit snapshot, or the end */
        static const struct pm_point end = {.set = true, .seq = UINT64_MAX};
        at_point(&L, &r, r.exit.set ? &r.exit : &end, true);
        if (L.oom)
            snprintf(c.error, sizeof c.error, "%s: out of memory", path);
        rc = L.oom;
    }
    if (rc)
        fprintf(stderr, "pymem: %s\n", *c.error ? c.error : "cannot read the capture");
    else if (nfiles && files_unseen(&L, path) == nfiles)
        rc = 1;
    else
        report(out, &L, json);
    pm_replay_free(&r);
    pm_capture_close(&c);
    free(L.own);
    free(L.by_node);
    free(L.v);
    free(L.idx);
    return rc ? 1 : 0;
}
