/*
 * pymem capture format, version 1: the only contract between preload/ (which
 * writes captures) and analyzer/ (which reads them).
 *
 * A capture is a file header followed by self-delimiting chunks. Each chunk
 * carries a CRC-32 of its payload, so a file cut anywhere (SIGKILL, OOM, full
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
 *   | 'PMCK' | kind |flags | resv   | stream | length | crc32  |
 *   +--------+------+------+--------+--------+--------+--------+
 *   kind: PM_CHUNK_META (key/value strings), PM_CHUNK_EVENTS (records of one
 *   thread stream), PM_CHUNK_CONTROL (records of the writer thread).
 *   stream: for EVENTS, the thread stream number (>= 1); 0 otherwise.
 *
 * META payload: pairs of strings, each string a varint length then bytes:
 *   key, value, key, value... Keys: "pid", "ppid", "command", "start_unix_ns",
 *   "stack_depth", "follow_fork", "python" (added when the interpreter is up).
 *   A later META chunk adds keys; readers ignore keys they do not know.
 *
 * Records: a one-byte tag, then varints (LEB128, unsigned) and zigzag svarints.
 * Event records are delta-encoded against the previous record of the same
 * stream: seq against the stream's last seq, address against its last address,
 * stack id against its last stack id. A THREAD_START record resets the three
 * bases to 0 (a stream is reused by a new thread after the old one exits).
 *
 *   ALLOC     [0x10|domain] varint dseq | svarint daddr | varint size | svarint dstack
 *   FREE      [0x20]        varint dseq | svarint daddr
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
#define PM_FORMAT_VERSION 1u
#define PM_FILE_HEADER_SIZE 16u
#define PM_CHUNK_MAGIC 0x4b434d50u /* "PMCK" read as little-endian u32 */
#define PM_CHUNK_HEADER_SIZE 20u
#define PM_CHUNK_MAX_PAYLOAD (64u << 20) /* a reader rejects larger chunks */
#define PM_STRING_MAX 1024u              /* longer names are cut */
#define PM_TRUNCATED_FILE "<truncated>"

enum pm_chunk_kind {
    PM_CHUNK_META = 1,
    PM_CHUNK_EVENTS = 2,
    PM_CHUNK_CONTROL = 3,
};

/* Allocation domains: who was asked for the memory, at the outermost layer. */
enum pm_domain {
    PM_DOMAIN_MALLOC = 0, /* the C malloc family */
    PM_DOMAIN_PYRAW = 1,  /* PyMem_RawMalloc */
    PM_DOMAIN_PYMEM = 2,  /* PyMem_Malloc */
    PM_DOMAIN_PYOBJ = 3,  /* PyObject_Malloc */
    PM_DOMAIN_COUNT = 4,
};

enum pm_tag {
    PM_TAG_THREAD = 0x01,
    PM_TAG_NODE = 0x03,
    PM_TAG_STRING = 0x04,
    PM_TAG_SNAPSHOT = 0x05,
    PM_TAG_TICK = 0x06,
    PM_TAG_WATERMARK = 0x07,
    PM_TAG_END = 0x08,
    PM_TAG_ALLOC = 0x10, /* low nibble: enum pm_domain */
    PM_TAG_FREE = 0x20,
};

enum pm_snapshot_kind {
    PM_SNAP_USER = 0,     /* pymem.snapshot("label") */
    PM_SNAP_SIGNAL = 1,   /* SIGUSR2 or `pymem snapshot PID` */
    PM_SNAP_PERIODIC = 2, /* PYMEM_SNAPSHOT_EVERY */
    PM_SNAP_MAIN = 3,     /* the program's own code starts (startup ends) */
    PM_SNAP_EXIT = 4,     /* interpreter finalisation begins */
};

enum pm_end_reason {
    PM_END_EXIT = 0,   /* exit() or return from main; detail: 0 */
    PM_END_UEXIT = 1,  /* _exit()/os._exit(); detail: status */
    PM_END_SIGNAL = 2, /* fatal signal; detail: signal number */
};

/* Largest encoded event record: tag + 4 varints of at most 10 bytes. */
#define PM_EVENT_MAX_BYTES 41u

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

/* CRC-32 (IEEE 802.3, reflected, as zlib's crc32); chain calls by passing the
 * previous result as `crc`, starting from 0. */
static inline uint32_t pm_crc32(uint32_t crc, const void *data, size_t len)
{
    static const uint32_t table[256] = {
    0x00000000u, 0x77073096u, 0xee0e612cu, 0x990951bau, 0x076dc419u, 0x706af48fu,
    0xe963a535u, 0x9e6495a3u, 0x0edb8832u, 0x79dcb8a4u, 0xe0d5e91eu, 0x97d2d988u,
    0x09b64c2bu, 0x7eb17cbdu, 0xe7b82d07u, 0x90bf1d91u, 0x1db71064u, 0x6ab020f2u,
    0xf3b97148u, 0x84be41deu, 0x1adad47du, 0x6ddde4ebu, 0xf4d4b551u, 0x83d385c7u,
    0x136c9856u, 0x646ba8c0u, 0xfd62f97au, 0x8a65c9ecu, 0x14015c4fu, 0x63066cd9u,
    0xfa0f3d63u, 0x8d080df5u, 0x3b6e20c8u, 0x4c69105eu, 0xd56041e4u, 0xa2677172u,
    0x3c03e4d1u, 0x4b04d447u, 0xd20d85fdu, 0xa50ab56bu, 0x35b5a8fau, 0x42b2986cu,
    0xdbbbc9d6u, 0xacbcf940u, 0x32d86ce3u, 0x45df5c75u, 0xdcd60dcfu, 0xabd13d59u,
    0x26d930acu, 0x51de003au, 0xc8d75180u, 0xbfd06116u, 0x21b4f4b5u, 0x56b3c423u,
    0xcfba9599u, 0xb8bda50fu, 0x2802b89eu, 0x5f058808u, 0xc60cd9b2u, 0xb10be924u,
    0x2f6f7c87u, 0x58684c11u, 0xc1611dabu, 0xb6662d3du, 0x76dc4190u, 0x01db7106u,
    0x98d220bcu, 0xefd5102au, 0x71b18589u, 0x06b6b51fu, 0x9fbfe4a5u, 0xe8b8d433u,
    0x7807c9a2u, 0x0f00f934u, 0x9609a88eu, 0xe10e9818u, 0x7f6a0dbbu, 0x086d3d2du,
    0x91646c97u, 0xe6635c01u, 0x6b6b51f4u, 0x1c6c6162u, 0x856530d8u, 0xf262004eu,
    0x6c0695edu, 0x1b01a57bu, 0x8208f4c1u, 0xf50fc457u, 0x65b0d9c6u, 0x12b7e950u,
    0x8bbeb8eau, 0xfcb9887cu, 0x62dd1ddfu, 0x15da2d49u, 0x8cd37cf3u, 0xfbd44c65u,
    0x4db26158u, 0x3ab551ceu, 0xa3bc0074u, 0xd4bb30e2u, 0x4adfa541u, 0x3dd895d7u,
    0xa4d1c46du, 0xd3d6f4fbu, 0x4369e96au, 0x346ed9fcu, 0xad678846u, 0xda60b8d0u,
    0x44042d73u, 0x33031de5u, 0xaa0a4c5fu, 0xdd0d7cc9u, 0x5005713cu, 0x270241aau,
    0xbe0b1010u, 0xc90c2086u, 0x5768b525u, 0x206f85b3u, 0xb966d409u, 0xce61e49fu,
    0x5edef90eu, 0x29d9c998u, 0xb0d09822u, 0xc7d7a8b4u, 0x59b33d17u, 0x2eb40d81u,
    0xb7bd5c3bu, 0xc0ba6cadu, 0xedb88320u, 0x9abfb3b6u, 0x03b6e20cu, 0x74b1d29au,
    0xead54739u, 0x9dd277afu, 0x04db2615u, 0x73dc1683u, 0xe3630b12u, 0x94643b84u,
    0x0d6d6a3eu, 0x7a6a5aa8u, 0xe40ecf0bu, 0x9309ff9du, 0x0a00ae27u, 0x7d079eb1u,
    0xf00f9344u, 0x8708a3d2u, 0x1e01f268u, 0x6906c2feu, 0xf762575du, 0x806567cbu,
    0x196c3671u, 0x6e6b06e7u, 0xfed41b76u, 0x89d32be0u, 0x10da7a5au, 0x67dd4accu,
    0xf9b9df6fu, 0x8ebeeff9u, 0x17b7be43u, 0x60b08ed5u, 0xd6d6a3e8u, 0xa1d1937eu,
    0x38d8c2c4u, 0x4fdff252u, 0xd1bb67f1u, 0xa6bc5767u, 0x3fb506ddu, 0x48b2364bu,
    0xd80d2bdau, 0xaf0a1b4cu, 0x36034af6u, 0x41047a60u, 0xdf60efc3u, 0xa867df55u,
    0x316e8eefu, 0x4669be79u, 0xcb61b38cu, 0xbc66831au, 0x256fd2a0u, 0x5268e236u,
    0xcc0c7795u, 0xbb0b4703u, 0x220216b9u, 0x5505262fu, 0xc5ba3bbeu, 0xb2bd0b28u,
    0x2bb45a92u, 0x5cb36a04u, 0xc2d7ffa7u, 0xb5d0cf31u, 0x2cd99e8bu, 0x5bdeae1du,
    0x9b64c2b0u, 0xec63f226u, 0x756aa39cu, 0x026d930au, 0x9c0906a9u, 0xeb0e363fu,
    0x72076785u, 0x05005713u, 0x95bf4a82u, 0xe2b87a14u, 0x7bb12baeu, 0x0cb61b38u,
    0x92d28e9bu, 0xe5d5be0du, 0x7cdcefb7u, 0x0bdbdf21u, 0x86d3d2d4u, 0xf1d4e242u,
    0x68ddb3f8u, 0x1fda836eu, 0x81be16cdu, 0xf6b9265bu, 0x6fb077e1u, 0x18b74777u,
    0x88085ae6u, 0xff0f6a70u, 0x66063bcau, 0x11010b5cu, 0x8f659effu, 0xf862ae69u,
    0x616bffd3u, 0x166ccf45u, 0xa00ae278u, 0xd70dd2eeu, 0x4e048354u, 0x3903b3c2u,
    0xa7672661u, 0xd06016f7u, 0x4969474du, 0x3e6e77dbu, 0xaed16a4au, 0xd9d65adcu,
    0x40df0b66u, 0x37d83bf0u, 0xa9bcae53u, 0xdebb9ec5u, 0x47b2cf7fu, 0x30b5ffe9u,
    0xbdbdf21cu, 0xcabac28au, 0x53b39330u, 0x24b4a3a6u, 0xbad03605u, 0xcdd70693u,
    0x54de5729u, 0x23d967bfu, 0xb3667a2eu, 0xc4614ab8u, 0x5d681b02u, 0x2a6f2b94u,
    0xb40bbe37u, 0xc30c8ea1u, 0x5a05df1bu, 0x2d02ef8du,
    };
    const uint8_t *p = (const uint8_t *)data;
    crc = ~crc;
    while (len--)
        crc = table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

/* Fills a chunk header for `len` payload bytes whose CRC is `crc`. */
static inline void pm_chunk_header(uint8_t h[PM_CHUNK_HEADER_SIZE], uint8_t kind,
                                   uint32_t stream, uint32_t len, uint32_t crc)
{
    pm_put_u32le(h, PM_CHUNK_MAGIC);
    h[4] = kind;
    h[5] = 0;
    h[6] = 0;
    h[7] = 0;
    pm_put_u32le(h + 8, stream);
    pm_put_u32le(h + 12, len);
    pm_put_u32le(h + 16, crc);
}

#endif
