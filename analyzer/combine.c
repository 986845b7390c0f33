/*
 * combine: sites summed over the captures of a run (contract in combine.h).
 * Text is copied out of each capture as it is added; nothing here refers to
 * a capture once pm_combined_add returns.
 */
#define _GNU_SOURCE
#include "combine.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "grow.h"
#include "json.h"
#include "textindex.h"

void pm_combined_init(struct pm_combined *m, enum pm_sites_kind kind, enum pm_group by)
{
    memset(m, 0, sizeof *m);
    m->kind = kind;
    m->by = by;
}

void pm_combined_free(struct pm_combined *m)
{
    for (size_t i = 0; i < m->nprocs; i++) {
        free(m->procs[i].path);
        free(m->procs[i].command);
    }
    for (size_t i = 0; i < m->n; i++) {
        struct pm_combined_site *x = &m->v[i];
        free(x->file);
        free(x->func);
        free(x->key);
        free(x->stack_text);
        free(x->stack_json);
        free(x->shares);
    }
    free(m->procs);
    free(m->v);
    free(m->index);
    memset(m, 0, sizeof *m);
}

static const char *site_key_of(const void *records, size_t i)
{
    return ((const struct pm_combined_site *)records)[i].key;
}

char *pm_render_stack(const struct pm_capture *c, uint32_t stack, int max_frames, const struct pm_site *site,
                      bool json)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    if (json)
        pm_report_stack_json(f, c, stack);
    else
        pm_report_stack_text(f, c, stack, max_frames, site);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

char *pm_site_key(enum pm_group by, const struct pm_capture *c, const struct pm_site *x)
{
    const char *file = x->file ? pm_tree_string(&c->stacks, x->file) : "<native>";
    const char *func = pm_tree_string(&c->stacks, x->func);
    char *key = NULL;
    if (by == PM_BY_FILENAME) {
        key = strdup(file);
    } else if (by == PM_BY_TRACEBACK) {
        key = pm_render_stack(c, x->stack, 1 << 20, NULL, false);
    } else if (asprintf(&key, "%s\n%u\n%s", file, x->line, x->line ? "" : func) < 0) {
        key = NULL;
    }
    return key;
}

static struct pm_combined_site *find_or_add(struct pm_combined *m, char *key, bool *added)
{
    *added = false;
    if ((m->n + 1) * 2 > m->index_cap && pm_text_index_grow(&m->index, &m->index_cap, m->n, site_key_of, m->v))
        return NULL;
    size_t s = pm_text_hash(key) & (m->index_cap - 1);
    for (; m->index[s]; s = (s + 1) & (m->index_cap - 1)) {
        struct pm_combined_site *x = &m->v[m->index[s] - 1];
        if (!strcmp(x->key, key))
            return x;
    }
    if (pm_grow(&m->v, &m->cap, sizeof *m->v, m->n + 1, 256))
        return NULL;
    struct pm_combined_site *x = &m->v[m->n];
    memset(x, 0, sizeof *x);
    x->key = key;
    m->index[s] = (uint32_t)++m->n;
    *added = true;
    return x;
}

static int add_proc(struct pm_combined *m, const struct pm_capture *c, const struct pm_totals *t,
                    const struct pm_sites_header *h)
{
    if (pm_grow(&m->procs, &m->proc_cap, sizeof *m->procs, m->nprocs + 1, 16))
        return -1;
    struct pm_combined_proc *p = &m->procs[m->nprocs];
    memset(p, 0, sizeof *p);
    p->path = strdup(c->path);
    p->command = strdup(c->command);
    if (!p->path || !p->command) {
        free(p->path);
        free(p->command);
        return -1;
    }
    snprintf(p->role, sizeof p->role, "%s", *c->role ? c->role : "-");
    snprintf(p->end, sizeof p->end, "%s", pm_report_end_reason(c));
    p->pid = c->pid;
    p->ppid = c->ppid;
    p->total = h->total_bytes;
    p->runtime = h->runtime_bytes;
    p->peak_bytes = t->peak_bytes;
    p->live_end = t->live_bytes;
    p->live_end_count = t->live_count;
    p->allocations = t->allocations;
    p->total_allocated = t->total_allocated;
    p->duration_ns = c->has_end ? c->end_time_ns : t->now_ns;
    p->sample_bytes = c->sample_bytes;
    snprintf(p->python, sizeof p->python, "%s", c->python);
    m->nprocs++;
    return 0;
}

int pm_combined_add(struct pm_combined *m, const struct pm_capture *c, const struct pm_totals *t,
                    const struct pm_sites_header *h, const struct pm_sites *s)
{
    if (add_proc(m, c, t, h))
        return -1;
    m->sampled |= c->sample_bytes != 0;
    uint32_t proc = (uint32_t)m->nprocs - 1;
    for (size_t i = 0; s && i < s->n; i++) {
        const struct pm_site *y = &s->v[i];
        char *key = pm_site_key(m->by, c, y);
        bool added;
        struct pm_combined_site *x = key ? find_or_add(m, key, &added) : NULL;
        if (!x) {
            free(key);
            return -1;
        }
        if (!added)
            free(key);
        if (added) {
            x->file = y->file ? strdup(pm_tree_string(&c->stacks, y->file)) : NULL;
            x->func = strdup(pm_tree_string(&c->stacks, y->func));
            x->line = y->line;
            x->stack_bytes = INT64_MIN;
            if ((y->file && !x->file) || !x->func)
                return -1;
        }
        for (int k = 0; k < 2; k++) {
            x->bytes[k] += y->bytes[k];
            x->count[k] += y->count[k];
        }
        for (int d = 0; d < PM_DOMAIN_COUNT; d++) {
            x->domain_bytes[d] += y->domain_bytes[d];
            x->domain_count[d] += y->domain_count[d];
        }
        for (int p = 0; p < PM_PHASE_COUNT; p++) {
            x->phase_bytes[p] += y->phase_bytes[p];
            x->phase_count[p] += y->phase_count[p];
        }
        x->var += y->var;
        x->samples += y->samples;
        /* The representative stack is the one of the process where the site
         * weighs most (grows most, in a diff). */
        int64_t weight = m->kind == PM_REPORT_DIFF ? y->bytes[1] - y->bytes[0] : y->bytes[1];
        if (weight > x->stack_bytes) {
            char *text = pm_render_stack(c, y->stack, s->by == PM_BY_TRACEBACK ? 64 : 6, y, false);
            char *json = pm_render_stack(c, y->stack, 0, NULL, true);
            if (!text || !json) {
                free(text);
                free(json);
                return -1;
            }
            free(x->stack_text);
            free(x->stack_json);
            x->stack_text = text;
            x->stack_json = json;
            x->stack_bytes = weight;
        }
        if (pm_grow(&x->shares, &x->share_cap, sizeof *x->shares, x->nshares + 1, 4))
            return -1;
        struct pm_share *sh = &x->shares[x->nshares++];
        sh->proc = proc;
        for (int k = 0; k < 2; k++) {
            sh->bytes[k] = y->bytes[k];
            sh->count[k] = y->count[k];
        }
    }
    return 0;
}

static int cmp_bytes(const void *a, const void *b)
{
    const struct pm_combined_site *x = a, *y = b;
    if (x->bytes[1] != y->bytes[1])
        return x->bytes[1] > y->bytes[1] ? -1 : 1;
    if (x->count[1] != y->count[1])
        return x->count[1] > y->count[1] ? -1 : 1;
    return strcmp(x->key, y->key);
}

static int cmp_phase_bytes(const void *a, const void *b)
{
    const struct pm_combined_site *x = a, *y = b;
    if (x->phase != y->phase)
        return x->phase < y->phase ? -1 : 1;
    return cmp_bytes(a, b);
}

static int cmp_diff(const void *a, const void *b)
{
    const struct pm_combined_site *x = a, *y = b;
    return pm_diff_order(x->bytes, x->count, y->bytes, y->count);
}

void pm_combined_sort(struct pm_combined *m, enum pm_order order)
{
    for (size_t i = 0; i < m->n; i++) {
        struct pm_combined_site *x = &m->v[i];
        int best = PM_PHASE_RUNTIME;
        for (int p = 0; p < PM_PHASE_COUNT; p++)
            if (x->phase_bytes[p] > x->phase_bytes[best])
                best = p;
        x->phase = (uint8_t)best;
    }
    int (*cmp)(const void *, const void *) =
        order == PM_ORDER_DIFF ? cmp_diff : order == PM_ORDER_PHASE_BYTES ? cmp_phase_bytes : cmp_bytes;
    if (m->n)
        qsort(m->v, m->n, sizeof *m->v, cmp);
    /* The index points at the old order. */
    free(m->index);
    m->index = NULL;
    m->index_cap = 0;
}

static void site_name(FILE *out, const struct pm_combined *m, const struct pm_combined_site *x)
{
    if (m->by == PM_BY_FILENAME || !x->file)
        fprintf(out, "%s", x->file ? x->file : "<native>");
    else if (!x->line)
        fprintf(out, "%s  [%s]", x->func, x->file);
    else
        fprintf(out, "%s:%u %s", x->file, x->line, x->func);
}

/* One process as a JSON object: who it was, how it ended, its figures. */
static void proc_json(FILE *out, const struct pm_combined_proc *p)
{
    fputs("{\"file\": ", out);
    pm_json_str(out, p->path);
    fprintf(out, ", \"pid\": %lld, \"ppid\": %lld, \"role\": ", p->pid, p->ppid);
    pm_json_str(out, p->role);
    fputs(", \"python\": ", out);
    pm_json_str(out, p->python);
    fputs(", \"command\": ", out);
    pm_json_str(out, p->command);
    fputs(", \"end\": ", out);
    pm_json_str(out, p->end);
    fputs(", \"duration_s\": ", out);
    pm_json_seconds(out, p->duration_ns);
    fprintf(out, ", \"allocations\": %" PRIu64 ", \"total_allocated_bytes\": %" PRIu64 ", \"peak_bytes\": %" PRIu64
                 ", \"end_live_bytes\": %" PRIu64 ", \"total_bytes\": %" PRIu64 ", \"sample_bytes\": %" PRIu64 "}",
            p->allocations, p->total_allocated, p->peak_bytes, p->live_end, p->total, p->sample_bytes);
}

/* A diff's totals over every site that changed. */
static struct pm_diff_totals diff_totals(const struct pm_combined *m)
{
    struct pm_diff_totals t = {0};
    for (size_t i = 0; i < m->n; i++)
        pm_diff_totals_add(&t, m->v[i].bytes, m->v[i].count);
    return t;
}

static void report_json(FILE *out, const struct pm_combined *m, size_t n)
{
    static const char *const kinds[] = {"peak", "leaks", "diff"};
    fputs("{\"merged\": true, \"report\": ", out);
    pm_json_str(out, kinds[m->kind]);
    if (m->kind == PM_REPORT_DIFF) {
        fputs(", \"from\": ", out);
        pm_json_str(out, m->from_label);
        fputs(", \"to\": ", out);
        pm_json_str(out, m->to_label);
        struct pm_diff_totals t = diff_totals(m);
        pm_diff_totals_json(out, &t);
    } else if (m->kind == PM_REPORT_LEAKS) {
        fputs(", \"at\": ", out);
        pm_json_str(out, m->to_label);
    }
    fputs(", \"by\": ", out);
    pm_json_str(out, pm_group_name(m->by));
    uint64_t total = 0;
    for (size_t i = 0; i < m->nprocs; i++)
        total += m->procs[i].total;
    fprintf(out, ", \"total_bytes\": %" PRIu64 ", \"skipped\": %zu, \"processes\": [", total, m->skipped);
    for (size_t i = 0; i < m->nprocs; i++) {
        fputs(i ? ", " : "", out);
        proc_json(out, &m->procs[i]);
    }
    fputs("], \"sites\": [", out);
    for (size_t i = 0; i < n; i++) {
        const struct pm_combined_site *x = &m->v[i];
        fputs(i ? ", {\"file\": " : "{\"file\": ", out);
        pm_json_str(out, x->file ? x->file : "<native>");
        fprintf(out, ", \"line\": %u, \"function\": ", x->line);
        pm_json_str(out, x->func);
        pm_report_figures_json(out, m->kind, m->sampled, x->bytes, x->count, x->var, x->samples);
        fputs(", \"phase\": ", out);
        pm_json_str(out, pm_phase_name(x->phase));
        pm_report_domains_json(out, x->domain_bytes, x->domain_count);
        fputs(", \"processes\": [", out);
        for (size_t k = 0; k < x->nshares; k++) {
            const struct pm_share *sh = &x->shares[k];
            fprintf(out, "%s{\"pid\": %lld, \"bytes\": %" PRId64 ", \"count\": %" PRId64, k ? ", " : "",
                    m->procs[sh->proc].pid, sh->bytes[1], sh->count[1]);
            if (m->kind == PM_REPORT_DIFF)
                fprintf(out, ", \"bytes_diff\": %" PRId64, sh->bytes[1] - sh->bytes[0]);
            fputc('}', out);
        }
        fprintf(out, "], \"stack\": %s}", x->stack_json ? x->stack_json : "[]");
    }
    fputs("]}\n", out);
}

void pm_report_combined(FILE *out, const struct pm_combined *m, long top, bool json)
{
    size_t n = top > 0 && (size_t)top < m->n ? (size_t)top : m->n;
    if (json) {
        report_json(out, m, n);
        return;
    }
    char b1[32], b2[32];
    uint64_t total = 0, runtime = 0;
    for (size_t i = 0; i < m->nprocs; i++) {
        total += m->procs[i].total;
        runtime += m->procs[i].runtime;
    }
    if (m->kind == PM_REPORT_PEAK)
        fprintf(out, "Peaks of %zu process%s, summed (each at its own peak): %s\n", m->nprocs, m->nprocs == 1 ? "" : "es",
                pm_human_bytes(b1, sizeof b1, (double)total));
    else if (m->kind == PM_REPORT_LEAKS)
        fprintf(out, "Leak candidates over %zu process%s, live at each one's '%s': %s, of which %s allocated by "
                     "the program's own code\n",
                m->nprocs, m->nprocs == 1 ? "" : "es", m->to_label, pm_human_bytes(b1, sizeof b1, (double)total),
                pm_human_bytes(b2, sizeof b2, (double)runtime));
    else {
        struct pm_diff_totals t = diff_totals(m);
        fprintf(out, "Growth from '%s' to '%s', summed over %zu process%s: ", m->from_label, m->to_label, m->nprocs,
                m->nprocs == 1 ? "" : "es");
        pm_diff_totals_text(out, &t);
    }
    if (m->skipped)
        fprintf(out, "Note: %zu capture(s) skipped (see above)\n", m->skipped);
    if (m->sampled)
        fputs("Some captures are sampled: their bytes and blocks are estimates.\n", out);
    fputs("  role    pid      ppid     ", out);
    fputs(m->kind == PM_REPORT_PEAK ? "peak      " : m->kind == PM_REPORT_LEAKS ? "live      " : "          ", out);
    fputs(" end        capture\n", out);
    for (size_t i = 0; i < m->nprocs; i++) {
        const struct pm_combined_proc *p = &m->procs[i];
        fprintf(out, "  %-7s %-8lld %-8lld %-10s %-10s %s\n", p->role, p->pid, p->ppid,
                m->kind == PM_REPORT_DIFF ? "" : pm_human_bytes(b1, sizeof b1, (double)p->total), p->end, p->path);
    }
    fprintf(out, "Top %zu of %zu sites, grouped by %s, over all processes%s:\n", n, m->n, pm_group_name(m->by),
            m->kind == PM_REPORT_DIFF ? ", biggest change first" : "");
    for (size_t i = 0; i < n; i++) {
        const struct pm_combined_site *x = &m->v[i];
        pm_report_figures_text(out, i + 1, m->kind, m->sampled, x->bytes, x->count, x->var, x->samples);
        fputs("  ", out);
        site_name(out, m, x);
        if (x->phase != PM_PHASE_RUNTIME)
            fprintf(out, "  [%s]", pm_phase_name(x->phase));
        fprintf(out, "  (%zu process%s)\n", x->nshares, x->nshares == 1 ? "" : "es");
        if (m->by != PM_BY_FILENAME && x->stack_text)
            fputs(x->stack_text, out);
    }
}

void pm_report_combined_summary(FILE *out, const struct pm_combined *m, bool json)
{
    uint64_t peaks = 0, live = 0, allocations = 0, bytes = 0;
    for (size_t i = 0; i < m->nprocs; i++) {
        peaks += m->procs[i].peak_bytes;
        live += m->procs[i].live_end;
        allocations += m->procs[i].allocations;
        bytes += m->procs[i].total_allocated;
    }
    if (json) {
        fprintf(out, "{\"merged\": true, \"report\": \"summary\", \"allocations\": %" PRIu64
                     ", \"total_allocated_bytes\": %" PRIu64 ", \"peaks_bytes\": %" PRIu64
                     ", \"end_live_bytes\": %" PRIu64 ", \"processes\": [",
                allocations, bytes, peaks, live);
        for (size_t i = 0; i < m->nprocs; i++) {
            fputs(i ? ", " : "", out);
            proc_json(out, &m->procs[i]);
        }
        fputs("]}\n", out);
        return;
    }
    char b1[32], b2[32], b3[32];
    fprintf(out, "Run of %zu process%s: %" PRIu64 " allocations (%s), peaks summed %s, live at end %s\n", m->nprocs,
            m->nprocs == 1 ? "" : "es",
            allocations, pm_human_bytes(b1, sizeof b1, (double)bytes), pm_human_bytes(b2, sizeof b2, (double)peaks),
            pm_human_bytes(b3, sizeof b3, (double)live));
    fputs("  role    pid      ppid     duration   allocations  peak        live at end  end        capture\n", out);
    for (size_t i = 0; i < m->nprocs; i++) {
        const struct pm_combined_proc *p = &m->procs[i];
        fprintf(out, "  %-7s %-8lld %-8lld %8.3f s %12" PRIu64 "  %-10s  %-11s  %-10s %s\n", p->role, p->pid, p->ppid,
                p->duration_ns / 1e9, p->allocations, pm_human_bytes(b1, sizeof b1, (double)p->peak_bytes),
                pm_human_bytes(b2, sizeof b2, (double)p->live_end), p->end, p->path);
    }
}
