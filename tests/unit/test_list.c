/* test_list.c - core/list.h: order, unlinking at either end and in the middle, removing twice,
 * moving a whole list, and getting back from a node to its struct. */
#include "core/list.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

typedef struct item {
    int before; /* so the node is not at offset 0 */
    list_node_t node;
    int value;
} item_t;

/* The values of l in order, as digits ("" when empty). */
static const char *values(const list_t *l, char *out)
{
    size_t n = 0;
    for (list_node_t *p = l->head.next; p != &l->head; p = p->next)
        out[n++] = (char)('0' + container_of(p, item_t, node)->value);
    out[n] = '\0';
    return out;
}

static void test_push_remove(void **state)
{
    (void)state;
    item_t it[5];
    char buf[8];
    list_t l;
    list_init(&l);
    assert_true(list_empty(&l));
    assert_null(list_first(&l));
    assert_null(list_first_entry(&l, item_t, node));
    for (int i = 0; i < 5; i++) {
        it[i].value = i;
        list_push_back(&l, &it[i].node);
    }
    assert_false(list_empty(&l));
    assert_string_equal(values(&l, buf), "01234");
    assert_ptr_equal(list_first_entry(&l, item_t, node), &it[0]);
    list_remove(&it[2].node); /* middle */
    assert_string_equal(values(&l, buf), "0134");
    list_remove(&it[2].node); /* again: harmless */
    assert_string_equal(values(&l, buf), "0134");
    list_remove(&it[0].node); /* first */
    list_remove(&it[4].node); /* last */
    assert_string_equal(values(&l, buf), "13");
    assert_ptr_equal(list_first_entry(&l, item_t, node), &it[1]);
    list_push_back(&l, &it[4].node);
    assert_string_equal(values(&l, buf), "134");
    while (!list_empty(&l))
        list_remove(list_first(&l));
    assert_string_equal(values(&l, buf), "");
}

static void test_splice(void **state)
{
    (void)state;
    item_t it[4];
    char buf[8];
    list_t a, b;
    list_init(&a);
    list_init(&b);
    list_splice(&a, &b); /* both empty */
    assert_true(list_empty(&a) && list_empty(&b));
    for (int i = 0; i < 4; i++) {
        it[i].value = i;
        list_push_back(i < 2 ? &a : &b, &it[i].node);
    }
    list_splice(&a, &b);
    assert_string_equal(values(&a, buf), "0123");
    assert_true(list_empty(&b));
    list_splice(&b, &a); /* into an empty list */
    assert_string_equal(values(&b, buf), "0123");
    assert_true(list_empty(&a));
    list_remove(&it[3].node); /* the moved nodes link to their new list */
    list_push_back(&a, &it[3].node);
    assert_string_equal(values(&b, buf), "012");
    assert_string_equal(values(&a, buf), "3");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_push_remove),
        cmocka_unit_test(test_splice),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
