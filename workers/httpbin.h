/* httpbin: httpbin's endpoints as a built-in handler (workers/httpbin.c). */
#ifndef PREFORKD_HTTPBIN_H
#define PREFORKD_HTTPBIN_H

#include "workers/preforkd.h"

extern const pfd_handler httpbin_handler;

#endif
