/*
 * libFuzzer target: one input is one capture file, read by one of the
 * analysis commands (summary, snapshots, peak, leaks at exit and since start,
 * diff start..end, trend, lines, plot, exports, temporaries, fragmentation,
 * the run-end report), as a user's pymem would read a file
 * from elsewhere. Built with the checksum check off (PM_FUZZING) so that the
 * fuzzer reaches the decoders. `make fuzz` runs it; inputs it ever found
 * crashing or hanging are kept in tests/hostile and replayed by make test.
 */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "commands.h"
#include "export.h"
#include "fragmentation.h"
#include "lines.h"
#include "plot.h"
#include "temporaries.h"
#include "trend.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *null;
    if (!null)
        null = fopen("/dev/null", "w");
    int fd = memfd_create("capture", MFD_CLOEXEC);
    if (fd < 0)
        return 0;
    if (write(fd, data, size) == (ssize_t)size) {
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        /* One analysis per input, chosen by its length, so that every
         * command is run and the fuzzer keeps its pace. */
        struct pm_opts o = {.by = PM_BY_LINENO, .top = 0};
        char *no_files[] = {NULL};
        char *paths[] = {path};
        switch (size % 14) {
        case 0:
            pm_cmd_summary(null, path, &o);
            break;
        case 1:
            pm_cmd_snapshots(null, path, &o);
            break;
        case 2:
            pm_cmd_peak(null, path, &o);
            break;
        case 3:
            o.by = PM_BY_TRACEBACK;
            o.view = PM_VIEW_NATIVE;
            pm_cmd_leaks(null, path, &o);
            break;
        case 4:
            o.by = PM_BY_FILENAME;
            o.view = PM_VIEW_PYTHON;
            o.since = "start";
            o.at = "end";
            pm_cmd_leaks(null, path, &o);
            break;
        case 5:
            o.from = "start";
            o.to = "end";
            pm_cmd_diff(null, path, &o);
            break;
        case 6:
            pm_cmd_trend(null, paths, 1, false, &o);
            break;
        case 7:
            pm_cmd_lines(null, path, no_files, 0, size & 64);
            break;
        case 8:
            pm_plot_svg(null, path, false, size & 64);
            break;
        case 9:
            o.by = PM_BY_TRACEBACK;
            o.format = size & 64 ? PM_EXPORT_PPROF : PM_EXPORT_FOLDED;
            pm_cmd_peak(null, path, &o);
            break;
        case 10:
            o.by = PM_BY_TRACEBACK;
            o.format = PM_EXPORT_HTML;
            o.at = "exit";
            pm_cmd_leaks(null, path, &o);
            break;
        case 11:
            o.by = PM_BY_OWN;
            o.within_ms = size & 64 ? 5 : 0;
            pm_cmd_temporaries(null, path, &o);
            break;
        case 12:
            o.by = PM_BY_OWN;
            o.json = size & 64;
            pm_cmd_fragmentation(null, path, &o);
            break;
        default:
            o.by = PM_BY_OWN;
            pm_cmd_brief(null, path);
        }
    }
    close(fd);
    return 0;
}
