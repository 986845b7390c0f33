/*
 * sites: groups live allocations by call site for reports. A site is keyed
 * by the grouping (`own`: the innermost line of the program's own code;
 * `lineno`: innermost Python frame; `filename`: its file; `traceback`: the
 * whole stack) and by phase, so that memory allocated while
 * the interpreter started or while modules were imported is never mixed with
 * what the program's own code allocated. Two points can be collected into the
 * same table (slot 0 and 1) for a diff.
 */
#ifndef PMA_SITES_H
#define PMA_SITES_H

#include <stddef.h>
#include <stdint.h>

#include "live.h"
#include "point.h"
#include "pymem/format.h"
#include "stacktree.h"

/* own (the default): the innermost line of the program's own code
 * (pm_tree_own_node); lineno: the innermost frame, tracemalloc's rule. */
enum pm_group { PM_BY_LINENO, PM_BY_FILENAME, PM_BY_TRACEBACK, PM_BY_OWN };

/* Ranked in this order in leak reports. */
enum pm_phase { PM_PHASE_RUNTIME = 0, PM_PHASE_IMPORT = 1, PM_PHASE_STARTUP = 2, PM_PHASE_COUNT = 3 };

struct pm_site {
    uint32_t file, line;       /* the key: innermost frame's file and line */
    uint32_t func;             /* its function, from the representative stack */
    uint32_t key;              /* traceback: canonical node; otherwise 0 */
    uint8_t phase;             /* the phase holding most of its bytes (slot 1) */
    uint32_t stack;            /* a representative stack: the one holding most bytes */
    uint64_t stack_bytes;
    int64_t bytes[2], count[2];
    int64_t domain_bytes[PM_DOMAIN_COUNT], domain_count[PM_DOMAIN_COUNT]; /* slot 1 */
    int64_t phase_bytes[PM_PHASE_COUNT], phase_count[PM_PHASE_COUNT];     /* slot 1 */
    double var;      /* slot 1, sampled capture: variance of bytes[1] */
    int64_t samples; /* slot 1: recorded blocks behind it */
    uint16_t thread;           /* split_threads: the thread (pm_capture.thread_info); else 0 */
    uint32_t import_stack;     /* the stack holding most of its import-time bytes */
    uint64_t import_stack_bytes;
};

struct pm_sites {
    enum pm_group by;
    enum pm_view view;
    unsigned domains; /* bit per enum pm_domain collected; 0: all */
    uint64_t sample_bytes; /* sampled capture: figures are estimates */
    uint64_t since_seq;    /* only allocations numbered above this (pm_sites_collect) */
    bool split_threads;    /* each thread's sites apart (flamegraph --split-threads) */
    struct pm_site *v;
    size_t n, cap;
    uint32_t *index; /* open addressing over site index + 1 */
    size_t index_cap;
    /* per-(stack, phase) totals for the point being collected */
    struct stack_total *st;
    size_t st_n, st_cap;
    uint32_t *st_index;
    size_t st_index_cap;
};

void pm_sites_init(struct pm_sites *s, enum pm_group by);
void pm_sites_free(struct pm_sites *s);
/* Which frames name a site, and which domains count (0: all). */
void pm_sites_filter(struct pm_sites *s, enum pm_view view, unsigned domains);
/* Adds every entry of `live` into slot `slot`; allocations numbered below
 * `main_seq` are start-up. Returns 0 or -1 (out of memory). */
int pm_sites_collect(struct pm_sites *s, struct pm_stacktree *stacks, const struct pm_live *live,
                     uint64_t main_seq, int slot);

/* What a replay holds now, at one of its stops: its live table, or in an
 * aggregated capture the state the STATES records set. */
struct pm_replay;
int pm_sites_collect_replay(struct pm_sites *s, struct pm_replay *r, uint64_t main_seq, int slot);

/* The same for a past point of a single pass: the entries of `live`
 * allocated by then and what `p` summed of those freed since. */
int pm_sites_collect_point(struct pm_sites *s, struct pm_stacktree *stacks, const struct pm_live *live,
                           const struct pm_point *p, uint64_t main_seq, int slot);

enum pm_order { PM_ORDER_BYTES, PM_ORDER_PHASE_BYTES, PM_ORDER_DIFF, PM_ORDER_PHASE_COUNT };
/* Ends collection: each site's phase is set from its breakdown, and the
 * sites are sorted. */
void pm_sites_sort(struct pm_sites *s, enum pm_order order);
/* PM_ORDER_DIFF, for any site's figures (slot 1 the later point):
 * tracemalloc's order for Snapshot.compare_to, the biggest change first,
 * growth or shrinkage, then the biggest site, so that what a diff is asked
 * about is at the top either way. qsort's sign convention. */
int pm_diff_order(const int64_t xbytes[2], const int64_t xcount[2], const int64_t ybytes[2],
                  const int64_t ycount[2]);

const char *pm_phase_name(int phase);
int pm_group_parse(const char *name, enum pm_group *out);
const char *pm_group_name(enum pm_group by);
/* "malloc,mmap" -> bit mask of domains; -1 for an unknown name. */
int pm_domains_parse(const char *list, unsigned *out);
extern const char *const pm_domain_names[PM_DOMAIN_COUNT];

#endif
