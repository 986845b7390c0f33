/*
 * main: the `pymem` command line. Parses options, expands a directory of
 * captures (one per process with --follow-fork), and dispatches to the
 * commands. Exit status: 0 success, 1 bad input or failure, 2 bad usage.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <elfutils/libdwfl.h>
#include <zstd.h>

#include "combine.h"
#include "export.h"
#include "lines.h"
#include "temporaries.h"
#include "compare.h"
#include "fragmentation.h"
#include "plot.h"
#include "commands.h"
#include "cli.h"
#include "grow.h"
#include "json.h"
#include "run.h"
#include "runfiles.h"
#include "snapshot.h"
#include "trend.h"
#include "pymem/format.h"

#ifdef __clang__
#define PM_COMPILER "clang " __clang_version__
#else
#define PM_COMPILER "gcc " __VERSION__
#endif

#ifndef PM_VERSION
#define PM_VERSION "unknown"
#endif

/* Texts both the usage and a command's own help give. */
#define HELP_GROUPS                                                                                \
    "  G: own (default: the innermost line of the program's own code, not of the\n"                \
    "  standard library or installed packages), lineno (the innermost line, as\n"                  \
    "  tracemalloc groups), filename or traceback. Snapshots are named by index or\n"               \
    "  label; start, peak, exit and end are always there.\n"
#define HELP_SITE_OPTIONS                                                                          \
    "    --native        sites by the innermost frame, native frames included\n"                   \
    "    --python-only   native frames left out (captures made with --native)\n"                   \
    "    --domain D,...  only malloc, pyraw, pymem, pyobj and/or mmap allocations\n"                \
    "    --wrappers F,...  functions that name no native site (default: operator new,\n"           \
    "                    std::allocator, the malloc family...; '' for none)\n"
#define HELP_MAX_MEMORY                                                                            \
    "    --max-memory SIZE  at most this much memory for the analysis (K, M, G; default\n"         \
    "                    half the machine's memory): a capture that would need more is an error\n"

static void usage(FILE *out)
{
    fputs("usage: pymem <command> [options]\n"
          "\n"
          "Profile:\n"
          "  run [options] [--] script.py|-m module|command [args]   run a program under pymem\n"
          "  snapshot PID [--label L]      take a snapshot in a running profiled process\n"
          "\n"
          "Analyse a capture (or a directory of captures):\n"
          "  summary CAPTURE [--json]                       totals, peak, snapshots\n"
          "  peak CAPTURE [--by G] [--top N] [--json]       what was live at the peak\n"
          "  leaks CAPTURE [--at SNAP] [--since SNAP] [--by G] [--top N] [--json]\n"
          "                                                 what was still live at exit (or at SNAP),\n"
          "                                                 of what was allocated after --since\n"
          "  diff CAPTURE A B [--by G] [--top N] [--json]   growth between two snapshots\n"
          "  snapshots CAPTURE [--json]                     list snapshots\n"
          "  trend CAPTURE [--by G] [--top N] [--json]      which sites grow steadily over the\n"
          "                                                 snapshots (at least 3: --snapshot-every)\n"
          "  export CAPTURE --format folded|speedscope|csv|pprof [--at SNAP|--leaks|--diff A B] [-o FILE]\n"
          "                                                 the sites for other tools (pymem export --help)\n"
          "  plot CAPTURE [--domains] [-o FILE.svg]         memory over time, a standalone SVG\n"
          "  flamegraph CAPTURE [--at SNAP|--leaks|--diff A B] [--split-threads] [-o FILE.html]\n"
          "                                                 a flame graph page that works offline\n"
          "  lines CAPTURE [FILE.py ...] [--json]           memory per line of the program's own source\n"
          "  temporaries CAPTURE [--within N|Tms] [--by G] [--top N] [--json]\n"
          "                                                 allocations freed right after they were made:\n"
          "                                                 before their thread made N more (default 1,\n"
          "                                                 heaptrack's and memray's rule), or within T ms\n"
          "  fragmentation CAPTURE [--top N] [--json]       leak or fragmentation? RSS against the live\n"
          "                                                 heap and the allocator's own view, the gap\n"
          "                                                 split into its causes, a verdict, and the\n"
          "                                                 sites whose few objects keep arenas mapped\n"
          "  compare A B [--json]                           two runs (another allocator: pymem run\n"
          "                                                 --allocator): RSS and live heap over time\n"
          "\n"
          "  CAPTURE may be a directory: each .pmem in it is reported in turn, and\n"
          "  with --merge (summary, peak, leaks, diff) the processes of a run are\n"
          "  reported together: a table of the processes, and sites summed over them\n"
          "  (each process at its own peak, exit or snapshots). A run's root capture\n"
          "  with --merge stands for the run (its children's captures beside it).\n"
          "  Captures without the snapshots asked for are skipped with a note.\n"
          "\n"
          HELP_GROUPS
          "  peak, leaks, diff, trend and temporaries also take:\n"
          HELP_SITE_OPTIONS
          "  Every analysis also takes:\n"
          HELP_MAX_MEMORY
          "  pymem CMD --help for a command's own options; pymem run --help for run's.\n",
          out);
}

/* `pymem CMD --help` (and `pymem help CMD`) for the commands that report
 * sites or figures from captures: the synopsis, what it tells, and the
 * options it takes. NULL for a command without a text of its own here. */
struct command_help {
    const char *name, *synopsis, *what;
    bool sites; /* takes G, SNAP and the sites options below */
    bool merge; /* takes --merge */
};

static const struct command_help command_helps[] = {
    {"summary", "summary CAPTURE [--json] [--merge] [--max-memory SIZE]",
     "totals, the peak and when, what was live at the end, RSS and the allocator's heap, the\n"
     "  domains and the snapshots",
     false, true},
    {"peak",
     "peak CAPTURE [--by G] [--top N] [--json] [--domain D,...] [--native | --python-only]\n"
     "                  [--wrappers F,...] [--merge] [--max-memory SIZE]",
     "what was live at the exact high-water mark of live bytes, by site, biggest first", true, true},
    {"leaks",
     "leaks CAPTURE [--at SNAP] [--since SNAP] [--by G] [--top N] [--json] [--domain D,...]\n"
     "                   [--native | --python-only] [--wrappers F,...] [--merge] [--max-memory SIZE]",
     "leak candidates: what was still live when the program's own code had finished (the exit\n"
     "  snapshot), or at SNAP; with --since, only what was allocated after that snapshot",
     true, true},
    {"diff",
     "diff CAPTURE A B [--by G] [--top N] [--json] [--domain D,...] [--native | --python-only]\n"
     "                  [--wrappers F,...] [--merge] [--max-memory SIZE]",
     "growth between snapshots A and B, by site, most grown first (tracemalloc's compare_to)", true, true},
    {"snapshots", "snapshots CAPTURE [--json] [--max-memory SIZE]",
     "the snapshots: index, label, kind, time and live bytes", false, false},
    {"trend",
     "trend CAPTURE [--by G] [--top N] [--json] [--domain D,...] [--native | --python-only]\n"
     "                   [--wrappers F,...] [--merge] [--max-memory SIZE]",
     "which sites grow steadily over the snapshots taken after start-up (at least 3: pymem run\n"
     "  --snapshot-every, or pymem snapshot): rate, fit, and steady, plateau, fluctuating or shrinking",
     true, true},
    {"temporaries",
     "temporaries CAPTURE [--within N|Tms] [--by G] [--top N] [--json] [--domain D,...]\n"
     "                         [--native | --python-only] [--wrappers F,...] [--max-memory SIZE]",
     "allocations freed right after they were made: before their thread made N more (default 1,\n"
     "  heaptrack's and memray's rule), or within T milliseconds",
     true, false},
    {"fragmentation", "fragmentation CAPTURE [--top N] [--json] [--max-memory SIZE]",
     "leak or fragmentation? RSS against the live heap and the allocator's own view, the gap split\n"
     "  into its causes, a verdict, and the sites whose few objects keep arenas mapped",
     false, false},
    {"compare", "compare A B [--json] [--max-memory SIZE]",
     "two runs of one program (another allocator: pymem run --allocator): RSS and live heap over time",
     false, false},
};

static bool command_usage(const char *cmd, FILE *out)
{
    for (size_t i = 0; i < sizeof command_helps / sizeof command_helps[0]; i++) {
        const struct command_help *h = &command_helps[i];
        if (strcmp(h->name, cmd) != 0)
            continue;
        fprintf(out, "usage: pymem %s\n  %s\n", h->synopsis, h->what);
        if (h->sites)
            fputs("\n" HELP_GROUPS "  --top N: the sites shown (default 10, 0 for all). Also:\n" HELP_SITE_OPTIONS
                  HELP_MAX_MEMORY,
                  out);
        else
            fputs("\n  Also:\n" HELP_MAX_MEMORY, out);
        if (h->merge)
            fputs("\n"
                  "  CAPTURE may be a directory: each .pmem in it in turn; with --merge, the processes\n"
                  "  of a run together (a run's root capture stands for the run).\n",
                  out);
        return true;
    }
    return false;
}

/* The version, the capture format, and what this build was made with. */
static void print_version(FILE *out)
{
    fprintf(out, "pymem %s\n", PM_VERSION);
    fprintf(out, "capture format %u (reads versions %u to %u)\n", PM_FORMAT_VERSION, PM_FORMAT_VERSION_MIN,
            PM_FORMAT_VERSION);
    fprintf(out, "built with %s; zstd %s; elfutils libdw %s; native stacks: libunwind, loaded by --native\n",
            PM_COMPILER, ZSTD_versionString(), dwfl_version(NULL));
}

typedef int (*command_fn)(FILE *, const char *, const struct pm_opts *);

/* A capture is input from elsewhere: what reading it may take is bounded
 * (the data segment, which malloc's mappings count in), so that a file that
 * needs more ends in "out of memory" rather than in swapping the machine.
 * Default: half the physical memory. */
static void limit_memory(unsigned long long bytes)
{
#ifdef __SANITIZE_ADDRESS__
    /* AddressSanitizer's allocator maps its regions as data: under a limit
     * it fails at its first allocation (make asan). */
    (void)bytes;
    return;
#endif
    if (!bytes) {
        long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
        if (pages <= 0 || page <= 0)
            return;
        bytes = (unsigned long long)pages * (unsigned long long)page / 2;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_DATA, &rl) != 0)
        return;
    if (rl.rlim_max != RLIM_INFINITY && bytes > rl.rlim_max)
        bytes = rl.rlim_max;
    if (rl.rlim_cur == RLIM_INFINITY || bytes < rl.rlim_cur) {
        rl.rlim_cur = bytes;
        setrlimit(RLIMIT_DATA, &rl);
    }
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The .pmem files of directory `path`, sorted by name, into *names. */
static int list_captures(const char *path, char ***names, size_t *count)
{
    DIR *d = opendir(path);
    if (!d) {
        fprintf(stderr, "pymem: %s: cannot open directory\n", path);
        return 1;
    }
    size_t n = 0, cap = 0;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len <= 5 || strcmp(e->d_name + len - 5, ".pmem"))
            continue;
        size_t plen = strlen(path) + len + 2;
        char *name = malloc(plen);
        if (!name || pm_grow(names, &cap, sizeof **names, n + 1, 16)) {
            free(name);
            fprintf(stderr, "pymem: %s: out of memory\n", path);
            rc = 1;
            break;
        }
        snprintf(name, plen, "%s/%s", path, e->d_name);
        (*names)[n++] = name;
    }
    closedir(d);
    if (!rc && n == 0) {
        fprintf(stderr, "pymem: %s: no .pmem captures in this directory\n", path);
        rc = 1;
    }
    if (n)
        qsort(*names, n, sizeof **names, compare_names);
    *count = n;
    return rc;
}

static void note_skipped(const char *name, const struct pm_opts *o)
{
    if (o->from)
        fprintf(stderr, "pymem: note: %s has no snapshot '%s' or '%s': skipped\n", name, o->from, o->to);
    else
        fprintf(stderr, "pymem: note: %s has no point '%s'%s%s%s: skipped\n", name, o->at ? o->at : "exit",
                o->since ? " or '" : "", o->since ? o->since : "", o->since ? "'" : "");
}

static enum pm_sites_kind kind_of(command_fn fn)
{
    return fn == pm_cmd_peak ? PM_REPORT_PEAK : fn == pm_cmd_diff ? PM_REPORT_DIFF : PM_REPORT_LEAKS;
}

/* The captures `path` names: those of a directory; with `merge`, a root
 * capture and the others of its run; or itself. 0, or 1 after an error. */
static int gather(const char *path, bool merge, char ***names, size_t *n, bool *dir)
{
    struct stat st;
    *names = NULL;
    *n = 0;
    *dir = stat(path, &st) == 0 && S_ISDIR(st.st_mode);
    if (*dir)
        return list_captures(path, names, n);
    if (merge && pm_run_captures(path, names, n) == 0)
        return 0;
    if (!merge && (*names = malloc(sizeof **names)) && ((*names)[0] = strdup(path))) {
        *n = 1;
        return 0;
    }
    fprintf(stderr, "pymem: out of memory\n");
    return 1;
}

/* Runs `fn` on `path`, or on each capture in it if it is a directory; with
 * `merge`, the captures' sites are summed into one report. */
static int run_on(command_fn fn, const char *path, struct pm_opts *o, bool merge)
{
    struct stat st;
    if ((stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) && !merge)
        return fn(stdout, path, o);
    char **names;
    size_t n;
    bool dir;
    int rc = gather(path, merge, &names, &n, &dir);
    o->one_of_many = dir || n > 1;
    struct pm_combined m;
    pm_combined_init(&m, kind_of(fn), o->by);
    m.summary = fn == pm_cmd_summary;
    m.from_label = o->from;
    m.to_label = o->to ? o->to : o->at ? o->at : "exit";
    if (merge)
        o->combined = &m;
    if (!rc && o->json && !merge)
        fputs("[\n", stdout);
    size_t reported = 0;
    for (size_t i = 0; !rc && i < n; i++) {
        if (!merge && !o->json)
            printf("%s== %s\n", i ? "\n" : "", names[i]);
        else if (!merge && i)
            fputs(",\n", stdout);
        fflush(stdout);
        int r = fn(stdout, names[i], o);
        if (r == PM_SKIPPED) {
            note_skipped(names[i], o);
            m.skipped++;
            if (o->json && !merge) {
                fputs("{\"file\": ", stdout);
                pm_json_str(stdout, names[i]);
                fputs(", \"skipped\": true}\n", stdout);
            }
        } else {
            rc |= r;
            reported++;
        }
    }
    if (!rc && o->json && !merge)
        fputs("]\n", stdout);
    if (!rc && reported == 0) {
        fprintf(stderr, "pymem: %s: no capture has the points asked for\n", path);
        rc = 1;
    }
    if (!rc && merge) {
        if (m.summary) {
            pm_report_combined_summary(stdout, &m, o->json);
        } else {
            pm_combined_sort(&m, m.kind == PM_REPORT_DIFF ? PM_ORDER_DIFF
                                 : m.kind == PM_REPORT_LEAKS ? PM_ORDER_PHASE_BYTES : PM_ORDER_BYTES);
            pm_report_combined(stdout, &m, o->top, o->json);
        }
    }
    pm_combined_free(&m);
    pm_run_captures_free(names, n);
    return rc;
}

/* pymem lines CAPTURE [FILE.py ...] [--json] */
static int lines_main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    bool json = false;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'j') {
            json = true;
        } else if (c == 'h') {
            fputs("usage: pymem lines CAPTURE [FILE.py ...] [--json]\n"
                  "  memory per source line of the program's own files (or of the files named): bytes and blocks\n"
                  "  allocated, live at the peak and at exit; an allocation counts at the innermost frame in them\n",
                  stdout);
            return 0;
        } else {
            pm_option_error("lines", "h", opts, optopt, argv[optind - 1], "pymem lines --help");
            return 2;
        }
    }
    if (argc - optind < 1) {
        fputs("pymem lines: expected a CAPTURE\n", stderr);
        return 2;
    }
    limit_memory(0);
    return pm_cmd_lines(stdout, argv[optind], argv + optind + 1, argc - optind - 1, json);
}

/* pymem plot CAPTURE [-o FILE.svg] */
static int plot_main(int argc, char **argv)
{
    static const struct option opts[] = {{"output", required_argument, NULL, 'o'},
                                         {"domains", no_argument, NULL, 'd'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *output = NULL;
    bool domains = false;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        if (c == 'o') {
            output = optarg;
        } else if (c == 'd') {
            domains = true;
        } else if (c == 'h') {
            fputs("usage: pymem plot CAPTURE [--domains] [-o FILE.svg]\n"
                  "  memory over time as a standalone SVG: exact live bytes (each column from its lowest to its\n"
                  "  highest value, so that no peak is lost), RSS, the snapshots and the peak; with --domains a\n"
                  "  line per allocation domain (malloc, pyraw, pymem, pyobj, mmap) too\n",
                  stdout);
            return 0;
        } else {
            pm_option_error("plot", "o:h", opts, optopt, argv[optind - 1], "pymem plot --help");
            return 2;
        }
    }
    if (argc - optind != 1) {
        fputs("pymem plot: expected one CAPTURE\n", stderr);
        return 2;
    }
    FILE *out = stdout;
    if (output && !(out = fopen(output, "w"))) {
        fprintf(stderr, "pymem plot: cannot write %s: %s\n", output, strerror(errno));
        return 1;
    }
    limit_memory(0);
    int rc = pm_plot_svg(out, argv[optind], false, domains);
    if (out != stdout && fclose(out) != 0 && !rc) {
        fprintf(stderr, "pymem plot: cannot write %s: %s\n", output, strerror(errno));
        rc = 1;
    }
    return rc;
}

/* pymem export CAPTURE --format F [--at SNAP | --leaks | --diff A B]
 * [--by G] [--domain D] [-o FILE]: the sites of the peak (default), of a
 * point, or the growth between two, for other tools; `flamegraph`: the
 * same as an HTML page (default FILE: the capture's name, .html). */
static int export_main(int argc, char **argv, bool flamegraph)
{
    const char *cmd = flamegraph ? "flamegraph" : "export";
    static const struct option opts[] = {
        {"format", required_argument, NULL, 'f'}, {"at", required_argument, NULL, 'a'},
        {"leaks", no_argument, NULL, 'l'},       {"diff", required_argument, NULL, 'D'},
        {"output", required_argument, NULL, 'o'}, {"by", required_argument, NULL, 'b'},
        {"domain", required_argument, NULL, 'd'}, {"help", no_argument, NULL, 'h'},
        {"split-threads", no_argument, NULL, 'T'},
        {NULL, 0, NULL, 0},
    };
    struct pm_opts o = {.by = PM_BY_TRACEBACK, .top = 0};
    enum pm_export_format format = flamegraph ? PM_EXPORT_HTML : PM_EXPORT_NONE;
    const char *output = NULL;
    bool leaks = false, by_given = false;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "f:o:b:h", opts, NULL)) != -1) {
        switch (c) {
        case 'f':
            if (flamegraph || pm_export_parse(optarg, &format)) {
                fprintf(stderr, "pymem export: --format takes folded, speedscope, csv or pprof, not '%s'\n", optarg);
                return 2;
            }
            break;
        case 'a':
            o.at = optarg;
            break;
        case 'l':
            leaks = true;
            break;
        case 'D':
            o.from = optarg;
            break;
        case 'T':
            if (!flamegraph) {
                fputs("pymem export: --split-threads is an option of flamegraph\n", stderr);
                return 2;
            }
            o.split_threads = true;
            break;
        case 'o':
            output = optarg;
            break;
        case 'b':
            if (pm_group_parse(optarg, &o.by)) {
                fprintf(stderr, "pymem export: --by takes own, lineno, filename or traceback, not '%s'\n", optarg);
                return 2;
            }
            by_given = true;
            break;
        case 'd':
            if (pm_domains_parse(optarg, &o.domains)) {
                fprintf(stderr, "pymem export: --domain takes a list of malloc, pyraw, pymem, pyobj, mmap, not '%s'\n",
                        optarg);
                return 2;
            }
            break;
        case 'h':
            if (flamegraph) {
                fputs("usage: pymem flamegraph CAPTURE [--at SNAP | --leaks | --diff A B] [--domain D,...]\n"
                      "                        [--split-threads] [-o FILE.html]\n"
                      "  one self-contained HTML page (works offline): a flame graph of what was live at the peak\n"
                      "  (default), at SNAP, at exit (--leaks), or from A to B (widths at B, red grew, blue shrank),\n"
                      "  with zoom, search, an icicle view and toggles for library and native frames; memory over\n"
                      "  time, on which a dragged window shows its own graph; --split-threads: a root per thread,\n"
                      "  and a thread filter\n",
                      stdout);
                return 0;
            }
            fputs("usage: pymem export CAPTURE --format folded|speedscope|csv|pprof [--at SNAP | --leaks | --diff A B]\n"
                  "                    [--by G] [--domain D,...] [-o FILE]\n"
                  "  the sites live at the peak (default), at SNAP, at exit (--leaks), or the growth from A to B;\n"
                  "  folded and speedscope take whole stacks, csv one row per site (--by, default own)\n",
                  stdout);
            return 0;
        default:
            pm_option_error(cmd, "f:o:b:h", opts, optopt, argv[optind - 1], flamegraph ? "pymem flamegraph --help" : "pymem export --help");
            return 2;
        }
    }
    int left = argc - optind;
    if (format == PM_EXPORT_NONE || left != (o.from ? 2 : 1) || (!!o.at + leaks + !!o.from) > 1) {
        fprintf(stderr, "pymem %s: expected CAPTURE%s and at most one of --at SNAP, --leaks, --diff A B\n", cmd,
                flamegraph ? "" : " --format folded|speedscope|csv|pprof");
        return 2;
    }
    if (format == PM_EXPORT_CSV && !by_given)
        o.by = PM_BY_OWN;
    if (format != PM_EXPORT_CSV && o.by != PM_BY_TRACEBACK) {
        fputs("pymem export: folded, speedscope and pprof export whole stacks (--by traceback)\n", stderr);
        return 2;
    }
    o.format = format;
    o.to = o.from ? argv[optind + 1] : NULL;
    command_fn fn = o.from ? pm_cmd_diff : o.at || leaks ? pm_cmd_leaks : pm_cmd_peak;
    char page[PATH_MAX];
    if (flamegraph && !output) {
        const char *capture = argv[optind];
        size_t n = strlen(capture);
        int stem = (int)n - (n > 5 && !strcmp(capture + n - 5, ".pmem") ? 5 : 0);
        snprintf(page, sizeof page, "%.*s.html", stem, capture);
        output = page;
    }
    FILE *out = stdout;
    if (output && !(out = fopen(output, "w"))) {
        fprintf(stderr, "pymem %s: cannot write %s: %s\n", cmd, output, strerror(errno));
        return 1;
    }
    limit_memory(0);
    int rc = fn(out, argv[optind], &o);
    if (out != stdout && fclose(out) != 0 && !rc) {
        fprintf(stderr, "pymem %s: cannot write %s: %s\n", cmd, output, strerror(errno));
        rc = 1;
    }
    if (!rc && flamegraph)
        fprintf(stderr, "pymem: wrote %s\n", output);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if ((!strcmp(cmd, "help") && argc == 2) || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
        print_version(stdout);
        return 0;
    }
    /* help CMD: what CMD --help says (the man page says the same). */
    if (!strcmp(cmd, "help") && argc == 3) {
        char *args[] = {argv[0], argv[2], "--help", NULL};
        return main(3, args);
    }
    if (!strcmp(cmd, "run"))
        return pm_run_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "snapshot"))
        return pm_snapshot_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "export") || !strcmp(cmd, "flamegraph"))
        return export_main(argc - 1, argv + 1, !strcmp(cmd, "flamegraph"));
    if (!strcmp(cmd, "plot"))
        return plot_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "lines"))
        return lines_main(argc - 1, argv + 1);

    command_fn fn;
    int operands;
    bool compare = false;
    if (!strcmp(cmd, "summary")) {
        fn = pm_cmd_summary;
        operands = 1;
    } else if (!strcmp(cmd, "snapshots")) {
        fn = pm_cmd_snapshots;
        operands = 1;
    } else if (!strcmp(cmd, "peak")) {
        fn = pm_cmd_peak;
        operands = 1;
    } else if (!strcmp(cmd, "leaks")) {
        fn = pm_cmd_leaks;
        operands = 1;
    } else if (!strcmp(cmd, "diff")) {
        fn = pm_cmd_diff;
        operands = 3;
    } else if (!strcmp(cmd, "trend")) {
        fn = NULL;
        operands = 1;
    } else if (!strcmp(cmd, "temporaries")) {
        fn = pm_cmd_temporaries;
        operands = 1;
    } else if (!strcmp(cmd, "fragmentation")) {
        fn = pm_cmd_fragmentation;
        operands = 1;
    } else if (!strcmp(cmd, "compare")) {
        fn = NULL;
        compare = true;
        operands = 2;
    } else {
        fprintf(stderr, "pymem: unknown command '%s' (see 'pymem help')\n", cmd);
        return 2;
    }

    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'}, {"by", required_argument, NULL, 'b'},
        {"top", required_argument, NULL, 't'}, {"at", required_argument, NULL, 'a'},
        {"since", required_argument, NULL, 's'}, {"wrappers", required_argument, NULL, 'w'},
        {"max-memory", required_argument, NULL, 'M'},
        {"native", no_argument, NULL, 'N'}, {"python-only", no_argument, NULL, 'P'},
        {"domain", required_argument, NULL, 'd'}, {"help", no_argument, NULL, 'h'},
        {"merge", no_argument, NULL, 'm'}, {"within", required_argument, NULL, 'W'},
        {NULL, 0, NULL, 0},
    };
    bool sites_command = fn == pm_cmd_peak || fn == pm_cmd_leaks || fn == pm_cmd_diff || (!fn && !compare) || fn == pm_cmd_temporaries;
    struct pm_opts o = {.by = PM_BY_OWN, .top = 10};
    unsigned long long max_memory = 0;
    bool merge = false;
    int c;
    optind = 1;
    opterr = 0; /* one line of our own instead of getopt's */
    /* Options may come before or after the operands. */
    while ((c = getopt_long(argc - 1, argv + 1, "jb:t:a:h", opts, NULL)) != -1) {
        if ((c == 'N' || c == 'P' || c == 'd' || c == 'w') && !sites_command) {
            fprintf(stderr, "pymem %s: %s is an option of peak, leaks, diff, trend and temporaries\n", cmd, argv[optind]);
            return 2;
        }
        switch (c) {
        case 'N':
        case 'P': {
            enum pm_view v = c == 'N' ? PM_VIEW_NATIVE : PM_VIEW_PYTHON;
            if (o.view != PM_VIEW_HYBRID && o.view != v) {
                fprintf(stderr, "pymem %s: --native and --python-only exclude each other\n", cmd);
                return 2;
            }
            o.view = v;
            break;
        }
        case 'd':
            if (pm_domains_parse(optarg, &o.domains)) {
                fprintf(stderr, "pymem %s: --domain takes a list of malloc, pyraw, pymem, pyobj, mmap, not '%s'\n",
                        cmd, optarg);
                return 2;
            }
            break;
        case 'w':
            o.wrappers = optarg;
            break;
        case 'M':
            if (pm_parse_size(optarg, &max_memory)) {
                fprintf(stderr, "pymem %s: --max-memory takes a size such as 4G or 512M, not '%s'\n", cmd, optarg);
                return 2;
            }
            break;
        case 'j':
            o.json = true;
            break;
        case 'W': {
            char *end;
            double v = strtod(optarg, &end);
            if (fn != pm_cmd_temporaries) {
                fprintf(stderr, "pymem %s: --within is an option of temporaries\n", cmd);
                return 2;
            }
            bool ms = !strcmp(end, "ms");
            if (end == optarg || (*end && !ms) || !(v > 0) || (!ms && (v != (unsigned)v || v > 4096))) {
                fprintf(stderr, "pymem %s: --within takes a number of allocations (1 to 4096) or of milliseconds "
                                "(such as 5ms), not '%s'\n", cmd, optarg);
                return 2;
            }
            if (ms)
                o.within_ms = v;
            else
                o.within_allocations = (unsigned)v;
            break;
        }
        case 'm':
            if (fn == pm_cmd_snapshots || fn == pm_cmd_temporaries) {
                fprintf(stderr, "pymem %s: --merge is an option of summary, peak, leaks, diff and trend\n", cmd);
                return 2;
            }
            merge = true;
            break;
        case 'b':
            if (pm_group_parse(optarg, &o.by)) {
                fprintf(stderr, "pymem %s: --by takes own, lineno, filename or traceback, not '%s'\n", cmd, optarg);
                return 2;
            }
            break;
        case 't': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end || v < 0) {
                fprintf(stderr, "pymem %s: --top takes a whole number (0 for all), not '%s'\n", cmd, optarg);
                return 2;
            }
            o.top = v;
            break;
        }
        case 'a':
            if (fn != pm_cmd_leaks) {
                fprintf(stderr, "pymem %s: --at is an option of leaks\n", cmd);
                return 2;
            }
            o.at = optarg;
            break;
        case 's':
            if (fn != pm_cmd_leaks) {
                fprintf(stderr, "pymem %s: --since is an option of leaks\n", cmd);
                return 2;
            }
            o.since = optarg;
            break;
        case 'h':
            if (!command_usage(cmd, stdout))
                usage(stdout);
            return 0;
        default: {
            char help[64];
            snprintf(help, sizeof help, "pymem help %s", cmd);
            pm_option_error(cmd, "jb:t:a:h", opts, optopt, argv[optind], help);
            return 2;
        }
        }
    }
    int left = argc - 1 - optind;
    char **rest = argv + 1 + optind;
    if (left != operands) {
        fprintf(stderr, "pymem %s: expected %s, got %d argument(s)\n", cmd,
                operands == 1 ? "one CAPTURE" : operands == 2 ? "two captures A B" : "CAPTURE A B", left);
        return 2;
    }
    if (fn == pm_cmd_diff) {
        o.from = rest[1];
        o.to = rest[2];
    }
    limit_memory(max_memory);
    if (compare)
        return pm_cmd_compare(stdout, rest[0], rest[1], &o);
    if (!fn) {
        char **names;
        size_t n;
        bool dir;
        int rc = gather(rest[0], merge, &names, &n, &dir);
        if (!rc)
            rc = pm_cmd_trend(stdout, names, n, merge, &o);
        pm_run_captures_free(names, n);
        return rc;
    }
    return run_on(fn, rest[0], &o, merge);
}
