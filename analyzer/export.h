/*
 * export: the sites of one point (or the growth between two) in the formats
 * other tools read: folded stacks (flamegraph.pl, inferno), speedscope's
 * JSON, and CSV. It formats the sites the commands collected (by whole
 * stack); it computes nothing of its own.
 */
#ifndef PMA_EXPORT_H
#define PMA_EXPORT_H

#include <stdio.h>

#include "capture.h"
#include "commands.h"
#include "report.h"
#include "sites.h"

enum pm_export_format { PM_EXPORT_NONE, PM_EXPORT_FOLDED, PM_EXPORT_SPEEDSCOPE, PM_EXPORT_CSV };

/* "folded", "speedscope", "csv" -> format; -1 for anything else. */
int pm_export_parse(const char *name, enum pm_export_format *out);

/* Writes `s` (collected --by traceback for folded and speedscope) in
 * o->format. A diff exports its growth: in folded and speedscope only what
 * grew (their weights cannot be negative), in CSV every site that changed. */
int pm_export_sites(FILE *out, const struct pm_capture *c, const struct pm_sites_header *h,
                    const struct pm_sites *s, const struct pm_opts *o);

#endif
