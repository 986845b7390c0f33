/*
 * pymem capture format, version 6: the only contract between preload/ (which
 * writes captures) and analyzer/ (which reads them).
 *
 * A capture is a file header followed by self-delimiting chunks. Each chunk
 * carries a CRC-32C of its payload, so a file cut anywhere (SIGKILL, OOM, full
 * disk) reads cleanly up to its last complete chunk, and damage in the middle
 * is detected and reported with its offset instead of being misread.
 *
 * File header (16 bytes):
 *   0      8        12       16
 *   +------+--------+--------+
 *   |magic |version | flags  |   magic = "PYMEMCAP", version = PM_FORMAT_VERSION
 *   +------+--------+--------+   flags = 0 (reserved)
 *
 * Chunk header (20 bytes, little-endian), followed by `length` payload bytes:
 *   0        4      5      6        8        12       16       20
 *   +--------+------+------+--------+--------+--------+--------+
 *   | 'PMCK' | kind |flags | resv   | stream | length | crc32c |
 *   +--------+------+------+--------+--------+--------+--------+
 *   kind: PM_CHUNK_META (key/value strings), PM_CHUNK_EVENTS (records of one
 *   thread stream), PM_CHUNK_CONTROL (records of the writer thread).
 *   flags: PM_CHUNK_ZSTD (version 2): the payload is one zstd frame, with its
 *   content size, holding the records; each chunk is compressed on its own,
 *   so a capture cut anywhere still reads up to its last complete chunk. The
 *   CRC covers the bytes as stored. A decompressed payload is at most
 *   PM_CHUNK_MAX_PAYLOAD bytes too, and at most PM_CHUNK_MAX_RATIO times its
 *   stored size (plus 4 KiB).
 *   stream: for EVENTS, the thread stream number (>= 1); 0 otherwise.
 *
 * META payload: pairs of strings, each string a varint length then bytes:
 *   key, value, key, value... Keys: "pid", "ppid", "command", "start_unix_ns",
 *   "stack_depth", "follow_fork", "python" (added when the interpreter is up),
 *   "malloc_hooked", "native_depth", "native_domains", "sample_bytes",
 *   "python_allocators" ("0": the RAW, MEM and OBJ domains were not hooked,
 *   Python's memory shows in the malloc and mmap domains), "python_lost"
 *   (version 3: the Python domains, e.g. "pyobj,pymem", whose allocator was
 *   at some point replaced by one that no longer reached pymem, until pymem
 *   hooked it again: allocations and frees made meanwhile were not seen),
 *   "recycled" (version 3: "reftracer" when recycled objects are RETAGged),
 *   "aggregate" ("1": an aggregated capture, below), "role" (how this process
 *   came to record: "root", "fork", "spawn" for an exec'd child, "exec" for
 *   an image that replaced a recording one), "forks_unrecorded" (processes
 *   this one forked with os.fork while forks were not followed: they ran on
 *   unrecorded; written again as it grows, the last value stands),
 *   "blocks_before" (version 3:
 *   blocks Python's object allocator held before pymem hooked it, which may
 *   be freed unrecorded), and at the end "exit_status" (version 3: the
 *   status given to exit() after the capture ended) and "after_end"
 *   (version 3: Python objects allocated after that end, counted only).
 *   A later META chunk adds keys; readers ignore keys they do not know.
 *
 * Records: a one-byte tag, then varints (LEB128, unsigned) and zigzag svarints.
 * Event records are delta-encoded against the previous record of the same
 * stream: seq against the stream's last seq, address against its last address,
 * stack id against its last stack id. A THREAD record resets the three
 * bases to 0 (a stream is reused by a new thread after the old one exits).
 *
 *   ALLOC     [0x10|domain] varint dseq | svarint daddr | varint size | svarint dstack
 *   FREE      [0x20]        varint dseq | svarint daddr
 *   (version 5 writes these two as the four records of the address model:)
 *   ALLOC_REUSE [0x80|a<<3|domain] varint dseq | [varint age - 7, if a = 7] |
 *                                  varint size | svarint dstack
 *   ALLOC_NEAR  [0xd0|domain]      varint dseq | svarint dclass | varint size |
 *                                  svarint dstack
 *   FREE_RECENT [0xc0|a]           varint dseq | [varint age - 15, if a = 15]
 *   FREE_FAR    [0xd8]             varint dseq | svarint daddr
 *   THREAD    [0x01]        varint tid | string name          (resets bases)
 *   NODE      [0x03]        varint id | varint parent | varint file_sid |
 *                           varint func_sid | varint line
 *   STRING    [0x04]        varint sid | string bytes
 *   SNAPSHOT  [0x05]        varint seq | varint kind | varint time_ns | string label
 *   TICK      [0x06]        varint seq | varint time_ns | varint rss_bytes |
 *                           varint profiler_bytes
 *   WATERMARK [0x07]        varint seq
 *   END       [0x08]        varint seq | varint time_ns | varint reason |
 *                           varint detail | varint profiler_bytes |
 *                           varint unrecorded
 *   NATIVE    [0x09]        varint id | varint parent | varint module |
 *                           varint offset                     (version 2)
 *   MODULE    [0x0a]        varint id | string path | string build_id |
 *                           varint base | varint nseg |
 *                           nseg x (varint vaddr | varint memsz | varint flags)
 *   UNLOAD    [0x0b]        varint module id                  (version 2)
 *   MUNMAP    [0x30]        varint dseq | svarint daddr | varint length
 *   COUNTERS  [0x0c]        varint seq | varint allocations | varint bytes |
 *                           varint frees                      (version 2)
 *   RETAG     [0x40]        varint dseq | svarint daddr | svarint dstack
 *                                                             (version 3)
 *   (version 6 writes RETAG as the two records of the retag model:)
 *   RETAG_AGAIN [0x48|a]    varint dseq | [varint age - 7, if a = 7] |
 *                           svarint dstack
 *   RETAG_NEAR  [0x41]      varint dseq | svarint dretag | svarint dstack
 *   ARENA     [0x50]        varint dseq | svarint daddr | varint size
 *                                                             (version 4)
 *   ARENA_FREE [0x60]       varint dseq | svarint daddr | varint length
 *                                                             (version 4)
 *   HEAPSTATS [0x70]        varint seq | varint time_ns | varint allocator |
 *                           varint n | n x (varint key | varint value)
 *                                                             (version 4)
 *   STATES    [0x0d]        varint seq | varint n | n x entry (aggregated)
 *   PEAK      [0x0e]        varint seq | varint time_ns | varint bytes |
 *                           varint n | n x entry              (aggregated)
 *   LIVE      [0x0f]        varint seq | varint time_ns | varint bytes |
 *                           varint blocks                     (aggregated)
 *   entry:                  varint stack | varint (domain << 1 | early) |
 *                           varint bytes | varint blocks
 *                           [| varint variance | varint samples: sampled]
 *
 * Native frames (version 2, `pymem run --native`): a NATIVE node is one
 * native frame, a return address given as (module, offset from the module's
 * load base), so that it can be symbolised after the process is gone and
 * after the library was unloaded; module 0 means no known module and the
 * offset is then the absolute address. Python and native nodes share one
 * tree: a hybrid stack is a chain of both. MODULE records describe the
 * module map: path ("" if unknown), the GNU build id (raw bytes, possibly
 * empty), load base and PT_LOAD segments (link-time vaddr, size, p_flags). Module ids are
 * never reused; UNLOAD marks a module gone (dlclose).
 *
 * Sampled captures (META "sample_bytes" = R > 0) hold only the allocations
 * a Poisson process over allocated bytes picked, of mean interval R: a block
 * of s bytes is in the capture with probability 1 - exp(-s/R), and only the
 * frees of those blocks are. The writer adds COUNTERS records: exact totals
 * of allocation calls, bytes requested and free calls so far (cumulative;
 * the last one counts).
 *
 * Aggregated captures (META "aggregate" = "1", `pymem run --aggregate`) hold
 * no ALLOC/FREE/MUNMAP/RETAG records: the writer applies the events itself
 * and writes the live heap's totals per (stack, domain, early) key, where
 * `early` marks blocks allocated before the MAIN snapshot (start-up). A
 * STATES record gives the new totals of the keys that changed since the
 * previous one (a key not listed keeps its totals; all start at 0), as of
 * every event numbered <= seq: one before each snapshot (at its seq - 1),
 * one every second, and one before END, so that a capture cut by SIGKILL
 * holds the state of its last second. LIVE gives the live bytes and blocks
 * over all keys at seq (written with each STATES, and every 100 ms), for
 * the time chart. PEAK is the exact high-water mark of live bytes so far:
 * its bytes, time, and the totals per key at that moment, as changes to the
 * previous PEAK record's (a later PEAK replaces the peak). COUNTERS hold the
 * exact totals of allocations, bytes and frees. In a sampled capture the
 * totals are the estimator's (each sampled block counts size / P(sampled),
 * with the variance of that estimate, rounded to whole numbers) and PEAK's
 * time is chosen as the analyzer chooses it from events (pm_half).
 *
 * RETAG (version 3): the live block at `addr` now belongs to `stack`, as if
 * it had been freed and allocated again there with the same size and domain.
 * CPython hands out objects recycled from its free lists without calling an
 * allocator; where the interpreter says so (Python 3.13's reference tracer),
 * the object is re-attributed to the line that reused it, as tracemalloc
 * does. It uses the ALLOC/FREE delta bases of its stream. A RETAG of an
 * address that is not live changes nothing.
 *
 * ARENA and ARENA_FREE (version 4): a mapping Python's object allocator
 * (pymalloc) made or returned for its arenas, inside an allocation or free
 * of the Python domains, whose objects are recorded one by one: not in any
 * domain and not in the live heap (that would count them twice), but the
 * ground the objects stand on, for telling which few live objects keep
 * mostly empty arenas mapped. They use the ALLOC/FREE delta bases.
 *
 * HEAPSTATS (version 4): the allocator's own view, written by the writer
 * every few hundred milliseconds, with each snapshot and at the end:
 * `allocator` is enum pm_allocator, then key/value pairs of enum
 * pm_heapstat (a reader skips keys it does not know). Figures the allocator
 * does not give are absent.
 *
 * Address model (version 5). Addresses are nearly all of a capture's bytes,
 * and allocators reuse what was just freed and carve new blocks next to the
 * last ones of their size: each stream keeps, as the writer encodes it and
 * the reader decodes it (pymem/encode.h, struct pm_deltas), the addresses of
 * its last PM_MODEL_MADE allocations and of its last PM_MODEL_FREED frees,
 * by age (0: the newest), and the address of the last allocation of each
 * size class (pm_size_class: 16-byte steps up to 512 bytes, then one per
 * domain). ALLOC_REUSE is an allocation at the freed address of age `age`
 * (which is then taken out: no later record can name it); ALLOC_NEAR one at
 * `dclass` from the last of its class; FREE_RECENT frees the allocated block
 * of age `age` (taken out likewise); FREE_FAR the block at `daddr` from the
 * stream's last event. Every allocation then counts as the newest allocated
 * (and sets its class's address), every free as the newest freed, taken out
 * or not, and every event record, of the model or not, sets the base of
 * `daddr` (of FREE_FAR, MUNMAP, RETAG, ARENA, ARENA_FREE) to its address. A
 * THREAD record empties the model. An age beyond the ring, or of an entry
 * taken out already, is a damaged record.
 *
 * Retag model (version 6). The objects CPython recycles from its free lists
 * are few and come back again and again (2.5 M retags of 1,090 addresses in
 * a recursion 100-200 deep, the same ones every ~1,000 retags): each stream
 * also keeps the addresses of its last PM_MODEL_RETAGGED retags, by age (0:
 * the newest; an address may be there more than once, nothing is taken
 * out), and the address of its last retag. RETAG_AGAIN retags the address
 * of age `age`; RETAG_NEAR the one at `dretag` from the last retag's. Both
 * then count as the newest retag; neither moves the `daddr` base of the
 * other records. An age beyond the ring, or of an entry not written yet, is
 * a damaged record.
 *
 * The mmap domain holds anonymous mappings made with mmap/mremap. MUNMAP
 * frees a byte range, which may cover several mappings or only part of one
 * (the rest stays live). It uses the ALLOC/FREE delta bases of its stream.
 *
 * Ordering: every event and snapshot takes its `seq` from one process-wide
 * counter, so the interleaving of thread streams is exact. A WATERMARK(W)
 * guarantees that every record with seq < W is already in the file; the
 * reader sorts what it holds below W and replays it. Times are nanoseconds
 * since the start of the capture; an event's time is that of the last TICK
 * (written every ~10 ms) at or before its seq.
 *
 * Stacks: NODE records build a tree; node 0 is the empty stack (root). A
 * node is one frame plus its parent (the caller); an event names its
 * innermost node. A node whose file is PM_TRUNCATED_FILE marks a stack cut at
 * the depth limit. String 0 is the empty string.
 */
#ifndef PYMEM_FORMAT_H
#define PYMEM_FORMAT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define PM_FILE_MAGIC "PYMEMCAP"
#define PM_FORMAT_VERSION 6u
#define PM_FORMAT_VERSION_MIN 1u /* oldest version readers accept */
#define PM_FILE_HEADER_SIZE 16u
#define PM_CHUNK_MAGIC 0x4b434d50u /* "PMCK" read as little-endian u32 */
#define PM_CHUNK_HEADER_SIZE 20u
#define PM_CHUNK_MAX_PAYLOAD (64u << 20) /* a reader rejects larger chunks */
/* A compressed chunk inflates to at most this many times its stored size
 * (plus 4 KiB): zstd makes 3 to 20 of most event records, up to a few
 * thousand of very regular ones (seen: 2,790), and the writer stores a
 * chunk as it is rather than go beyond; a reader rejects more, so that a
 * small file cannot make it decode gigabytes. */
#define PM_CHUNK_MAX_RATIO 16384u
#define PM_STRING_MAX 1024u              /* longer names are cut */
#define PM_TRUNCATED_FILE "<truncated>"

/* META keys (their meanings are above; a reader ignores keys it does not
 * know). */
#define PM_META_PID "pid"
#define PM_META_PPID "ppid"
#define PM_META_COMMAND "command"
#define PM_META_START_UNIX_NS "start_unix_ns"
#define PM_META_STACK_DEPTH "stack_depth"
#define PM_META_FOLLOW_FORK "follow_fork"
#define PM_META_PYTHON "python"
#define PM_META_MALLOC_HOOKED "malloc_hooked"
#define PM_META_NATIVE_DEPTH "native_depth"
#define PM_META_NATIVE_DOMAINS "native_domains"
#define PM_META_SAMPLE_BYTES "sample_bytes"
#define PM_META_PYTHON_ALLOCATORS "python_allocators"
#define PM_META_PYTHON_LOST "python_lost"
#define PM_META_RECYCLED "recycled"
#define PM_META_AGGREGATE "aggregate"
#define PM_META_ROLE "role"
#define PM_META_BLOCKS_BEFORE "blocks_before"
#define PM_META_AFTER_END "after_end"
#define PM_META_EXIT_STATUS "exit_status"
#define PM_META_FORKS_UNRECORDED "forks_unrecorded"

enum pm_chunk_kind {
    PM_CHUNK_META = 1,
    PM_CHUNK_EVENTS = 2,
    PM_CHUNK_CONTROL = 3,
};

#define PM_CHUNK_ZSTD 0x01 /* chunk header flags */

/* Allocation domains: who was asked for the memory, at the outermost layer. */
enum pm_domain {
    PM_DOMAIN_MALLOC = 0, /* the C malloc family */
    PM_DOMAIN_PYRAW = 1,  /* PyMem_RawMalloc */
    PM_DOMAIN_PYMEM = 2,  /* PyMem_Malloc */
    PM_DOMAIN_PYOBJ = 3,  /* PyObject_Malloc */
    PM_DOMAIN_MMAP = 4,   /* anonymous mmap/mremap */
    PM_DOMAIN_COUNT = 5,
};

enum pm_tag {
    PM_TAG_THREAD = 0x01,
    PM_TAG_NODE = 0x03,
    PM_TAG_STRING = 0x04,
    PM_TAG_SNAPSHOT = 0x05,
    PM_TAG_TICK = 0x06,
    PM_TAG_WATERMARK = 0x07,
    PM_TAG_END = 0x08,
    PM_TAG_NATIVE = 0x09,
    PM_TAG_MODULE = 0x0a,
    PM_TAG_UNLOAD = 0x0b,
    PM_TAG_COUNTERS = 0x0c,
    PM_TAG_STATES = 0x0d,
    PM_TAG_PEAK = 0x0e,
    PM_TAG_LIVE = 0x0f,
    PM_TAG_ALLOC = 0x10, /* low nibble: enum pm_domain */
    PM_TAG_FREE = 0x20,
    PM_TAG_MUNMAP = 0x30,
    PM_TAG_RETAG = 0x40,
    PM_TAG_RETAG_NEAR = 0x41,
    PM_TAG_RETAG_AGAIN = 0x48, /* 0x48-0x4f: | a */
    PM_TAG_ARENA = 0x50,
    PM_TAG_ARENA_FREE = 0x60,
    PM_TAG_HEAPSTATS = 0x70,
    PM_TAG_ALLOC_REUSE = 0x80, /* 0x80-0xbf: | j << 3 | domain */
    PM_TAG_FREE_RECENT = 0xc0, /* 0xc0-0xcf: | j */
    PM_TAG_ALLOC_NEAR = 0xd0,  /* 0xd0-0xd7: | domain */
    PM_TAG_FREE_FAR = 0xd8,
};

/* HEAPSTATS: which allocator served malloc. */
enum pm_allocator {
    PM_ALLOCATOR_UNKNOWN = 0,
    PM_ALLOCATOR_GLIBC = 1,
    PM_ALLOCATOR_JEMALLOC = 2,
};

/* HEAPSTATS keys, all in bytes but the counts. */
enum pm_heapstat {
    PM_HS_RSS = 1,             /* the process's resident set */
    PM_HS_PROFILER = 2,        /* pymem's own memory (mapped) */
    PM_HS_GLIBC_SYSTEM = 3,    /* mallinfo2 arena: bytes the arenas hold from the system */
    PM_HS_GLIBC_IN_USE = 4,    /* uordblks: in allocated chunks, headers included */
    PM_HS_GLIBC_FREE = 5,      /* fordblks: in free chunks, the top chunk included */
    PM_HS_GLIBC_MMAPPED = 6,   /* hblkhd: blocks glibc mapped one by one */
    PM_HS_GLIBC_TOP = 7,       /* keepcost: the main arena's top chunk, trimmable */
    PM_HS_GLIBC_FREE_CHUNKS = 8, /* ordblks: free chunks (a count) */
    PM_HS_MAIN_HEAP_RSS = 9,   /* resident bytes of the [heap] (the main arena) */
    PM_HS_THREAD_HEAPS_RSS = 10, /* resident bytes of the thread arenas' heaps */
    PM_HS_THREAD_HEAPS = 11,   /* those heaps (a count) */
    PM_HS_JE_ALLOCATED = 12,   /* jemalloc stats.allocated */
    PM_HS_JE_ACTIVE = 13,      /* stats.active */
    PM_HS_JE_RESIDENT = 14,    /* stats.resident */
    PM_HS_JE_MAPPED = 15,      /* stats.mapped */
    PM_HS_JE_RETAINED = 16,    /* stats.retained */
    PM_HS_MAIN_HEAP_START = 17, /* the [heap]'s addresses: blocks of the main arena */
    PM_HS_MAIN_HEAP_END = 18,
    PM_HS_KEYS = 19,           /* one past the last */
};

enum pm_snapshot_kind {
    PM_SNAP_USER = 0,     /* pymem.snapshot("label") */
    PM_SNAP_SIGNAL = 1,   /* `pymem snapshot PID` (SIGUSR2 before version 3) */
    PM_SNAP_PERIODIC = 2, /* PYMEM_SNAPSHOT_EVERY */
    PM_SNAP_MAIN = 3,     /* the program's own code starts (startup ends) */
    PM_SNAP_EXIT = 4,     /* interpreter finalisation begins */
    PM_SNAP_OOM = 5,      /* memory use reached the threshold of its limit (version 3) */
};

enum pm_end_reason {
    PM_END_EXIT = 0,   /* exit() or return from main; detail: the exit status when
                          the capture ended in exit(), else 0 (then META
                          "exit_status", version 3, may follow the END) */
    PM_END_UEXIT = 1,  /* _exit()/os._exit(); detail: status */
    PM_END_SIGNAL = 2, /* fatal signal; detail: signal number */
    PM_END_EXEC = 3,   /* exec() of another program (version 3); if the exec
                          failed, recording goes on after this END and a
                          later END ends the capture: the last one counts */
};

/* Largest encoded event record: tag + 4 varints of at most 10 bytes. */
#define PM_EVENT_MAX_BYTES 41u
/* Snapshot labels are cut at this many bytes (by the writer; a reader cuts
 * a longer one too). */
#define PM_LABEL_MAX 200u
/* Largest SNAPSHOT record: tag, 3 varints, the label and its length. */
#define PM_SNAPSHOT_MAX_BYTES (33u + PM_LABEL_MAX)
/* Largest entry of a STATES or PEAK record: 6 varints. */
#define PM_ENTRY_MAX_BYTES 60u

static inline size_t pm_put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

static inline uint64_t pm_zigzag(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static inline int64_t pm_unzigzag(uint64_t v)
{
    return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

/* Decodes one varint from [*p, end). Returns 0 on success, -1 if the input
 * ends inside the varint or it is longer than 10 bytes. */
static inline int pm_get_varint(const uint8_t **p, const uint8_t *end, uint64_t *out)
{
    uint64_t v = 0;
    const uint8_t *q = *p;
    for (unsigned shift = 0; shift < 70; shift += 7) {
        if (q >= end)
            return -1;
        uint8_t b = *q++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *p = q;
            *out = v;
            return 0;
        }
    }
    return -1;
}

static inline void pm_put_u32le(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static inline uint32_t pm_get_u32le(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* CRC-32C (Castagnoli, reflected, as iSCSI and ext4 use it); chain calls by
 * passing the previous result as `crc`, starting from 0. x86-64 processors
 * with SSE4.2 compute it in hardware; others use the table. */
static inline uint32_t pm_crc32c_table(uint32_t crc, const void *data, size_t len)
{
    static const uint32_t table[256] = {
        0x00000000u, 0xf26b8303u, 0xe13b70f7u, 0x1350f3f4u, 0xc79a971fu, 0x35f1141cu,
        0x26a1e7e8u, 0xd4ca64ebu, 0x8ad958cfu, 0x78b2dbccu, 0x6be22838u, 0x9989ab3bu,
        0x4d43cfd0u, 0xbf284cd3u, 0xac78bf27u, 0x5e133c24u, 0x105ec76fu, 0xe235446cu,
        0xf165b798u, 0x030e349bu, 0xd7c45070u, 0x25afd373u, 0x36ff2087u, 0xc494a384u,
        0x9a879fa0u, 0x68ec1ca3u, 0x7bbcef57u, 0x89d76c54u, 0x5d1d08bfu, 0xaf768bbcu,
        0xbc267848u, 0x4e4dfb4bu, 0x20bd8edeu, 0xd2d60dddu, 0xc186fe29u, 0x33ed7d2au,
        0xe72719c1u, 0x154c9ac2u, 0x061c6936u, 0xf477ea35u, 0xaa64d611u, 0x580f5512u,
        0x4b5fa6e6u, 0xb93425e5u, 0x6dfe410eu, 0x9f95c20du, 0x8cc531f9u, 0x7eaeb2fau,
        0x30e349b1u, 0xc288cab2u, 0xd1d83946u, 0x23b3ba45u, 0xf779deaeu, 0x05125dadu,
        0x1642ae59u, 0xe4292d5au, 0xba3a117eu, 0x4851927du, 0x5b016189u, 0xa96ae28au,
        0x7da08661u, 0x8fcb0562u, 0x9c9bf696u, 0x6ef07595u, 0x417b1dbcu, 0xb3109ebfu,
        0xa0406d4bu, 0x522bee48u, 0x86e18aa3u, 0x748a09a0u, 0x67dafa54u, 0x95b17957u,
        0xcba24573u, 0x39c9c670u, 0x2a993584u, 0xd8f2b687u, 0x0c38d26cu, 0xfe53516fu,
        0xed03a29bu, 0x1f682198u, 0x5125dad3u, 0xa34e59d0u, 0xb01eaa24u, 0x42752927u,
        0x96bf4dccu, 0x64d4cecfu, 0x77843d3bu, 0x85efbe38u, 0xdbfc821cu, 0x2997011fu,
        0x3ac7f2ebu, 0xc8ac71e8u, 0x1c661503u, 0xee0d9600u, 0xfd5d65f4u, 0x0f36e6f7u,
        0x61c69362u, 0x93ad1061u, 0x80fde395u, 0x72966096u, 0xa65c047du, 0x5437877eu,
        0x4767748au, 0xb50cf789u, 0xeb1fcbadu, 0x197448aeu, 0x0a24bb5au, 0xf84f3859u,
        0x2c855cb2u, 0xdeeedfb1u, 0xcdbe2c45u, 0x3fd5af46u, 0x7198540du, 0x83f3d70eu,
        0x90a324fau, 0x62c8a7f9u, 0xb602c312u, 0x44694011u, 0x5739b3e5u, 0xa55230e6u,
        0xfb410cc2u, 0x092a8fc1u, 0x1a7a7c35u, 0xe811ff36u, 0x3cdb9bddu, 0xceb018deu,
        0xdde0eb2au, 0x2f8b6829u, 0x82f63b78u, 0x709db87bu, 0x63cd4b8fu, 0x91a6c88cu,
        0x456cac67u, 0xb7072f64u, 0xa457dc90u, 0x563c5f93u, 0x082f63b7u, 0xfa44e0b4u,
        0xe9141340u, 0x1b7f9043u, 0xcfb5f4a8u, 0x3dde77abu, 0x2e8e845fu, 0xdce5075cu,
        0x92a8fc17u, 0x60c37f14u, 0x73938ce0u, 0x81f80fe3u, 0x55326b08u, 0xa759e80bu,
        0xb4091bffu, 0x466298fcu, 0x1871a4d8u, 0xea1a27dbu, 0xf94ad42fu, 0x0b21572cu,
        0xdfeb33c7u, 0x2d80b0c4u, 0x3ed04330u, 0xccbbc033u, 0xa24bb5a6u, 0x502036a5u,
        0x4370c551u, 0xb11b4652u, 0x65d122b9u, 0x97baa1bau, 0x84ea524eu, 0x7681d14du,
        0x2892ed69u, 0xdaf96e6au, 0xc9a99d9eu, 0x3bc21e9du, 0xef087a76u, 0x1d63f975u,
        0x0e330a81u, 0xfc588982u, 0xb21572c9u, 0x407ef1cau, 0x532e023eu, 0xa145813du,
        0x758fe5d6u, 0x87e466d5u, 0x94b49521u, 0x66df1622u, 0x38cc2a06u, 0xcaa7a905u,
        0xd9f75af1u, 0x2b9cd9f2u, 0xff56bd19u, 0x0d3d3e1au, 0x1e6dcdeeu, 0xec064eedu,
        0xc38d26c4u, 0x31e6a5c7u, 0x22b65633u, 0xd0ddd530u, 0x0417b1dbu, 0xf67c32d8u,
        0xe52cc12cu, 0x1747422fu, 0x49547e0bu, 0xbb3ffd08u, 0xa86f0efcu, 0x5a048dffu,
        0x8ecee914u, 0x7ca56a17u, 0x6ff599e3u, 0x9d9e1ae0u, 0xd3d3e1abu, 0x21b862a8u,
        0x32e8915cu, 0xc083125fu, 0x144976b4u, 0xe622f5b7u, 0xf5720643u, 0x07198540u,
        0x590ab964u, 0xab613a67u, 0xb831c993u, 0x4a5a4a90u, 0x9e902e7bu, 0x6cfbad78u,
        0x7fab5e8cu, 0x8dc0dd8fu, 0xe330a81au, 0x115b2b19u, 0x020bd8edu, 0xf0605beeu,
        0x24aa3f05u, 0xd6c1bc06u, 0xc5914ff2u, 0x37faccf1u, 0x69e9f0d5u, 0x9b8273d6u,
        0x88d28022u, 0x7ab90321u, 0xae7367cau, 0x5c18e4c9u, 0x4f48173du, 0xbd23943eu,
        0xf36e6f75u, 0x0105ec76u, 0x12551f82u, 0xe03e9c81u, 0x34f4f86au, 0xc69f7b69u,
        0xd5cf889du, 0x27a40b9eu, 0x79b737bau, 0x8bdcb4b9u, 0x988c474du, 0x6ae7c44eu,
        0xbe2da0a5u, 0x4c4623a6u, 0x5f16d052u, 0xad7d5351u,
    };
    const uint8_t *p = (const uint8_t *)data;
    crc = ~crc;
    while (len--)
        crc = table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("sse4.2"))) static inline uint32_t pm_crc32c_sse42(uint32_t crc, const void *data,
                                                                         size_t len)
{
    const uint8_t *p = (const uint8_t *)data;
    uint64_t c = ~crc & 0xffffffffu;
    for (; len >= 8; len -= 8, p += 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = __builtin_ia32_crc32di(c, v);
    }
    uint32_t c32 = (uint32_t)c;
    while (len--)
        c32 = __builtin_ia32_crc32qi(c32, *p++);
    return ~c32;
}
#endif

static inline uint32_t pm_crc32c(uint32_t crc, const void *data, size_t len)
{
#if defined(__x86_64__) && defined(__GNUC__)
    static int hardware = -1;
    if (hardware < 0) {
        __builtin_cpu_init();
        hardware = __builtin_cpu_supports("sse4.2") ? 1 : 0;
    }
    if (hardware)
        return pm_crc32c_sse42(crc, data, len);
#endif
    return pm_crc32c_table(crc, data, len);
}

/* Fills the file header. */
static inline void pm_file_header(uint8_t h[PM_FILE_HEADER_SIZE])
{
    memcpy(h, PM_FILE_MAGIC, 8);
    pm_put_u32le(h + 8, PM_FORMAT_VERSION);
    pm_put_u32le(h + 12, 0);
}

/* Fills a chunk header for `len` payload bytes whose CRC is `crc`. */
static inline void pm_chunk_header(uint8_t h[PM_CHUNK_HEADER_SIZE], uint8_t kind, uint8_t flags,
                                   uint32_t stream, uint32_t len, uint32_t crc)
{
    pm_put_u32le(h, PM_CHUNK_MAGIC);
    h[4] = kind;
    h[5] = flags;
    h[6] = 0;
    h[7] = 0;
    pm_put_u32le(h + 8, stream);
    pm_put_u32le(h + 12, len);
    pm_put_u32le(h + 16, crc);
}

#endif
