/*
 * merge: per-stream queues and their k-way merge (contract in merge.h).
 */
#include "merge.h"

#include <stdlib.h>
#include <string.h>

#include "capture.h"
#include "grow.h"

void pm_merge_init(struct pm_merge *m)
{
    memset(m, 0, sizeof *m);
    m->next = 1;
}

void pm_merge_free(struct pm_merge *m)
{
    for (uint32_t i = 0; i < m->nq; i++)
        free(m->q[i].v);
    free(m->q);
    free(m->heap);
    memset(m, 0, sizeof *m);
}

void pm_merge_clear(struct pm_merge *m)
{
    for (uint32_t i = 0; i < m->nq; i++) {
        m->q[i].head = m->q[i].count = 0;
        m->q[i].heap_pos = 0;
    }
    m->heap_n = 0;
    m->held = 0;
    m->next = 1; /* the process counts from 1 */
}

static uint64_t key(const struct pm_merge *m, uint32_t id)
{
    const struct pm_queue *q = &m->q[id];
    return q->v[q->head].seq;
}

static void place(struct pm_merge *m, uint32_t at, uint32_t id)
{
    m->heap[at] = id;
    m->q[id].heap_pos = at + 1;
}

static void sift_up(struct pm_merge *m, uint32_t at)
{
    uint32_t id = m->heap[at];
    uint64_t k = key(m, id);
    while (at > 0) {
        uint32_t parent = (at - 1) / 2;
        if (key(m, m->heap[parent]) <= k)
            break;
        place(m, at, m->heap[parent]);
        at = parent;
    }
    place(m, at, id);
}

static void sift_down(struct pm_merge *m, uint32_t at)
{
    uint32_t id = m->heap[at];
    uint64_t k = key(m, id);
    for (;;) {
        uint32_t child = 2 * at + 1;
        if (child >= m->heap_n)
            break;
        if (child + 1 < m->heap_n && key(m, m->heap[child + 1]) < key(m, m->heap[child]))
            child++;
        if (key(m, m->heap[child]) >= k)
            break;
        place(m, at, m->heap[child]);
        at = child;
    }
    place(m, at, id);
}

static int ensure_queues(struct pm_merge *m, uint32_t id)
{
    if (id < m->nq)
        return 0;
    uint32_t n = m->nq ? m->nq : 16;
    while (n <= id)
        n *= 2;
    struct pm_queue *q = realloc(m->q, n * sizeof *q);
    if (!q)
        return -1;
    memset(q + m->nq, 0, (n - m->nq) * sizeof *q);
    uint32_t *h = realloc(m->heap, n * sizeof *h);
    if (!h) {
        m->q = q;
        m->nq = n > m->nq ? m->nq : n;
        return -1;
    }
    m->q = q;
    m->heap = h;
    m->nq = n;
    return 0;
}

/* Events and snapshots take a number each; ticks and heap statistics only
 * mark a position. */
static int numbered(const struct pm_event *ev)
{
    return ev->type != PM_EV_TICK && ev->type != PM_EV_HEAPSTATS;
}

static int hold(struct pm_merge *m, uint32_t id, const struct pm_event *ev);

int pm_merge_push(struct pm_merge *m, uint32_t id, const struct pm_event *ev, pm_merge_fn fn, void *ctx)
{
    if (numbered(ev) && ev->seq == m->next) {
        /* held records older than this one (ticks) go first */
        if (m->heap_n && key(m, m->heap[0]) < ev->seq && pm_merge_deliver(m, ev->seq, SIZE_MAX, fn, ctx))
            return -2;
        if (fn(ctx, ev))
            return -2;
        m->next = ev->seq + 1;
        /* and what was waiting for it */
        while (m->heap_n && key(m, m->heap[0]) <= m->next)
            if (pm_merge_deliver(m, m->next + 1, 1, fn, ctx))
                return -2;
        return 0;
    }
    return hold(m, id, ev);
}

static int hold(struct pm_merge *m, uint32_t id, const struct pm_event *ev)
{
    if (ensure_queues(m, id))
        return -1;
    struct pm_queue *q = &m->q[id];
    if (q->head == q->count)
        q->head = q->count = 0;
    else if (q->head > 4096 && q->head * 2 > q->count) {
        memmove(q->v, q->v + q->head, (q->count - q->head) * sizeof *q->v);
        q->count -= q->head;
        q->head = 0;
    }
    if (pm_grow(&q->v, &q->cap, sizeof *q->v, q->count + 1, 1024))
        return -1;
    /* In order but for the control stream's few stragglers. */
    size_t at = q->count;
    while (at > q->head && q->v[at - 1].seq > ev->seq) {
        q->v[at] = q->v[at - 1];
        at--;
    }
    q->v[at] = *ev;
    q->count++;
    m->held++;
    if (!q->heap_pos) {
        place(m, m->heap_n++, id);
        sift_up(m, m->heap_n - 1);
    } else if (at == q->head) {
        sift_up(m, q->heap_pos - 1); /* its oldest event changed */
    }
    return 0;
}

int pm_merge_deliver(struct pm_merge *m, uint64_t limit, size_t most, pm_merge_fn fn, void *ctx)
{
    while (m->heap_n && most) {
        uint32_t id = m->heap[0];
        struct pm_queue *q = &m->q[id];
        const struct pm_event *ev = &q->v[q->head];
        if (ev->seq >= limit)
            break;
        if (fn(ctx, ev))
            return -1;
        if (numbered(ev) && ev->seq >= m->next)
            m->next = ev->seq + 1;
        q->head++;
        m->held--;
        most--;
        if (q->head == q->count) {
            q->head = q->count = 0;
            q->heap_pos = 0;
            if (--m->heap_n) {
                place(m, 0, m->heap[m->heap_n]);
                sift_down(m, 0);
            }
        } else {
            sift_down(m, 0);
        }
    }
    return 0;
}
