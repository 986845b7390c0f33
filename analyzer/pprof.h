/*
 * pprof: `pymem export --format pprof`: the sites as a gzipped
 * profile.proto, for `go tool pprof`, Pyroscope and Grafana.
 */
#ifndef PMA_PPROF_H
#define PMA_PPROF_H

#include <stdio.h>

#include "capture.h"
#include "report.h"
#include "sites.h"

/* Sites collected --by traceback at one point (not a diff). Replays the
 * capture once more for what each stack allocated over the run. 0, or 1
 * after a one-line error. */
int pm_pprof_write(FILE *out, struct pm_capture *c, const struct pm_sites_header *h, const struct pm_sites *s);

#endif
