/*
 * pressure: the memory limit and its use (contract in pressure.h).
 */
#define _GNU_SOURCE
#include "io/pressure.h"

#include "io/procfile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK_INTERVAL_NS 10000000u
#define REARM_POINTS 5

enum source { NONE, GIVEN, CGROUP2, CGROUP1, MACHINE };

static struct {
    enum source source;
    int percent;
    uint64_t limit;
    char dir[512]; /* the cgroup whose limit applies */
    int fd;        /* what in_use() reads: the cgroup's memory.stat, or /proc/meminfo */
    uint64_t next_ns;
    bool above;
} P = {.fd = -1};

/* The number after `key` at the start of a line of `text` ("anon 123"). */
static bool field(const char *text, const char *key, uint64_t *out)
{
    size_t klen = strlen(key);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (!strncmp(p, key, klen) && (p[klen] == ' ' || p[klen] == ':')) {
            *out = strtoull(p + klen + 1 + strspn(p + klen + 1, " "), NULL, 10);
            return true;
        }
    }
    return false;
}

/* The smallest limit from `dir` up to `root` (paths of the hierarchy as
 * mounted): P.limit and P.dir. */
static void smallest_limit(const char *root, const char *rel, const char *limit_file)
{
    char dir[512], path[600], buf[64];
    snprintf(dir, sizeof dir, "%s%s", root, rel);
    for (;;) {
        snprintf(path, sizeof path, "%s/%s", dir, limit_file);
        if (pm_read_file(path, buf, sizeof buf) && buf[0] >= '0' && buf[0] <= '9') {
            uint64_t v = strtoull(buf, NULL, 10);
            /* v1 says "no limit" with a number near 2^63 */
            if (v > 0 && v < (1ull << 60) && (!P.limit || v < P.limit)) {
                P.limit = v;
                snprintf(P.dir, sizeof P.dir, "%s", dir);
            }
        }
        if (strlen(dir) <= strlen(root))
            break;
        char *slash = strrchr(dir, '/');
        if (!slash || slash < dir + strlen(root))
            break;
        *slash = 0;
    }
}

static void find_cgroup_limit(void)
{
    char cg[2048];
    if (!pm_read_file("/proc/self/cgroup", cg, sizeof cg))
        return;
    for (char *line = cg; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
        char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        char one[512];
        snprintf(one, sizeof one, "%.*s", (int)len, line);
        char *c1 = strchr(one, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        *c2 = 0;
        const char *controllers = c1 + 1, *rel = c2 + 1;
        if (!strcmp(rel, "/"))
            rel = "";
        uint64_t before = P.limit;
        if (!*controllers && one[0] == '0') {
            smallest_limit("/sys/fs/cgroup", rel, "memory.max");
            smallest_limit("/sys/fs/cgroup/unified", rel, "memory.max");
            if (P.limit != before)
                P.source = CGROUP2;
        } else if (strstr(controllers, "memory")) {
            smallest_limit("/sys/fs/cgroup/memory", rel, "memory.limit_in_bytes");
            if (P.limit != before)
                P.source = CGROUP1;
        }
    }
}

void pm_pressure_init(int percent, uint64_t limit_bytes)
{
    pm_procfile_close(&P.fd);
    memset(&P, 0, sizeof P);
    P.fd = -1;
    if (percent <= 0 || percent >= 100)
        return;
    P.percent = percent;
    if (limit_bytes) {
        P.source = GIVEN;
        P.limit = limit_bytes;
        return;
    }
    find_cgroup_limit();
    if (P.source == NONE)
        P.source = MACHINE;
    char path[600];
    snprintf(path, sizeof path, "%s/memory.stat", P.dir);
    P.fd = pm_procfile_open(P.source == MACHINE ? "/proc/meminfo" : path);
}

void pm_pressure_close(void)
{
    pm_procfile_close(&P.fd);
    P.source = NONE;
}

/* Memory in use against the limit (bytes); 0 if it cannot be read. */
static uint64_t in_use(uint64_t rss)
{
    char buf[8192];
    uint64_t v = 0, total = 0;
    switch (P.source) {
    case GIVEN:
        return rss;
    case CGROUP2:
        return pm_procfile_read(P.fd, buf, sizeof buf) && field(buf, "anon", &v) ? v : 0;
    case CGROUP1:
        return pm_procfile_read(P.fd, buf, sizeof buf) && field(buf, "total_rss", &v) ? v : 0;
    case MACHINE:
        if (!pm_procfile_read(P.fd, buf, sizeof buf) || !field(buf, "MemTotal", &total) ||
            !field(buf, "MemAvailable", &v) || v > total)
            return 0;
        P.limit = total * 1024;
        return (total - v) * 1024;
    default:
        return 0;
    }
}

bool pm_pressure_crossed(uint64_t now_ns, uint64_t rss)
{
    if (P.source == NONE || now_ns < P.next_ns)
        return false;
    P.next_ns = now_ns + CHECK_INTERVAL_NS;
    uint64_t used = in_use(rss);
    if (!used || !P.limit)
        return false;
    uint64_t points = used * 100 / P.limit;
    if (P.above) {
        if (points + REARM_POINTS < (uint64_t)P.percent)
            P.above = false;
        return false;
    }
    if (points < (uint64_t)P.percent)
        return false;
    P.above = true;
    return true;
}
