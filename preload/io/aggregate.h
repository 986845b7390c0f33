/*
 * aggregate: the writer's aggregated mode (PYMEM_AGGREGATE, `pymem run
 * --aggregate`), for runs of days: the capture grows with snapshots x live
 * sites, not with events. The rings' event records are decoded here instead
 * of being written; the events are applied in sequence order to a live
 * table of pymem's own, whose totals per (stack, domain, early) key are
 * written as STATES records, with the exact peak as PEAK (format.h).
 * Everything else the rings hold (stacks, strings, modules, threads,
 * snapshots) is handed back to be written as it is.
 *
 * Runs only under the writer's file lock, in the writer thread or in a
 * thread flushing its ring; its memory comes from rawmem, never from malloc.
 */
#ifndef PM_AGGREGATE_H
#define PM_AGGREGATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pymem/live.h"

/* Turns the mode on for this capture; `sample_bytes`: the sampling mean of a
 * sampled capture (the totals are then estimates), 0 in exact mode. */
void pm_aggregate_start(uint64_t sample_bytes);
bool pm_aggregate_on(void);

/* PYMEM_LIVE: the live table kept beside an event capture, for the live C
 * API (pymem/live.h). The writer still writes every record as it is, and
 * also hands the events to pm_aggregate_take and pm_aggregate_apply, which
 * then write nothing through `emit`. */
void pm_aggregate_keep(uint64_t sample_bytes);
bool pm_aggregate_kept(void);
/* Either: the table is there. */
bool pm_aggregate_tracking(void);

/* Takes the whole records a ring held (in two segments, as the ring wraps)
 * for stream `stream`: its events are kept to be applied; the other records
 * are left in *defs (*defs_len bytes, valid until the next call), to be
 * written as the stream's chunk. False when memory ran out or a record
 * could not be decoded: the capture cannot go on. */
bool pm_aggregate_take(uint32_t stream, const uint8_t *s1, size_t n1, const uint8_t *s2, size_t n2,
                       const uint8_t **defs, size_t *defs_len);

/* A snapshot numbered `seq` that the writer took itself: its STATES record
 * is written when the events before it have been applied. */
bool pm_aggregate_note_snapshot(uint64_t seq);

/* Writes records through `emit` (STATES, PEAK, LIVE, COUNTERS), in pieces of
 * whole records; false if it fails. */
typedef bool (*pm_aggregate_emit_fn)(const uint8_t *p, size_t n);

/* Applies every event numbered below `limit`, with a STATES record before
 * each snapshot reached, and a LIVE record every 100 ms. `now_ns`: the time
 * of this pass, for a peak found in it. `flush`: also the state as of
 * `limit`, the peak if it changed, and the counters (every second, and at
 * the end). What it made is written through `emit` when it flushes, when
 * it reached a snapshot, and when it holds more than a few megabytes. */
bool pm_aggregate_apply(uint64_t limit, uint64_t now_ns, bool flush, pm_aggregate_emit_fn emit);

/* Events taken and not applied yet. */
size_t pm_aggregate_pending(void);

/* The window of the live API (pymem/live.h), under the writer's lock with
 * every event before the call applied: begin opens one as of the last event
 * applied, end freezes it; read and sites say what the blocks made in it
 * hold. */
void pm_aggregate_window_begin(void);
void pm_aggregate_window_end(void);
void pm_aggregate_window_read(struct pymem_live *out);
size_t pm_aggregate_window_sites(bool at_peak, struct pymem_live_site *out, size_t max);

/* Drops the table and turns both modes off: in a forked child (whose
 * capture starts empty, as an event capture does, and turns its mode on
 * again), or when the kept table ran out of memory. */
void pm_aggregate_drop(void);

#endif
