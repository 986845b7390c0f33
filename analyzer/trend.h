/*
 * trend: which sites grow steadily over a run's snapshots (periodic,
 * requested or the program's own). For each site, its live bytes at every
 * snapshot, the growth rate by least squares, and a class:
 *
 *   steady       grew through the whole run: a leak candidate
 *   plateau      grew, then stopped (a cache filling up)
 *   fluctuating  up and down without a trend a line explains (batch buffers)
 *   shrinking, flat
 *
 * Several captures (a directory, a run) are reported one by one, or with
 * `merge` summed by snapshot label over the labels every capture has.
 */
#ifndef PMA_TREND_H
#define PMA_TREND_H

#include <stdbool.h>
#include <stdio.h>

#include "commands.h"

/* `paths`: the captures. Returns 0, or 1 after a one-line error. */
int pm_cmd_trend(FILE *out, char **paths, size_t n, bool merge, const struct pm_opts *o);

#endif
