/*
 * plot: `pymem plot CAPTURE`: memory over time as a standalone SVG (no
 * script): exact live bytes, RSS, the snapshots, the peak.
 */
#ifndef PMA_PLOT_H
#define PMA_PLOT_H

#include <stdbool.h>
#include <stdio.h>

#include "replay.h"

/* Writes the SVG of the capture at `path` to `out` (`inline`: without the
 * XML declaration, for an HTML page; `by_domain`: a line of live bytes per
 * allocation domain too, not for aggregated captures). 0, or 1 after a
 * one-line error. */
int pm_plot_svg(FILE *out, const char *path, bool inline_svg, bool by_domain);
/* The same for a capture already open, after a pass that gave `t` (its
 * duration and peak): one more pass. */
int pm_plot_capture(FILE *out, struct pm_capture *c, const struct pm_totals *t, bool inline_svg, bool by_domain);

#endif
