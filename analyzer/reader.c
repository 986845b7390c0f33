/*
 * reader: the capture container (file header, chunk headers, CRCs); see
 * include/pymem/format.h for the layout.
 */
#define _GNU_SOURCE
#include "reader.h"

#include <zstd.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "pymem/format.h"

static int fail(struct pm_reader *r, uint64_t offset, const char *what)
{
    snprintf(r->error, sizeof r->error, "%s: %s at offset %llu", r->path, what,
             (unsigned long long)offset);
    return -1;
}

int pm_reader_open(struct pm_reader *r, const char *path)
{
    memset(r, 0, sizeof *r);
    r->path = path;
    r->f = fopen(path, "rb");
    if (!r->f) {
        snprintf(r->error, sizeof r->error, "%s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fileno(r->f), &st) == 0 && S_ISDIR(st.st_mode)) {
        snprintf(r->error, sizeof r->error, "%s: is a directory", path);
        return -1;
    }
    r->file_size = S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
    uint8_t h[PM_FILE_HEADER_SIZE];
    size_t got = fread(h, 1, sizeof h, r->f);
    if (got < 8 || memcmp(h, PM_FILE_MAGIC, 8) != 0)
        return fail(r, 0, "not a pymem capture (no PYMEMCAP magic)");
    if (got < sizeof h)
        return fail(r, got, "truncated file header");
    uint32_t version = pm_get_u32le(h + 8);
    if (version < PM_FORMAT_VERSION_MIN || version > PM_FORMAT_VERSION) {
        char msg[128];
        snprintf(msg, sizeof msg,
                 "capture format version %u is not supported (this pymem reads versions %u to %u)", version,
                 PM_FORMAT_VERSION_MIN, PM_FORMAT_VERSION);
        return fail(r, 8, msg);
    }
    r->offset = PM_FILE_HEADER_SIZE;
    return 0;
}

int pm_reader_next(struct pm_reader *r, struct pm_chunk *c)
{
    uint8_t h[PM_CHUNK_HEADER_SIZE];
    size_t got = fread(h, 1, sizeof h, r->f);
    if (got == 0 && feof(r->f))
        return 0;
    if (got < sizeof h) {
        if (ferror(r->f))
            return fail(r, r->offset, strerror(errno));
        r->truncated = true;
        return 0;
    }
    r->chunk_offset = r->offset;
    if (pm_get_u32le(h) != PM_CHUNK_MAGIC)
        return fail(r, r->offset, "corrupted capture (bad chunk magic)");
    uint32_t len = pm_get_u32le(h + 12);
    uint8_t kind = h[4];
    if (len > PM_CHUNK_MAX_PAYLOAD)
        return fail(r, r->offset, "corrupted capture (chunk length out of range)");
    if (kind < PM_CHUNK_META || kind > PM_CHUNK_CONTROL)
        return fail(r, r->offset, "corrupted capture (unknown chunk kind)");
    if (len > r->payload_cap) {
        uint8_t *p = realloc(r->payload, len);
        if (!p)
            return fail(r, r->offset, "out of memory");
        r->payload = p;
        r->payload_cap = len;
    }
    got = fread(r->payload, 1, len, r->f);
    if (got < len) {
        if (ferror(r->f))
            return fail(r, r->offset, strerror(errno));
        r->truncated = true;
        return 0;
    }
#ifndef PM_FUZZING /* the fuzzing build reads past checksums to reach the decoders */
    if (pm_crc32c(0, r->payload, len) != pm_get_u32le(h + 16))
        return fail(r, r->offset, "corrupted capture (chunk checksum mismatch)");
#endif
    c->kind = kind;
    c->stream = pm_get_u32le(h + 8);
    c->data = r->payload;
    c->len = len;
    if (h[5] & PM_CHUNK_ZSTD) {
        unsigned long long size = ZSTD_getFrameContentSize(r->payload, len);
        if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN || size > PM_CHUNK_MAX_PAYLOAD)
            return fail(r, r->offset, "corrupted capture (bad compressed chunk)");
        /* A chunk may not inflate more than PM_CHUNK_MAX_RATIO times: the
         * work and memory of a read stay in proportion to the file. */
        if (size > (unsigned long long)len * PM_CHUNK_MAX_RATIO + 4096)
            return fail(r, r->offset, "corrupted capture (compressed chunk claims more than the format allows)");
        if (size > r->plain_cap) {
            uint8_t *p = realloc(r->plain, size);
            if (!p)
                return fail(r, r->offset, "out of memory");
            r->plain = p;
            r->plain_cap = (uint32_t)size;
        }
        if (!r->zctx && !(r->zctx = ZSTD_createDCtx()))
            return fail(r, r->offset, "out of memory");
        size_t got_plain = ZSTD_decompressDCtx(r->zctx, r->plain, size, r->payload, len);
        if (ZSTD_isError(got_plain) || got_plain != size)
            return fail(r, r->offset, "corrupted capture (compressed chunk does not decompress)");
        c->data = r->plain;
        c->len = (uint32_t)size;
        r->compressed_bytes += len;
    }
    r->offset += PM_CHUNK_HEADER_SIZE + len;
    return 1;
}

int pm_reader_rewind(struct pm_reader *r)
{
    if (fseek(r->f, PM_FILE_HEADER_SIZE, SEEK_SET) != 0)
        return fail(r, 0, strerror(errno));
    r->offset = PM_FILE_HEADER_SIZE;
    r->truncated = false;
    return 0;
}

void pm_reader_close(struct pm_reader *r)
{
    if (r->f)
        fclose(r->f);
    free(r->payload);
    free(r->plain);
    ZSTD_freeDCtx(r->zctx);
    r->f = NULL;
    r->payload = NULL;
    r->plain = NULL;
    r->zctx = NULL;
}
