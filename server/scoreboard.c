/* scoreboard: the shared mapping. */
#include "server/scoreboard.h"

#include <sys/mman.h>
#include <time.h>

static struct scoreboard *current;

struct scoreboard *scoreboard_create(void) {
    struct scoreboard *sb =
        mmap(NULL, sizeof *sb, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sb == MAP_FAILED) return NULL;
    sb->nslots = SCOREBOARD_SLOTS;
    current = sb;
    return sb;
}

void scoreboard_destroy(struct scoreboard *sb) {
    if (!sb) return;
    if (sb == current) current = NULL;
    munmap(sb, sizeof *sb);
}

struct scoreboard *scoreboard_get(void) {
    return current;
}

uint64_t monotonic_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}
