/*
 * stacktree: the stack tree and string table a capture defines
 * with NODE and STRING records, and the questions reports ask of it. Memory
 * grows with distinct frames and strings, never with events.
 *
 * Node ids are the capture's; two nodes that print the same (file, function,
 * line) under the same caller (they differ only by bytecode offset) share a
 * canonical id, so reports group them together.
 */
#ifndef PMA_STACKTREE_H
#define PMA_STACKTREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pm_frame {
    uint32_t parent;
    uint32_t file;
    uint32_t func;
    uint32_t line;
};

/* What a native node was recorded as (its file/func/line come from the
 * symboliser, see symbolize.h). */
struct pm_native {
    uint64_t offset;   /* from the module's load base (absolute if module 0) */
    uint32_t module;
    uint8_t native;    /* 0: a Python frame */
    uint8_t inlined;   /* a frame the compiler inlined into its callee's place */
};

/* Which frames a report looks at. */
enum pm_view {
    PM_VIEW_HYBRID, /* Python and native frames; sites by innermost Python frame */
    PM_VIEW_NATIVE, /* sites by the innermost frame, native ones included */
    PM_VIEW_PYTHON, /* native frames removed */
};

struct pm_stacktree {
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
    struct pm_native *native; /* NULL until the capture defines a native node */
    uint32_t *python_only;    /* node id -> projection + 1 (0: not yet computed) */
    uint32_t node_end;        /* one past the highest defined node id */
    uint32_t string_end;      /* one past the highest defined string id */
    bool sealed;              /* symbolised: records read again change nothing */
    struct string_index *added; /* strings the analyzer made (symbol names) */
    const char *wrappers;       /* allocator wrappers (pm_tree_set_wrappers) */
    uint32_t nodes_read, strings_read; /* definitions read: they bound the ids */
    uint64_t file_size;         /* of the capture, when known: it bounds them too */
    uint8_t *library_memo;      /* string id -> 1 a library's file, 2 the program's, 0 unknown */
    size_t library_memo_cap;
    uint32_t *chain;            /* scratch for pm_tree_canon's walk */
    size_t chain_cap;
};

void pm_tree_init(struct pm_stacktree *s);
void pm_tree_free(struct pm_stacktree *s);
/* Define records; 0 or -1 on out of memory / id out of range. */
int pm_tree_define_node(struct pm_stacktree *s, uint64_t id, const struct pm_frame *f);
int pm_tree_define_string(struct pm_stacktree *s, uint64_t id, const uint8_t *text, size_t len);

int pm_tree_define_native(struct pm_stacktree *s, uint64_t id, uint32_t parent, uint32_t module,
                            uint64_t offset);
/* Native details of node `id` (all zero for Python frames). */
struct pm_native pm_tree_native(const struct pm_stacktree *s, uint32_t id);

/* For the symboliser: a node made by the analyzer (inlined frames), and
 * string ids for text the capture does not hold; 0 on out of memory. */
uint32_t pm_tree_add_node(struct pm_stacktree *s, const struct pm_frame *f, const struct pm_native *n);
uint32_t pm_tree_add_string(struct pm_stacktree *s, const char *text);
void pm_tree_set_frame(struct pm_stacktree *s, uint32_t id, const struct pm_frame *f);

/* The stack a report groups `id` under in `view`: the Python-only
 * projection for PM_VIEW_PYTHON, `id` itself otherwise. */
uint32_t pm_tree_view(struct pm_stacktree *s, uint32_t id, enum pm_view view);
/* The frame that names a site: in the hybrid view the innermost Python frame,
 * in the Python view the innermost frame; otherwise (the native view, or a
 * stack without Python frames) the innermost native frame that is not one of
 * the allocator's wrappers (operator new, std::allocator, the malloc
 * family...), as heaptrack names its sites. */
uint32_t pm_tree_site_node(const struct pm_stacktree *s, uint32_t id, enum pm_view view);

/* The site `--by own` gives (the default): from the site node in `view`, the
 * innermost Python frame in the program's own code, as a user asks "which
 * line of mine": the call into numpy, json or the standard library rather
 * than the library's line. The site node itself when no frame is the
 * program's, and when it is native (the native view). */
uint32_t pm_tree_own_node(struct pm_stacktree *s, uint32_t id, enum pm_view view);
/* Not the program's own code: the interpreter's (frozen modules, <string>),
 * its standard library (lib/python3.X) or an installed package
 * (site-packages, dist-packages). */
bool pm_path_is_library(const char *path);

/* Replaces the list of allocator wrappers: function names (or prefixes
 * followed by '(' or '<'), comma-separated; "" for none. `list` must outlive
 * `s`. */
void pm_tree_set_wrappers(struct pm_stacktree *s, const char *list);

/* Frame of node `id`; false for the root (0) and undefined ids. */
bool pm_tree_frame(const struct pm_stacktree *s, uint32_t id, struct pm_frame *out);
/* String `id`: "" for 0, "<unknown>" if the capture never defined it. */
const char *pm_tree_string(const struct pm_stacktree *s, uint32_t id);
/* Canonical id of node `id` (0 stays 0). */
uint32_t pm_tree_canon(struct pm_stacktree *s, uint32_t id);
/* True if the stack was made while a module was being imported: it runs
 * through the import system's _find_and_load (not merely through importlib
 * code, which compileall or a loader may call at run time). */
bool pm_tree_in_import(struct pm_stacktree *s, uint32_t id);
/* For a stack in an import: the outermost import's module (the node of its
 * `<module>` frame; while its code has not started, that of the import it
 * made first, as a package before its submodule; else 0) and the line that
 * triggered it (the first frame outside the import system, 0 if none).
 * False if the stack is in no import. */
bool pm_tree_import_of(const struct pm_stacktree *s, uint32_t id, uint32_t *module, uint32_t *trigger);
/* A module's dotted name from its file's path (site-packages/a/b.py -> a.b,
 * lib/python3.11/email/__init__.py -> email). Returns its length. */
size_t pm_module_name(const char *path, char *out, size_t cap);

#endif
