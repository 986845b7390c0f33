/*
 * combine: the sites of several captures (the processes of one run: a
 * server's master and workers) summed by what names them, with each
 * process's share. Sites are matched by text (file, line and function; the
 * file alone; or the whole stack), since every capture numbers its strings
 * and stacks its own way. What is kept is copied: the captures are read and
 * closed one after another.
 */
#ifndef PMA_COMBINE_H
#define PMA_COMBINE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "capture.h"
#include "replay.h"
#include "report.h"
#include "sites.h"

/* One process of the run, as its capture describes it. */
struct pm_combined_proc {
    char *path;
    char *command;
    char role[16];
    long long pid, ppid;
    char end[16];      /* how the capture ended ("exit", "signal"...; "truncated") */
    uint64_t total;    /* the header's total: peak bytes, or live bytes at the point */
    uint64_t runtime;  /* leaks: what the program's own code allocated */
    uint64_t peak_bytes, live_end, live_end_count;
    uint64_t allocations, total_allocated, duration_ns;
    uint64_t sample_bytes;
    char python[32];
};

struct pm_share {
    uint32_t proc;
    int64_t bytes[2], count[2];
};

struct pm_combined_site {
    char *file;  /* NULL: no Python frame (<native>) */
    char *func;
    uint32_t line;
    char *key;   /* what the site is matched by */
    uint8_t phase;
    int64_t bytes[2], count[2];
    int64_t domain_bytes[PM_DOMAIN_COUNT], domain_count[PM_DOMAIN_COUNT];
    int64_t phase_bytes[PM_PHASE_COUNT], phase_count[PM_PHASE_COUNT];
    double var;      /* sampled captures: the processes' variances summed */
    int64_t samples;
    char *stack_text, *stack_json; /* from the process with most bytes there */
    int64_t stack_bytes;
    struct pm_share *shares;
    size_t nshares, share_cap;
};

struct pm_combined {
    enum pm_sites_kind kind;
    bool summary; /* processes only (pymem summary --merge) */
    bool sampled; /* a capture is sampled: figures are estimates */
    enum pm_group by;
    const char *from_label, *to_label;
    struct pm_combined_proc *procs;
    size_t nprocs, proc_cap;
    struct pm_combined_site *v;
    size_t n, cap;
    uint32_t *index; /* open addressing over site index + 1 */
    size_t index_cap;
    size_t skipped;  /* captures without the points asked for */
};

void pm_combined_init(struct pm_combined *m, enum pm_sites_kind kind, enum pm_group by);
void pm_combined_free(struct pm_combined *m);

/* Adds one capture's process and its collected, sorted sites (`s` NULL for
 * the process alone). 0, or -1 when memory runs out. */
int pm_combined_add(struct pm_combined *m, const struct pm_capture *c, const struct pm_totals *t,
                    const struct pm_sites_header *h, const struct pm_sites *s);

/* Sorts as the single-capture reports do (enum pm_order). */
void pm_combined_sort(struct pm_combined *m, enum pm_order order);

/* What a site is matched by across captures (new string; NULL when memory
 * runs out): file, line and function; the file; or the whole stack. */
char *pm_site_key(enum pm_group by, const struct pm_capture *c, const struct pm_site *x);
/* A stack as report text (pm_report_stack_text) or JSON, in a new string. */
char *pm_render_stack(const struct pm_capture *c, uint32_t stack, int max_frames, const struct pm_site *site,
                      bool json);

void pm_report_combined(FILE *out, const struct pm_combined *m, long top, bool json);
/* The run as a table of its processes, with their totals summed. */
void pm_report_combined_summary(FILE *out, const struct pm_combined *m, bool json);

#endif
