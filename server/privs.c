/* privs: resolving and dropping credentials. */
#include "server/privs.h"

#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int privs_resolve(const struct conf *c, struct creds *out, char *warn, size_t warnlen, char *err,
                  size_t errlen) {
    char where[PATH_MAX + 32];
    memset(out, 0, sizeof *out);
    warn[0] = '\0';
    if (!c->user) return 0;
    /* looked up even when not root: a name that does not exist is a mistake
     * in the file whoever starts it, and --check says so at once */
    struct passwd *pw = getpwnam(c->user);
    if (!pw) {
        snprintf(err, errlen, "%suser: no user \"%s\"",
                 conf_where(c, conf_line(c, "user"), where, sizeof where), c->user);
        return -1;
    }
    out->uid = pw->pw_uid;
    out->gid = pw->pw_gid;
    if (c->group) {
        struct group *gr = getgrnam(c->group);
        if (!gr) {
            snprintf(err, errlen, "%sgroup: no group \"%s\"",
                     conf_where(c, conf_line(c, "group"), where, sizeof where), c->group);
            return -1;
        }
        out->gid = gr->gr_gid;
    }
    if (geteuid() != 0) {
        snprintf(warn, warnlen, "user = %s ignored: not started as root", c->user);
        memset(out, 0, sizeof *out);
        return 0;
    }
    snprintf(out->name, sizeof out->name, "%s", c->user);
    out->drop = true;
    return 0;
}

int privs_drop(const struct creds *cr, char *err, size_t errlen) {
    if (!cr->drop) return 0;
    /* groups first: once the uid is gone, they can no longer be changed */
    if (setgroups(1, &cr->gid) < 0 || setgid(cr->gid) < 0 || setuid(cr->uid) < 0) {
        snprintf(err, errlen, "dropping privileges to %s: %s", cr->name, strerror(errno));
        return -1;
    }
    if (cr->uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
        snprintf(err, errlen, "dropping privileges to %s: root could be regained", cr->name);
        return -1;
    }
    return 0;
}
