/* evhttp_anchor: libevent's own HTTP server (evhttp), one thread, serving files
 * from a folder with evbuffer_add_file (sendfile). The "just use evhttp" anchor. */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *root;

static void serve(struct evhttp_request *req, void *arg) {
    (void)arg;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    char file[4096];
    struct stat st;
    snprintf(file, sizeof file, "%s%s", root, path ? path : "/");
    int fd = strstr(file, "..") ? -1 : open(file, O_RDONLY);
    if (fd < 0 || fstat(fd, &st) < 0) {
        if (fd >= 0) close(fd);
        evhttp_send_error(req, 404, NULL);
        return;
    }
    struct evbuffer *out = evbuffer_new();
    evbuffer_add_file(out, fd, 0, st.st_size);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "application/octet-stream");
    evhttp_send_reply(req, 200, "OK", out);
    evbuffer_free(out);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s PORT ROOT\n", argv[0]);
        return 2;
    }
    root = argv[2];
    struct event_base *base = event_base_new();
    struct evhttp *http = evhttp_new(base);
    evhttp_set_gencb(http, serve, NULL);
    if (evhttp_bind_socket(http, "127.0.0.1", atoi(argv[1]))) {
        perror("bind");
        return 1;
    }
    return event_base_dispatch(base);
}
