/*
 * replay: the state of the process's heap as a capture is replayed: the live
 * table, running totals, the exact high-water mark of live bytes, and
 * callbacks at chosen points ("stops") where an analysis reads the live table.
 *
 * A stop at sequence number S fires once every event numbered <= S has been
 * applied and none after it. For a snapshot numbered S that is the state the
 * snapshot saw; for the peak it is the state right after the allocation that
 * made it; 0 is the start and UINT64_MAX the end of the capture.
 */
#ifndef PMA_REPLAY_H
#define PMA_REPLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "capture.h"
#include "live.h"
#include "point.h"
#include "pymem/format.h"
#include "ranges.h"

/* In a sampled capture, live bytes, peak and snapshot figures are estimates
 * (each sampled block counts size / P(sampled)); allocations, frees and
 * total_allocated are the exact counters the process kept, and `samples`
 * the allocations the capture holds. */
struct pm_totals {
    uint64_t allocations, frees;
    uint64_t samples;
    uint64_t total_allocated;
    uint64_t live_bytes, live_count;
    uint64_t peak_bytes, peak_seq, peak_time_ns;
    uint64_t unmatched_frees; /* frees of blocks allocated before tracking */
    uint64_t retagged;        /* recycled objects re-attributed (RETAG) */
    uint64_t max_rss, max_profiler_bytes;
    uint64_t arena_bytes; /* pymalloc's arenas mapped now (ARENA records, format 4) */
    /* sampled: live bytes recorded whole (mappings), and each half's
     * estimate of the rest (pm_half) */
    double live_whole, live_half[2], peak_half0;
    uint64_t now_ns;
    uint64_t domain_allocations[PM_DOMAIN_COUNT];
    uint64_t domain_bytes[PM_DOMAIN_COUNT];
    uint64_t domain_live[PM_DOMAIN_COUNT]; /* live bytes per domain (event captures) */
};

struct pm_replay;
typedef int (*pm_stop_fn)(void *ctx, size_t stop_index, struct pm_replay *r);
/* Told after each event (0 to go on), with the totals as it left them. */
typedef int (*pm_watch_fn)(void *ctx, const struct pm_replay *r, const struct pm_event *ev);

struct pm_replay {
    struct pm_capture *cap;
    struct pm_live live;
    struct pm_ranges mappings; /* the mmap domain's live ranges */
    struct pm_totals t;
    const uint64_t *stops; /* ascending */
    size_t stop_count, next_stop;
    pm_stop_fn on_stop;
    void *stop_ctx;
    /* single-pass points (pm_replay_points) */
    bool track_peak, track_exit;
    struct pm_point peak, exit;
    /* points named by snapshot label or index (pm_replay_named) */
    const char *names[2];
    struct pm_point named[2];
    int name_count;
    uint32_t snapshots_seen;
    struct pm_point *points[4]; /* those kept: what the live table's observer feeds */
    int point_count;
    bool split_threads; /* kept points keep each thread apart (from the capture's) */
    /* aggregated capture: the state the STATES records set so far (all of
     * it: there is no live table) */
    struct pm_point state;
    struct pm_live_entry freed; /* what the last FREE event took out */
    pm_watch_fn watch; /* pymem plot, pymem lines */
    void *watch_ctx;
    bool main_seen;
    uint64_t main_seq;
};

/* Replays `cap` from the start; calls on_stop at each of `stops` (ascending;
 * may be NULL/0). Returns 0 or -1 (cap->error says why). */
int pm_replay_run(struct pm_replay *r, struct pm_capture *cap, const uint64_t *stops,
                  size_t stop_count, pm_stop_fn on_stop, void *ctx);
void pm_replay_free(struct pm_replay *r);


/* pm_replay_points, and also keeps what the snapshots called `names` (a
 * label, the last snapshot with it; or an index) saw, so that a diff or a
 * leaks --at needs no second pass; with `watch`, tells it of every event.
 * After the pass, pm_replay_point_at finds the point kept for a sequence
 * number. */
int pm_replay_named(struct pm_replay *r, struct pm_capture *cap, bool peak, bool exit, const char *const *names,
                    int count, pm_watch_fn watch, void *watch_ctx);
/* The point kept at `seq` (a named one, the peak or the exit), an empty one
 * for 0 (the start), in an aggregated capture the last state for UINT64_MAX
 * (the end), NULL if none was kept there. */
const struct pm_point *pm_replay_point_at(const struct pm_replay *r, uint64_t seq);

/* One pass that also keeps what the peak and/or the last `exit` snapshot
 * saw (point.h; an embedding program may run several interpreters, each
 * with its exit), so that peak and leaks need no second pass. */
int pm_replay_points(struct pm_replay *r, struct pm_capture *cap, bool peak, bool exit);

/* Sampled captures: each small block belongs to one of two halves (by a
 * hash of its address). The peak's time is where half 0's estimate of live
 * bytes is highest, and the peak is measured with half 1 only, whose
 * estimate at a time chosen without it is unbiased: the maximum of a running
 * estimate picks its upward noise (it overstated peaks by 10-50% on
 * servers). Blocks of 3 sampling means or more (kept 95% of the time or
 * more) and mappings count whole in both: their noise selects nothing, and
 * halving them would only add noise. */
static inline bool pm_halves_split(uint64_t sample_bytes, uint64_t size)
{
    return sample_bytes && size < 3 * sample_bytes;
}

static inline int pm_half(uint64_t addr)
{
    uint64_t h = addr * 0x9e3779b97f4a7c15ull;
    return (int)((h ^ (h >> 29)) >> 63);
}
/* A recorded block's weight (bytes, count, variance) at such a peak: twice
 * its estimate in half 1, nothing in half 0; its estimate when not split. */
void pm_estimate_halved(uint64_t sample_bytes, uint64_t addr, uint64_t size, double *bytes, double *count,
                        double *var);

/* What one recorded block of `size` bytes stands for: itself in an exact
 * capture, size / (1 - exp(-size/R)) bytes and 1 / (1 - exp(-size/R))
 * blocks in a capture sampled with mean R. */
uint64_t pm_estimate_bytes(uint64_t sample_bytes, uint64_t size);
/* The sampling mean that applies to an allocation in `domain`: mappings are
 * recorded whole even in a sampled capture (few and big, and their ranges
 * are cut in pieces), so they weigh 1. */
uint64_t pm_sample_rate(uint64_t sample_bytes, int domain);
double pm_estimate_count(uint64_t sample_bytes, uint64_t size);
/* The variance of pm_estimate_bytes's figure for one recorded block (0 in
 * an exact capture): summed over a site's blocks, it gives the site's 95%
 * interval, +/- 1.96 standard deviations. */
double pm_estimate_var(uint64_t sample_bytes, uint64_t size);

#endif
