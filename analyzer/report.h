/*
 * report: renders analysis results as text tables (for people) or JSON (for
 * machines). It formats; it never computes.
 */
#ifndef PMA_REPORT_H
#define PMA_REPORT_H

#include <stdbool.h>
#include <stdio.h>

#include "capture.h"
#include "replay.h"
#include "sites.h"

void pm_report_summary(FILE *out, const struct pm_capture *c, const struct pm_totals *t, bool json);
void pm_report_snapshots(FILE *out, const struct pm_capture *c, bool json);

/* TEMPORARIES: slot 1 the site's temporary allocations, slot 0 all its
 * allocations. */
enum pm_sites_kind { PM_REPORT_PEAK, PM_REPORT_LEAKS, PM_REPORT_DIFF, PM_REPORT_TEMPORARIES };

struct pm_sites_header {
    enum pm_sites_kind kind;
    const char *by;
    const char *from_label, *to_label; /* diff; leaks: to_label is the point */
    unsigned long long to_time_ns;
    unsigned long long total_bytes;   /* peak: peak bytes; leaks: live at the point */
    unsigned long long runtime_bytes; /* leaks: bytes from the program's own code */
    unsigned long long count, of_count; /* temporaries: temporary allocations, of all */
    double within_ms;                   /* temporaries: freed within this time, or */
    size_t gap;                         /* before this many more allocations of their thread */
    bool truncated;
};

/* A diff's totals over every site that changed, shown or not: the net
 * change, and the growth and shrinkage (<= 0) that make it up. */
struct pm_diff_totals {
    int64_t net_bytes, net_count, grown, shrunk;
};
void pm_diff_totals_add(struct pm_diff_totals *t, const int64_t bytes[2], const int64_t count[2]);
/* "net +1.1 MiB (+15000 blocks); grew +1.1 MiB, shrank -64 B\n" */
void pm_diff_totals_text(FILE *out, const struct pm_diff_totals *t);
/* The same as JSON members, each with its leading comma. */
void pm_diff_totals_json(FILE *out, const struct pm_diff_totals *t);

void pm_report_sites(FILE *out, struct pm_capture *c, const struct pm_sites_header *h,
                     const struct pm_sites *s, long top, bool json);

/* Parts of a site's entry that every site report shares: its figures as
 * JSON members (bytes, count; a diff's bytes_diff, count_diff; a sampled
 * estimate's samples and interval), its per-domain breakdown, and the rank
 * and figures that open its line of text. Slot 1 is the point (the later
 * one in a diff). */
void pm_report_figures_json(FILE *out, enum pm_sites_kind kind, bool sampled, const int64_t bytes[2],
                            const int64_t count[2], double var, int64_t samples);
void pm_report_domains_json(FILE *out, const int64_t *bytes, const int64_t *count);
void pm_report_figures_text(FILE *out, size_t rank, enum pm_sites_kind kind, bool sampled, const int64_t bytes[2],
                            const int64_t count[2], double var, int64_t samples);

/* How the capture ended: "exit", "_exit", "signal", "exec", or "truncated". */
const char *pm_report_end_reason(const struct pm_capture *c);
/* A stack, innermost frame first: indented lines (at most `max_frames`, and
 * the frame `site` is named after, when there is a site), or a JSON array of
 * frames. */
void pm_report_stack_text(FILE *out, const struct pm_capture *c, uint32_t node, int max_frames,
                          const struct pm_site *site);
void pm_report_stack_json(FILE *out, const struct pm_capture *c, uint32_t node);

/* A sampled site's 95% interval, from its estimate and the estimate's
 * variance (normal approximation, clipped at 0). Fewer recorded blocks than
 * PM_FEW_SAMPLES make it too rough to trust (relative error over ~30%). */
#define PM_FEW_SAMPLES 10
void pm_interval(int64_t bytes, double var, double *lo, double *hi);

/* Text inside SVG or HTML (pymem plot, the flame graph page): what could
 * start markup escaped, control characters made spaces. */
void pm_markup_str(FILE *out, const char *s);

/* "12.3 MiB" style, into `buf`. */
const char *pm_human_bytes(char *buf, size_t cap, double bytes);

#endif
