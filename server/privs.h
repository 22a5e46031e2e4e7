/* privs: the user and group workers run as. Started as root with `user` set,
 * the master binds its sockets and opens its logs as root; each worker then
 * drops to the configured user and group before it serves anything. */
#ifndef PREFORKD_PRIVS_H
#define PREFORKD_PRIVS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "server/conf.h"

struct creds {
    bool drop; /* we are root and a user is configured */
    uid_t uid;
    gid_t gid;
    char name[64];
};

/* Looks the configured user (and group: default the user's own) up; a name
 * that does not exist is an error with the setting's FILE:LINE, whoever
 * starts us. With no user, or when not root, nothing is dropped (*warn says
 * why, if it matters). */
int privs_resolve(const struct conf *c, struct creds *out, char *warn, size_t warnlen, char *err,
                  size_t errlen);
/* setgroups, setgid, setuid, and a check that root cannot be regained. */
int privs_drop(const struct creds *cr, char *err, size_t errlen);

#endif
