/* A plain edge-triggered epoll TCP echo server: the reference sockloop's
 * echo is measured against. One thread; per connection one 256 KiB buffer.
 * On every event: write what waits, then read as much as fits and write it
 * back, until the socket has nothing more to read or will take nothing more.
 * Bytes the socket did not take stay in the buffer, and EPOLLOUT is armed
 * only while they wait; a full buffer stops reading (backpressure) until the
 * writable edge lets the loop go on.
 *
 *   echo PORT     binds 127.0.0.1:PORT (0: any free port) and prints
 *                 "listening tcp-echo 127.0.0.1:PORT", as sockloop serve does.
 */
#define _GNU_SOURCE /* accept4 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF_SIZE (256 * 1024)
#define MAX_EVENTS 256

struct conn {
    int fd;
    int want_out;          /* EPOLLOUT armed */
    size_t start, end;     /* bytes read and not yet written: buf[start..end) */
    char buf[BUF_SIZE];
};

static int ep;

static void watch(struct conn *c, int op, int out) {
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET | (out ? EPOLLOUT : 0),
                             .data.ptr = c};
    if (epoll_ctl(ep, op, c->fd, &ev) < 0) { perror("epoll_ctl"); exit(1); }
    c->want_out = out;
}

static void drop_conn(struct conn *c) {
    close(c->fd); /* closing the last descriptor also removes it from epoll */
    free(c);
}

/* Returns 0 when the connection is finished with (closed or failed). */
static int serve(struct conn *c) {
    for (;;) {
        while (c->start < c->end) {
            ssize_t n = write(c->fd, c->buf + c->start, c->end - c->start);
            if (n > 0) { c->start += (size_t)n; continue; }
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && errno == EAGAIN) {
                if (!c->want_out) watch(c, EPOLL_CTL_MOD, 1);
                return 1;
            }
            return 0;
        }
        c->start = c->end = 0;
        if (c->want_out) watch(c, EPOLL_CTL_MOD, 0);
        ssize_t n = read(c->fd, c->buf, BUF_SIZE);
        if (n > 0) { c->end = (size_t)n; continue; }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return 1;
        return 0; /* end of stream or error */
    }
}

int main(int argc, char **argv) {
    int port = argc > 1 ? atoi(argv[1]) : 12345;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof addr;
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(lfd, 1024) < 0 ||
        getsockname(lfd, (struct sockaddr *)&addr, &len) < 0) {
        fprintf(stderr, "echo: cannot listen on 127.0.0.1:%d: ", port);
        perror(NULL);
        return 1;
    }
    printf("listening tcp-echo 127.0.0.1:%d\n", ntohs(addr.sin_port));
    fflush(stdout);

    ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    struct epoll_event events[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(ep, events, MAX_EVENTS, -1);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) { perror("epoll_wait"); return 1; }
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            if (c != NULL) {
                if (!serve(c)) drop_conn(c);
                continue;
            }
            int fd; /* the listener: accept until the backlog is empty */
            while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                c = malloc(sizeof *c);
                if (c == NULL) { close(fd); continue; }
                c->fd = fd;
                c->start = c->end = 0;
                watch(c, EPOLL_CTL_ADD, 0);
                if (!serve(c)) drop_conn(c);
            }
        }
    }
}
