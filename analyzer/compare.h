/*
 * compare: `pymem compare A B`, two captures of the same program (another
 * allocator, another version) side by side: RSS and live heap over time,
 * peaks and exit figures, and which run used less.
 */
#ifndef PMA_COMPARE_H
#define PMA_COMPARE_H

#include <stdio.h>

#include "commands.h"

/* 0, or 1 after a one-line error. */
int pm_cmd_compare(FILE *out, const char *a, const char *b, const struct pm_opts *o);

#endif
