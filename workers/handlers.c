/* handlers: the handler registry, module loading and application hooks. */
#include "workers/handlers.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/log.h"
#include "workers/httpbin.h"
#include "workers/observe.h"
#include "workers/route.h"
#include "workers/shared.h"
#include "workers/site.h"

/* The symbol a module exports when its route does not name one. */
#define DEFAULT_SYMBOL "preforkd_module"

static const pfd_handler *const builtins[] = {
    &static_handler,  &sleep_handler,  &echo_handler,    &status_handler,    &metrics_handler,
    &healthz_handler, &readyz_handler, &httpbin_handler, &dashboard_handler, &return_handler,
#ifdef PREFORKD_FAULT_HANDLER
    &fault_handler,
#endif
};

static const pfd_app *server_app;

/* A module loaded for one configuration. */
struct module {
    struct module *next;
    char *path, *symbol;
    dev_t dev;   /* the file it was loaded from: one file under two names */
    ino_t ino;   /* is one module */
    bool inited; /* its app's init ran: its fini will */
    void *dl;
    int memfd; /* kept open while loaded: its /proc name stays unique */
    const pfd_app *app;
};

/* What a configuration loaded (struct conf's handlers). */
struct loaded {
    struct module *modules;
    bool server_inited; /* the server's app's init ran for it */
};

/* The configuration whose hooks pool threads run (set in the worker). */
static const struct conf *worker_conf;

void handlers_set_app(const pfd_app *app) {
    server_app = app;
}

static const pfd_handler *find_in_app(const pfd_app *app, const char *name) {
    for (const pfd_handler *h = app ? app->handlers : NULL; h && h->name; h++)
        if (strcmp(h->name, name) == 0) return h;
    return NULL;
}

static const pfd_handler *find_named(const char *name) {
    for (size_t i = 0; i < sizeof builtins / sizeof builtins[0]; i++)
        if (strcmp(builtins[i]->name, name) == 0) return builtins[i];
    return find_in_app(server_app, name);
}

static void module_free(struct module *m) {
    if (m->dl) dlclose(m->dl);
    if (m->memfd >= 0) close(m->memfd);
    free(m->path);
    free(m->symbol);
    free(m);
}

/* Copies the file at path into a new anonymous memory file. */
static int copy_to_memfd(const char *path, char *err, size_t errlen) {
    /* non-blocking: a FIFO planted at the path must not hang the master */
    int in = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    struct stat st;
    if (in < 0 || fstat(in, &st) < 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s", in < 0 ? strerror(errno) : "not a regular file");
        if (in >= 0) close(in);
        return -1;
    }
    /* the master runs its code as root: it must be as trusted as the binary
     * (owned by root or by whoever runs the master, written by no one else) */
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        snprintf(err, errlen, "writable by others than its owner (mode %o): not loaded",
                 (unsigned)(st.st_mode & 07777));
        close(in);
        return -1;
    }
    if (st.st_uid != 0 && st.st_uid != geteuid()) {
        snprintf(err, errlen, "owned by uid %u, neither root nor the server's user: not loaded",
                 (unsigned)st.st_uid);
        close(in);
        return -1;
    }
    int out = memfd_create("preforkd-module", MFD_CLOEXEC);
    if (out < 0) {
        snprintf(err, errlen, "memfd_create: %s", strerror(errno));
        close(in);
        return -1;
    }
    off_t off = 0;
    while (off < st.st_size) {
        ssize_t n = sendfile(out, in, &off, (size_t)(st.st_size - off));
        if (n <= 0) {
            snprintf(err, errlen, "copying: %s", n < 0 ? strerror(errno) : "short file");
            close(in);
            close(out);
            return -1;
        }
    }
    close(in);
    return out;
}

static struct module *module_load(const char *path, const char *symbol, char *err, size_t errlen) {
    struct module *m = calloc(1, sizeof *m);
    char why[512], name[64];
    if (!m || !(m->path = strdup(path)) || !(m->symbol = strdup(symbol))) {
        snprintf(err, errlen, "out of memory");
        if (m) module_free(m);
        return NULL;
    }
    m->memfd = -1;
    /* loaded from a copy: glibc would hand back the loaded object for a
     * path it has seen, and a rebuilt module must be new code */
    if ((m->memfd = copy_to_memfd(path, why, sizeof why)) < 0) {
        snprintf(err, errlen, "module %s: %s", path, why);
        module_free(m);
        return NULL;
    }
    snprintf(name, sizeof name, "/proc/self/fd/%d", m->memfd);
    if (!(m->dl = dlopen(name, RTLD_NOW | RTLD_LOCAL))) {
        const char *e = dlerror();
        /* dlerror names the copy: say the module's own path instead */
        const char *colon = e ? strstr(e, ": ") : NULL;
        snprintf(err, errlen, "module %s: %s", path, colon ? colon + 2 : "cannot be loaded");
        module_free(m);
        return NULL;
    }
    m->app = dlsym(m->dl, symbol);
    if (!m->app) {
        snprintf(err, errlen, "module %s: no symbol %s (a const pfd_app)", path, symbol);
        module_free(m);
        return NULL;
    }
    if (m->app->api_version != PFD_API_VERSION) {
        snprintf(err, errlen, "module %s: built against API version %u, this server has %u", path,
                 m->app->api_version, PFD_API_VERSION);
        module_free(m);
        return NULL;
    }
    for (const pfd_handler *h = m->app->handlers; h && h->name; h++)
        if (!h->handle) {
            snprintf(err, errlen, "module %s: handler \"%s\" has no handle function", path,
                     h->name);
            module_free(m);
            return NULL;
        }
    /* where its code is, for reading backtraces (they name the copy) */
    Dl_info info;
    if (dladdr(m->app, &info) && info.dli_fbase)
        log_debug("module %s loaded at %p (as %s)", path, info.dli_fbase, name);
    return m;
}

/* The module of a route, loaded once per configuration. */
static struct module *route_module(struct loaded *ld, const struct conf_route *cr, char *err,
                                   size_t errlen) {
    const char *symbol = cr->symbol ? cr->symbol : DEFAULT_SYMBOL;
    struct stat st;
    bool known = stat(cr->module, &st) == 0;
    for (struct module *m = ld->modules; m; m = m->next)
        if (strcmp(m->symbol, symbol) == 0 &&
            (strcmp(m->path, cr->module) == 0 ||
             (known && m->dev == st.st_dev && m->ino == st.st_ino)))
            return m;
    struct module *m = module_load(cr->module, symbol, err, errlen);
    if (!m) return NULL;
    m->dev = known ? st.st_dev : 0;
    m->ino = known ? st.st_ino : 0;
    m->next = ld->modules;
    ld->modules = m;
    return m;
}

static bool declared(const pfd_handler *h, const char *name) {
    for (const char *const *s = h->settings; s && *s; s++)
        if (strcmp(*s, name) == 0) return true;
    return false;
}

/* Resolves one route's handler and checks what its section says. */
static int resolve(struct conf *c, struct loaded *ld, struct conf_route *cr, char *err,
                   size_t errlen) {
    char where[512], why[768];
    const pfd_handler *h = NULL;
    if (cr->module) {
        struct module *m = route_module(ld, cr, why, sizeof why);
        if (!m) {
            snprintf(err, errlen, "%s: %s",
                     conf_route_where(c, cr, cr->module_line, where, sizeof where), why);
            return -1;
        }
        h = strcmp(cr->handler, "module") == 0
                ? (m->app->handlers && m->app->handlers->name ? m->app->handlers : NULL)
                : find_in_app(m->app, cr->handler);
        if (!h) {
            snprintf(err, errlen, "%s: handler: module %s has no handler \"%s\"",
                     conf_route_where(c, cr, cr->handler_line, where, sizeof where), cr->module,
                     cr->handler);
            return -1;
        }
    } else if (!(h = find_named(cr->handler))) {
        snprintf(err, errlen, "%s: handler: unknown handler \"%s\"",
                 conf_route_where(c, cr, cr->handler_line, where, sizeof where), cr->handler);
        return -1;
    }
    for (size_t i = 0; i < cr->nsettings; i++)
        if (!declared(h, cr->settings[i].name)) {
            snprintf(err, errlen, "%s: %s: not a setting of handler %s",
                     conf_route_where(c, cr, cr->settings[i].line, where, sizeof where),
                     cr->settings[i].name, h->name);
            return -1;
        }
    /* a streamed body is read with pfd_body_read, which waits: pool only */
    bool pool_only = h->pool_only || h->body == PFD_BODY_STREAM;
    if (cr->mode_set && cr->mode == ROUTE_INLINE && pool_only) {
        snprintf(err, errlen, "%s: mode: the %s handler runs on the pool",
                 conf_route_where(c, cr, cr->mode_line, where, sizeof where), h->name);
        return -1;
    }
    if (!cr->mode_set) cr->mode = h->mode == PFD_POOL || pool_only ? ROUTE_POOL : ROUTE_INLINE;
    cr->impl = h;
    return 0;
}

/* The apps whose hooks run for c: the server's, then each module's. */
static unsigned apps_of(const struct conf *c, const pfd_app **out, unsigned max) {
    unsigned n = 0;
    if (server_app && n < max) out[n++] = server_app;
    const struct loaded *ld = c->handlers;
    for (struct module *m = ld ? ld->modules : NULL; m && n < max; m = m->next) out[n++] = m->app;
    return n;
}

int handlers_load(struct conf *c, char *err, size_t errlen) {
    struct loaded *ld = calloc(1, sizeof *ld);
    if (!ld) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    c->handlers = ld;
    c->release_handlers = handlers_release;
    for (size_t i = 0; i < c->nroutes; i++)
        if (resolve(c, ld, &c->routes[i], err, errlen) < 0) goto fail;
    if (routes_check(c, err, errlen) < 0) goto fail;
    const pfd_app *apps[64];
    unsigned napps = apps_of(c, apps, 64);
    shared_open();
    for (unsigned i = 0; i < napps; i++) {
        char why[512] = "";
        if (apps[i]->init && apps[i]->init(why, sizeof why) < 0) {
            shared_close();
            snprintf(err, errlen, "%s: init failed: %s", apps[i]->name ? apps[i]->name : "app",
                     why[0] ? why : "(no reason given)");
            goto fail;
        }
        /* from now on its fini runs when this configuration is released */
        if (apps[i] == server_app) ld->server_inited = true;
        for (struct module *m = ld->modules; m; m = m->next) m->inited |= m->app == apps[i];
    }
    shared_close();
    return 0;
fail:
    handlers_release(c);
    return -1;
}

void handlers_release(struct conf *c) {
    struct loaded *ld = c->handlers;
    if (!ld) return;
    for (size_t i = 0; i < c->nroutes; i++) c->routes[i].impl = NULL;
    /* the master frees what an init made, before its code goes away; a
     * worker (which inherited the configuration) frees nothing of it */
    bool master = !worker_conf;
    if (master && ld->server_inited && server_app->fini) server_app->fini();
    while (ld->modules) {
        struct module *m = ld->modules;
        ld->modules = m->next;
        if (master && m->inited && m->app->fini) m->app->fini();
        module_free(m);
    }
    free(ld);
    c->handlers = NULL;
    c->release_handlers = NULL;
}

int handlers_worker_init(const struct conf *c, unsigned index, char *err, size_t errlen) {
    const pfd_app *apps[64];
    unsigned n = apps_of(c, apps, 64);
    worker_conf = c;
    for (unsigned i = 0; i < n; i++)
        if (apps[i]->worker_init && apps[i]->worker_init(index) < 0) {
            snprintf(err, errlen, "%s: worker_init failed", apps[i]->name ? apps[i]->name : "app");
            return -1;
        }
    return 0;
}

void handlers_worker_exit(const struct conf *c) {
    const pfd_app *apps[64];
    unsigned n = apps_of(c, apps, 64);
    for (unsigned i = 0; i < n; i++)
        if (apps[i]->worker_exit) apps[i]->worker_exit();
}

void handlers_thread_init(void) {
    const pfd_app *apps[64];
    unsigned n = worker_conf ? apps_of(worker_conf, apps, 64) : 0;
    for (unsigned i = 0; i < n; i++)
        if (apps[i]->thread_init) apps[i]->thread_init();
}

void handlers_thread_exit(void) {
    const pfd_app *apps[64];
    unsigned n = worker_conf ? apps_of(worker_conf, apps, 64) : 0;
    for (unsigned i = 0; i < n; i++)
        if (apps[i]->thread_exit) apps[i]->thread_exit();
}
