/*
 * synth: writes a synthetic capture of a given size, to measure the
 * analyzer's speed and memory on captures larger than a workload makes.
 *
 *   synth OUT EVENTS [NATIVE_ADDRESSES MODULE]
 *
 * EVENTS allocations and frees (half each) from 1000 Python lines, with at
 * most 100,000 blocks live at once; with NATIVE_ADDRESSES, as many distinct
 * native return addresses in MODULE (spread over its first megabytes), each
 * under one of the Python lines, so that symbolisation has that many
 * addresses to name.
 */
#include <stdio.h>
#include <stdlib.h>

#include "builder.h"
#include "pymem/format.h"

#define LINES 1000
#define LIVE 100000

int main(int argc, char **argv)
{
    if (argc != 3 && argc != 5) {
        fprintf(stderr, "usage: synth OUT EVENTS [NATIVE_ADDRESSES MODULE]\n");
        return 2;
    }
    uint64_t events = strtoull(argv[2], NULL, 10);
    uint64_t natives = argc == 5 ? strtoull(argv[3], NULL, 10) : 0;
    struct builder *b = malloc(sizeof *b);
    b_open(b, argv[1]);
    b_meta(b, "pid", "1");
    b_meta(b, "python", "3.11.2");
    b_meta(b, "command", "synth");
    b_thread(b, 1, 1);
    b_string(b, 1, 1, "synth.py");
    b_string(b, 1, 2, "work");
    for (uint64_t i = 1; i <= LINES; i++)
        b_node(b, 1, i, 0, 1, 2, i);
    if (natives) {
        b_module(b, 1, 1, argv[4], 0x400000);
        for (uint64_t i = 0; i < natives; i++)
            b_native(b, 1, LINES + 1 + i, 1 + i % LINES, 1, 0x30000 + i);
    }
    uint64_t stacks = LINES + natives;
    uint64_t seq = 1;
    for (uint64_t i = 0; i < events / 2; i++) {
        uint64_t slot = i % LIVE;
        uint64_t addr = 0x10000000 + slot * 64;
        if (i >= LIVE)
            b_free(b, 1, seq++, addr);
        b_alloc(b, 1, seq++, addr, 16 + i % 48, 1 + (i * 7919) % stacks);
        if ((i & 0xffff) == 0)
            b_watermark(b, seq);
    }
    b_watermark(b, seq);
    b_end(b, seq, 1000000000);
    b_close(b);
    return 0;
}
