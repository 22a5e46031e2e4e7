#define _GNU_SOURCE
/* ceiling: the least an HTTP/1.1 keep-alive server can do per request on this
 * machine. One thread, epoll, no parsing beyond finding "\r\n\r\n", a canned
 * response. Used only as the physical-limit anchor in benchmarks. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static const char RESP[] = "HTTP/1.1 200 OK\r\nServer: ceiling\r\nContent-Type: "
                           "text/plain\r\nContent-Length: 13\r\n\r\nHello, World!";
static const char RESP_CLOSE[] =
    "HTTP/1.1 200 OK\r\nServer: ceiling\r\nContent-Type: text/plain\r\nContent-Length: "
    "13\r\nConnection: close\r\n\r\nHello, World!";

int main(int argc, char **argv) {
    int port = argc > 1 ? atoi(argv[1]) : 19090;
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(0x7f000001)};
    if (bind(ls, (void *)&a, sizeof a) || listen(ls, 4096)) {
        perror("bind/listen");
        return 1;
    }
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls}, evs[256];
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    static char buf[65536], out[65536];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == ls) {
                int c;
                while ((c = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct epoll_event ce = {.events = EPOLLIN, .data.fd = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
                }
                continue;
            }
            ssize_t r = read(fd, buf, sizeof buf);
            if (r <= 0) {
                if (r < 0 && errno == EAGAIN) continue;
                close(fd);
                continue;
            }
            /* "Connection: close" (as wrk -H sends it): answer once and close, as a real server
             * must */
            if (memmem(buf, (size_t)r, "Connection: close", 17)) {
                if (write(fd, RESP_CLOSE, sizeof RESP_CLOSE - 1) < 0) {
                }
                close(fd);
                continue;
            }
            size_t reqs = 0, len = 0;
            for (ssize_t j = 3; j < r; j++)
                if (buf[j] == '\n' && buf[j - 1] == '\r' && buf[j - 2] == '\n' &&
                    buf[j - 3] == '\r')
                    reqs++;
            for (size_t k = 0; k < reqs && len + sizeof RESP < sizeof out; k++) {
                memcpy(out + len, RESP, sizeof RESP - 1);
                len += sizeof RESP - 1;
            }
            if (len && write(fd, out, len) < 0) close(fd);
        }
    }
}
