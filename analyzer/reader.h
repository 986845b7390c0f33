/*
 * reader: opens a capture file, checks its header, and hands out its chunks
 * one at a time with their CRC verified. It knows the container, not the
 * records (capture.c). Errors are 0 / -1 with a one-line message naming the
 * file and the byte offset; a file that ends inside a chunk is not an error
 * but `truncated` (the writer was killed).
 */
#ifndef PM_READER_H
#define PM_READER_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct pm_reader {
    FILE *f;
    const char *path;
    uint64_t offset;        /* of the next chunk */
    uint64_t chunk_offset;  /* of the chunk last returned */
    uint8_t *payload;
    uint32_t payload_cap;
    uint8_t *plain; /* a compressed chunk's records */
    uint32_t plain_cap;
    struct ZSTD_DCtx_s *zctx;
    uint64_t compressed_bytes;
    uint64_t file_size; /* when opened, if a regular file; else 0 */
    bool truncated;
    char error[512];
};

struct pm_chunk {
    uint8_t kind;
    uint32_t stream;
    const uint8_t *data;
    uint32_t len;
};

/* Returns 0, or -1 with r->error set (not a capture, unknown version, I/O). */
int pm_reader_open(struct pm_reader *r, const char *path);
/* Reads the next chunk. Returns 1 with *c filled, 0 at the end of the file
 * (r->truncated set if it ended inside a chunk), -1 on damage (r->error). */
int pm_reader_next(struct pm_reader *r, struct pm_chunk *c);
/* Back to the first chunk (the analyzer replays a capture twice). */
int pm_reader_rewind(struct pm_reader *r);
void pm_reader_close(struct pm_reader *r);

#endif
