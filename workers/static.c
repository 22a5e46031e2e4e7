/* static: files from a root directory (handler = static).
 *
 * The request's normalized path is looked up under the root (nginx "root"
 * semantics: the whole path, prefix included). Nothing outside the root is
 * served: openat2(RESOLVE_BENEATH) refuses ".." and symlinks that lead out;
 * where the kernel lacks openat2, the opened file's real path is checked
 * against the root's instead. Directories get their index file, or a 301 to
 * the slash form. GET and HEAD only; conditional requests and single byte
 * ranges as in RFC 9110. Written on the public API (preforkd.h); its route
 * settings are listed in static_settings below, and it reads the [server]
 * file_cache_* settings (a route may set its own).
 *
 * What lives how long:
 *   the open-file cache  one per inline route and worker, loop thread only
 *           (fcache.h); an answer holds its entry until its bytes are out.
 *   a compression job    (gzip_each, files over 16 KiB) malloc'd per GET:
 *           it holds its entry and part of the route's compress_memory
 *           from its start; an inline route's runs on the pool (pfd_async)
 *           and ends in gzip_done on the loop, which frees it when the
 *           client left, or hands it to the answer as its body's release
 *           (freed once sent or dropped). Nothing else points at it.
 *   compressors          per thread (gzip.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "workers/encoding.h"
#include "workers/fcache.h"
#include "workers/gzip.h"
#include "workers/handlers.h"
#include "workers/httpdate.h"
#include "workers/mime.h"
#include "workers/preforkd.h"
#include "workers/range.h"

/* A setting's blank-separated words: one buffer, an array of pointers. */
struct words {
    char *buf;
    char **v;
    size_t n;
};

static void words_free(struct words *w) {
    free(w->buf);
    free(w->v);
    *w = (struct words){0};
}

/* Splits s at blanks; 0, or -1 when out of memory. */
static int words_split(struct words *w, const char *s) {
    *w = (struct words){0};
    if (!(w->buf = strdup(s)) || !(w->v = calloc(strlen(s) / 2 + 1, sizeof *w->v))) {
        words_free(w);
        return -1;
    }
    for (char *save = NULL, *t = strtok_r(w->buf, " \t", &save); t;
         t = strtok_r(NULL, " \t", &save))
        w->v[w->n++] = t;
    return 0;
}

/* Backup and editor files refused by default (deny_suffixes). */
#define DENY_SUFFIXES_DEFAULT "~ .bak .swp .swo .orig"

/* A static route's state in a worker (its pfd_route_data). */
struct static_route {
    int root_fd;              /* the root directory, O_PATH */
    char *root;               /* its absolute path */
    char *root_real;          /* its canonical path, for the no-openat2 fallback */
    struct words index;       /* index: names tried in a folder, first found wins */
    bool autoindex;           /* autoindex = on: folders without an index are listed */
    struct words try_files;   /* try_files: $uri items, then maybe =CODE */
    unsigned offered;         /* codings answered: ENC_GZIP | ENC_BR */
    unsigned statics;         /* of them, from files beside (gzip_static, brotli_static) */
    bool compress;            /* compress = on: files gzipped on the fly */
    int compress_level;       /* 1-9 */
    uint64_t compress_min;    /* compress_min_size */
    uint64_t compress_max;    /* compress_max_size */
    uint64_t compress_memory; /* compress_memory: the most gzip_each jobs may hold */
    _Atomic uint64_t gz_held; /* what they hold now (pool routes: several threads) */
    pfd_headers *vary;        /* "Vary: Accept-Encoding", when it offers codings */
    struct words ctypes;      /* compress_types (none: the text types) */
    struct fcache *fcache;    /* inline routes: open files (loop thread only) */
    bool allow_hidden;        /* hidden_files = allow */
    struct words deny;        /* deny_suffixes */
    struct mime_table *mimes; /* Content-Type by extension (charset, mime_types) */
};

/* Set when the kernel said ENOSYS once; tests set it to cover the fallback. */
static int no_openat2;

static int open_fallback(const struct static_route *rt, int dirfd, const char *rel, int flags) {
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
static int open_beneath(const struct static_route *rt, const char *rel) {
    int flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY;
    if (!no_openat2) {
        struct open_how how = {.flags = (uint64_t)flags, .resolve = RESOLVE_BENEATH};
        int fd = (int)syscall(SYS_openat2, rt->root_fd, rel, &how, sizeof how);
        if (fd >= 0 || (errno != ENOSYS && errno != EXDEV)) return fd;
        if (errno == ENOSYS) no_openat2 = 1;
    }
    return open_fallback(rt, rt->root_fd, rel, flags);
}

/* Whether the (normalized) path names something the route keeps private:
 * under hidden_files = deny a segment starting with '.' (".git", ".env",
 * ".htaccess"; ".well-known" of RFC 8615 excepted), or a last segment ending
 * with one of deny_suffixes. The path is decoded, so "%2e" counts as '.'. */
static bool refused_name(const struct static_route *sr, const char *p, size_t len) {
    if (!sr->allow_hidden)
        for (const char *q = p, *end = p + len; (q = memchr(q, '/', (size_t)(end - q))); q++)
            if (q + 1 < end && q[1] == '.') {
                static const char wk[] = ".well-known";
                size_t seg = strcspn(q + 1, "/");
                if (!(seg == sizeof wk - 1 && memcmp(q + 1, wk, seg) == 0)) return true;
            }
    if (len && p[len - 1] == '/') return false;
    for (size_t i = 0; i < sr->deny.n; i++) {
        size_t n = strlen(sr->deny.v[i]);
        if (n < len && strncasecmp(p + len - n, sr->deny.v[i], n) == 0) return true;
    }
    return false;
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
 * matches a weak tag. Our tags are strong, but for codings made on the fly
 * (their bytes depend on the compressor and its level). */
static bool etag_listed(pfd_str list, const char *etag, bool strong) {
    bool ours_weak = etag[0] == 'W' && etag[1] == '/';
    if (ours_weak) etag += 2;
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
            if (!((weak || ours_weak) && strong) && (size_t)(p - tag) == elen &&
                memcmp(tag, etag, elen) == 0)
                return true;
        }
        while (p < end && *p != ',') p++;
    }
    return false;
}

/* The list of every field line named name: one list may be split over
 * several lines (RFC 9110 5.3). */
static bool etag_in_fields(const pfd_req *r, const char *name, const char *etag, bool strong) {
    unsigned n = pfd_header_count(r);
    for (unsigned i = 0; i < n; i++) {
        pfd_str fname, value;
        pfd_header_at(r, i, &fname, &value);
        if (fname.len == strlen(name) && strncasecmp(fname.p, name, fname.len) == 0 &&
            etag_listed(value, etag, strong))
            return true;
    }
    return false;
}

/* The preconditions of RFC 9110 13.2.2, in its order: If-Match, else
 * If-Unmodified-Since (412 when they fail); then If-None-Match, else
 * If-Modified-Since (304). 0 when the request goes on. */
static int preconditions(const pfd_req *r, const char *etag, time_t mtime) {
    time_t t;
    pfd_str ius = pfd_field(r, PFD_F_IF_UNMODIFIED_SINCE);
    if (pfd_field(r, PFD_F_IF_MATCH).p) {
        if (!etag_in_fields(r, "if-match", etag, true)) return 412;
    } else if (ius.p && httpdate_parse(ius.p, ius.len, &t) == 0 && mtime > t) {
        return 412;
    }
    if (pfd_field(r, PFD_F_IF_NONE_MATCH).p)
        return etag_in_fields(r, "if-none-match", etag, false) ? 304 : 0;
    pfd_str ims = pfd_field(r, PFD_F_IF_MODIFIED_SINCE);
    return ims.p && httpdate_parse(ims.p, ims.len, &t) == 0 && mtime <= t ? 304 : 0;
}

/* If-Range: the range applies only to the representation the client has. */
static bool range_applies(const pfd_req *r, const char *etag, time_t mtime) {
    pfd_str ir = pfd_field(r, PFD_F_IF_RANGE);
    if (!ir.p) return true;
    if (ir.len && ir.p[0] == '"') return ir.len == strlen(etag) && memcmp(ir.p, etag, ir.len) == 0;
    time_t date;
    return httpdate_parse(ir.p, ir.len, &date) == 0 && date == mtime;
}

/* 301 to the slash form of a directory. Location is built from the
 * normalized path, re-encoded: the raw target could say "//evil.example/..",
 * which a browser would read as another host. */
static int redirect_to_directory(pfd_req *r) {
    static const char keep[] = "-._~!$&'()*+,;=:@/";
    static const char hex[] = "0123456789ABCDEF";
    pfd_str path = pfd_path(r), query = pfd_query(r);
    char *loc = pfd_alloc(r, path.len * 3 + query.len + 3);
    if (!loc) return PFD_ERROR;
    size_t n = 0;
    for (size_t i = 0; i < path.len; i++) {
        unsigned char c = (unsigned char)path.p[i];
        if ((c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || strchr(keep, c)) {
            loc[n++] = (char)c;
        } else {
            loc[n++] = '%';
            loc[n++] = hex[c >> 4];
            loc[n++] = hex[c & 15];
        }
    }
    loc[n++] = '/';
    if (query.p) {
        loc[n++] = '?';
        memcpy(loc + n, query.p, query.len);
        n += query.len;
    }
    loc[n] = '\0';
    pfd_error(r, 301);
    return pfd_header_add(r, "Location", loc);
}

/* Answers from an entry (which the answer then holds, or which is released
 * here): 412, 304, 416, 206 or 200. */
/* Answers from e as it is: its bytes, its headers (taking e's hold). */
static int serve_as_is(pfd_req *r, struct fentry *e) {
    uint64_t size = e->size, first = 0, count = size;
    int pre = preconditions(r, e->etag, e->st.st_mtime);
    if (pre == 412) {
        fentry_release(e);
        return pfd_error(r, 412);
    }
    if (pre == 304) {
        pfd_status(r, 304);
        pfd_header_block(r, e->hdrs304 ? e->hdrs304 : e->hdrs);
        fentry_release(e);
        return PFD_OK;
    }
    /* an answer compressed on the fly has no ranges (nginx's gzip) */
    pfd_str range =
        pfd_method_id(r) == PFD_GET && !e->on_the_fly ? pfd_field(r, PFD_F_RANGE) : (pfd_str){0};
    if (range.p && range_applies(r, e->etag, e->st.st_mtime)) {
        switch (range_parse(range.p, range.len, size, &first, &count)) {
        case RANGE_OK:
            pfd_status(r, 206);
            pfd_header_addf(r, "Content-Range", "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, first,
                            first + count - 1, size);
            break;
        case RANGE_UNSATISFIABLE:
            fentry_release(e);
            pfd_error(r, 416);
            return pfd_header_addf(r, "Content-Range", "bytes */%" PRIu64, size);
        case RANGE_IGNORE: break;
        }
    }
    pfd_content_type(r, e->mime);
    pfd_header_block(r, e->hdrs);
    if (e->data) return pfd_body_ref(r, e->data + first, (size_t)count, fentry_release, e);
    return pfd_body_file(r, e->fd, first, count, fentry_release, e);
}

/* Whether s[0, n) starts with a whole UTF-8 sequence (no overlong form, no
 * surrogate, at most U+10FFFF); its length then in *len. */
static bool utf8_at(const unsigned char *s, size_t n, size_t *len) {
    unsigned c = s[0], cp, k;
    if (c < 0x80) {
        *len = 1;
        return true;
    }
    if (c >= 0xc2 && c <= 0xdf)
        k = 1, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
        k = 2, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
        k = 3, cp = c & 0x07;
    else
        return false;
    if (n <= k) return false;
    for (unsigned i = 1; i <= k; i++) {
        if ((s[i] & 0xc0) != 0x80) return false;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if ((k == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (k == 3 && (cp < 0x10000 || cp > 0x10ffff)))
        return false;
    *len = k + 1;
    return true;
}

/* Writes name as HTML text: markup characters escaped, controls and bytes
 * that are not UTF-8 shown as U+FFFD. */
static void write_html(pfd_req *r, const char *name) {
    const unsigned char *s = (const unsigned char *)name;
    size_t n = strlen(name), len;
    for (size_t i = 0; i < n; i += len) {
        const char *esc = NULL;
        switch (s[i]) {
        case '&': esc = "&amp;"; break;
        case '<': esc = "&lt;"; break;
        case '>': esc = "&gt;"; break;
        case '"': esc = "&quot;"; break;
        case '\'': esc = "&#39;"; break;
        }
        if (esc) {
            len = 1;
            pfd_write(r, esc, strlen(esc));
        } else if (!utf8_at(s + i, n - i, &len) || s[i] < 0x20 || s[i] == 0x7f) {
            len = 1;
            pfd_write(r, "\xef\xbf\xbd", 3);
        } else {
            pfd_write(r, s + i, len);
        }
    }
}

/* Writes name percent-encoded for a relative href: only unreserved
 * characters stay, so that no name reads as a scheme ("a:b") or markup. */
static void write_href(pfd_req *r, const char *name) {
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *c = (const unsigned char *)name; *c; c++) {
        if ((*c >= '0' && *c <= '9') || ((*c | 0x20) >= 'a' && (*c | 0x20) <= 'z') ||
            (*c && strchr("-._~", *c))) {
            pfd_write(r, c, 1);
        } else {
            char e[3] = {'%', hex[*c >> 4], hex[*c & 15]};
            pfd_write(r, e, 3);
        }
    }
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* autoindex: the listing of directory dirfd (path is its request path,
 * ending with '/'), hidden and denied names left out. Takes dirfd. */
static int list_directory(pfd_req *r, const struct static_route *sr, int dirfd, const char *path) {
    DIR *d = fdopendir(dirfd);
    if (!d) {
        close(dirfd);
        return pfd_error(r, 500);
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = PFD_OK;
    for (struct dirent *de; (de = readdir(d));) {
        const char *nm = de->d_name;
        if (strcmp(nm, ".") == 0 || strcmp(nm, "..") == 0) continue;
        char probe[NAME_MAX + 2];
        snprintf(probe, sizeof probe, "/%s", nm);
        if (refused_name(sr, probe, strlen(probe))) continue;
        bool dir = de->d_type == DT_DIR;
        if (de->d_type == DT_UNKNOWN || de->d_type == DT_LNK) {
            struct stat st;
            dir = fstatat(dirfd, nm, &st, 0) == 0 && S_ISDIR(st.st_mode);
        }
        if (n == cap) {
            char **more = realloc(names, (cap = cap ? 2 * cap : 64) * sizeof *names);
            if (!more) goto oom;
            names = more;
        }
        /* a directory's name carries its slash */
        if (asprintf(&names[n], "%s%s", nm, dir ? "/" : "") < 0) goto oom;
        n++;
    }
    if (n) qsort(names, n, sizeof *names, by_name);
    pfd_status(r, 200);
    pfd_content_type(r, "text/html; charset=utf-8");
    pfd_printf(r, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of ");
    write_html(r, path);
    pfd_printf(r, "</title></head>\n<body><h1>Index of ");
    write_html(r, path);
    pfd_printf(r, "</h1>\n<ul>\n");
    if (path[1]) pfd_printf(r, "<li><a href=\"../\">../</a></li>\n");
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(names[i]);
        bool dir = names[i][len - 1] == '/';
        if (dir) names[i][len - 1] = '\0';
        pfd_printf(r, "<li><a href=\"");
        write_href(r, names[i]);
        pfd_printf(r, "%s\">", dir ? "/" : "");
        write_html(r, names[i]);
        pfd_printf(r, "%s</a></li>\n", dir ? "/" : "");
    }
    pfd_printf(r, "</ul>\n</body></html>\n");
    goto out;
oom:
    rc = pfd_error(r, 500);
out:
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    closedir(d);
    return rc;
}

/* Opens the first of the route's index files that exists in directory dir
 * (a request path ending with '/'); *name is then its path (in the
 * request's memory). fd, or -1 with errno (ENOENT: none). */
static int open_index(pfd_req *r, const struct static_route *sr, const char *dir, struct stat *st,
                      const char **name) {
    for (size_t i = 0; i < sr->index.n; i++) {
        /* opened from the root, like any file: it may be a symlink to
         * elsewhere inside the root */
        char *full = pfd_sprintf(r, "%s%s", dir, sr->index.v[i]);
        if (!full) return -1;
        int fd = open_beneath(sr, full + 1);
        if (fd < 0) {
            if (errno == ENOENT || errno == ENOTDIR || errno == ENAMETOOLONG) continue;
            return -1;
        }
        if (fstat(fd, st) == 0 && S_ISREG(st->st_mode)) {
            *name = full;
            return fd;
        }
        close(fd);
    }
    errno = ENOENT;
    return -1;
}

/* What open_path found, when it found no file to send. */
#define ANSWERED (-1) /* the answer is set (a redirect, a listing) */
#define MISSING  0    /* nothing there: the next try_files item */

#define TRY_ITEM  1 /* a try_files item: what is not there is MISSING */
#define FILE_ONLY 2 /* a directory is MISSING too */

/* Opens the file for a normalized path: the file itself, or a directory's
 * index. fd, or -1 with *status: an error status, MISSING or ANSWERED. */
static int open_path(pfd_req *r, const struct static_route *sr, const char *path, size_t len,
                     unsigned how, struct stat *st, const char **name, int *status) {
    if ((how & TRY_ITEM) && refused_name(sr, path, len)) {
        *status = MISSING;
        return -1;
    }
    int fd = open_beneath(sr, path[1] ? path + 1 : ".");
    if (fd < 0) {
        *status = (how & TRY_ITEM) && (errno == ENOENT || errno == ENOTDIR)
                      ? MISSING
                      : status_for_errno(errno);
        return -1;
    }
    if (fstat(fd, st) < 0) {
        close(fd);
        *status = 500;
        return -1;
    }
    *name = path;
    if (S_ISREG(st->st_mode)) return fd;
    if (!S_ISDIR(st->st_mode) || (how & FILE_ONLY) || path[len - 1] != '/') {
        close(fd);
        *status = (how & TRY_ITEM) ? MISSING : 404;
        if (S_ISDIR(st->st_mode) && !(how & TRY_ITEM)) {
            redirect_to_directory(r);
            *status = ANSWERED;
        }
        return -1;
    }
    int ifd = open_index(r, sr, path, st, name);
    if (ifd >= 0 || errno != ENOENT) {
        close(fd);
        if (ifd < 0) *status = status_for_errno(errno);
        return ifd;
    }
    if (sr->autoindex) {
        pfd_str req = pfd_path(r);
        if (req.p[req.len - 1] != '/') {
            /* "$uri/" of "/docs": the listing's relative links need the
             * slash form */
            close(fd);
            redirect_to_directory(r);
            *status = ANSWERED;
            return -1;
        }
        list_directory(r, sr, fd, path);
        *status = ANSWERED;
        return -1;
    }
    close(fd);
    /* a directory without its index is not listed */
    *status = (how & TRY_ITEM) ? MISSING : 403;
    return -1;
}

/* The room try_expand needs for item and a path of plen bytes. */
static size_t try_room(const char *item, size_t plen) {
    size_t uris = 0;
    for (const char *p = item; (p = strstr(p, "$uri")); p += 4) uris++;
    return strlen(item) + uris * plen + 1;
}

/* A try_files item with $uri replaced by the request's path (normalized),
 * repeated slashes made one: "$uri/" of "/a/" is "/a/". Returns the length
 * written to out (try_room bytes). */
static size_t try_expand(const char *item, const char *path, size_t plen, char *out) {
    size_t n = 0;
    for (const char *p = item; *p;) {
        const char *piece = p;
        size_t len = 1;
        if (strncmp(p, "$uri", 4) == 0) {
            piece = path;
            len = plen;
            p += 4;
        } else {
            p++;
        }
        for (size_t i = 0; i < len; i++)
            if (!(piece[i] == '/' && n && out[n - 1] == '/')) out[n++] = piece[i];
    }
    out[n] = '\0';
    return n;
}

/* Opens the file for the request: its path, or the first try_files item
 * found. On failure the answer is set and -1 returned. */
static int open_for_path(pfd_req *r, const struct static_route *sr, struct stat *st,
                         const char **name) {
    pfd_str path = pfd_path(r);
    int status = 404, fd;
    if (!sr->try_files.n) {
        fd = open_path(r, sr, path.p, path.len, 0, st, name, &status);
    } else {
        fd = -1;
        status = MISSING;
        for (size_t i = 0; fd < 0 && status == MISSING && i < sr->try_files.n; i++) {
            const char *item = sr->try_files.v[i];
            if (item[0] == '=') {
                status = atoi(item + 1);
                break;
            }
            char *cand = pfd_alloc(r, try_room(item, path.len));
            if (!cand) {
                status = 500;
                break;
            }
            size_t clen = try_expand(item, path.p, path.len, cand);
            unsigned how = TRY_ITEM | (cand[clen - 1] == '/' ? 0 : FILE_ONLY);
            fd = open_path(r, sr, cand, clen, how, st, name, &status);
        }
        if (fd < 0 && status == MISSING) status = 404;
    }
    if (fd < 0 && status != ANSWERED) pfd_error(r, status);
    return fd;
}

static uint64_t coarse_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The codings the request takes, of those the route offers, best first
 * (every Accept-Encoding field line counts); how many. */
static size_t negotiate(const pfd_req *r, unsigned offered, enum encoding order[2]) {
    if (!pfd_field(r, PFD_F_ACCEPT_ENCODING).p) return 0;
    struct accept_enc a;
    accept_enc_init(&a);
    unsigned n = pfd_header_count(r);
    for (unsigned i = 0; i < n; i++) {
        pfd_str fname, value;
        pfd_header_at(r, i, &fname, &value);
        if (fname.len == 15 && strncasecmp(fname.p, "accept-encoding", 15) == 0)
            accept_enc_add(&a, value.p, value.len);
    }
    return accept_enc_rank(&a, offered, order);
}

static const char *const enc_suffix[] = {[ENC_GZIP] = ".gz", [ENC_BR] = ".br"};
static const char *const enc_name[] = {[ENC_GZIP] = "gzip", [ENC_BR] = "br"};

/* The precompressed file beside name (a path from the root: "/a.css" gives
 * "a.css.gz"), a regular file; fd or -1. */
static int open_variant(pfd_req *r, const struct static_route *sr, const char *name,
                        enum encoding enc, struct stat *st) {
    char *rel = pfd_sprintf(r, "%s%s", name + 1, enc_suffix[enc]);
    int fd = rel ? open_beneath(sr, rel) : -1;
    if (fd < 0) return -1;
    if (fstat(fd, st) == 0 && S_ISREG(st->st_mode)) return fd;
    close(fd);
    return -1;
}

/* The validators and fields of e's file in a coding: the ETag differs from
 * the plain file's ("-gz", "-br" inside the quotes; weak for a coding made
 * on the fly, whose bytes depend on the compressor), Content-Encoding joins
 * the block, Accept-Ranges unless the coding is made on the fly. The tag
 * goes to etag, the validators alone (a 304's fields, RFC 9110 15.4.5) to
 * *v304. -1 when out of memory. */
static int coding_headers(const struct fentry *e, enum encoding enc, bool on_the_fly,
                          char etag[static sizeof e->etag], pfd_headers **h, pfd_headers **v304) {
    char lastmod[HTTPDATE_LEN + 1];
    snprintf(etag, sizeof e->etag, "%s\"%" PRIx64 "-%" PRIx64 "-%s\"", on_the_fly ? "W/" : "",
             (uint64_t)e->st.st_mtime, (uint64_t)e->st.st_size, enc_suffix[enc] + 1);
    httpdate_format(e->st.st_mtime, lastmod);
    *h = pfd_headers_new();
    *v304 = pfd_headers_new();
    if (*h && *v304 && pfd_headers_set(*v304, "Last-Modified", lastmod) == 0 &&
        pfd_headers_set(*v304, "ETag", etag) == 0 &&
        pfd_headers_set(*h, "Last-Modified", lastmod) == 0 &&
        pfd_headers_set(*h, "ETag", etag) == 0 &&
        (on_the_fly || pfd_headers_set(*h, "Accept-Ranges", "bytes") == 0) &&
        pfd_headers_set(*h, "Content-Encoding", enc_name[enc]) == 0)
        return 0;
    pfd_headers_free(*h);
    pfd_headers_free(*v304);
    *h = *v304 = NULL;
    return -1;
}

/* A new entry turned into its coding's: its validators and fields. -1 when
 * out of memory. */
static int entry_encoded(struct fentry *e, enum encoding enc, bool on_the_fly) {
    char etag[sizeof e->etag];
    pfd_headers *h, *v304;
    if (coding_headers(e, enc, on_the_fly, etag, &h, &v304) < 0) return -1;
    memcpy(e->etag, etag, sizeof etag);
    pfd_headers_free(e->hdrs);
    pfd_headers_free(e->hdrs304);
    e->hdrs = h;
    e->hdrs304 = v304;
    e->on_the_fly = on_the_fly;
    return 0;
}

/* Whether the route compresses answers of this Content-Type on the fly. */
static bool compressible(const struct static_route *sr, const char *ctype) {
    if (!sr->ctypes.n) return mime_is_text(ctype);
    size_t n = strcspn(ctype, ";");
    for (size_t i = 0; i < sr->ctypes.n; i++)
        if (strlen(sr->ctypes.v[i]) == n && strncasecmp(sr->ctypes.v[i], ctype, n) == 0)
            return true;
    return false;
}

/* Whether compress = on gzips this file (its stat, its Content-Type). */
static bool compress_fits(const struct static_route *sr, const struct stat *st, const char *ctype) {
    uint64_t size = (uint64_t)st->st_size;
    return sr->compress && size >= sr->compress_min && size <= sr->compress_max &&
           compressible(sr, ctype);
}

/* The whole of e's file: its cached content, or read now into a malloc'd
 * buffer (*owned then true). NULL when it cannot be read whole. */
static const char *entry_bytes(const struct fentry *e, bool *owned) {
    size_t size = (size_t)e->st.st_size, got = 0;
    char *in;
    *owned = false;
    if (e->data) return e->data;
    if (e->fd < 0 || !(in = malloc(size ? size : 1))) return NULL;
    while (got < size) {
        ssize_t n = pread(e->fd, in + got, size - got, (off_t)got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += (size_t)n;
    }
    if (got < size) { /* shrunk meanwhile, or an I/O error */
        free(in);
        return NULL;
    }
    *owned = true;
    return in;
}

/* The gzip of e's file; NULL when it cannot be read or out of memory. */
static char *entry_gzip(const struct fentry *e, int level, size_t *len) {
    bool owned;
    const char *in = entry_bytes(e, &owned);
    char *gz = in ? gzip_compress(in, (size_t)e->st.st_size, level, len) : NULL;
    if (owned) free((char *)in);
    return gz;
}

/* compress = on, for a new entry e of a file that fits: a small file's gzip
 * takes its place in e (compressed once per change, answered from the
 * cache in one write); a larger one is compressed for each request (e then
 * only says how). Either way the ETag gets "-gz". A small file that would
 * not shrink stays as it is. false when e answers plainly. */
static bool compress_entry(const struct static_route *sr, struct fentry *e) {
    if ((uint64_t)e->st.st_size > FCACHE_MEM_MAX) {
        /* e stays the plain file's (HEAD, and the fallbacks of gzip_each) */
        if (coding_headers(e, ENC_GZIP, true, e->alt_etag, &e->alt_hdrs, &e->alt_hdrs304) < 0)
            return false;
        e->gzip_level = sr->compress_level;
        return true;
    }
    size_t len = 0;
    char *gz = entry_gzip(e, sr->compress_level, &len);
    if (!gz || len >= (uint64_t)e->st.st_size || entry_encoded(e, ENC_GZIP, true) < 0) {
        free(gz);
        return false;
    }
    free(e->data);
    e->data = gz;
    e->size = len;
    if (e->fd >= 0) close(e->fd);
    e->fd = -1;
    return true;
}

/* The memory gzip_each jobs hold, per route and worker: a job takes twice
 * its file's size while it compresses (the input, and the output's room),
 * then its output's length until sent; or it is not started. */
static bool gz_take(struct static_route *sr, uint64_t n) {
    uint64_t was = atomic_fetch_add_explicit(&sr->gz_held, n, memory_order_relaxed);
    if (was + n <= sr->compress_memory) return true;
    atomic_fetch_sub_explicit(&sr->gz_held, n, memory_order_relaxed);
    return false;
}

static void gz_put(struct static_route *sr, uint64_t n) {
    atomic_fetch_sub_explicit(&sr->gz_held, n, memory_order_relaxed);
}

/* A request's compression of a large file (gzip_each). Malloc'd: it lives
 * until its output is sent (body release) or dropped. */
struct gzip_job {
    struct static_route *sr;
    struct fentry *e; /* held until the job is answered */
    int level;        /* the entry's, copied: the loop may clear it meanwhile */
    uint64_t size;    /* the file's */
    uint64_t held;    /* taken from sr's memory */
    char *out;
    size_t len;
};

/* The job's end: its output and memory go, its hold on the entry too. */
static void gzip_job_free(void *arg) {
    struct gzip_job *j = arg;
    free(j->out);
    gz_put(j->sr, j->held);
    if (j->e) fentry_release(j->e);
    free(j);
}

/* [pool] Compresses, unless the client left before. The entry's fields it
 * reads (fd, st, data) do not change after the entry is made. */
static void gzip_work(pfd_req *r, void *arg) {
    struct gzip_job *j = arg;
    if (pfd_cancelled(r)) return;
    j->out = entry_gzip(j->e, j->level, &j->len);
    if (j->out && j->len < j->size) {
        char *fit = realloc(j->out, j->len ? j->len : 1); /* from libdeflate's bound */
        if (fit) j->out = fit;
    }
    /* the input is gone: what stays is the output */
    uint64_t now = j->out ? j->len : 0;
    gz_put(j->sr, j->held - now);
    j->held = now;
}

/* Answers with the compressed bytes and the gzip fields; a file that did
 * not shrink is answered as it is (and no longer compressed). */
static void gzip_answer(pfd_req *r, struct gzip_job *j) {
    struct fentry *e = j->e;
    if (!j->out) {
        pfd_error(r, 500);
        gzip_job_free(j);
        return;
    }
    if (j->len >= j->size) {
        e->gzip_level = 0; /* its later requests: plainly, without trying */
        j->e = NULL;
        gzip_job_free(j);
        serve_as_is(r, e);
        return;
    }
    j->e = NULL; /* the fields below are copied */
    pfd_content_type(r, e->mime);
    pfd_header_block(r, e->alt_hdrs);
    pfd_body_ref(r, j->out, j->len, gzip_job_free, j);
    fentry_release(e);
}

/* [loop] The end of an inline route's job. */
static void gzip_done(pfd_req *r, void *arg) {
    if (pfd_gone(r))
        gzip_job_free(arg);
    else
        gzip_answer(r, arg);
}

/* A GET of a file too large to keep compressed: compressed for each
 * request, as nginx's gzip does, but whole (libdeflate) and never on the
 * loop thread: an inline route hands it to the pool. Its validators are
 * the gzip's (a 304 costs no compression). When the route's jobs hold
 * compress_memory already the file is answered as it is. Takes e's hold. */
static int gzip_each(pfd_req *r, struct static_route *sr, struct fentry *e) {
    int pre = preconditions(r, e->alt_etag, e->st.st_mtime);
    if (pre) {
        pfd_status(r, pre);
        if (pre == 304) pfd_header_block(r, e->alt_hdrs304);
        fentry_release(e);
        return pre == 412 ? pfd_error(r, 412) : PFD_OK;
    }
    uint64_t size = (uint64_t)e->st.st_size;
    if (!gz_take(sr, 2 * size)) return serve_as_is(r, e);
    struct gzip_job *j = calloc(1, sizeof *j);
    if (!j) {
        gz_put(sr, 2 * size);
        fentry_release(e);
        return pfd_error(r, 500);
    }
    *j =
        (struct gzip_job){.sr = sr, .e = e, .level = e->gzip_level, .size = size, .held = 2 * size};
    if (pfd_route_mode(pfd_req_route(r)) == PFD_POOL) {
        gzip_work(r, j);
        gzip_answer(r, j);
        return PFD_OK;
    }
    if (pfd_async(r, gzip_work, gzip_done, j) < 0) gzip_job_free(j); /* the answer is 503 */
    return PFD_OK;
}

static int serve_entry(pfd_req *r, struct static_route *sr, struct fentry *e) {
    if (e->gzip_level && pfd_method_id(r) == PFD_GET) return gzip_each(r, sr, e);
    return serve_as_is(r, e);
}

static int static_handle(pfd_req *r) {
    struct static_route *sr = pfd_route_data(pfd_req_route(r));
    struct fcache *fc = sr->fcache;
    enum pfd_method method = pfd_method_id(r);
    if (method != PFD_GET && method != PFD_HEAD) {
        pfd_error(r, 405);
        return pfd_header_add(r, "Allow", "GET, HEAD");
    }
    pfd_str path = pfd_path(r);
    enum encoding order[2];
    size_t norder = 0;
    if (sr->offered) {
        /* the answer depends on Accept-Encoding, whichever it is */
        if (pfd_header_block(r, sr->vary) < 0) return PFD_ERROR;
        norder = negotiate(r, sr->offered, order);
    }
    if (refused_name(sr, path.p, path.len)) return pfd_error(r, 404);
    /* the answer to a list of codings is cached under the path, a NUL (no
     * path has one) and the list ("bg": br, else gzip): the first coding
     * whose file is there (or that compress makes), else the plain file */
    const char *key = path.p;
    size_t keylen = path.len;
    if (norder) {
        char *k = pfd_alloc(r, path.len + 1 + norder);
        if (!k) return pfd_error(r, 500);
        memcpy(k, path.p, path.len);
        k[path.len] = '\0';
        for (size_t i = 0; i < norder; i++) k[path.len + 1 + i] = enc_suffix[order[i]][1];
        key = k;
        keylen = path.len + 1 + norder;
    }
    uint64_t now = fc ? coarse_ms() : 0;
    struct fentry *e = NULL, *stale = NULL;
    if (fc) e = fcache_lookup(fc, key, keylen, now, &stale);
    if (!e) {
        struct stat st;
        const char *name;
        int fd = open_for_path(r, sr, &st, &name);
        enum encoding encoded = ENC_IDENTITY;
        bool compress = false;
        for (size_t i = 0; fd >= 0 && i < norder && !encoded && !compress; i++) {
            struct stat vst;
            int vfd = sr->statics & order[i] ? open_variant(r, sr, name, order[i], &vst) : -1;
            if (vfd >= 0) {
                close(fd);
                fd = vfd;
                st = vst;
                encoded = order[i];
            } else if (order[i] == ENC_GZIP) {
                compress = compress_fits(sr, &st, mime_table_type(sr->mimes, name));
            }
        }
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
            if (fd < 0) return PFD_OK; /* the answer is set */
            if (!(e = fentry_new(fc, key, keylen, fd, &st, name, now))) return pfd_error(r, 500);
            e->mime = mime_table_type(sr->mimes, name);
            if (compress) compress_entry(sr, e);
            if (encoded && entry_encoded(e, encoded, false) < 0) {
                if (fc) fcache_forget(fc, e);
                fentry_release(e);
                return pfd_error(r, 500);
            }
        }
    }
    return serve_entry(r, sr, e);
}

static void settings_free(struct static_route *sr) {
    words_free(&sr->deny);
    words_free(&sr->index);
    words_free(&sr->try_files);
    words_free(&sr->ctypes);
    mime_table_free(sr->mimes);
    sr->mimes = NULL;
}

/* A path setting made absolute against the config file's folder; malloc'd. */
static char *setting_path(const pfd_route *rt, const char *v) {
    const char *dir = pfd_route_config_dir(rt);
    char cwd[PATH_MAX], *abs = NULL;
    if (v[0] == '/') return strdup(v);
    if (!dir) dir = getcwd(cwd, sizeof cwd);
    if (!dir || asprintf(&abs, "%s/%s", dir, v) < 0) return NULL;
    return abs;
}

/* The root as an absolute path, against the config file's folder; malloc'd. */
static char *root_path(const pfd_route *rt) {
    const char *root = pfd_route_setting(rt, "root");
    return root ? setting_path(rt, root) : NULL;
}

/* The type table: built-in, then the mime_types files, then the charset. */
static int mimes_build(const pfd_route *rt, struct static_route *sr, char *err, size_t errlen) {
    const char *charset = pfd_route_setting(rt, "charset");
    if (!charset) charset = "utf-8";
    if (strcmp(charset, "off") == 0) charset = NULL;
    for (const char *c = charset; c && *c; c++)
        if (!((*c >= '0' && *c <= '9') || ((*c | 0x20) >= 'a' && (*c | 0x20) <= 'z') ||
              strchr("-_.:+", *c)) ||
            c - charset > 40) {
            snprintf(err, errlen, "charset: \"%s\": not a charset name (utf-8, iso-8859-1, off)",
                     charset);
            return -1;
        }
    if (charset && !*charset) {
        snprintf(err, errlen, "charset: empty (utf-8, iso-8859-1, off)");
        return -1;
    }
    if (!(sr->mimes = mime_table_new())) goto oom;
    const char *files = pfd_route_setting(rt, "mime_types");
    struct words w = {0};
    if (files && words_split(&w, files) < 0) goto oom;
    for (size_t i = 0; i < w.n; i++) {
        char *path = setting_path(rt, w.v[i]), why[512];
        int rc = path ? mime_table_load(sr->mimes, path, why, sizeof why) : -1;
        if (rc < 0) snprintf(err, errlen, "mime_types: %s", path ? why : "out of memory");
        free(path);
        if (rc < 0) {
            words_free(&w);
            return -1;
        }
    }
    words_free(&w);
    if (mime_table_finish(sr->mimes, charset) == 0) return 0;
oom:
    snprintf(err, errlen, "mime_types: out of memory");
    return -1;
}

/* try_files: items naming paths below the root, from '/' or $uri (the
 * request's path; no other variable), without dot segments; the last may
 * be =CODE (400-599) instead. */
static int try_files_parse(const pfd_route *rt, struct static_route *sr, char *err, size_t errlen) {
    const char *v = pfd_route_setting(rt, "try_files");
    if (!v) return 0;
    if (words_split(&sr->try_files, v) < 0) {
        snprintf(err, errlen, "try_files: out of memory");
        return -1;
    }
    if (!sr->try_files.n) {
        snprintf(err, errlen, "try_files: empty (e.g. $uri $uri/ /index.html)");
        return -1;
    }
    for (size_t i = 0; i < sr->try_files.n; i++) {
        const char *it = sr->try_files.v[i];
        const char *why = NULL;
        if (it[0] == '=') {
            char *end;
            long code = strtol(it + 1, &end, 10);
            if (i + 1 != sr->try_files.n)
                why = "=CODE comes last";
            else if (*end || end == it + 1 || code < 400 || code > 599)
                why = "=CODE takes a status from 400 to 599";
        } else if (it[0] != '/' && strncmp(it, "$uri", 4) != 0) {
            why = "an item starts with '/' or $uri";
        } else {
            for (const char *d = it; !why && (d = strchr(d, '$')); d++)
                if (strncmp(d, "$uri", 4) != 0) why = "$uri is the only variable";
            for (const char *d = it; !why && (d = strstr(d, "/.")); d++)
                if (d[2] == '\0' || d[2] == '/' || (d[2] == '.' && (d[3] == '\0' || d[3] == '/')))
                    why = "no . or .. segments";
        }
        if (why) {
            snprintf(err, errlen, "try_files: \"%s\": %s", it, why);
            return -1;
        }
    }
    return 0;
}

/* Files larger than this are never compressed on the fly. */
#define COMPRESS_MAX_CEILING (64ull * 1024 * 1024)

/* compress, compress_level, compress_min_size, compress_max_size,
 * compress_memory, compress_types. */
static int compress_parse(const pfd_route *rt, struct static_route *sr, char *err, size_t errlen) {
    const char *v = pfd_route_setting(rt, "compress");
    if (v && strcmp(v, "on") != 0 && strcmp(v, "off") != 0) {
        snprintf(err, errlen, "compress: \"%s\": must be on or off", v);
        return -1;
    }
    sr->compress = v && strcmp(v, "on") == 0;
    if (sr->compress) sr->offered |= ENC_GZIP;
    sr->compress_level = 6;
    if ((v = pfd_route_setting(rt, "compress_level"))) {
        if (v[0] < '1' || v[0] > '9' || v[1]) {
            snprintf(err, errlen, "compress_level: \"%s\": from 1 (fast) to 9 (small)", v);
            return -1;
        }
        sr->compress_level = v[0] - '0';
    }
    sr->compress_min = 256;
    if (pfd_route_setting(rt, "compress_min_size") &&
        pfd_route_number(rt, "compress_min_size", &sr->compress_min) < 0) {
        snprintf(err, errlen, "compress_min_size: \"%s\": not a size",
                 pfd_route_setting(rt, "compress_min_size"));
        return -1;
    }
    sr->compress_max = 1024 * 1024;
    if ((v = pfd_route_setting(rt, "compress_max_size")) &&
        (pfd_route_number(rt, "compress_max_size", &sr->compress_max) < 0 ||
         sr->compress_max > COMPRESS_MAX_CEILING || sr->compress_max < sr->compress_min)) {
        snprintf(err, errlen,
                 "compress_max_size: \"%s\": a size from compress_min_size to 64m (a file and "
                 "its gzip are held whole in memory)",
                 v);
        return -1;
    }
    sr->compress_memory = 32 * 1024 * 1024;
    if ((v = pfd_route_setting(rt, "compress_memory")) &&
        pfd_route_number(rt, "compress_memory", &sr->compress_memory) < 0) {
        snprintf(err, errlen, "compress_memory: \"%s\": not a size", v);
        return -1;
    }
    if (2 * sr->compress_max > sr->compress_memory) {
        snprintf(err, errlen,
                 "compress_memory (%" PRIu64 ") is below twice compress_max_size (%" PRIu64
                 "): such a file could not be compressed",
                 sr->compress_memory, sr->compress_max);
        return -1;
    }
    v = pfd_route_setting(rt, "compress_types");
    if (words_split(&sr->ctypes, v ? v : "") < 0) {
        snprintf(err, errlen, "compress_types: out of memory");
        return -1;
    }
    for (size_t i = 0; i < sr->ctypes.n; i++)
        if (!strchr(sr->ctypes.v[i], '/') || strchr(sr->ctypes.v[i], ';')) {
            snprintf(err, errlen, "compress_types: \"%s\": a media type (text/html)",
                     sr->ctypes.v[i]);
            return -1;
        }
    return 0;
}

/* The route's settings into sr (check and init share it); 0, or -1 with a
 * message that starts with the setting's name (its line in the config). */
static int settings_parse(const pfd_route *rt, struct static_route *sr, char *err, size_t errlen) {
    const char *v = pfd_route_setting(rt, "index");
    if (words_split(&sr->index, v ? v : "index.html") < 0) goto oom;
    for (size_t i = 0; i < sr->index.n; i++)
        if (strchr(sr->index.v[i], '/')) {
            snprintf(err, errlen, "index: \"%s\": must be a file name, no '/'", sr->index.v[i]);
            return -1;
        }
    v = pfd_route_setting(rt, "autoindex");
    if (v && strcmp(v, "on") != 0 && strcmp(v, "off") != 0) {
        snprintf(err, errlen, "autoindex: \"%s\": must be on or off", v);
        return -1;
    }
    sr->autoindex = v && strcmp(v, "on") == 0;
    static const char *const statics[] = {[ENC_GZIP] = "gzip_static", [ENC_BR] = "brotli_static"};
    for (enum encoding enc = ENC_GZIP; enc <= ENC_BR; enc++) {
        v = pfd_route_setting(rt, statics[enc]);
        if (v && strcmp(v, "on") != 0 && strcmp(v, "off") != 0) {
            snprintf(err, errlen, "%s: \"%s\": must be on or off", statics[enc], v);
            return -1;
        }
        if (v && strcmp(v, "on") == 0) sr->offered |= enc, sr->statics |= enc;
    }
    if (compress_parse(rt, sr, err, errlen) < 0) return -1;
    if (try_files_parse(rt, sr, err, errlen) < 0) return -1;
    v = pfd_route_setting(rt, "hidden_files");
    if (v && strcmp(v, "deny") != 0 && strcmp(v, "allow") != 0) {
        snprintf(err, errlen, "hidden_files: \"%s\": must be deny or allow", v);
        return -1;
    }
    sr->allow_hidden = v && strcmp(v, "allow") == 0;
    v = pfd_route_setting(rt, "deny_suffixes");
    if (!v) v = DENY_SUFFIXES_DEFAULT;
    if (words_split(&sr->deny, strcmp(v, "off") == 0 ? "" : v) < 0) {
        snprintf(err, errlen, "deny_suffixes: out of memory");
        return -1;
    }
    for (size_t i = 0; i < sr->deny.n; i++)
        if (strchr(sr->deny.v[i], '/')) {
            snprintf(err, errlen, "deny_suffixes: \"%s\": a suffix has no '/'", sr->deny.v[i]);
            return -1;
        }
    return mimes_build(rt, sr, err, errlen);
oom:
    snprintf(err, errlen, "out of memory");
    return -1;
}

static int static_check(const pfd_route *rt, char *err, size_t errlen) {
    struct static_route tmp = {0};
    int bad = settings_parse(rt, &tmp, err, errlen);
    settings_free(&tmp);
    if (bad) return -1;
    char *root = root_path(rt);
    struct stat st;
    int rc = -1;
    if (!pfd_route_setting(rt, "root"))
        snprintf(err, errlen, "root is required");
    else if (!root)
        snprintf(err, errlen, "root: out of memory");
    else if (stat(root, &st) < 0)
        snprintf(err, errlen, "root: %s: %s", root, strerror(errno));
    else if (!S_ISDIR(st.st_mode))
        snprintf(err, errlen, "root: %s: not a directory", root);
    else
        rc = 0;
    free(root);
    return rc;
}

static void static_fini(pfd_route *rt) {
    struct static_route *sr = pfd_route_data(rt);
    if (!sr) return;
    if (sr->root_fd >= 0) close(sr->root_fd);
    free(sr->root);
    free(sr->root_real);
    fcache_destroy(sr->fcache);
    pfd_headers_free(sr->vary);
    settings_free(sr);
    free(sr);
    pfd_route_set_data(rt, NULL);
}

static int static_init(pfd_route *rt, char *err, size_t errlen) {
    struct static_route *sr = calloc(1, sizeof *sr);
    if (!sr) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    pfd_route_set_data(rt, sr);
    sr->root_fd = -1;
    if (settings_parse(rt, sr, err, errlen) < 0) {
        static_fini(rt);
        return -1;
    }
    sr->root = root_path(rt);
    if (sr->root) sr->root_fd = open(sr->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (sr->root_fd >= 0) sr->root_real = realpath(sr->root, NULL);
    if (sr->root_fd < 0 || !sr->root_real) {
        snprintf(err, errlen, "root %s: %s", sr->root ? sr->root : "?", strerror(errno));
        static_fini(rt);
        return -1;
    }
    /* formatted once: every answer of the route carries it */
    if (sr->offered && (!(sr->vary = pfd_headers_new()) ||
                        pfd_headers_set(sr->vary, "Vary", "Accept-Encoding") < 0)) {
        snprintf(err, errlen, "out of memory");
        static_fini(rt);
        return -1;
    }
    uint64_t entries = 0, valid = 1000, idle = 60000;
    pfd_route_number(rt, "file_cache_entries", &entries);
    pfd_route_number(rt, "file_cache_valid", &valid);
    pfd_route_number(rt, "file_cache_idle", &idle);
    /* the cache belongs to the loop thread: pool routes open files each time */
    if (pfd_route_mode(rt) == PFD_INLINE && entries &&
        !(sr->fcache = fcache_create((unsigned)entries, (unsigned)valid, (unsigned)idle))) {
        snprintf(err, errlen, "out of memory");
        static_fini(rt);
        return -1;
    }
    return 0;
}

/* Once a second: idle and deleted files leave the cache. */
static void static_tick(pfd_route *rt) {
    struct static_route *sr = pfd_route_data(rt);
    if (sr->fcache) fcache_sweep(sr->fcache, coarse_ms());
}

/* clang-format off */
static const char *const static_settings[] = {
    "root", "index", "file_cache_entries", "file_cache_valid", "file_cache_idle",
    "hidden_files", "deny_suffixes", "charset", "mime_types", "autoindex", "try_files",
    "gzip_static", "brotli_static", "compress", "compress_level", "compress_min_size",
    "compress_max_size", "compress_memory", "compress_types", NULL};
/* clang-format on */

const pfd_handler static_handler = {
    .name = "static",
    .handle = static_handle,
    .body = PFD_BODY_DROP,
    .settings = static_settings,
    .check = static_check,
    .init = static_init,
    .fini = static_fini,
    .tick = static_tick,
};
