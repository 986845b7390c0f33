/*
 * builder: synthetic captures for tests (see builder.h).
 */
#include "builder.h"

#include <stdlib.h>
#include <string.h>

#include "pymem/format.h"

void b_open(struct builder *b, const char *path)
{
    memset(b, 0, sizeof *b);
    b->f = fopen(path, "wb");
    if (!b->f)
        abort();
    uint8_t h[PM_FILE_HEADER_SIZE];
    pm_file_header(h);
    fwrite(h, 1, sizeof h, b->f);
}

static void write_chunk(struct builder *b, uint8_t kind, uint32_t stream)
{
    uint8_t h[PM_CHUNK_HEADER_SIZE];
    pm_chunk_header(h, kind, 0, stream, (uint32_t)b->n, pm_crc32c(0, b->buf, b->n));
    fwrite(h, 1, sizeof h, b->f);
    fwrite(b->buf, 1, b->n, b->f);
    b->n = 0;
}

void b_flush(struct builder *b)
{
    if (b->n)
        write_chunk(b, b->stream ? PM_CHUNK_EVENTS : PM_CHUNK_CONTROL, b->stream);
}

void b_close(struct builder *b)
{
    b_flush(b);
    fclose(b->f);
}

/* Switches to `stream`, and writes the chunk out before it could overflow
 * (no record is longer than a few hundred bytes). */
static void to(struct builder *b, uint32_t stream)
{
    if (stream != b->stream || b->n > sizeof b->buf - 2048)
        b_flush(b);
    b->stream = stream;
}

/* Where the next record goes (`to` leaves 2 KiB free: more than any record
 * the tests write). */
static uint8_t *at(struct builder *b)
{
    return b->buf + b->n;
}

void b_meta(struct builder *b, const char *key, const char *value)
{
    b_flush(b);
    b->n += pm_encode_meta_pair(at(b), key, value);
    write_chunk(b, PM_CHUNK_META, 0);
}

void b_thread(struct builder *b, uint32_t stream, uint64_t tid)
{
    to(b, stream);
    b->n += pm_encode_thread(at(b), &b->deltas[stream], tid, "test", 4);
}

void b_string(struct builder *b, uint32_t stream, uint64_t id, const char *text)
{
    to(b, stream);
    b->n += pm_encode_string(at(b), id, text, strlen(text));
}

void b_node(struct builder *b, uint32_t stream, uint64_t id, uint64_t parent, uint64_t file, uint64_t func,
            uint64_t line)
{
    to(b, stream);
    b->n += pm_encode_node(at(b), id, parent, file, func, line);
}

void b_alloc(struct builder *b, uint32_t stream, uint64_t seq, uint64_t addr, uint64_t size, uint64_t stack)
{
    b_alloc_in(b, stream, PM_DOMAIN_PYOBJ, seq, addr, size, stack);
}

void b_native(struct builder *b, uint32_t stream, uint64_t id, uint64_t parent, uint64_t module, uint64_t offset)
{
    to(b, stream);
    b->n += pm_encode_native(at(b), id, parent, module, offset);
}

void b_counters(struct builder *b, uint64_t seq, uint64_t allocations, uint64_t bytes, uint64_t frees)
{
    to(b, 0);
    b->n += pm_encode_counters(at(b), seq, allocations, bytes, frees);
}

/* No build id (the file is read as it is) and no segments. */
void b_module(struct builder *b, uint32_t stream, uint64_t id, const char *path, uint64_t base)
{
    to(b, stream);
    b->n += pm_encode_module(at(b), id, path, strlen(path), NULL, 0, base, 0);
}

void b_munmap(struct builder *b, uint32_t stream, uint64_t seq, uint64_t addr, uint64_t length)
{
    to(b, stream);
    b->n += pm_encode_munmap(at(b), &b->deltas[stream], seq, addr, length);
}

void b_alloc_in(struct builder *b, uint32_t stream, int domain, uint64_t seq, uint64_t addr, uint64_t size,
                uint64_t stack)
{
    to(b, stream);
    b->n += pm_encode_alloc(at(b), &b->deltas[stream], domain, seq, addr, size, stack);
}

void b_free(struct builder *b, uint32_t stream, uint64_t seq, uint64_t addr)
{
    to(b, stream);
    b->n += pm_encode_free(at(b), &b->deltas[stream], seq, addr);
}

void b_retag(struct builder *b, uint32_t stream, uint64_t seq, uint64_t addr, uint64_t stack)
{
    to(b, stream);
    b->n += pm_encode_retag(at(b), &b->deltas[stream], seq, addr, stack);
}

void b_snapshot(struct builder *b, uint32_t stream, uint64_t seq, int kind, uint64_t time_ns, const char *label)
{
    to(b, stream);
    b->n += pm_encode_snapshot(at(b), seq, kind, time_ns, label);
}

/* RSS 1 MiB, profiler 4 KiB. */
void b_tick(struct builder *b, uint64_t seq, uint64_t time_ns)
{
    to(b, 0);
    b->n += pm_encode_tick(at(b), seq, time_ns, 1 << 20, 4096);
}

void b_watermark(struct builder *b, uint64_t seq)
{
    to(b, 0);
    b->n += pm_encode_watermark(at(b), seq);
}

/* Ended by exit, status 0; profiler 8 KiB, nothing unrecorded. */
void b_end(struct builder *b, uint64_t seq, uint64_t time_ns)
{
    to(b, 0);
    b->n += pm_encode_end(at(b), seq, time_ns, PM_END_EXIT, 0, 8192, 0);
}
