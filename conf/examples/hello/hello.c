/* hello: the smallest preforkd module. Two handlers answer "Hello, World!":
 * one on the loop thread, one on the pool (to measure what the hand-off to
 * a thread costs), and a third that finishes on the pool through pfd_async.
 *
 *   cc -shared -fPIC -o hello.so hello.c       (preforkd.h on the include path)
 *
 *   [route = /hello]
 *   handler = hello
 *   module = hello.so
 *
 *   [route = /hello-pool]
 *   handler = hello
 *   module = hello.so
 *   mode = pool
 *
 *   [route = /hello-async]
 *   handler = hello_async
 *   module = hello.so
 */
#include <preforkd.h>

static int hello(pfd_req *r) {
    return pfd_text(r, 200, "Hello, World!");
}

/* The blocking part would go here: it runs on a pool thread. */
static void work(pfd_req *r, void *arg) {}

/* Back on the loop thread: finish the answer. */
static void done(pfd_req *r, void *arg) {
    pfd_text(r, 200, "Hello, World!");
}

static int hello_async(pfd_req *r) {
    pfd_async(r, work, done, NULL); /* when the pool is full: 503, already set */
    return PFD_OK;
}

static const pfd_handler handlers[] = {
    {.name = "hello", .handle = hello, .body = PFD_BODY_DROP},
    {.name = "hello_async", .handle = hello_async, .body = PFD_BODY_DROP},
    {0},
};

const pfd_app preforkd_module = {
    .api_version = PFD_API_VERSION,
    .name = "hello",
    .handlers = handlers,
};
