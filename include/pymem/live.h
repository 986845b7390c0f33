/*
 * pymem's live C API: the live heap of a recording process, asked by the
 * process itself (the pytest plugin, python/pytest_pymem.py, calls it through
 * ctypes). libpymem.so exports these functions; a program finds them with
 * dlsym(RTLD_DEFAULT, ...) when it runs under pymem, and must not link to
 * them.
 *
 * They answer only when the writer keeps the live table, which costs the
 * writer thread a hash table of every live block: `pymem run --live`
 * (PYMEM_LIVE=1, on by itself when `pymem run` starts pytest) or an
 * aggregated capture (`--aggregate`).
 *
 * The window. pymem_live_begin opens a window at the call: every block
 * allocated after it, by any thread, counts in the window until freed;
 * blocks allocated before it count nowhere (their frees change nothing).
 * pymem_live_end freezes it: what happens after the call changes nothing
 * in it, so that what the caller does to report it is not in the report.
 * pymem_live_read and pymem_live_sites say what the window's blocks hold
 * (now, or when it ended) and held at their highest, exactly in event
 * order (sampled captures: estimates). Each call first applies every event
 * recorded before it, so a call costs a drain of every thread's buffer:
 * call it between tests, not per allocation.
 *
 * Calls are made with the caller's own allocations allowed around them but
 * not inside them (a signal handler must not call them). Thread-safe.
 */
#ifndef PYMEM_LIVE_H
#define PYMEM_LIVE_H

#include <stddef.h>
#include <stdint.h>

struct pymem_live {
    uint32_t window;        /* the window's number, from 1 */
    uint16_t open;          /* 1: not ended yet */
    uint16_t sites_complete; /* 0: memory ran short, sites may miss some */
    uint64_t begin_seq;   /* the event sequence number at the window's start */
    uint64_t seq;         /* ... and of the last event counted */
    int64_t bytes;        /* allocated in the window and still live */
    int64_t blocks;
    int64_t peak_bytes;   /* the highest `bytes` reached in the window */
    int64_t peak_blocks;  /* `blocks` at that moment */
    int64_t heap_bytes;   /* the whole live heap pymem has seen */
    int64_t heap_blocks;
};

struct pymem_live_site {
    uint32_t stack;  /* a stack id, for pymem_stack_text */
    uint32_t domain; /* PM_DOMAIN_* (format.h) */
    int64_t bytes;
    int64_t blocks;
};

/* 1: the live table is kept; 0: recording without it; -1: not recording. */
int pymem_live_state(void);

/* Opens a new window (closing the last one). 0, or -1 if there is no table
 * or the capture has ended. */
int pymem_live_begin(void);

/* Ends the current window, and gives its totals into *out as
 * pymem_live_read does (out may be NULL); 0, or -1 as above. */
int pymem_live_end(struct pymem_live *out);

/* The current window's totals into *out; 0, or -1 as above. */
int pymem_live_read(struct pymem_live *out);

/* The window's sites (stack and domain), largest first, up to `max`: what
 * they hold now (`at_peak` 0) or held at the window's peak (1). Returns how
 * many, or -1 as above. */
int pymem_live_sites(int at_peak, struct pymem_live_site *out, int max);

/* The frames of stack `stack`, innermost first, one per line:
 * "file\tfunction\tline\n" (native frames: "module\t0xOFFSET\t0\n"). Cut
 * at `cap` on a whole line, NUL-terminated. Returns the length, or -1 for a
 * stack this process does not know. */
int pymem_stack_text(uint32_t stack, char *buf, size_t cap);

#endif
