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
};

int pm_cmd_summary(FILE *out, const char *path, const struct pm_opts *o);
int pm_cmd_snapshots(FILE *out, const char *path, const struct pm_opts *o);
int pm_cmd_peak(FILE *out, const char *path, const struct pm_opts *o);
int pm_cmd_leaks(FILE *out, const char *path, const struct pm_opts *o);
int pm_cmd_diff(FILE *out, const char *path, const struct pm_opts *o);
/* The short report `pymem run` prints at the end. */
int pm_cmd_brief(FILE *out, const char *path);

#endif
