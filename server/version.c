/* version: preforkd --version and -V. */
#include "server/version.h"

#include <dlfcn.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <gnu/libc-version.h>
#include <http_parser.h>
#include <ini.h>
#include <libdeflate.h>
#include <systemd/sd-daemon.h>
#include <zlib.h>

#include "version_info.h" /* generated: the commit, build type, compiler, inih */

void version_print(FILE *out) {
    fprintf(out, "preforkd %s\n", PREFORKD_VERSION);
}

/* The file the dynamic linker loaded fn from (ldd's path for it), or
 * "built in" when fn is part of this program or library itself. */
static const char *loaded_from(void (*fn)(void)) {
    Dl_info mine, info;
    if (!dladdr((void *)version_print_build, &mine)) mine.dli_fbase = NULL;
    if (!dladdr((void *)fn, &info) || !info.dli_fname || !info.dli_fname[0]) return "unknown";
    if (info.dli_fbase == mine.dli_fbase) return "built in";
    return info.dli_fname;
}

void version_print_build(FILE *out) {
    version_print(out);
    fprintf(out, "commit: %s\n", PREFORKD_COMMIT);
    fprintf(out, "build: %s\n", PREFORKD_BUILD_TYPE);
    fprintf(out, "compiler: %s\n", PREFORKD_COMPILER);
    fprintf(out, "libevent: %s, built against %s; %s %s\n", event_get_version(), LIBEVENT_VERSION,
            loaded_from((void (*)(void))event_get_version),
            loaded_from((void (*)(void))evthread_use_pthreads));
    unsigned long hp = http_parser_version();
    fprintf(out, "http-parser: %lu.%lu.%lu, built against %d.%d.%d; %s\n", (hp >> 16) & 255,
            (hp >> 8) & 255, hp & 255, HTTP_PARSER_VERSION_MAJOR, HTTP_PARSER_VERSION_MINOR,
            HTTP_PARSER_VERSION_PATCH, loaded_from((void (*)(void))http_parser_version));
    fprintf(out, "inih: %s at build time (pkg-config; inih has no version call); %s\n",
            PREFORKD_INIH_VERSION, loaded_from((void (*)(void))ini_parse));
    fprintf(out, "zlib: %s, built against %s; %s\n", zlibVersion(), ZLIB_VERSION,
            loaded_from((void (*)(void))zlibVersion));
    fprintf(out, "libdeflate: %s at build time (libdeflate has no version call); %s\n",
            LIBDEFLATE_VERSION_STRING, loaded_from((void (*)(void))libdeflate_alloc_compressor));
    fprintf(out, "libsystemd: %s at build time (pkg-config; libsystemd has no version call); %s\n",
            PREFORKD_SYSTEMD_VERSION, loaded_from((void (*)(void))sd_notify));
    fprintf(out, "glibc: %s, built against %d.%d; %s\n", gnu_get_libc_version(), __GLIBC__,
            __GLIBC_MINOR__, loaded_from((void (*)(void))gnu_get_libc_version));
}
