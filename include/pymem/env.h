/*
 * pymem environment: the contract between `pymem run` (analyzer/run.c),
 * which sets these variables for the program it starts, and the preload
 * (preload/lifecycle.c), which reads them once, at load or in a forked
 * child; a user of a bare LD_PRELOAD sets them alike (README,
 * Configuration). The bounds are checked on both sides: `pymem run` refuses
 * a value out of range, the preload takes the default instead.
 */
#ifndef PYMEM_ENV_H
#define PYMEM_ENV_H

#include <string.h>

#define PM_ENV_OUTPUT "PYMEM_OUTPUT"               /* capture path */
#define PM_ENV_DIR "PYMEM_DIR"                     /* the run's directory, handed to children */
#define PM_ENV_FOLLOW_FORK "PYMEM_FOLLOW_FORK"     /* "1": record forked and exec'd children */
#define PM_ENV_STACK_DEPTH "PYMEM_STACK_DEPTH"     /* Python frames per stack */
#define PM_ENV_NATIVE "PYMEM_NATIVE"               /* "1": native frames on C allocations; "all" */
#define PM_ENV_NATIVE_DEPTH "PYMEM_NATIVE_DEPTH"   /* native frames per stack */
#define PM_ENV_PYTHON_ALLOCATORS "PYMEM_PYTHON_ALLOCATORS" /* "0": leave Python's allocators alone */
#define PM_ENV_SAMPLE "PYMEM_SAMPLE"               /* mean bytes between samples */
#define PM_ENV_SAMPLE_SEED "PYMEM_SAMPLE_SEED"
#define PM_ENV_AGGREGATE "PYMEM_AGGREGATE"         /* "1": aggregated recording */
#define PM_ENV_LIVE "PYMEM_LIVE"                   /* "1": keep the live table (pymem/live.h) */
#define PM_ENV_SNAPSHOT_EVERY "PYMEM_SNAPSHOT_EVERY" /* seconds between periodic snapshots */
#define PM_ENV_OOM_SNAPSHOT "PYMEM_OOM_SNAPSHOT"   /* percent of the memory limit; "0": none */
#define PM_ENV_MEMORY_LIMIT "PYMEM_MEMORY_LIMIT"   /* bytes */
#define PM_ENV_SIGNALS "PYMEM_SIGNALS"             /* "0": leave SIGTERM and SIGHUP's defaults */
#define PM_ENV_FRAME_WATCH "PYMEM_FRAME_WATCH"   /* "auto" (default), "1": from start-up, "0": never */
#define PM_ENV_COMPRESS "PYMEM_COMPRESS"           /* zstd level of event chunks; 0: none */
#define PM_ENV_ROOT_PID "PYMEM_ROOT_PID"           /* the run's root process, for its children */
#define PM_ENV_STARTED "PYMEM_STARTED"             /* set by a recording image, for one that replaces it */

/* Capture names. A run's capture is PYMEM_OUTPUT, or by default
 * DIR/pymem-PROGRAM.PID.pmem in the run's directory (PROGRAM: the script
 * without .py, the module of -m, or the executable). A followed child's is
 * STEM.PID.pmem beside its root's (STEM: the root's name without .pmem);
 * when a name is taken (an exec'd image keeps its pid) the capture takes the
 * next free STEM-N.pmem. The analyzer finds a run's captures (`--merge`) by
 * the same rules. */
#define PM_CAPTURE_EXT ".pmem"
#define PM_CAPTURE_DEFAULT_NAME "pymem-%.*s.%d.pmem" /* program (length, text), pid */
#define PM_CAPTURE_CHILD_NAME "%.*s.%d.pmem"         /* stem (length, text), pid */
#define PM_CAPTURE_VARIANT_NAME "%.*s-%d.pmem"       /* stem (length, text), n >= 2 */
#define PM_CAPTURE_CHILD_GLOB ".*.pmem"              /* after the stem */
#define PM_CAPTURE_VARIANT_GLOB "-[0-9]*.pmem"       /* after the stem */

/* The length of `path`'s stem: without its .pmem, if it has one. */
static inline int pm_capture_stem(const char *path)
{
    size_t n = strlen(path), ext = sizeof PM_CAPTURE_EXT - 1;
    return (int)(n > ext && !strcmp(path + n - ext, PM_CAPTURE_EXT) ? n - ext : n);
}

#define PM_STACK_DEPTH_DEFAULT 128
#define PM_STACK_DEPTH_MAX 1024
#define PM_NATIVE_DEPTH_DEFAULT 64
#define PM_NATIVE_DEPTH_MAX 256
#define PM_SAMPLE_DEFAULT (512u * 1024u)
#define PM_OOM_PERCENT_DEFAULT 90

#endif
