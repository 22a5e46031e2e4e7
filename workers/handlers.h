/* handlers: where a route's handler comes from, and the hooks of the
 * applications that provide them.
 *
 * A [route]'s handler = NAME is looked up, in order, among the built-in
 * handlers (static, echo, sleep, status, dashboard, httpbin...; fault in
 * test builds), the handlers of the application the server was built with
 * (pfd_main's app), and, when the route names a module, that module's
 * handlers (handler = module takes its first). Modules are loaded by the
 * master when the configuration is loaded, so that --check, a start and a
 * reload all refuse a module that is missing, lacks its symbol, was built
 * against another API version or has an undefined symbol, with the route's
 * file and line.
 *
 * Each load of a configuration loads its modules afresh: the file is copied
 * into an anonymous memory file and loaded from there, so a module rebuilt
 * in place is new code for the next generation of workers while the old
 * generation (forked from the old load) keeps its own. A configuration's
 * modules are unloaded when it is released (handlers_release), which the
 * master does once a reload has replaced it.
 *
 * Hooks: pfd_app.init runs in the master after each load (before the
 * workers are forked), worker_init/worker_exit in each worker,
 * thread_init/thread_exit on each pool thread, for the server's app and
 * every module. */
#ifndef PREFORKD_HANDLERS_H
#define PREFORKD_HANDLERS_H

#include <stddef.h>

#include "server/conf.h"
#include "workers/preforkd.h"

/* The application the server was built with (pfd_main), or NULL. */
void handlers_set_app(const pfd_app *app);
/* Master: resolves every route's handler (loading modules), checks route
 * settings against the handler's, runs the handlers' checks, then the apps'
 * init hooks. 0, or -1 with err ("FILE:LINE: ..."); on failure what was
 * loaded is released. */
int handlers_load(struct conf *c, char *err, size_t errlen);
/* Unloads what handlers_load() loaded for c (before conf_free). */
void handlers_release(struct conf *c);
/* Worker: the apps' worker_init (0, or -1 with err) and worker_exit. */
int handlers_worker_init(const struct conf *c, unsigned index, char *err, size_t errlen);
void handlers_worker_exit(const struct conf *c);
/* Pool threads: the apps' thread hooks, of the configuration given to
 * handlers_worker_init. */
void handlers_thread_init(void);
void handlers_thread_exit(void);

extern const pfd_handler static_handler;
extern const pfd_handler sleep_handler;
extern const pfd_handler echo_handler;
#ifdef PREFORKD_FAULT_HANDLER
extern const pfd_handler fault_handler;
#endif
extern const pfd_handler dashboard_handler; /* workers/dashboard.c */

#endif
