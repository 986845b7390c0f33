/*
 * builder: writes synthetic captures for the analyzer's tests, record by
 * record, with the preload's encoders (include/pymem/encode.h). Each stream's records
 * collect in the current chunk; changing stream (or b_flush) writes it out.
 */
#ifndef PM_TEST_BUILDER_H
#define PM_TEST_BUILDER_H

#include <stdint.h>
#include <stdio.h>

#include "pymem/encode.h"

struct builder {
    FILE *f;
    uint8_t buf[1 << 16];
    size_t n;
    uint32_t stream; /* of the open chunk; 0 = control */
    struct pm_deltas deltas[16]; /* per stream */
};

void b_open(struct builder *b, const char *path);
void b_close(struct builder *b);
void b_flush(struct builder *b);
void b_meta(struct builder *b, const char *key, const char *value);
void b_thread(struct builder *b, uint32_t stream, uint64_t tid);
void b_string(struct builder *b, uint32_t stream, uint64_t id, const char *text);
void b_node(struct builder *b, uint32_t stream, uint64_t id, uint64_t parent, uint64_t file, uint64_t func,
            uint64_t line);
void b_alloc(struct builder *b, uint32_t stream, uint64_t seq, uint64_t addr, uint64_t size, uint64_t stack);
void b_alloc_in(struct builder *b, uint32_t stream, int domain, uint64_t seq, uint64_t addr, uint64_t size,
                uint64_t stack);
void b_munmap(struct builder *b, uint32_t stream, uint64_t seq, uint64_t addr, uint64_t length);
void b_module(struct builder *b, uint32_t stream, uint64_t id, const char *path, uint64_t base);
void b_native(struct builder *b, uint32_t stream, uint64_t id, uint64_t parent, uint64_t module, uint64_t offset);
void b_free(struct builder *b, uint32_t stream, uint64_t seq, uint64_t addr);
void b_retag(struct builder *b, uint32_t stream, uint64_t seq, uint64_t addr, uint64_t stack);
void b_snapshot(struct builder *b, uint32_t stream, uint64_t seq, int kind, uint64_t time_ns, const char *label);
void b_counters(struct builder *b, uint64_t seq, uint64_t allocations, uint64_t bytes, uint64_t frees);
void b_tick(struct builder *b, uint64_t seq, uint64_t time_ns);
void b_watermark(struct builder *b, uint64_t seq);
void b_end(struct builder *b, uint64_t seq, uint64_t time_ns);

#endif
