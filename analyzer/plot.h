/*
 * plot: `pymem plot CAPTURE`: memory over time as a standalone SVG (no
 * script): exact live bytes, RSS, the snapshots, the peak.
 */
#ifndef PMA_PLOT_H
#define PMA_PLOT_H

#include <stdbool.h>
#include <stdio.h>

/* Writes the SVG of the capture at `path` to `out` (`inline`: without the
 * XML declaration, for an HTML page; `by_domain`: a line of live bytes per
 * allocation domain too, not for aggregated captures). 0, or 1 after a
 * one-line error. */
int pm_plot_svg(FILE *out, const char *path, bool inline_svg, bool by_domain);

#endif
