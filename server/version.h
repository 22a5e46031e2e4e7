/* version: what the binary is (preforkd --version, -V). -V adds what it was
 * built from (the commit, build type and compiler, recorded when the build
 * was configured) and, for each library, the version it was compiled
 * against, the version running, and the file the dynamic linker loaded it
 * from: the same paths ldd lists. */
#ifndef PREFORKD_VERSION_H
#define PREFORKD_VERSION_H

#include <stdio.h>

/* "preforkd 0.1.0\n" */
void version_print(FILE *out);
/* The version line, then one "name: value" line each: commit, build,
 * compiler, and the libraries (libevent, http-parser, inih, glibc). */
void version_print_build(FILE *out);

#endif
