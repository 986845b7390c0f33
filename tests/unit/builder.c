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

static void byte(struct builder *b, uint8_t v)
{
    b->buf[b->n++] = v;
}

static void varint(struct builder *b, uint64_t v)
{
    b->n += pm_put_varint(b->buf + b->n, v);
}

static void string(struct builder *b, const char *s)
{
    size_t len = strlen(s);
    varint(b, len);
    memcpy(b->buf + b->n, s, len);
    b->n += len;
}

void b_meta(struct builder *b, const char *key, const char *value)
{
    b_flush(b);
    string(b, key);
    string(b, value);
    write_chunk(b, PM_CHUNK_META, 0);
}

void b_thread(struct builder *b, uint32_t stream, uint64_t tid)
{
    to(b, stream);
    byte(b, PM_TAG_THREAD);
    varint(b, tid);
    string(b, "test");
    b->last_seq[stream] = b->last_addr[stream] = b->last_stack[stream] = 0;
}

void b_string(struct builder *b, uint32_t stream, uint64_t id, const char *text)
{
    to(b, stream);
    byte(b, PM_TAG_STRING);
    varint(b, id);
    string(b, text);
}

void b_node(struct builder *b, uint32_t stream, uint64_t id, uint64_t parent, uint64_t file, uint64_t func,
            uint64_t line)
{
    to(b, stream);
    byte(b, PM_TAG_NODE);
    varint(b, id);
    varint(b, parent);
    varint(b, file);
    varint(b, func);
    varint(b, line);
}

void b_alloc(struct builder *b, uint32_t stream, uint64_t seq, uint64_t addr, uint64_t size, uint64_t stack)
{
    b_alloc_in(b, stream, PM_DOMAIN_PYOBJ, seq, addr, size, stack);
}

void b_native(struct builder *b, uint32_t stream, uint64_t id, uint64_t parent, uint64_t module, uint64_t offset)
{
    to(b, stream);
    byte(b, PM_TAG_NATIVE);
    varint(b, id);
    varint(b, parent);
    varint(b, module);
    varint(b, offset);
}

void b_counters(struct builder *b, uint64_t seq, uint64_t allocations, uint64_t bytes, uint64_t frees)
{
    to(b, 0);
    byte(b, PM_TAG_COUNTERS);
    varint(b, seq);
    varint(b, allocations);
    varint(b, bytes);
    varint(b, frees);
}

void b_module(struct builder *b, uint32_t stream, uint64_t id, const char *path, uint64_t base)
{
    to(b, stream);
    byte(b, PM_TAG_MODULE);
    varint(b, id);
    string(b, path);
    varint(b, 0); /* no build id: the file is read as it is */
    varint(b, base);
    varint(b, 0); /* no segments */
}

void b_munmap(struct builder *b, uint32_t stream, uint64_t seq, uint64_t addr, uint64_t length)
{
    to(b, stream);
    byte(b, PM_TAG_MUNMAP);
    varint(b, seq - b->last_seq[stream]);
    varint(b, pm_zigzag((int64_t)(addr - b->last_addr[stream])));
    varint(b, length);
    b->last_seq[stream] = seq;
    b->last_addr[stream] = addr;
}

void b_alloc_in(struct builder *b, uint32_t stream, int domain, uint64_t seq, uint64_t addr, uint64_t size,
                uint64_t stack)
{
    to(b, stream);
    byte(b, (uint8_t)(PM_TAG_ALLOC | domain));
    varint(b, seq - b->last_seq[stream]);
    varint(b, pm_zigzag((int64_t)(addr - b->last_addr[stream])));
    varint(b, size);
    varint(b, pm_zigzag((int64_t)stack - (int64_t)b->last_stack[stream]));
    b->last_seq[stream] = seq;
    b->last_addr[stream] = addr;
    b->last_stack[stream] = stack;
}

void b_free(struct builder *b, uint32_t stream, uint64_t seq, uint64_t addr)
{
    to(b, stream);
    byte(b, PM_TAG_FREE);
    varint(b, seq - b->last_seq[stream]);
    varint(b, pm_zigzag((int64_t)(addr - b->last_addr[stream])));
    b->last_seq[stream] = seq;
    b->last_addr[stream] = addr;
}

void b_retag(struct builder *b, uint32_t stream, uint64_t seq, uint64_t addr, uint64_t stack)
{
    to(b, stream);
    byte(b, PM_TAG_RETAG);
    varint(b, seq - b->last_seq[stream]);
    varint(b, pm_zigzag((int64_t)(addr - b->last_addr[stream])));
    varint(b, pm_zigzag((int64_t)stack - (int64_t)b->last_stack[stream]));
    b->last_seq[stream] = seq;
    b->last_addr[stream] = addr;
    b->last_stack[stream] = stack;
}

void b_snapshot(struct builder *b, uint32_t stream, uint64_t seq, int kind, uint64_t time_ns, const char *label)
{
    to(b, stream);
    byte(b, PM_TAG_SNAPSHOT);
    varint(b, seq);
    varint(b, (uint64_t)kind);
    varint(b, time_ns);
    string(b, label);
}

void b_tick(struct builder *b, uint64_t seq, uint64_t time_ns)
{
    to(b, 0);
    byte(b, PM_TAG_TICK);
    varint(b, seq);
    varint(b, time_ns);
    varint(b, 1 << 20);
    varint(b, 4096);
}

void b_watermark(struct builder *b, uint64_t seq)
{
    to(b, 0);
    byte(b, PM_TAG_WATERMARK);
    varint(b, seq);
}

void b_end(struct builder *b, uint64_t seq, uint64_t time_ns)
{
    to(b, 0);
    byte(b, PM_TAG_END);
    varint(b, seq);
    varint(b, time_ns);
    varint(b, PM_END_EXIT);
    varint(b, 0);
    varint(b, 8192);
    varint(b, 0);
}
