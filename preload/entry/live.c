/*
 * live: the exported live C API (contract in pymem/live.h), a thin layer
 * over the writer's live table (io/aggregate.h, reached through
 * pm_writer_with_live) and the stacks' text (stacks/stacks.h).
 *
 * Called by the program, never from a hook: each call holds the writer's
 * lock while it drains every ring, so it runs under the recursion guard:
 * an allocation made inside it (by the C library) is passed through, not
 * recorded into a ring that would need the lock it holds.
 */
#define _GNU_SOURCE
#include "pymem/live.h"

#include "base/runstate.h"
#include "base/thread.h"
#include "io/aggregate.h"
#include "io/writer.h"
#include "stacks/stacks.h"

#define PM_EXPORT __attribute__((visibility("default")))

struct sites_call {
    int at_peak;
    struct pymem_live_site *out;
    size_t max, n;
};

static void begin_cb(void *arg)
{
    (void)arg;
    pm_aggregate_window_begin();
}

static void end_cb(void *arg)
{
    pm_aggregate_window_end();
    if (arg)
        pm_aggregate_window_read(arg);
}

static void read_cb(void *arg)
{
    pm_aggregate_window_read(arg);
}

static void sites_cb(void *arg)
{
    struct sites_call *c = arg;
    c->n = pm_aggregate_window_sites(c->at_peak != 0, c->out, c->max);
}

/* fn under the guard, once the table holds every event before the call. */
static int with_live(void (*fn)(void *), void *arg)
{
    struct pm_guard g = pm_guard_enter();
    bool ok = pm_writer_with_live(fn, arg);
    pm_guard_leave(&g);
    return ok ? 0 : -1;
}

PM_EXPORT int pymem_live_state(void)
{
    if (!pm_run_on())
        return -1;
    return pm_aggregate_tracking() ? 1 : 0;
}

PM_EXPORT int pymem_live_begin(void)
{
    return with_live(begin_cb, NULL);
}

PM_EXPORT int pymem_live_end(struct pymem_live *out)
{
    return with_live(end_cb, out);
}

PM_EXPORT int pymem_live_read(struct pymem_live *out)
{
    if (!out)
        return -1;
    return with_live(read_cb, out);
}

PM_EXPORT int pymem_live_sites(int at_peak, struct pymem_live_site *out, int max)
{
    if (!out || max < 0)
        return -1;
    struct sites_call c = {at_peak, out, (size_t)max, 0};
    return with_live(sites_cb, &c) == 0 ? (int)c.n : -1;
}

PM_EXPORT int pymem_stack_text(uint32_t stack, char *buf, size_t cap)
{
    if (!buf)
        return -1;
    struct pm_guard g = pm_guard_enter();
    int n = pm_stacks_text(stack, buf, cap);
    pm_guard_leave(&g);
    return n;
}
