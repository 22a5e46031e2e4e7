/* mime: a built-in table of the types browsers and tools care about, and
 * route tables extended from mime.types files. */
#include "workers/mime.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const struct {
    const char *ext, *type;
} types[] = {
    {"html", "text/html"},
    {"htm", "text/html"},
    {"xhtml", "application/xhtml+xml"},
    {"css", "text/css"},
    {"js", "text/javascript"},
    {"mjs", "text/javascript"},
    {"json", "application/json"},
    {"jsonld", "application/ld+json"},
    {"map", "application/json"},
    {"webmanifest", "application/manifest+json"},
    {"txt", "text/plain"},
    {"md", "text/markdown"},
    {"csv", "text/csv"},
    {"ics", "text/calendar"},
    {"vtt", "text/vtt"},
    {"xml", "application/xml"},
    {"rss", "application/rss+xml"},
    {"atom", "application/atom+xml"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"apng", "image/apng"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"webp", "image/webp"},
    {"avif", "image/avif"},
    {"jxl", "image/jxl"},
    {"heic", "image/heic"},
    {"bmp", "image/bmp"},
    {"ico", "image/vnd.microsoft.icon"},
    {"woff", "font/woff"},
    {"woff2", "font/woff2"},
    {"ttf", "font/ttf"},
    {"otf", "font/otf"},
    {"wasm", "application/wasm"},
    {"pdf", "application/pdf"},
    {"zip", "application/zip"},
    {"gz", "application/gzip"},
    {"zst", "application/zstd"},
    {"tar", "application/x-tar"},
    {"7z", "application/x-7z-compressed"},
    {"mp3", "audio/mpeg"},
    {"m4a", "audio/mp4"},
    {"ogg", "audio/ogg"},
    {"opus", "audio/ogg"},
    {"flac", "audio/flac"},
    {"wav", "audio/wav"},
    {"mp4", "video/mp4"},
    {"webm", "video/webm"},
    {"ogv", "video/ogg"},
    {"mov", "video/quicktime"},
};

#define OCTET "application/octet-stream"

/* The extension of path's last segment, or NULL. */
static const char *extension(const char *path) {
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(slash ? slash : path, '.');
    return dot && dot[1] ? dot + 1 : NULL;
}

const char *mime_type(const char *path) {
    const char *ext = extension(path);
    if (ext)
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
            if (strcasecmp(ext, types[i].ext) == 0) return types[i].type;
    return OCTET;
}

static bool ends_with(const char *s, size_t n, const char *suffix) {
    size_t k = strlen(suffix);
    return n >= k && strncasecmp(s + n - k, suffix, k) == 0;
}

bool mime_is_text(const char *type) {
    size_t n = strcspn(type, ";");
    while (n && (type[n - 1] == ' ' || type[n - 1] == '\t')) n--;
    if (strncasecmp(type, "text/", 5) == 0) return true;
    static const char *const apps[] = {"application/json", "application/javascript",
                                       "application/xml", "application/ecmascript"};
    for (size_t i = 0; i < sizeof apps / sizeof apps[0]; i++)
        if (n == strlen(apps[i]) && strncasecmp(type, apps[i], n) == 0) return true;
    return ends_with(type, n, "+json") || ends_with(type, n, "+xml");
}

struct mime_entry {
    char *ext;   /* lower case */
    char *type;  /* as given */
    char *ctype; /* the Content-Type answered (type, or with its charset) */
    size_t order;
};

struct mime_table {
    struct mime_entry *v;
    size_t n, cap;
};

static int add(struct mime_table *t, const char *ext, size_t extlen, const char *type,
               size_t typelen) {
    if (t->n == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 128;
        struct mime_entry *v = realloc(t->v, cap * sizeof *v);
        if (!v) return -1;
        t->v = v;
        t->cap = cap;
    }
    struct mime_entry *e = &t->v[t->n];
    *e = (struct mime_entry){.ext = strndup(ext, extlen), .type = strndup(type, typelen)};
    if (!e->ext || !e->type) {
        free(e->ext);
        free(e->type);
        return -1;
    }
    for (char *c = e->ext; *c; c++)
        if (*c >= 'A' && *c <= 'Z') *c = (char)(*c + 32);
    e->order = t->n++;
    return 0;
}

struct mime_table *mime_table_new(void) {
    struct mime_table *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (add(t, types[i].ext, strlen(types[i].ext), types[i].type, strlen(types[i].type)) < 0) {
            mime_table_free(t);
            return NULL;
        }
    return t;
}

void mime_table_free(struct mime_table *t) {
    if (!t) return;
    for (size_t i = 0; i < t->n; i++) {
        if (t->v[i].ctype != t->v[i].type) free(t->v[i].ctype);
        free(t->v[i].type);
        free(t->v[i].ext);
    }
    free(t->v);
    free(t);
}

/* RFC 9110 token characters. */
static bool tchar(unsigned char c) {
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Whether s[0, n) is type "/" subtype, both tokens. */
static bool media_type(const char *s, size_t n) {
    size_t slash = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '/' && !slash && i > 0 && i + 1 < n)
            slash = i;
        else if (!tchar((unsigned char)s[i]))
            return false;
    }
    return slash != 0;
}

int mime_table_parse(struct mime_table *t, const char *text, size_t len, const char *name,
                     char *err, size_t errlen) {
    size_t before = t->n, line = 0;
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) eol = end;
        line++;
        const char *hash = memchr(p, '#', (size_t)(eol - p));
        const char *stop = hash ? hash : eol;
        const char *type = NULL;
        size_t typelen = 0;
        for (const char *q = p; q < stop;) {
            while (q < stop && (*q == ' ' || *q == '\t' || *q == '\r')) q++;
            const char *w = q;
            while (q < stop && *q != ' ' && *q != '\t' && *q != '\r') q++;
            size_t wl = (size_t)(q - w);
            if (!wl) break;
            if (!type) {
                if (!media_type(w, wl)) {
                    snprintf(err, errlen, "%s:%zu: \"%.*s\" is not a media type (type/subtype)",
                             name, line, (int)(wl > 64 ? 64 : wl), w);
                    goto fail;
                }
                type = w;
                typelen = wl;
                continue;
            }
            bool ok = wl <= 32 && w[0] != '.';
            for (size_t i = 0; ok && i < wl; i++) ok = tchar((unsigned char)w[i]) && w[i] != '/';
            if (!ok) {
                snprintf(err, errlen, "%s:%zu: \"%.*s\" is not a file extension (as \"html\")",
                         name, line, (int)(wl > 64 ? 64 : wl), w);
                goto fail;
            }
            if (add(t, w, wl, type, typelen) < 0) {
                snprintf(err, errlen, "%s:%zu: out of memory", name, line);
                goto fail;
            }
        }
        p = eol + 1;
    }
    return 0;
fail:
    while (t->n > before) {
        t->n--;
        free(t->v[t->n].ext);
        free(t->v[t->n].type);
    }
    return -1;
}

int mime_table_load(struct mime_table *t, const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "re");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    char *text = NULL;
    size_t len = 0, cap = 0;
    int rc = -1;
    for (;;) {
        if (len == cap) {
            char *more = cap < (64u << 20) ? realloc(text, cap = cap ? 2 * cap : 65536) : NULL;
            if (!more) {
                snprintf(err, errlen, "%s: too large or out of memory", path);
                goto out;
            }
            text = more;
        }
        size_t got = fread(text + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    if (ferror(f))
        snprintf(err, errlen, "%s: read error", path);
    else
        rc = mime_table_parse(t, text, len, path, err, errlen);
out:
    free(text);
    fclose(f);
    return rc;
}

static int by_ext_then_order(const void *a, const void *b) {
    const struct mime_entry *x = a, *y = b;
    int c = strcmp(x->ext, y->ext);
    if (c) return c;
    return x->order < y->order ? -1 : x->order > y->order;
}

int mime_table_finish(struct mime_table *t, const char *charset) {
    qsort(t->v, t->n, sizeof *t->v, by_ext_then_order);
    /* keep the last of each extension */
    size_t w = 0;
    for (size_t i = 0; i < t->n; i++) {
        if (i + 1 < t->n && strcmp(t->v[i].ext, t->v[i + 1].ext) == 0) {
            free(t->v[i].ext);
            free(t->v[i].type);
            continue;
        }
        t->v[w++] = t->v[i];
    }
    t->n = w;
    for (size_t i = 0; i < t->n; i++) {
        struct mime_entry *e = &t->v[i];
        e->ctype = e->type;
        if (charset && !strchr(e->type, ';') && mime_is_text(e->type) &&
            asprintf(&e->ctype, "%s; charset=%s", e->type, charset) < 0) {
            e->ctype = e->type;
            return -1;
        }
    }
    return 0;
}

static int ext_cmp(const void *key, const void *entry) {
    return strcasecmp(key, ((const struct mime_entry *)entry)->ext);
}

const char *mime_table_type(const struct mime_table *t, const char *path) {
    const char *ext = extension(path);
    const struct mime_entry *e = ext ? bsearch(ext, t->v, t->n, sizeof *t->v, ext_cmp) : NULL;
    return e ? e->ctype : OCTET;
}
