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

enum pm_export_format {
    PM_EXPORT_NONE,
    PM_EXPORT_FOLDED,
    PM_EXPORT_SPEEDSCOPE,
    PM_EXPORT_CSV,
    PM_EXPORT_PPROF,
    PM_EXPORT_HTML
};

/* The deepest stack written whole. */
#define PM_EXPORT_MAX_FRAMES 4096

/* The stack's nodes, outermost first, into `out` (PM_EXPORT_MAX_FRAMES at
 * most); returns how many. */
size_t pm_stack_root_first(const struct pm_capture *c, uint32_t node, uint32_t *out);

/* A table of the capture's distinct frames (function, file, line, native),
 * numbered from 0 in the order first seen: speedscope's and the flame
 * graph's. `keys` holds those 4 ids per frame. */
struct pm_frame_table {
    uint32_t *keys;
    size_t n, cap;
    uint32_t *index;
    size_t index_cap;
};
/* The number of node `id`'s frame, added if new; -1 when memory runs out. */
long pm_frame_table_index(struct pm_frame_table *t, const struct pm_capture *c, uint32_t id);
/* The same for a frame given by its keys (kind 0 Python, 1 native,
 * PM_FRAME_THREAD a thread's root in a flame graph split by thread). */
#define PM_FRAME_THREAD 2u
long pm_frame_table_add(struct pm_frame_table *t, uint32_t func, uint32_t file, uint32_t line, uint32_t kind);
void pm_frame_table_free(struct pm_frame_table *t);

/* The weight a site exports: its bytes (or blocks) live at the point, or
 * what it grew by in a diff. */
int64_t pm_export_weight(const struct pm_sites_header *h, const struct pm_site *x, bool blocks);

/* "folded", "speedscope", "csv", "pprof" -> format; -1 for anything else. */
int pm_export_parse(const char *name, enum pm_export_format *out);

/* Writes `s` (collected --by traceback for folded and speedscope) in
 * o->format. A diff exports its growth: in folded and speedscope only what
 * grew (their weights cannot be negative), in CSV every site that changed. */
int pm_export_sites(FILE *out, const struct pm_capture *c, const struct pm_sites_header *h,
                    const struct pm_sites *s, const struct pm_opts *o);

#endif
