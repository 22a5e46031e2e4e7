/* static: files from a root directory (handler = static).
 *
 * The request's normalized path is looked up under the root (nginx "root"
 * semantics: the whole path, prefix included). Nothing outside the root is
 * served: openat2(RESOLVE_BENEATH) refuses ".." and symlinks that lead out;
 * where the kernel lacks openat2, the opened file's real path is checked
 * against the root's instead. Directories get their index file, or a 301 to
 * the slash form. GET and HEAD only; conditional requests and single byte
 * ranges as in RFC 9110. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "workers/fcache.h"
#include "workers/httpdate.h"
#include "workers/mime.h"
#include "workers/range.h"
#include "workers/route.h"

/* Set when the kernel said ENOSYS once; tests set it to cover the fallback. */
static int no_openat2;

static int open_fallback(const struct route *rt, int dirfd, const char *rel, int flags) {
    int fd = openat(dirfd, rel, flags);
    if (fd < 0) return -1;
    char link[64], real[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, real, sizeof real - 1);
    size_t rootlen = strlen(rt->root_real);
    if (n < 0) goto refuse;
    real[n] = '\0';
    /* inside means the root itself or below "root/" */
    if (strncmp(real, rt->root_real, rootlen) != 0 ||
        (real[rootlen] != '\0' && real[rootlen] != '/' && rootlen > 1))
        goto refuse;
    return fd;
refuse:
    close(fd);
    errno = EXDEV;
    return -1;
}

/* Opens rel (relative, no leading slash) beneath the route's root, never
 * outside it. RESOLVE_BENEATH also refuses absolute symlinks, even those that
 * point back inside the root: those get the real-path check instead.
 * Non-blocking, so that a FIFO cannot hang the thread. */
static int open_beneath(const struct route *rt, const char *rel) {
    int flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY;
    if (!no_openat2) {
        struct open_how how = {.flags = (uint64_t)flags, .resolve = RESOLVE_BENEATH};
        int fd = (int)syscall(SYS_openat2, rt->root_fd, rel, &how, sizeof how);
        if (fd >= 0 || (errno != ENOSYS && errno != EXDEV)) return fd;
        if (errno == ENOSYS) no_openat2 = 1;
    }
    return open_fallback(rt, rt->root_fd, rel, flags);
}

static int status_for_errno(int e) {
    switch (e) {
    case ENOENT:
    case ENOTDIR:
    case ENAMETOOLONG: return 404;
    case EACCES:
    case EPERM:
    case EXDEV: /* a symlink or ".." leading out of the root */
    case ELOOP: return 403;
    default: return 500;
    }
}

/* Whether a list of entity-tags holds ours, or is "*". The weak comparison
 * (If-None-Match) ignores a W/ prefix; the strong one (If-Match) never
 * matches a weak tag. Our tags are strong. */
static bool etag_listed(struct http_str list, const char *etag, bool strong) {
    size_t elen = strlen(etag);
    const char *p = list.p, *end = list.p + list.len;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ',')) p++;
        if (p < end && *p == '*') return true;
        bool weak = end - p >= 2 && p[0] == 'W' && p[1] == '/';
        if (weak) p += 2;
        const char *tag = p;
        if (p < end && *p == '"') {
            const char *close = memchr(p + 1, '"', (size_t)(end - p - 1));
            if (!close) return false;
            p = close + 1;
            if (!(weak && strong) && (size_t)(p - tag) == elen && memcmp(tag, etag, elen) == 0)
                return true;
        }
        while (p < end && *p != ',') p++;
    }
    return false;
}

/* The list of every field line named name: one list may be split over
 * several lines (RFC 9110 5.3). */
static bool etag_in_fields(const struct http_request *req, const char *name, const char *etag,
                           bool strong) {
    for (unsigned i = 0; i < req->nfields; i++)
        if (http_str_ieq(req->fields[i].name, name) &&
            etag_listed(req->fields[i].value, etag, strong))
            return true;
    return false;
}

/* The preconditions of RFC 9110 13.2.2, in its order: If-Match, else
 * If-Unmodified-Since (412 when they fail); then If-None-Match, else
 * If-Modified-Since (304). 0 when the request goes on. */
static int preconditions(const struct http_request *req, const char *etag, time_t mtime) {
    time_t t;
    if (req->if_match) {
        if (!etag_in_fields(req, "if-match", etag, true)) return 412;
    } else if (req->if_unmodified_since &&
               httpdate_parse(req->if_unmodified_since->p, req->if_unmodified_since->len, &t) ==
                   0 &&
               mtime > t) {
        return 412;
    }
    if (req->if_none_match) return etag_in_fields(req, "if-none-match", etag, false) ? 304 : 0;
    const struct http_str *ims = req->if_modified_since;
    return ims && httpdate_parse(ims->p, ims->len, &t) == 0 && mtime <= t ? 304 : 0;
}

/* If-Range: the range applies only to the representation the client has. */
static bool range_applies(const struct http_request *req, const char *etag, time_t mtime) {
    const struct http_str *ir = req->if_range;
    if (!ir) return true;
    if (ir->len && ir->p[0] == '"')
        return ir->len == strlen(etag) && memcmp(ir->p, etag, ir->len) == 0;
    time_t date;
    return httpdate_parse(ir->p, ir->len, &date) == 0 && date == mtime;
}

/* 301 to the slash form of a directory. Location is built from the
 * normalized path, re-encoded: the raw target could say "//evil.example/..",
 * which a browser would read as another host. */
static void redirect_to_directory(struct handler_call *call) {
    static const char keep[] = "-._~!$&'()*+,;=:@/";
    static const char hex[] = "0123456789ABCDEF";
    const struct http_request *req = call->req;
    char *loc = malloc(req->path_len * 3 + 2);
    if (!loc) {
        response_error(call->resp, 500);
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < req->path_len; i++) {
        unsigned char c = (unsigned char)req->path[i];
        if ((c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || strchr(keep, c)) {
            loc[n++] = (char)c;
        } else {
            loc[n++] = '%';
            loc[n++] = hex[c >> 4];
            loc[n++] = hex[c & 15];
        }
    }
    loc[n++] = '/';
    response_error(call->resp, 301);
    response_header(call->resp, "Location", "%.*s%s%.*s", (int)n, loc, req->query.p ? "?" : "",
                    (int)req->query.len, req->query.p ? req->query.p : "");
    free(loc);
}

/* Answers from an entry (which the response then holds, or which is
 * released here): 412, 304, 416, 206 or 200. */
static void serve_entry(struct handler_call *call, struct fentry *e) {
    const struct http_request *req = call->req;
    struct response *resp = call->resp;
    uint64_t size = (uint64_t)e->st.st_size, first = 0, count = size;

    int pre = preconditions(req, e->etag, e->st.st_mtime);
    if (pre == 412) {
        fentry_release(e);
        response_error(resp, 412);
        return;
    }
    if (pre == 304) {
        response_reset(resp);
        resp->status = 304;
        response_header_raw(resp, e->hdrs, e->hdrs_len);
        fentry_release(e);
        return;
    }
    const struct http_str *range = req->method == METHOD_GET ? req->range : NULL;
    if (range && range_applies(req, e->etag, e->st.st_mtime)) {
        switch (range_parse(range->p, range->len, size, &first, &count)) {
        case RANGE_OK:
            resp->status = 206;
            response_header(resp, "Content-Range", "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, first,
                            first + count - 1, size);
            break;
        case RANGE_UNSATISFIABLE:
            fentry_release(e);
            response_error(resp, 416);
            response_header(resp, "Content-Range", "bytes */%" PRIu64, size);
            return;
        case RANGE_IGNORE: break;
        }
    }
    resp->content_type = e->mime;
    response_header_raw(resp, e->hdrs, e->hdrs_len);
    if (e->data) {
        resp->body = BODY_DATA;
        resp->data = e->data + first;
        resp->data_len = (size_t)count;
    } else {
        response_file(resp, e->fd, first, count);
    }
    response_hold(resp, e, fentry_release);
}

/* Opens the file for the request path: the file itself, or a directory's
 * index. On failure the response is already the answer and -1 returned. */
static int open_for_path(struct handler_call *call, struct stat *st, const char **name) {
    const struct http_request *req = call->req;
    const struct route *rt = call->route;
    struct response *resp = call->resp;
    const char *rel = req->path[1] ? req->path + 1 : ".";
    int fd = open_beneath(rt, rel);
    if (fd < 0) {
        response_error(resp, status_for_errno(errno));
        return -1;
    }
    if (fstat(fd, st) < 0) goto fail;
    *name = req->path;
    if (S_ISDIR(st->st_mode)) {
        close(fd);
        if (req->path[req->path_len - 1] != '/') {
            redirect_to_directory(call);
            return -1;
        }
        /* the index is opened from the root, like any file: it may be a
         * symlink to elsewhere inside the root */
        char index[PATH_MAX];
        if ((size_t)snprintf(index, sizeof index, "%s%s", req->path + 1, rt->conf->index) >=
            sizeof index) {
            response_error(resp, 404);
            return -1;
        }
        /* a directory without its index is not listed */
        if ((fd = open_beneath(rt, index)) < 0) {
            response_error(resp, errno == ENOENT ? 403 : status_for_errno(errno));
            return -1;
        }
        if (fstat(fd, st) < 0) goto fail;
        *name = rt->conf->index;
    }
    if (S_ISREG(st->st_mode)) return fd;
    close(fd);
    response_error(resp, 404);
    return -1;
fail:
    close(fd);
    response_error(resp, 500);
    return -1;
}

static uint64_t coarse_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void static_handle(struct handler_call *call) {
    const struct http_request *req = call->req;
    struct fcache *fc = call->route->fcache;
    struct response *resp = call->resp;

    if (req->method != METHOD_GET && req->method != METHOD_HEAD) {
        response_error(resp, 405);
        response_header(resp, "Allow", "GET, HEAD");
        return;
    }
    uint64_t now = fc ? coarse_ms() : 0;
    struct fentry *e = NULL, *stale = NULL;
    if (fc) e = fcache_lookup(fc, req->path, req->path_len, now, &stale);
    if (!e) {
        struct stat st;
        const char *name;
        int fd = open_for_path(call, &st, &name);
        if (fd >= 0 && stale && fcache_still_valid(fc, stale, &st, now)) {
            close(fd);
            e = stale;
        } else {
            if (stale) {
                /* changed or gone: the entry goes now (one whose file is
                 * gone must not keep it open) */
                fcache_forget(fc, stale);
                fentry_release(stale);
            }
            if (fd < 0) return;
            if (!(e = fentry_new(fc, req->path, req->path_len, fd, &st, name, now))) {
                response_error(resp, 500);
                return;
            }
        }
    }
    serve_entry(call, e);
}

static int static_init(struct route *rt, const struct conf *conf, char *err, size_t errlen) {
    rt->root_fd = open(rt->conf->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    rt->root_real = realpath(rt->conf->root, NULL);
    if (rt->root_fd < 0 || !rt->root_real) {
        snprintf(err, errlen, "route %s: root %s: %s", rt->prefix, rt->conf->root, strerror(errno));
        return -1;
    }
    /* the cache belongs to the loop thread: pool routes open files each time */
    if (rt->mode == ROUTE_INLINE && conf->file_cache_entries &&
        !(rt->fcache = fcache_create(conf->file_cache_entries, conf->file_cache_valid,
                                     conf->file_cache_idle))) {
        snprintf(err, errlen, "route %s: out of memory", rt->prefix);
        return -1;
    }
    return 0;
}

/* Once a second: idle and deleted files leave the cache. */
static void static_tick(struct route *rt) {
    if (rt->fcache) fcache_sweep(rt->fcache, coarse_ms());
}

static void static_fini(struct route *rt) {
    if (rt->root_fd >= 0) close(rt->root_fd);
    rt->root_fd = -1;
    free(rt->root_real);
    rt->root_real = NULL;
    fcache_destroy(rt->fcache);
    rt->fcache = NULL;
}

const struct handler static_handler = {
    .name = "static",
    .init = static_init,
    .fini = static_fini,
    .tick = static_tick,
    .handle = static_handle,
};
