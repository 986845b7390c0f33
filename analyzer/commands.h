/*
 * commands: the analyzer's subcommands over one capture file. Each runs the
 * replay passes it needs (the first finds totals, peak and snapshots; the
 * second stops at the chosen points to read the live table), prints its
 * report to `out`, and returns 0, or 1 after printing a one-line error.
 */
#ifndef PMA_COMMANDS_H
#define PMA_COMMANDS_H

#include <stdbool.h>
#include <stdio.h>

#include "sites.h"

struct pm_combined;

struct pm_opts {
    enum pm_group by;
    long top;
    bool json;
    const char *at;         /* leaks: the point (default: exit, else end) */
    const char *since;      /* leaks: only what was allocated after this point */
    const char *from, *to;  /* diff */
    enum pm_view view;      /* peak, leaks, diff */
    unsigned domains;       /* bit per domain listed; 0: all */
    const char *wrappers;   /* allocator wrappers that name no site; NULL: the default list */
    bool one_of_many;       /* one of a directory's or a run's captures: skipped without the points */
    struct pm_combined *combined; /* --merge: sites go there instead of to a report */
    int format;             /* enum pm_export_format: sites exported instead (pymem export) */
    bool split_threads;     /* flamegraph --split-threads: each thread's sites apart */
    double within_ms;       /* temporaries: freed within this time, or */
    unsigned within_allocations; /* before this many more allocations of its thread (default 1) */
};

/* Returned by a command for one of many captures that lacks the points asked
 * for. */
#define PM_SKIPPED 3

int pm_cmd_summary(FILE *out, const char *path, const struct pm_opts *o);
int pm_cmd_snapshots(FILE *out, const char *path, const struct pm_opts *o);
int pm_cmd_peak(FILE *out, const char *path, const struct pm_opts *o);
int pm_cmd_leaks(FILE *out, const char *path, const struct pm_opts *o);
int pm_cmd_diff(FILE *out, const char *path, const struct pm_opts *o);
/* The short report `pymem run` prints at the end. */
int pm_cmd_brief(FILE *out, const char *path);
/* pm_cmd_brief, or, for a run with followed children, a line per process
 * and the leak candidates summed over the run. */
int pm_cmd_run_brief(FILE *out, const char *root);

#endif
