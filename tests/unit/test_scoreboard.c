/* Unit tests for server/scoreboard.c: slots claimed per master and given
 * back, folds that move an exited worker's counters into the totals (by
 * route path too) without a reader ever seeing them twice or not at all,
 * and a board a new master maps again (binary upgrade). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "server/scoreboard.h"

static void fill(struct sb_slot *s, const char *route, uint64_t n) {
    atomic_store(&s->state, SLOT_SERVING);
    sb_add(&s->c[SBC_REQUESTS], n);
    sb_add(&s->c[SBC_STATUS + 1], n);
    sb_add(&s->c[SBC_LATENCY + sb_bucket(120)], n);
    snprintf(s->routes[0].path, sizeof s->routes[0].path, "%s", route);
    sb_add(&s->routes[0].c[SBR_REQUESTS], n);
    atomic_store(&s->nroutes, 1);
}

static uint64_t route_requests(const struct sb_view *v, const char *path) {
    for (unsigned i = 0; i < v->nroutes; i++)
        if (strcmp(v->routes[i].path, path) == 0) return v->routes[i].c[SBR_REQUESTS];
    return 0;
}

static void test_fold_keeps_totals(void **state) {
    (void)state;
    struct scoreboard *sb = scoreboard_create();
    assert_non_null(sb);
    int a = scoreboard_claim(sb, getpid()), b = scoreboard_claim(sb, getpid());
    assert_true(a >= 0 && b >= 0 && a != b);
    atomic_store(&sb->high, 2);
    fill(&sb->slots[a], "/x", 5);
    fill(&sb->slots[b], "/y", 7);
    struct sb_view *v = sb_read(sb);
    assert_int_equal(v->c[SBC_REQUESTS], 12);
    assert_int_equal(v->nworkers, 2);
    assert_int_equal(route_requests(v, "/x"), 5);
    sb_view_free(v);

    scoreboard_fold(sb, a); /* its worker exited */
    v = sb_read(sb);
    assert_int_equal(v->c[SBC_REQUESTS], 12); /* not lost, not twice */
    assert_int_equal(v->c[SBC_STATUS + 1], 12);
    assert_int_equal(v->c[SBC_LATENCY + 2], 12); /* 120 µs: the (100, 250] bucket */
    assert_int_equal(v->nworkers, 1);
    assert_int_equal(route_requests(v, "/x"), 5);
    sb_view_free(v);

    /* a respawn into the same slot starts from zero; the total goes on */
    memset((void *)&sb->slots[a], 0, sizeof sb->slots[a]);
    fill(&sb->slots[a], "/x", 1);
    scoreboard_fold(sb, a);
    scoreboard_fold(sb, a); /* a slot already free adds nothing */
    v = sb_read(sb);
    assert_int_equal(v->c[SBC_REQUESTS], 13);
    assert_int_equal(route_requests(v, "/x"), 6);
    assert_int_equal(route_requests(v, "/y"), 7);
    sb_view_free(v);
    scoreboard_destroy(sb);
}

static void test_claim_and_release(void **state) {
    (void)state;
    struct scoreboard *sb = scoreboard_create();
    int me = getpid();
    int a = scoreboard_claim(sb, me);
    /* another live master (our parent stands in) does not get our slot */
    int b = scoreboard_claim(sb, getppid());
    assert_int_not_equal(a, b);
    scoreboard_release(sb, a);
    assert_int_equal(scoreboard_claim(sb, getppid()), a);
    /* a master that is gone holds nothing: pid 0x7ffffff0 does not exist */
    atomic_store(&sb->slots[5].owner, 0x7ffffff0);
    atomic_store(&sb->slots[5].state, SLOT_SERVING);
    atomic_store(&sb->slots[5].c[SBC_REQUESTS], 3);
    for (int i = 0; i < 5; i++) atomic_store(&sb->slots[i].owner, me);
    assert_int_equal(scoreboard_claim(sb, me), 5);
    struct sb_view *v = sb_read(sb);
    assert_int_equal(v->c[SBC_REQUESTS], 3); /* what it had counted is kept */
    sb_view_free(v);
    scoreboard_destroy(sb);
}

static void test_new_master_maps_the_same_board(void **state) {
    (void)state;
    struct scoreboard *sb = scoreboard_create();
    atomic_store(&sb->totals[SBC_REQUESTS], 42);
    char fd[16];
    snprintf(fd, sizeof fd, "%d", scoreboard_fd());
    int copy = dup(scoreboard_fd()); /* what exec would leave the new master */
    snprintf(fd, sizeof fd, "%d", copy);
    setenv(ENV_SCOREBOARD, fd, 1);
    bool inherited = false;
    struct scoreboard *again = scoreboard_open(&inherited);
    assert_true(inherited);
    assert_null(getenv(ENV_SCOREBOARD));
    assert_int_equal(atomic_load(&again->totals[SBC_REQUESTS]), 42);
    scoreboard_destroy(again);
    /* a descriptor that is not a board: a fresh one */
    setenv(ENV_SCOREBOARD, "0", 1);
    struct scoreboard *fresh = scoreboard_open(&inherited);
    assert_false(inherited);
    assert_int_equal(atomic_load(&fresh->totals[SBC_REQUESTS]), 0);
    scoreboard_destroy(fresh);
    scoreboard_destroy(sb);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fold_keeps_totals),
        cmocka_unit_test(test_claim_and_release),
        cmocka_unit_test(test_new_master_maps_the_same_board),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
