/*
 * flamegraph: `pymem flamegraph CAPTURE`: what was live at the peak (or at a
 * point, or what grew between two) as one self-contained HTML page: a flame
 * graph (icicle on request) with zoom, search, tooltips and toggles for
 * library and native frames, and the memory-over-time chart. Works offline:
 * nothing is fetched.
 */
#ifndef PMA_FLAMEGRAPH_H
#define PMA_FLAMEGRAPH_H

#include <stdio.h>

#include "capture.h"
#include "report.h"
#include "sites.h"

/* The page for sites collected --by traceback (a diff: live at B, with
 * what grew since A), and the memory-over-time chart from one more pass
 * over `c`, whose first pass gave `totals`. 0, or 1 after a one-line
 * error. */
int pm_flamegraph_write(FILE *out, struct pm_capture *c, const struct pm_totals *totals,
                        const struct pm_sites_header *h, const struct pm_sites *s);

#endif
