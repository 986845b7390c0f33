/*
 * plot: `pymem plot CAPTURE`: memory over time as a standalone SVG (no
 * script): exact live bytes, RSS, the snapshots, the peak.
 */
#ifndef PMA_PLOT_H
#define PMA_PLOT_H

#include <stdio.h>

/* Writes the SVG of the capture at `path` to `out`. 0, or 1 after a
 * one-line error. */
int pm_cmd_plot(FILE *out, const char *path);

#endif
