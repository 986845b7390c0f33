/*
 * report: text and JSON renderings (contract in report.h).
 */
#include "report.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "json.h"

#define domain_names pm_domain_names

void pm_markup_str(FILE *out, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<':
            fputs("&lt;", out);
            break;
        case '>':
            fputs("&gt;", out);
            break;
        case '&':
            fputs("&amp;", out);
            break;
        case '"':
            fputs("&quot;", out);
            break;
        case '\'':
            fputs("&#39;", out);
            break;
        default:
            /* control characters are not allowed in XML 1.0 */
            fputc((unsigned char)*s < 0x20 && *s != '\t' ? ' ' : *s, out);
        }
    }
}

void pm_interval(int64_t bytes, double var, double *lo, double *hi)
{
    double half = 1.96 * sqrt(var > 0 ? var : 0);
    *lo = (double)bytes - half > 0 ? (double)bytes - half : 0;
    *hi = (double)bytes + half;
}

const char *pm_human_bytes(char *buf, size_t cap, double bytes)
{
    static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    double v = fabs(bytes);
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    snprintf(buf, cap, u ? "%s%.1f %s" : "%s%.0f %s", bytes < 0 ? "-" : "", v, units[u]);
    return buf;
}

const char *pm_report_end_reason(const struct pm_capture *c)
{
    if (!c->has_end)
        return "truncated";
    switch (c->end_reason) {
    case PM_END_EXIT:
        return "exit";
    case PM_END_UEXIT:
        return "_exit";
    case PM_END_SIGNAL:
        return "signal";
    case PM_END_EXEC:
        return "exec";
    default:
        return "unknown";
    }
}

static const char *snapshot_kind(int kind)
{
    switch (kind) {
    case PM_SNAP_USER:
        return "user";
    case PM_SNAP_SIGNAL:
        return "request";
    case PM_SNAP_PERIODIC:
        return "periodic";
    case PM_SNAP_MAIN:
        return "main";
    case PM_SNAP_EXIT:
        return "exit";
    case PM_SNAP_OOM:
        return "oom";
    default:
        return "unknown";
    }
}

static void snapshots_json(FILE *out, const struct pm_capture *c)
{
    fputc('[', out);
    for (uint32_t i = 0; i < c->snapshot_count; i++) {
        const struct pm_snapshot *s = &c->snapshots[i];
        fprintf(out, "%s{\"index\": %u, \"label\": ", i ? ", " : "", i);
        pm_json_str(out, s->label);
        fputs(", \"kind\": ", out);
        pm_json_str(out, snapshot_kind(s->kind));
        fputs(", \"time_s\": ", out);
        pm_json_seconds(out, s->time_ns);
        fprintf(out, ", \"live_bytes\": %" PRIu64 "}", s->live_bytes);
    }
    fputc(']', out);
}

/* The status the process passed to exit(), -1 if unknown. */
static int exit_status(const struct pm_capture *c)
{
    if (c->exit_status >= 0)
        return c->exit_status;
    if (c->has_end && c->end_reason == PM_END_EXIT && c->end_detail)
        return (int)c->end_detail;
    return c->has_end && c->end_reason == PM_END_UEXIT ? (int)c->end_detail : -1;
}

/* The allocator's view at the `exit` snapshot (the first HEAPSTATS after
 * it), else its last; NULL before format 4. */
static const struct pm_heapstats *heap_at_exit(const struct pm_capture *c, bool *at_exit)
{
    uint64_t exit_seq = 0;
    for (uint32_t i = 0; i < c->snapshot_count && !exit_seq; i++)
        if (c->snapshots[i].kind == PM_SNAP_EXIT)
            exit_seq = c->snapshots[i].seq;
    *at_exit = false;
    for (size_t i = 0; exit_seq && i < c->heapstats_n; i++)
        if (c->heapstats[i].seq > exit_seq)
            return *at_exit = true, &c->heapstats[i];
    return c->heapstats_n ? &c->heapstats[c->heapstats_n - 1] : NULL;
}

static void heap_json(FILE *out, const struct pm_capture *c)
{
    bool at_exit;
    const struct pm_heapstats *h = heap_at_exit(c, &at_exit);
    if (!h) {
        fputs(", \"heap\": null", out);
        return;
    }
    static const char *const names[PM_HS_KEYS] = {
        [PM_HS_RSS] = "rss", [PM_HS_PROFILER] = "profiler", [PM_HS_GLIBC_SYSTEM] = "glibc_system",
        [PM_HS_GLIBC_IN_USE] = "glibc_in_use", [PM_HS_GLIBC_FREE] = "glibc_free",
        [PM_HS_GLIBC_MMAPPED] = "glibc_mmapped", [PM_HS_GLIBC_TOP] = "glibc_top",
        [PM_HS_GLIBC_FREE_CHUNKS] = "glibc_free_chunks", [PM_HS_MAIN_HEAP_RSS] = "main_heap_rss",
        [PM_HS_THREAD_HEAPS_RSS] = "thread_heaps_rss", [PM_HS_THREAD_HEAPS] = "thread_heaps",
        [PM_HS_JE_ALLOCATED] = "jemalloc_allocated", [PM_HS_JE_ACTIVE] = "jemalloc_active",
        [PM_HS_JE_RESIDENT] = "jemalloc_resident", [PM_HS_JE_MAPPED] = "jemalloc_mapped",
        [PM_HS_JE_RETAINED] = "jemalloc_retained",
    };
    fprintf(out, ", \"heap\": {\"allocator\": \"%s\", \"point\": \"%s\", \"time_s\": ",
            pm_allocator_name(h->allocator),
            at_exit ? "exit" : "end");
    pm_json_seconds(out, h->time_ns);
    fprintf(out, ", \"live\": %" PRIu64 ", \"pymalloc_arena_bytes\": %" PRIu64, h->live_bytes, h->arena_bytes);
    for (int k = 1; k < PM_HS_KEYS; k++)
        if (h->have[k] && names[k])
            fprintf(out, ", \"%s\": %" PRIu64, names[k], h->value[k]);
    fputc('}', out);
}

static void heap_text(FILE *out, const struct pm_capture *c)
{
    bool at_exit;
    const struct pm_heapstats *h = heap_at_exit(c, &at_exit);
    char a[32], b[32], d[32], e[32], f[32];
    if (!h)
        return;
    fprintf(out, "%-14sRSS %s, live heap %s, pymalloc's arenas %s\n", at_exit ? "Heap at exit:" : "Heap at end:",
            pm_human_bytes(e, sizeof e, (double)h->value[PM_HS_RSS]),
            pm_human_bytes(f, sizeof f, (double)h->live_bytes), pm_human_bytes(a, sizeof a, (double)h->arena_bytes));
    if (h->allocator == PM_ALLOCATOR_UNKNOWN)
        return;
    if (h->allocator == PM_ALLOCATOR_GLIBC)
        fprintf(out, "Allocator:    glibc, at %s: %s in use, %s free in its heaps (%" PRIu64 " thread arenas), "
                     "%s resident in them\n",
                at_exit ? "exit" : "the end",
                pm_human_bytes(a, sizeof a, (double)(h->value[PM_HS_GLIBC_IN_USE] + h->value[PM_HS_GLIBC_MMAPPED])),
                pm_human_bytes(b, sizeof b, (double)h->value[PM_HS_GLIBC_FREE]), h->value[PM_HS_THREAD_HEAPS],
                pm_human_bytes(d, sizeof d,
                               (double)(h->value[PM_HS_MAIN_HEAP_RSS] + h->value[PM_HS_THREAD_HEAPS_RSS])));
    else
        fprintf(out, "Allocator:    jemalloc, at %s: %s allocated, %s active, %s resident\n", at_exit ? "exit" : "the end",
                pm_human_bytes(a, sizeof a, (double)h->value[PM_HS_JE_ALLOCATED]),
                pm_human_bytes(b, sizeof b, (double)h->value[PM_HS_JE_ACTIVE]),
                pm_human_bytes(d, sizeof d, (double)h->value[PM_HS_JE_RESIDENT]));
    fputs("              (leak or fragmentation? pymem fragmentation CAPTURE)\n", out);
}

void pm_report_summary(FILE *out, const struct pm_capture *c, const struct pm_totals *t, bool json)
{
    bool truncated = !c->has_end;
    int status = exit_status(c);
    uint64_t duration = c->has_end ? c->end_time_ns : t->now_ns;
    if (json) {
        fputs("{\"file\": ", out);
        pm_json_str(out, c->path);
        fprintf(out, ", \"pid\": %lld, \"ppid\": %lld, \"python\": ", c->pid, c->ppid);
        pm_json_str(out, c->python);
        fputs(", \"command\": ", out);
        pm_json_str(out, c->command);
        fputs(", \"duration_s\": ", out);
        pm_json_seconds(out, duration);
        fprintf(out,
                ", \"allocations\": %" PRIu64 ", \"frees\": %" PRIu64
                ", \"total_allocated_bytes\": %" PRIu64 ", \"peak_bytes\": %" PRIu64
                ", \"peak_time_s\": ",
                t->allocations, t->frees, t->total_allocated, t->peak_bytes);
        pm_json_seconds(out, t->peak_time_ns);
        fprintf(out, ", \"end_live_bytes\": %" PRIu64 ", \"end_live_count\": %" PRIu64
                     ", \"threads\": %" PRIu64 ", \"snapshots\": ",
                t->live_bytes, t->live_count, c->threads);
        snapshots_json(out, c);
        fprintf(out, ", \"truncated\": %s, \"end\": ", truncated ? "true" : "false");
        pm_json_str(out, pm_report_end_reason(c));
        fprintf(out,
                ", \"end_detail\": %" PRIu64 ", \"profiler_bytes\": %" PRIu64
                ", \"unrecorded_events\": %" PRIu64 ", \"unmatched_frees\": %" PRIu64
                ", \"max_rss_bytes\": %" PRIu64 ", \"malloc_recorded\": %s, \"python_allocators_recorded\": %s, "
                "\"native_depth\": %d, ",
                c->has_end && c->end_reason == PM_END_EXIT && status >= 0 ? (uint64_t)status : c->end_detail,
                t->max_profiler_bytes > c->profiler_bytes ? t->max_profiler_bytes : c->profiler_bytes,
                c->unrecorded, t->unmatched_frees, t->max_rss, c->malloc_hooked ? "true" : "false",
                *c->python && c->python_allocators ? "true" : "false", c->native_depth);
        if (status >= 0)
            fprintf(out, "\"exit_status\": %d, ", status);
        else
            fputs("\"exit_status\": null, ", out);
        fputs("\"python_lost\": ", out);
        pm_json_str(out, c->python_lost);
        fprintf(out, ", \"recycled_reattributed\": %s, \"retagged\": %" PRIu64 ", \"blocks_before\": %" PRIu64 ", "
                     "\"after_end\": %" PRIu64 ", \"forks_unrecorded\": %" PRIu64 ", ",
                c->recycled ? "true" : "false", t->retagged, c->blocks_before, c->after_end, c->forks_unrecorded);
        if (c->sample_bytes)
            fprintf(out, "\"sample_bytes\": %" PRIu64 ", \"samples\": %" PRIu64 ", \"estimated\": "
                         "[\"peak_bytes\", \"end_live_bytes\", \"end_live_count\", \"snapshots\", \"domains\"], ",
                    c->sample_bytes, t->samples);
        fprintf(out, "\"aggregated\": %s", c->aggregated ? "true" : "false");
        heap_json(out, c);
        if (c->aggregated) {
            fputs(", \"domains\": null", out); /* not counted per domain */
        } else {
            fputs(", \"domains\": {", out);
            for (int d = 0; d < PM_DOMAIN_COUNT; d++)
                fprintf(out, "%s\"%s\": {\"allocations\": %" PRIu64 ", \"bytes\": %" PRIu64 "}", d ? ", " : "",
                        domain_names[d], t->domain_allocations[d], t->domain_bytes[d]);
            fputc('}', out);
        }
        fputs("}\n", out);
        return;
    }
    char a[32], b[32], p[32], r[32];
    fprintf(out, "Capture:      %s%s\n", c->path, truncated ? "  [TRUNCATED: the process did not end the capture]" : "");
    fprintf(out, "Command:      %s\n", c->command);
    fprintf(out, "Process:      pid %lld, %s%s, %" PRIu64 " thread(s)\n", c->pid, *c->python ? "Python " : "",
            *c->python ? c->python : "not Python", c->threads);
    if (c->native_depth)
        fprintf(out, "Stacks:       Python and native frames (native depth %d)\n", c->native_depth);
    fprintf(out, "Duration:     %.3f s, ended by %s", duration / 1e9, pm_report_end_reason(c));
    if (c->has_end && c->end_reason == PM_END_SIGNAL)
        fprintf(out, " (%" PRIu64 ")", c->end_detail);
    else if (status >= 0)
        fprintf(out, " (status %d)", status);
    fputc('\n', out);
    fprintf(out, "Allocations:  %" PRIu64 " (%s in total), frees: %" PRIu64 "\n", t->allocations,
            pm_human_bytes(a, sizeof a, (double)t->total_allocated), t->frees);
    if (c->aggregated)
        fputs("Recording:    aggregated: the live heap's totals per stack every second and at each snapshot,\n"
              "              and the exact peak; no events (lines, --since and pprof need an event capture)\n",
              out);
    if (c->sample_bytes && c->aggregated)
        fprintf(out, "Sampling:     one sample per %s allocated on average: the totals above are exact;\n"
                     "              live, peak and snapshots below are estimates\n",
                pm_human_bytes(r, sizeof r, (double)c->sample_bytes));
    else if (c->sample_bytes)
        fprintf(out, "Sampling:     one sample per %s allocated on average (%" PRIu64 " samples): the totals above\n"
                     "              are exact; live, peak, snapshots and domains below are estimates\n",
                pm_human_bytes(r, sizeof r, (double)c->sample_bytes), t->samples);
    if (c->sample_bytes && c->blocks_before)
        fprintf(out, "              frees include those of the %" PRIu64 " blocks Python held before recording began\n",
                c->blocks_before);
    fprintf(out, "Peak:         %s (%" PRIu64 " B) at %.3f s\n", pm_human_bytes(p, sizeof p, (double)t->peak_bytes),
            t->peak_bytes, t->peak_time_ns / 1e9);
    fprintf(out, "Live at end:  %s in %" PRIu64 " blocks\n", pm_human_bytes(b, sizeof b, (double)t->live_bytes),
            t->live_count);
    fprintf(out, "Max RSS:      %s; profiler's own memory: %s\n", pm_human_bytes(r, sizeof r, (double)t->max_rss),
            pm_human_bytes(a, sizeof a, (double)(t->max_profiler_bytes > c->profiler_bytes ? t->max_profiler_bytes : c->profiler_bytes)));
    heap_text(out, c);
    if (!c->aggregated) {
        fputs("Domains:     ", out);
        for (int d = 0; d < PM_DOMAIN_COUNT; d++)
            fprintf(out, " %s %" PRIu64 " (%s)%s", domain_names[d], t->domain_allocations[d],
                    pm_human_bytes(a, sizeof a, (double)t->domain_bytes[d]), d + 1 < PM_DOMAIN_COUNT ? "," : "\n");
    }
    if (c->unrecorded)
        fprintf(out, "Unrecorded:   %" PRIu64 " events made inside signal handlers while pymem was busy\n", c->unrecorded);
    if (*c->python && !c->python_allocators)
        fputs("Note:         Python's allocators were not hooked (--no-python-allocators): objects are\n"
              "              not seen one by one; their memory shows in the malloc and mmap domains\n"
              "              (blocks over 512 bytes, pymalloc's arenas)\n",
              out);
    if (c->after_end)
        fprintf(out, "Note:         %" PRIu64 " allocations were made after the interpreter had finalised, by another\n"
                     "              interpreter pymem could not hook: they are not in the capture\n",
                c->after_end);
    if (c->forks_unrecorded)
        fprintf(out, "Note:         this process forked %" PRIu64 " process%s with os.fork that %s not recorded (a server's\n"
                     "              workers?): their memory is not here; pymem run --follow-fork records them\n",
                c->forks_unrecorded, c->forks_unrecorded == 1 ? "" : "es", c->forks_unrecorded == 1 ? "was" : "were");
    if (*c->python_lost)
        fprintf(out, "Note:         CPython's %s allocator was for a time replaced by one that did not reach pymem:\n"
                     "              what it allocated and freed meanwhile is missing\n",
                c->python_lost);
    if (*c->python && c->python_allocators && !c->recycled)
        fputs("Note:         objects CPython recycles from its free lists keep the line that first allocated\n"
              "              their memory (re-attributed as tracemalloc does from Python 3.13 on)\n",
              out);
    if (!c->malloc_hooked)
        fputs("Note:         malloc was served ahead of pymem (an allocator preloaded first or linked into the\n"
              "              program): allocations made from C are missing\n",
              out);
    if (c->snapshot_count)
        pm_report_snapshots(out, c, false);
}

void pm_report_snapshots(FILE *out, const struct pm_capture *c, bool json)
{
    if (json) {
        snapshots_json(out, c);
        fputc('\n', out);
        return;
    }
    fprintf(out, "Snapshots:\n  %5s  %-24s %-9s %10s %14s\n", "index", "label", "kind", "time_s", "live");
    for (uint32_t i = 0; i < c->snapshot_count; i++) {
        const struct pm_snapshot *s = &c->snapshots[i];
        char b[32];
        fprintf(out, "  %5u  %-24s %-9s %10.3f %14s\n", i, s->label, snapshot_kind(s->kind), s->time_ns / 1e9,
                pm_human_bytes(b, sizeof b, (double)s->live_bytes));
    }
}

static const char *site_file(const struct pm_capture *c, const struct pm_site *x)
{
    return x->file ? pm_tree_string(&c->stacks, x->file) : "<native>";
}

/* "email.message at app.py:3" for the site's import-time bytes: which
 * import, and the program's line that triggered it. Empty if none. */
static void import_text(const struct pm_capture *c, const struct pm_site *x, char *out, size_t cap,
                        char *module, size_t mcap, const char **file, uint32_t *line)
{
    uint32_t mod = 0, trigger = 0;
    struct pm_frame f;
    *out = *module = 0;
    *file = NULL;
    *line = 0;
    if (!x->phase_bytes[PM_PHASE_IMPORT] || !pm_tree_import_of(&c->stacks, x->import_stack, &mod, &trigger))
        return;
    if (pm_tree_frame(&c->stacks, mod, &f))
        pm_module_name(pm_tree_string(&c->stacks, f.file), module, mcap);
    if (pm_tree_frame(&c->stacks, trigger, &f)) {
        *file = pm_tree_string(&c->stacks, f.file);
        *line = f.line;
    }
    snprintf(out, cap, "%s%s%s%s%s:%u", *module ? "of " : "", module, *module ? " " : "", *file ? "at " : "",
             *file ? *file : "", *line);
    if (!*file)
        snprintf(out, cap, "%s%s", *module ? "of " : "", module);
}

void pm_report_stack_json(FILE *out, const struct pm_capture *c, uint32_t node)
{
    fputc('[', out);
    struct pm_frame f;
    bool first = true;
    for (uint32_t id = node; pm_tree_frame(&c->stacks, id, &f); id = f.parent) {
        struct pm_native n = pm_tree_native(&c->stacks, id);
        fputs(first ? "{\"kind\": " : ", {\"kind\": ", out);
        fputs(n.native ? "\"native\"" : "\"python\"", out);
        fputs(", \"file\": ", out);
        pm_json_str(out, pm_tree_string(&c->stacks, f.file));
        fprintf(out, ", \"line\": %u, \"function\": ", f.line);
        pm_json_str(out, pm_tree_string(&c->stacks, f.func));
        if (n.native) {
            const struct pm_module *m = pm_modmap_get(&c->modules, n.module);
            fputs(", \"module\": ", out);
            pm_json_str(out, m && m->path ? m->path : "");
            fprintf(out, ", \"address\": \"0x%" PRIx64 "\", \"offset\": \"0x%" PRIx64 "\", \"inlined\": %s",
                    (m ? m->base : 0) + n.offset, n.offset, n.inlined ? "true" : "false");
        }
        fputc('}', out);
        first = false;
    }
    fputc(']', out);
}

/* Whether frame `f` is the one `site` is named after. */
static bool names_site(const struct pm_frame *f, const struct pm_site *site)
{
    return f->file == site->file && f->line == site->line && (f->line || f->func == site->func);
}

static void frame_text(FILE *out, const struct pm_capture *c, uint32_t id, const struct pm_frame *f)
{
    const char *file = pm_tree_string(&c->stacks, f->file), *func = pm_tree_string(&c->stacks, f->func);
    struct pm_native nv = pm_tree_native(&c->stacks, id);
    if (!nv.native)
        fprintf(out, "         %s:%u %s\n", file, f->line, func);
    else if (f->line)
        fprintf(out, "         %s:%u %s%s\n", file, f->line, func, nv.inlined ? " (inlined)" : "");
    else
        fprintf(out, "         %s  [%s]\n", func, file);
}

void pm_report_stack_text(FILE *out, const struct pm_capture *c, uint32_t node, int max_frames,
                          const struct pm_site *site)
{
    struct pm_frame f;
    /* A site named after the program's own line can sit below more library
     * frames than are shown: the middle is elided so that the frame the
     * report names, and its caller, are on the page. */
    int named = -1, depth = 0;
    for (uint32_t id = node; site && pm_tree_frame(&c->stacks, id, &f); id = f.parent, depth++)
        if (names_site(&f, site)) {
            named = depth;
            break;
        }
    bool elide = max_frames >= 4 && named >= max_frames;
    int head = elide ? max_frames - 2 : max_frames, shown = elide ? named + 2 : max_frames, n = 0;
    for (uint32_t id = node; pm_tree_frame(&c->stacks, id, &f); id = f.parent, n++) {
        if (n == shown) {
            fputs("         ...\n", out);
            break;
        }
        if (elide && n == head)
            fprintf(out, "         ... %d frame%s ...\n", named - head, named - head == 1 ? "" : "s");
        if (n < head || n >= named)
            frame_text(out, c, id, &f);
    }
}

void pm_report_figures_json(FILE *out, enum pm_sites_kind kind, bool sampled, const int64_t bytes[2],
                            const int64_t count[2], double var, int64_t samples)
{
    fprintf(out, ", \"bytes\": %" PRId64 ", \"count\": %" PRId64, bytes[1], count[1]);
    if (sampled && kind != PM_REPORT_DIFF) {
        double lo, hi;
        pm_interval(bytes[1], var, &lo, &hi);
        fprintf(out, ", \"samples\": %" PRId64 ", \"bytes_low\": %.0f, \"bytes_high\": %.0f, \"few_samples\": %s",
                samples, lo, hi, samples < PM_FEW_SAMPLES ? "true" : "false");
    }
    if (kind == PM_REPORT_DIFF)
        fprintf(out, ", \"bytes_diff\": %" PRId64 ", \"count_diff\": %" PRId64, bytes[1] - bytes[0],
                count[1] - count[0]);
    if (kind == PM_REPORT_TEMPORARIES)
        fprintf(out, ", \"allocations\": %" PRId64 ", \"allocated_bytes\": %" PRId64, count[0], bytes[0]);
}

void pm_report_domains_json(FILE *out, const int64_t *bytes, const int64_t *count)
{
    fputs(", \"domains\": {", out);
    for (int d = 0, first = 1; d < PM_DOMAIN_COUNT; d++) {
        if (!count[d])
            continue;
        fprintf(out, "%s\"%s\": {\"bytes\": %" PRId64 ", \"count\": %" PRId64 "}", first ? "" : ", ",
                domain_names[d], bytes[d], count[d]);
        first = 0;
    }
    fputc('}', out);
}

void pm_report_figures_text(FILE *out, size_t rank, enum pm_sites_kind kind, bool sampled, const int64_t bytes[2],
                            const int64_t count[2], double var, int64_t samples)
{
    char b1[32], b2[32];
    if (kind == PM_REPORT_DIFF) {
        int64_t d = bytes[1] - bytes[0];
        char signed_diff[40];
        snprintf(signed_diff, sizeof signed_diff, "%s%s", d >= 0 ? "+" : "", pm_human_bytes(b1, sizeof b1, (double)d));
        fprintf(out, "%4zu. %12s (%+" PRId64 " blocks), now %s in %" PRId64 " blocks", rank, signed_diff,
                count[1] - count[0], pm_human_bytes(b2, sizeof b2, (double)bytes[1]), count[1]);
    } else if (kind == PM_REPORT_TEMPORARIES) {
        fprintf(out, "%4zu. %8" PRId64 " temporary (%3.0f%% of %" PRId64 "), %s", rank, count[1],
                count[0] ? 100.0 * (double)count[1] / (double)count[0] : 0.0, count[0],
                pm_human_bytes(b1, sizeof b1, (double)bytes[1]));
    } else if (sampled) {
        double lo, hi;
        pm_interval(bytes[1], var, &lo, &hi);
        fprintf(out, "%4zu. %12s (+/- %s, %" PRId64 " sample%s%s) in %" PRId64 " blocks", rank,
                pm_human_bytes(b1, sizeof b1, (double)bytes[1]), pm_human_bytes(b2, sizeof b2, hi - bytes[1]), samples,
                samples == 1 ? "" : "s", samples < PM_FEW_SAMPLES ? ": too few to trust" : "", count[1]);
    } else {
        fprintf(out, "%4zu. %12s in %" PRId64 " blocks", rank, pm_human_bytes(b1, sizeof b1, (double)bytes[1]), count[1]);
    }
}

void pm_diff_totals_add(struct pm_diff_totals *t, const int64_t bytes[2], const int64_t count[2])
{
    int64_t d = bytes[1] - bytes[0];
    t->net_bytes += d;
    t->net_count += count[1] - count[0];
    if (d > 0)
        t->grown += d;
    else
        t->shrunk += d;
}

void pm_diff_totals_text(FILE *out, const struct pm_diff_totals *t)
{
    char net[32], grown[32], shrunk[32];
    pm_human_bytes(net, sizeof net, (double)t->net_bytes);
    pm_human_bytes(grown, sizeof grown, (double)t->grown);
    pm_human_bytes(shrunk, sizeof shrunk, (double)-t->shrunk);
    fprintf(out, "net %s%s (%+" PRId64 " blocks); grew +%s, shrank %s%s\n", t->net_bytes >= 0 ? "+" : "", net,
            t->net_count, grown, t->shrunk ? "-" : "", shrunk);
}

void pm_diff_totals_json(FILE *out, const struct pm_diff_totals *t)
{
    fprintf(out,
            ", \"net_bytes\": %" PRId64 ", \"net_count\": %" PRId64 ", \"grown_bytes\": %" PRId64
            ", \"shrunk_bytes\": %" PRId64,
            t->net_bytes, t->net_count, t->grown, t->shrunk);
}

void pm_report_sites(FILE *out, struct pm_capture *c, const struct pm_sites_header *h,
                     const struct pm_sites *s, long top, bool json)
{
    size_t n = top > 0 && (size_t)top < s->n ? (size_t)top : s->n;
    struct pm_diff_totals diff = {0};
    for (size_t i = 0; h->kind == PM_REPORT_DIFF && i < s->n; i++)
        pm_diff_totals_add(&diff, s->v[i].bytes, s->v[i].count);
    if (json) {
        fputs("{\"file\": ", out);
        pm_json_str(out, c->path);
        if (h->kind == PM_REPORT_PEAK) {
            fprintf(out, ", \"peak_bytes\": %llu, \"peak_time_s\": ", h->total_bytes);
            pm_json_seconds(out, h->to_time_ns);
        } else if (h->kind == PM_REPORT_TEMPORARIES) {
            fprintf(out, ", \"temporaries\": %llu, \"temporary_bytes\": %llu, \"allocations\": %llu, ", h->count,
                    h->total_bytes, h->of_count);
            if (h->within_ms > 0)
                fprintf(out, "\"within_ms\": %g", h->within_ms);
            else
                fprintf(out, "\"within_allocations\": %zu", h->gap);
        } else if (h->kind == PM_REPORT_LEAKS) {
            fputs(", \"at\": ", out);
            pm_json_str(out, h->to_label);
            fputs(", \"at_time_s\": ", out);
            pm_json_seconds(out, h->to_time_ns);
            if (h->from_label) {
                fputs(", \"since\": ", out);
                pm_json_str(out, h->from_label);
            }
            fprintf(out, ", \"live_bytes\": %llu, \"leaked_bytes\": %llu", h->total_bytes, h->runtime_bytes);
        } else {
            fputs(", \"from\": ", out);
            pm_json_str(out, h->from_label);
            fputs(", \"to\": ", out);
            pm_json_str(out, h->to_label);
            pm_diff_totals_json(out, &diff);
        }
        fputs(", \"by\": ", out);
        pm_json_str(out, h->by);
        if (c->sample_bytes)
            fprintf(out, ", \"sample_bytes\": %" PRIu64 ", \"estimated\": true", c->sample_bytes);
        fprintf(out, ", \"truncated\": %s, \"sites\": [", h->truncated ? "true" : "false");
        for (size_t i = 0; i < n; i++) {
            const struct pm_site *x = &s->v[i];
            fputs(i ? ", {\"file\": " : "{\"file\": ", out);
            pm_json_str(out, site_file(c, x));
            fprintf(out, ", \"line\": %u, \"function\": ", x->line);
            pm_json_str(out, pm_tree_string(&c->stacks, x->func));
            /* The innermost frame of its biggest stack: tracemalloc's line,
             * which `--by own` may have passed over for the program's. */
            struct pm_frame inner;
            if (pm_tree_frame(&c->stacks, pm_tree_site_node(&c->stacks, x->stack, s->view), &inner)) {
                fputs(", \"innermost\": {\"file\": ", out);
                pm_json_str(out, pm_tree_string(&c->stacks, inner.file));
                fprintf(out, ", \"line\": %u, \"function\": ", inner.line);
                pm_json_str(out, pm_tree_string(&c->stacks, inner.func));
                fputc('}', out);
            }
            pm_report_figures_json(out, h->kind, c->sample_bytes != 0, x->bytes, x->count, x->var, x->samples);
            fputs(", \"phase\": ", out);
            pm_json_str(out, pm_phase_name(x->phase));
            fputs(", \"phases\": {", out);
            for (int p = 0, first = 1; p < PM_PHASE_COUNT; p++) {
                if (!x->phase_count[p] && !x->phase_bytes[p])
                    continue;
                fprintf(out, "%s\"%s\": {\"bytes\": %" PRId64 ", \"count\": %" PRId64 "}", first ? "" : ", ",
                        pm_phase_name(p), x->phase_bytes[p], x->phase_count[p]);
                first = 0;
            }
            fputc('}', out);
            char what[1200], module[512];
            const char *ifile;
            uint32_t iline;
            import_text(c, x, what, sizeof what, module, sizeof module, &ifile, &iline);
            if (*module || ifile) {
                fputs(", \"import\": {\"module\": ", out);
                pm_json_str(out, module);
                fputs(", \"file\": ", out);
                pm_json_str(out, ifile ? ifile : "");
                fprintf(out, ", \"line\": %u}", iline);
            }
            pm_report_domains_json(out, x->domain_bytes, x->domain_count);
            fputs(", \"stack\": ", out);
            pm_report_stack_json(out, c, x->stack);
            fputc('}', out);
        }
        fputs("]}\n", out);
        return;
    }
    char b1[32], b2[32];
    if (h->kind == PM_REPORT_PEAK)
        fprintf(out, "Peak: %s (%llu B) live at %.3f s in %s\n", pm_human_bytes(b1, sizeof b1, (double)h->total_bytes),
                h->total_bytes, h->to_time_ns / 1e9, c->path);
    else if (h->kind == PM_REPORT_LEAKS)
        fprintf(out, "Leak candidates: memory %s%s%sstill live at '%s' (%.3f s): %s, of which %s allocated by the program's own code\n",
                h->from_label ? "allocated after '" : "", h->from_label ? h->from_label : "",
                h->from_label ? "' and " : "", h->to_label, h->to_time_ns / 1e9,
                pm_human_bytes(b1, sizeof b1, (double)h->total_bytes), pm_human_bytes(b2, sizeof b2, (double)h->runtime_bytes));
    else if (h->kind == PM_REPORT_TEMPORARIES && h->within_ms > 0)
        fprintf(out, "Temporary allocations in %s: %llu of %llu allocations (%.1f%%, %s) freed within %g ms\n",
                c->path, h->count, h->of_count, h->of_count ? 100.0 * (double)h->count / (double)h->of_count : 0.0,
                pm_human_bytes(b1, sizeof b1, (double)h->total_bytes), h->within_ms);
    else if (h->kind == PM_REPORT_TEMPORARIES)
        fprintf(out, "Temporary allocations in %s: %llu of %llu allocations (%.1f%%, %s) freed before their\n"
                     "thread made %zu more allocation%s\n",
                c->path, h->count, h->of_count, h->of_count ? 100.0 * (double)h->count / (double)h->of_count : 0.0,
                pm_human_bytes(b1, sizeof b1, (double)h->total_bytes), h->gap, h->gap == 1 ? "" : "s");
    else {
        fprintf(out, "Growth from '%s' to '%s' in %s: ", h->from_label, h->to_label, c->path);
        pm_diff_totals_text(out, &diff);
    }
    if (c->sample_bytes)
        fprintf(out, "Sampled capture (one sample per %s allocated on average): bytes and blocks per site are "
                     "estimates.\n",
                pm_human_bytes(b2, sizeof b2, (double)c->sample_bytes));
    if (h->truncated)
        fputs("Note: the capture is truncated (the process did not finish it); figures stop at its last complete chunk.\n", out);
    fprintf(out, "Top %zu of %zu sites, grouped by %s%s:\n", n, s->n, h->by,
            h->kind == PM_REPORT_DIFF ? ", biggest change first" : "");
    for (size_t i = 0; i < n; i++) {
        const struct pm_site *x = &s->v[i];
        pm_report_figures_text(out, i + 1, h->kind, c->sample_bytes != 0, x->bytes, x->count, x->var, x->samples);
        if (s->by == PM_BY_FILENAME || !x->file)
            fprintf(out, "  %s", site_file(c, x));
        else if (!x->line) /* a native frame without line information */
            fprintf(out, "  %s  [%s]", pm_tree_string(&c->stacks, x->func), site_file(c, x));
        else
            fprintf(out, "  %s:%u %s", site_file(c, x), x->line, pm_tree_string(&c->stacks, x->func));
        char what[1200], module[512];
        const char *ifile;
        uint32_t iline;
        import_text(c, x, what, sizeof what, module, sizeof module, &ifile, &iline);
        int phases = 0;
        for (int p = 0; p < PM_PHASE_COUNT; p++)
            phases += x->phase_bytes[p] != 0;
        if (phases > 1) {
            fputs("  [", out);
            for (int p = 0, first = 1; p < PM_PHASE_COUNT; p++) {
                if (!x->phase_bytes[p])
                    continue;
                fprintf(out, "%s%s %s%s%s", first ? "" : ", ", pm_phase_name(p),
                        pm_human_bytes(b1, sizeof b1, (double)x->phase_bytes[p]),
                        p == PM_PHASE_IMPORT && *what ? " " : "", p == PM_PHASE_IMPORT ? what : "");
                first = 0;
            }
            fputc(']', out);
        } else if (x->phase != PM_PHASE_RUNTIME) {
            fprintf(out, "  [%s%s%s]", pm_phase_name(x->phase), *what ? " " : "", what);
        }
        fputc('\n', out);
        if (s->by != PM_BY_FILENAME)
            pm_report_stack_text(out, c, x->stack, s->by == PM_BY_TRACEBACK ? 64 : 6, x);
    }
}
