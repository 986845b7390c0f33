/*
 * ranges: range arithmetic for the mmap domain (contract in ranges.h).
 */
#include "ranges.h"

#include <stdlib.h>
#include <string.h>

#include "grow.h"

void pm_ranges_free(struct pm_ranges *r)
{
    free(r->v);
    memset(r, 0, sizeof *r);
}

/* Index of the first range whose end lies past `addr`. */
static size_t first_after(const struct pm_ranges *r, uint64_t addr)
{
    size_t lo = 0, hi = r->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->v[mid].end <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int insert_at(struct pm_ranges *r, size_t i, uint64_t start, uint64_t end)
{
    if (pm_grow(&r->v, &r->cap, sizeof *r->v, r->n + 1, 64))
        return -1;
    memmove(r->v + i + 1, r->v + i, (r->n - i) * sizeof *r->v);
    r->v[i] = (struct pm_range){start, end};
    r->n++;
    return 0;
}

int pm_ranges_add(struct pm_ranges *r, uint64_t start, uint64_t len)
{
    if (len == 0 || start + len < start)
        return 0;
    size_t i = first_after(r, start);
    /* A mapping whose munmap was never seen may still be listed where the
     * new one lies: the live table already replaced an entry with the same
     * start; ranges that merely overlap are dropped from the list. */
    while (i < r->n && r->v[i].start < start + len) {
        memmove(r->v + i, r->v + i + 1, (r->n - i - 1) * sizeof *r->v);
        r->n--;
    }
    return insert_at(r, i, start, start + len);
}

/* Moves live entry `from` to start at `to` with `size` bytes. */
static int move_entry(struct pm_live *live, uint64_t from, uint64_t to, uint64_t size)
{
    struct pm_live_entry e, old;
    if (!pm_live_take(live, from, &e))
        return 0;
    e.addr = to;
    e.size = size;
    return pm_live_put(live, &e, &old) < 0 ? -1 : 0;
}

static int put_part(struct pm_live *live, const struct pm_live_entry *model, uint64_t at, uint64_t size)
{
    struct pm_live_entry e = *model, old;
    e.addr = at;
    e.size = size;
    return pm_live_put(live, &e, &old) < 0 ? -1 : 0;
}

int pm_ranges_remove(struct pm_ranges *r, struct pm_live *live, uint64_t start, uint64_t len,
                     uint64_t *bytes_freed, uint64_t *mappings_freed)
{
    *bytes_freed = 0;
    *mappings_freed = 0;
    uint64_t end = start + len < start ? UINT64_MAX : start + len;
    size_t i = first_after(r, start);
    while (i < r->n && r->v[i].start < end) {
        struct pm_range g = r->v[i];
        uint64_t cut_lo = g.start > start ? g.start : start;
        uint64_t cut_hi = g.end < end ? g.end : end;
        *bytes_freed += cut_hi - cut_lo;
        if (cut_lo == g.start && cut_hi == g.end) {
            struct pm_live_entry e;
            pm_live_take(live, g.start, &e);
            memmove(r->v + i, r->v + i + 1, (r->n - i - 1) * sizeof *r->v);
            r->n--;
            (*mappings_freed)++;
            continue;
        }
        if (cut_lo == g.start) {
            /* the head goes: the rest now starts at cut_hi */
            if (move_entry(live, g.start, cut_hi, g.end - cut_hi))
                return -1;
            r->v[i].start = cut_hi;
        } else if (cut_hi == g.end) {
            /* the tail goes */
            if (move_entry(live, g.start, g.start, cut_lo - g.start))
                return -1;
            r->v[i].end = cut_lo;
        } else {
            /* a hole in the middle: two mappings from one */
            struct pm_live_entry e;
            if (pm_live_take(live, g.start, &e)) {
                if (put_part(live, &e, g.start, cut_lo - g.start) || put_part(live, &e, cut_hi, g.end - cut_hi))
                    return -1;
            }
            r->v[i].end = cut_lo;
            if (insert_at(r, i + 1, cut_hi, g.end))
                return -1;
        }
        i++;
    }
    return 0;
}
