/* shared: the region table and the robust locks. */
#include "workers/shared.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "server/log.h"
#include "workers/preforkd.h"

#define MAX_REGIONS 64

struct region {
    char name[64];
    void *p;
    size_t size;
};

static struct region regions[MAX_REGIONS];
static unsigned nregions;
static bool creating;

void shared_open(void) {
    creating = true;
}

void shared_close(void) {
    creating = false;
}

void shared_free_all(void) {
    for (unsigned i = 0; i < nregions; i++) munmap(regions[i].p, regions[i].size);
    nregions = 0;
}

void *pfd_shared_create(const char *name, size_t size) {
    if (!creating) {
        log_error("shared region %s: regions are made in the app's init hook (master, before "
                  "fork); workers find them with pfd_shared_get",
                  name);
        return NULL;
    }
    for (unsigned i = 0; i < nregions; i++)
        if (strcmp(regions[i].name, name) == 0) {
            /* a reload's init: the region and its state stay */
            if (regions[i].size == size) return regions[i].p;
            log_error("shared region %s exists with %zu bytes, not %zu", name, regions[i].size,
                      size);
            return NULL;
        }
    if (nregions == MAX_REGIONS || strlen(name) >= sizeof regions[0].name || size == 0) {
        log_error("shared region %s: more than %d regions, a name of %zu bytes or more, or a size "
                  "of 0",
                  name, MAX_REGIONS, sizeof regions[0].name);
        return NULL;
    }
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        log_error("shared region %s: %s", name, strerror(errno));
        return NULL;
    }
    struct region *r = &regions[nregions++];
    strcpy(r->name, name);
    r->p = p;
    r->size = size;
    return p;
}

void *pfd_shared_get(const char *name, size_t *size) {
    for (unsigned i = 0; i < nregions; i++)
        if (strcmp(regions[i].name, name) == 0) {
            if (size) *size = regions[i].size;
            return regions[i].p;
        }
    return NULL;
}

_Static_assert(sizeof(pthread_mutex_t) <= sizeof(pfd_lock), "pfd_lock too small");

int pfd_lock_init(pfd_lock *l) {
    pthread_mutexattr_t a;
    if (pthread_mutexattr_init(&a) != 0) return -1;
    int rc = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED) ||
             pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST) ||
             pthread_mutex_init((pthread_mutex_t *)l->opaque, &a);
    pthread_mutexattr_destroy(&a);
    return rc ? -1 : 0;
}

/* A lock whose holder died: it is ours now; the log names where it lives
 * (region and offset), as what it guards may be half done. */
static int recovered(pfd_lock *l) {
    pthread_mutex_consistent((pthread_mutex_t *)l->opaque);
    const char *at = (const char *)l;
    for (unsigned i = 0; i < nregions; i++) {
        const char *base = regions[i].p;
        if (at >= base && at < base + regions[i].size) {
            log_warn("the lock at offset %zu of shared region %s was held by a process that "
                     "died: recovered",
                     (size_t)(at - base), regions[i].name);
            return PFD_LOCK_RECOVERED;
        }
    }
    log_warn("the shared lock at %p was held by a process that died: recovered", (void *)l);
    return PFD_LOCK_RECOVERED;
}

int pfd_lock_acquire(pfd_lock *l) {
    pthread_mutex_t *m = (pthread_mutex_t *)l->opaque;
    int rc = pthread_mutex_lock(m);
    if (rc == 0) return 0;
    if (rc == EOWNERDEAD) return recovered(l);
    return -1;
}

int pfd_lock_try(pfd_lock *l) {
    pthread_mutex_t *m = (pthread_mutex_t *)l->opaque;
    int rc = pthread_mutex_trylock(m);
    if (rc == 0) return 0;
    if (rc == EBUSY) return PFD_LOCK_BUSY;
    if (rc == EOWNERDEAD) return recovered(l);
    return -1;
}

void pfd_lock_release(pfd_lock *l) {
    pthread_mutex_unlock((pthread_mutex_t *)l->opaque);
}
