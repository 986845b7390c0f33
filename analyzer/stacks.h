/*
 * stacks (analyzer side): the stack tree and string table a capture defines
 * with NODE and STRING records, and the questions reports ask of it. Memory
 * grows with distinct frames and strings, never with events.
 *
 * Node ids are the capture's; two nodes that print the same (file, function,
 * line) under the same caller (they differ only by bytecode offset) share a
 * canonical id, so reports group them together.
 */
#ifndef PMA_STACKS_H
#define PMA_STACKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pm_frame {
    uint32_t parent;
    uint32_t file;
    uint32_t func;
    uint32_t line;
};

struct pm_stacks {
    struct pm_frame *nodes;
    uint8_t *defined;
    uint32_t node_cap;
    char **strings;
    uint32_t string_cap;
    uint32_t *canon;       /* node id -> canonical id + 1 (0: not yet computed) */
    uint32_t *canon_nodes; /* canonical id -> first node id with that identity */
    uint32_t canon_count, canon_cap;
    uint32_t *canon_index; /* open addressing over canonical ids + 1 */
    uint32_t canon_index_cap;
    int8_t *import_memo;   /* node id -> 1 import machinery, 0 not, -1 unknown */
};

void pm_stacks_init(struct pm_stacks *s);
void pm_stacks_free(struct pm_stacks *s);
/* Define records; 0 or -1 on out of memory / id out of range. */
int pm_stacks_define_node(struct pm_stacks *s, uint64_t id, const struct pm_frame *f);
int pm_stacks_define_string(struct pm_stacks *s, uint64_t id, const uint8_t *text, size_t len);

/* Frame of node `id`; false for the root (0) and undefined ids. */
bool pm_stacks_frame(const struct pm_stacks *s, uint32_t id, struct pm_frame *out);
/* String `id`: "" for 0, "<unknown>" if the capture never defined it. */
const char *pm_stacks_string(const struct pm_stacks *s, uint32_t id);
/* Canonical id of node `id` (0 stays 0). */
uint32_t pm_stacks_canon(struct pm_stacks *s, uint32_t id);
/* True if a frame of the stack runs Python's import machinery. */
bool pm_stacks_in_import(struct pm_stacks *s, uint32_t id);

#endif
