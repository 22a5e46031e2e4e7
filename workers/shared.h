/* shared: named regions of memory shared by the master and every worker
 * (pfd_shared_create, pfd_shared_get) and robust process-shared locks
 * (pfd_lock_*).
 *
 * A region is an anonymous MAP_SHARED mapping made by the master while it
 * runs the applications' init hooks (shared_open() .. shared_close()), so
 * that every worker forked later maps the same pages. Regions live as long
 * as the master: a reload runs init again, which gets the existing region of
 * the same name and size back, so state survives reloads (not a binary
 * upgrade, whose new master starts empty). The table of regions is copied
 * into each worker by fork and only read there. */
#ifndef PREFORKD_SHARED_H
#define PREFORKD_SHARED_H

#include <stdbool.h>

/* Master: regions may be created until shared_close(). */
void shared_open(void);
void shared_close(void);
/* Master, at exit: unmaps every region. */
void shared_free_all(void);

#endif
