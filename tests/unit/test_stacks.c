/* Unit tests: the analyzer's stack tree (canonical ids, import detection,
 * rejection of malformed trees). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "stacks.h"

static void define(struct pm_stacks *s, uint32_t id, uint32_t parent, uint32_t file, uint32_t func, uint32_t line)
{
    struct pm_frame f = {parent, file, func, line};
    assert_int_equal(pm_stacks_define_node(s, id, &f), 0);
}

static void canonical_ids_merge_same_lines(void **state)
{
    (void)state;
    struct pm_stacks s;
    pm_stacks_init(&s);
    assert_int_equal(pm_stacks_define_string(&s, 1, (const uint8_t *)"app.py", 6), 0);
    assert_int_equal(pm_stacks_define_string(&s, 2, (const uint8_t *)"main", 4), 0);
    assert_int_equal(pm_stacks_define_string(&s, 3, (const uint8_t *)"work", 4), 0);
    define(&s, 1, 0, 1, 2, 10); /* main at line 10 */
    define(&s, 2, 0, 1, 2, 10); /* same line, other bytecode offset */
    define(&s, 3, 1, 1, 3, 20);
    define(&s, 4, 2, 1, 3, 20); /* same frames under the twin parent */
    define(&s, 5, 1, 1, 3, 21);
    assert_int_equal(pm_stacks_canon(&s, 1), pm_stacks_canon(&s, 2));
    assert_int_equal(pm_stacks_canon(&s, 3), pm_stacks_canon(&s, 4));
    assert_int_not_equal(pm_stacks_canon(&s, 3), pm_stacks_canon(&s, 5));
    assert_int_not_equal(pm_stacks_canon(&s, 1), pm_stacks_canon(&s, 3));
    assert_int_equal(pm_stacks_canon(&s, 0), 0);
    assert_string_equal(pm_stacks_string(&s, 3), "work");
    assert_string_equal(pm_stacks_string(&s, 0), "");
    assert_string_equal(pm_stacks_string(&s, 99), "<unknown>");
    pm_stacks_free(&s);
}

static void import_machinery_is_detected_through_parents(void **state)
{
    (void)state;
    struct pm_stacks s;
    pm_stacks_init(&s);
    const char *boot = "<frozen importlib._bootstrap>";
    assert_int_equal(pm_stacks_define_string(&s, 1, (const uint8_t *)boot, strlen(boot)), 0);
    assert_int_equal(pm_stacks_define_string(&s, 2, (const uint8_t *)"mod.py", 6), 0);
    define(&s, 1, 0, 2, 0, 1);
    define(&s, 2, 1, 1, 0, 100);
    define(&s, 3, 2, 2, 0, 5);
    assert_false(pm_stacks_in_import(&s, 1));
    assert_true(pm_stacks_in_import(&s, 2));
    assert_true(pm_stacks_in_import(&s, 3));
    pm_stacks_free(&s);
}

static void malformed_nodes_are_refused(void **state)
{
    (void)state;
    struct pm_stacks s;
    pm_stacks_init(&s);
    struct pm_frame self = {5, 1, 1, 1};
    assert_int_equal(pm_stacks_define_node(&s, 5, &self), -1); /* its own parent: a cycle */
    struct pm_frame later = {9, 1, 1, 1};
    assert_int_equal(pm_stacks_define_node(&s, 6, &later), -1);
    struct pm_frame ok = {0, 1, 1, 1};
    assert_int_equal(pm_stacks_define_node(&s, 0, &ok), -1); /* 0 is the root */
    struct pm_frame f;
    assert_false(pm_stacks_frame(&s, 5, &f));
    pm_stacks_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(canonical_ids_merge_same_lines),
        cmocka_unit_test(import_machinery_is_detected_through_parents),
        cmocka_unit_test(malformed_nodes_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
