/*
 * pressure: how close the process is to the memory it may use, so that the
 * writer can take an `oom` snapshot and write everything out before an OOM
 * killer's SIGKILL (nothing of pymem's runs after that). The limit is the
 * smallest cgroup memory limit above the process (v2 memory.max, v1
 * memory.limit_in_bytes) against the cgroup's anonymous memory, or else the
 * machine's memory against what is not available (MemAvailable); or a limit
 * given for the process's RSS (PYMEM_MEMORY_LIMIT, for tests and for limits
 * pymem cannot see).
 *
 * Runs in the writer thread (and once at open): stack buffers, no
 * allocation; the file it reads again is kept open (procfile.h), opened by
 * pm_pressure_init where no thread of the program runs.
 */
#ifndef PM_PRESSURE_H
#define PM_PRESSURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* `percent`: the share of the limit in use that counts as pressure (1-99;
 * 0: never). `limit_bytes`: a limit for the RSS, or 0 to find the cgroup's
 * or the machine's. */
void pm_pressure_init(int percent, uint64_t limit_bytes);

/* True once each time use rises to the threshold (again after it fell 5
 * points below it). Looks at most every 10 ms. `rss`: the process's. */
bool pm_pressure_crossed(uint64_t now_ns, uint64_t rss);

/* No more looks (a fork's child that is not followed): the file closed. */
void pm_pressure_close(void);

#endif
