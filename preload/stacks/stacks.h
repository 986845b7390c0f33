/*
 * stacks: interns call stacks into a tree (node = frame + parent), so that an
 * event carries one integer. New nodes and strings are announced in the
 * capture by NODE and STRING records, written into the buffer of the thread
 * that created them, before the event that first uses them.
 *
 * Two levels: a per-thread cache (the last walk, compared from the outermost
 * frame so that only the frames that changed are looked up, and a small
 * direct-mapped table of recent lookups) answers almost every event without
 * touching shared state; a miss goes to the process-wide tables under one
 * mutex. The mutex is never held while waiting for anything but the writer's
 * file lock (lock order: stacks, then file).
 */
#ifndef PM_STACKS_H
#define PM_STACKS_H

#include <stdbool.h>
#include <stdint.h>

#include "pymem/env.h"

struct pm_framecache;

struct pm_buffer;
struct pm_stackcache;

/* depth bounds and defaults: pymem/env.h */

/* A thread took buffer `b` (new, or another thread's reused): its cache of
 * recent walks, made or emptied. False when memory is short: that thread's
 * events then carry no stack. */
bool pm_stacks_thread_start(struct pm_buffer *b);

/* Node of the calling thread's current stack (0: none) for an allocation in
 * `domain`: its Python frames, or in native mode its hybrid stack (native
 * return addresses, with the interpreter's frames replaced by the Python
 * frames they run). Native mode unwinds for C allocations (malloc, mmap)
 * only, or for every domain when set so. */
uint32_t pm_stacks_current(struct pm_buffer *b, int domain);

/* A Python frame of the calling thread is about to pop (the frame watch's
 * callback, framewatch.c): pm_pyframes_frame_leaving on its cache. */
void pm_stacks_frame_leaving(void);
/* The calling thread's frame cache (3.11's frame evaluator keeps its count
 * of the frames it runs there), or NULL before the thread records. */
struct pm_framecache *pm_stacks_framecache(void);

/* Python stack walking starts once the interpreter is up (pyhooks.c) and
 * stops when it begins to finalise: its thread states are then being freed.
 * Native frames are recorded whenever native mode is on. */
void pm_stacks_enable(bool on);
void pm_stacks_set_depth(int depth);
/* Whether the frame watch can spare walks their checks in this process
 * (pyhooks.c decides once the interpreter is known): without it, walks
 * check only the frames a stack can keep (pm_pyframes_set_window). */
void pm_stacks_set_watched(bool watched);
/* Native mode (call before recording starts): `depth` native frames, for
 * C allocations only or, with `all_domains`, for Python's too. */
void pm_stacks_set_native(int depth, bool all_domains);
bool pm_stacks_native(void);

/* The frames of `node`, innermost first, as the live API gives them
 * (pymem/live.h, pymem_stack_text); -1 for a node this process has not
 * made. Takes the stacks lock: not from inside a hook. */
int pm_stacks_text(uint32_t node, char *out, size_t cap);

/* In a forked child: start over with empty process-wide tables. */
void pm_stacks_reset_after_fork(void);

#endif
