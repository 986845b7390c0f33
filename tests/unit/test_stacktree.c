/* Unit tests: the analyzer's stack tree (canonical ids, import detection,
 * rejection of malformed trees). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "stacktree.h"

static void define(struct pm_stacktree *s, uint32_t id, uint32_t parent, uint32_t file, uint32_t func, uint32_t line)
{
    struct pm_frame f = {parent, file, func, line};
    assert_int_equal(pm_tree_define_node(s, id, &f), 0);
}

static void canonical_ids_merge_same_lines(void **state)
{
    (void)state;
    struct pm_stacktree s;
    pm_tree_init(&s);
    assert_int_equal(pm_tree_define_string(&s, 1, (const uint8_t *)"app.py", 6), 0);
    assert_int_equal(pm_tree_define_string(&s, 2, (const uint8_t *)"main", 4), 0);
    assert_int_equal(pm_tree_define_string(&s, 3, (const uint8_t *)"work", 4), 0);
    define(&s, 1, 0, 1, 2, 10); /* main at line 10 */
    define(&s, 2, 0, 1, 2, 10); /* same line, other bytecode offset */
    define(&s, 3, 1, 1, 3, 20);
    define(&s, 4, 2, 1, 3, 20); /* same frames under the twin parent */
    define(&s, 5, 1, 1, 3, 21);
    assert_int_equal(pm_tree_canon(&s, 1), pm_tree_canon(&s, 2));
    assert_int_equal(pm_tree_canon(&s, 3), pm_tree_canon(&s, 4));
    assert_int_not_equal(pm_tree_canon(&s, 3), pm_tree_canon(&s, 5));
    assert_int_not_equal(pm_tree_canon(&s, 1), pm_tree_canon(&s, 3));
    assert_int_equal(pm_tree_canon(&s, 0), 0);
    assert_string_equal(pm_tree_string(&s, 3), "work");
    assert_string_equal(pm_tree_string(&s, 0), "");
    assert_string_equal(pm_tree_string(&s, 99), "<unknown>");
    pm_tree_free(&s);
}

static void str(struct pm_stacktree *s, uint32_t id, const char *text)
{
    assert_int_equal(pm_tree_define_string(s, id, (const uint8_t *)text, strlen(text)), 0);
}

/* app.py:3 <module> imports email.message; the package email is imported
 * first, and its code allocates at email/__init__.py:7. Elsewhere,
 * compileall calls the import system's code at run time (no
 * _find_and_load). */
static void imports_are_what_find_and_load_runs(void **state)
{
    (void)state;
    struct pm_stacktree s;
    pm_tree_init(&s);
    str(&s, 1, "<frozen importlib._bootstrap>");
    str(&s, 2, "app.py");
    str(&s, 3, "<module>");
    str(&s, 4, "_find_and_load");
    str(&s, 5, "_call_with_frames_removed");
    str(&s, 6, "/usr/lib/python3.11/email/__init__.py");
    str(&s, 7, "<frozen importlib._bootstrap_external>");
    str(&s, 8, "source_to_code");
    define(&s, 1, 0, 2, 3, 3);  /* app.py:3 <module> */
    define(&s, 2, 1, 1, 4, 1178); /* _find_and_load (email.message) */
    define(&s, 3, 2, 1, 5, 241);
    define(&s, 4, 3, 1, 4, 1178); /* _find_and_load (email) */
    define(&s, 5, 4, 1, 5, 241);
    define(&s, 6, 5, 6, 3, 7);  /* email/__init__.py:7 <module> */
    define(&s, 7, 1, 7, 8, 1000); /* app.py:3 -> source_to_code, no import */
    assert_false(pm_tree_in_import(&s, 1));
    assert_true(pm_tree_in_import(&s, 6));
    assert_true(pm_tree_in_import(&s, 2));
    assert_false(pm_tree_in_import(&s, 7));
    uint32_t module = 0, trigger = 0;
    assert_true(pm_tree_import_of(&s, 6, &module, &trigger));
    assert_int_equal(module, 6);
    assert_int_equal(trigger, 1);
    /* Before any module code runs: the import, from the same line. */
    assert_true(pm_tree_import_of(&s, 3, &module, &trigger));
    assert_int_equal(module, 0);
    assert_int_equal(trigger, 1);
    assert_false(pm_tree_import_of(&s, 7, &module, &trigger));
    char name[128];
    pm_module_name("/usr/lib/python3.11/email/__init__.py", name, sizeof name);
    assert_string_equal(name, "email");
    pm_module_name("/usr/lib/python3/dist-packages/docutils/nodes.py", name, sizeof name);
    assert_string_equal(name, "docutils.nodes");
    pm_module_name("/srv/app/handlers.py", name, sizeof name);
    assert_string_equal(name, "handlers");
    pm_tree_free(&s);
}

/* Ids must stay dense: one far beyond what was read is refused instead of
 * sizing the tables (a 173-byte file once asked for 6 GB). */
static void sparse_ids_are_refused(void **state)
{
    (void)state;
    struct pm_stacktree s;
    pm_tree_init(&s);
    struct pm_frame f = {0, 0, 0, 1};
    assert_int_equal(pm_tree_define_node(&s, (1u << 20) + 1, &f), -1);
    assert_int_equal(pm_tree_define_node(&s, 1000, &f), 0);
    assert_int_equal(pm_tree_define_string(&s, (1u << 20) + 5, (const uint8_t *)"x", 1), -1);
    assert_int_equal(pm_tree_define_string(&s, 77, (const uint8_t *)"x", 1), 0);
    for (uint32_t id = 1; id <= 100; id++)
        assert_int_equal(pm_tree_define_node(&s, id, &f), 0);
    /* Each definition read lets the ids reach two further. */
    assert_int_equal(pm_tree_define_node(&s, (1u << 20) + 200, &f), 0);
    assert_int_equal(pm_tree_define_node(&s, (1u << 20) + 300, &f), -1);
    pm_tree_free(&s);
}

static void malformed_nodes_are_refused(void **state)
{
    (void)state;
    struct pm_stacktree s;
    pm_tree_init(&s);
    struct pm_frame self = {5, 1, 1, 1};
    assert_int_equal(pm_tree_define_node(&s, 5, &self), -1); /* its own parent: a cycle */
    struct pm_frame later = {9, 1, 1, 1};
    assert_int_equal(pm_tree_define_node(&s, 6, &later), -1);
    struct pm_frame ok = {0, 1, 1, 1};
    assert_int_equal(pm_tree_define_node(&s, 0, &ok), -1); /* 0 is the root */
    struct pm_frame f;
    assert_false(pm_tree_frame(&s, 5, &f));
    pm_tree_free(&s);
}

/* `test_X NAME`: only the tests whose name matches NAME (cmocka's pattern,
 * * and ? as wildcards). */
int main(int argc, char **argv)
{
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(canonical_ids_merge_same_lines),
        cmocka_unit_test(imports_are_what_find_and_load_runs),
        cmocka_unit_test(sparse_ids_are_refused),
        cmocka_unit_test(malformed_nodes_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
