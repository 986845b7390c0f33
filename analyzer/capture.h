/*
 * capture: decodes a capture's records and replays its events in the exact
 * process-wide order (by sequence number). Thread streams arrive interleaved
 * chunk by chunk; events are held only until a WATERMARK says nothing older
 * can still come, then sorted and delivered. Held memory is bounded by what
 * the writer wrote between two watermarks, not by the capture's length.
 * Stack and string definitions go straight into `stacks`; the metadata,
 * snapshot list and END record are filled in by each pass.
 */
#ifndef PMA_CAPTURE_H
#define PMA_CAPTURE_H

#include <stdbool.h>
#include <stdint.h>

#include "pymem/encode.h"
#include "pymem/format.h"
#include "merge.h"
#include "modmap.h"
#include "point.h"
#include "reader.h"
#include "stacktree.h"

enum pm_event_type {
    PM_EV_ALLOC,
    PM_EV_FREE,
    PM_EV_MUNMAP, /* addr, size: a range of the mmap domain */
    PM_EV_SNAPSHOT,
    PM_EV_TICK,
    PM_EV_RETAG, /* addr, stack: the live block at addr now belongs to stack */
    PM_EV_STATES, /* aggregated: `size` entries from number `addr` (pm_capture_states) */
    PM_EV_LIVE,   /* aggregated: size live bytes, addr live blocks, at time */
    PM_EV_ARENA,  /* addr, size: pymalloc mapped an arena (in no domain) */
    PM_EV_ARENA_FREE, /* addr, size: ... and returned pages of one */
    PM_EV_HEAPSTATS,  /* time: the allocator's view, c->heapstats[stack] */
};

/* A HEAPSTATS record (format.h): value[key] where have[key], 0 elsewhere. */
struct pm_heapstats {
    uint64_t seq, time_ns;
    int allocator; /* enum pm_allocator */
    uint64_t value[PM_HS_KEYS];
    bool have[PM_HS_KEYS];
    /* set by the replay when it reaches the record: the live heap and
     * pymalloc's arenas at that moment */
    uint64_t live_bytes, arena_bytes;
};

struct pm_event {
    uint64_t seq;
    uint64_t addr;  /* ALLOC, FREE */
    uint64_t size;  /* ALLOC, MUNMAP; TICK: rss bytes */
    uint64_t time;  /* SNAPSHOT, TICK: ns since start */
    uint32_t stack; /* ALLOC, RETAG; SNAPSHOT: index in capture.snapshots */
    uint8_t type;
    uint8_t domain;
    uint16_t thread; /* ALLOC, FREE, MUNMAP, RETAG: the thread that made it (pm_capture.thread_info) */
};

struct pm_snapshot {
    uint64_t seq;
    uint64_t time_ns;
    int kind;
    uint64_t live_bytes; /* set by the analysis that ran the pass */
    char label[204];
};

struct pm_stream_state {
    struct pm_deltas d; /* what its event records are decoded against */
    uint32_t thread;    /* the thread now writing the stream */
};

/* Threads by number, from 1 in the order their THREAD records come (a
 * stream is reused by a new thread); those past PM_THREADS_MAX share the
 * last number. */
#define PM_THREADS_MAX 65535u
struct pm_thread_info {
    uint64_t tid;
    char name[17];
};

struct pm_capture {
    const char *path;
    struct pm_reader reader;
    struct pm_stacktree stacks;
    struct pm_modmap modules;
    /* META */
    long long pid, ppid;
    char python[32];
    char command[1024];
    char role[16]; /* root, fork, spawn, exec; empty before format 3 */
    unsigned long long start_unix_ns;
    int stack_depth;
    int native_depth; /* 0: no native frames recorded */
    uint64_t sample_bytes; /* sampled capture: mean bytes between samples; 0: exact */
    bool follow_fork;
    bool malloc_hooked; /* false: C allocations bypassed the hooks */
    bool python_allocators; /* false: Python's domains were not hooked */
    char python_lost[64];   /* Python domains that were for a time not seen */
    bool recycled;          /* recycled objects were re-attributed (RETAG) */
    int exit_status;        /* -1: unknown */
    uint64_t blocks_before; /* Python blocks live before recording began */
    uint64_t after_end;     /* Python objects allocated after the capture ended */
    uint64_t forks_unrecorded; /* processes forked with os.fork, not followed */
    /* filled by a pass */
    struct pm_snapshot *snapshots;
    uint32_t snapshot_count;
    size_t snapshot_cap;
    uint64_t threads;
    struct pm_thread_info *thread_info; /* [number - 1], filled by a pass */
    size_t thread_info_n, thread_info_cap;
    bool has_end;
    uint64_t end_seq, end_time_ns, end_reason, end_detail, profiler_bytes, unrecorded;
    uint64_t last_time_ns;
    /* aggregated captures (format.h): STATES entries decoded and not yet
     * delivered (entry number `states_base` first), and the last PEAK */
    bool aggregated;
    struct pm_point_total *states;
    size_t states_n, states_cap;
    uint64_t states_base;
    struct pm_point peak_state;
    uint64_t peak_bytes;
    /* HEAPSTATS records, in the order decoded (one pass fills them) */
    struct pm_heapstats *heapstats;
    size_t heapstats_n, heapstats_cap;
    /* sampled and aggregated captures: the last COUNTERS record (exact totals) */
    bool has_counters;
    uint64_t counted_allocations, counted_bytes, counted_frees;
    /* decoding */
    struct pm_stream_state **streams; /* by number, each made at its first chunk */
    uint32_t stream_cap;
    struct pm_merge merge;
    int passes; /* replays so far (the progress line counts them) */
    bool split_threads; /* set by a report: replays keep each thread's points apart */
    char error[600];
};

int pm_capture_open(struct pm_capture *c, const char *path);
/* "glibc", "jemalloc" or "unknown", for enum pm_allocator. */
const char *pm_allocator_name(int allocator);
void pm_capture_close(struct pm_capture *c);

typedef int (*pm_event_fn)(void *ctx, const struct pm_event *ev);

/* One pass over the whole capture, delivering events in sequence order to
 * `fn` (which returns 0 to go on, non-zero to fail the pass). Returns 0, or
 * -1 with c->error set to a one-line message naming file and offset.
 * A SNAPSHOT event's `stack` indexes c->snapshots during the pass; when the
 * pass ends the list is sorted by sequence number. */
int pm_capture_replay(struct pm_capture *c, pm_event_fn fn, void *ctx);

/* The entries of a STATES event, in the order they are delivered; NULL if
 * the event names entries not held (a damaged capture). */
const struct pm_point_total *pm_capture_states(struct pm_capture *c, const struct pm_event *ev);

#endif
