/*
 * writer: owns the capture file. One background thread drains every thread's
 * ring into self-delimiting chunks every 10 ms (and, when it finds itself the
 * process's last thread, ends the capture and exits as the last thread
 * would have), stamps the stream with TICK
 * (time, RSS, profiler footprint) and WATERMARK records, and takes the
 * snapshots asked for by `pymem snapshot` (control.h) or by the timer. Every write(2) to the capture goes
 * through here, under one file lock.
 * Failure policy: a failed write (disk full, I/O error) prints one warning and
 * turns profiling off; the program carries on untouched.
 */
#ifndef PM_WRITER_H
#define PM_WRITER_H

#include <stdbool.h>
#include <stdint.h>

struct pm_buffer;

/* Creates the capture (0600, O_EXCL, never following a symlink) and writes
 * its header and first META chunk from `kv` (key, value, ..., NULL).
 * Returns 0, or an errno value.
 * `child`: a followed child. Its file is created only when it has a first
 * event to write, so a fork that execs at once (subprocess before 3.10)
 * leaves no capture; and if the name is taken (an exec'd image keeps its pid)
 * a numbered variant is used. */
int pm_writer_open(const char *path, const char *const *kv, bool child);
/* Appends a META chunk with one more key. */
void pm_writer_meta(const char *key, const char *value);
/* Starts the background thread; false if it cannot (then rings are flushed
 * only when full and at the end). `counters`: the threads count their calls
 * (sampled mode), and every pass writes the totals (COUNTERS). */
bool pm_writer_start(uint64_t snapshot_every_ns, bool counters);

/* Stops the background thread until as many pm_writer_resume() calls (os.fork
 * on Python 3.12+, which warns when it sees more than one thread). While it
 * is stopped, full rings are written by their threads. */
void pm_writer_pause(void);
void pm_writer_resume(void);

/* Producer side: drains `b` now because it is full. False when the capture
 * is no longer being written. */
bool pm_writer_flush_buffer(struct pm_buffer *b);

/* Ends the capture: final drain, WATERMARK, END. Safe to call more than once
 * and from a signal handler (it waits a bounded time for the file lock). */
void pm_writer_finish(int reason, int detail);
/* Writes everything recorded so far and an END, and goes on recording: a
 * capture that ends here, the process killed at once (Python re-raising an
 * unhandled SIGINT after finalising), reads as complete; a later END (the
 * process's exit) replaces this one. */
void pm_writer_checkpoint(int reason);
/* Where a checkpoint ends a lifetime (an interpreter's), the process may die
 * right after it: <pid>.capture is withdrawn there (control.h) and put back
 * here, when recording goes on into the next lifetime. */
void pm_writer_checkpoint_passed(void);
/* At exit(status), after the capture ended at the end of finalisation:
 * appends the status (META "exit_status"), and how many Python objects were
 * allocated after that end (META "after_end", when not 0). */
void pm_writer_exit_status(int status, uint64_t after_end);

/* True while a followed child's capture is not created yet. */
bool pm_writer_pending(void);
/* After an END "exec" whose exec failed: the capture is opened again (if it
 * is still the same file) and recording goes on. True if it does. */
bool pm_writer_reopen(void);

/* In a forked child: forget the parent's file and thread. */
/* A HEAPSTATS record now, positioned after every event numbered so far (a
 * Python snapshot: the allocator's view at the same moment). Not from
 * inside a hook: it takes the allocator's locks. */
void pm_writer_heapstats_now(void);

/* Runs `fn(arg)` under the writer's lock once every event recorded before
 * the call is applied to the live table (aggregate.h), which `fn` may then
 * read. False, without calling it, when there is no table, the capture has
 * ended, or a thread stayed in the middle of a record for seconds. Not from
 * inside a hook: it drains every ring itself. */
bool pm_writer_with_live(void (*fn)(void *), void *arg);

void pm_writer_reset_after_fork(void);

/* The capture's path, for messages ("" before open). */
const char *pm_writer_path(void);

#endif
