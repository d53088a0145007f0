/* A plain edge-triggered epoll TCP echo server whose bytes never enter user
 * space: socket -> pipe -> socket with splice(2). It is the kernel's floor
 * for echo streaming, the zero-copy path sockloop's echo relay is compared
 * to (c-epoll-echo is the floor with a read and a write through a buffer).
 * One thread; per connection one non-blocking pipe of the default capacity
 * (64 KiB).
 *
 * splice from a socket into a pipe says EAGAIN both when the socket has
 * nothing and when the pipe is full, so the pipe is filled only while it is
 * empty: then EAGAIN means "socket drained". On every event: splice what
 * waits in the pipe to the socket, then fill the empty pipe from the socket
 * and drain it again, until the socket has nothing more to read or will take
 * nothing more. Bytes the socket did not take stay in the pipe, and EPOLLOUT
 * is armed only while they wait; a pipe that is not empty stops reading
 * (backpressure) until the writable edge lets the loop go on. End of stream
 * is seen only with an empty pipe, so everything read has been echoed when
 * the connection closes.
 *
 *   echo PORT     binds 127.0.0.1:PORT (0: any free port) and prints
 *                 "listening tcp-echo 127.0.0.1:PORT", as sockloop serve does.
 */
#define _GNU_SOURCE /* accept4, pipe2, splice */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define PIPE_SIZE (64 * 1024) /* the default capacity; at most this per fill */
#define MAX_EVENTS 256
#define SPLICE_FLAGS (SPLICE_F_MOVE | SPLICE_F_NONBLOCK)

struct conn {
    int fd;
    int pipe[2];           /* [0] read end, [1] write end */
    int want_out;          /* EPOLLOUT armed */
    size_t in_pipe;        /* bytes read and not yet written */
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
    close(c->pipe[0]);
    close(c->pipe[1]);
    free(c);
}

/* Returns 0 when the connection is finished with (closed or failed). */
static int serve(struct conn *c) {
    for (;;) {
        while (c->in_pipe > 0) {
            ssize_t n = splice(c->pipe[0], NULL, c->fd, NULL, c->in_pipe, SPLICE_FLAGS);
            if (n > 0) { c->in_pipe -= (size_t)n; continue; }
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && errno == EAGAIN) {
                if (!c->want_out) watch(c, EPOLL_CTL_MOD, 1);
                return 1;
            }
            return 0;
        }
        if (c->want_out) watch(c, EPOLL_CTL_MOD, 0);
        /* The pipe is empty here, so EAGAIN can only mean the socket is. */
        ssize_t n = splice(c->fd, NULL, c->pipe[1], NULL, PIPE_SIZE, SPLICE_FLAGS);
        if (n > 0) { c->in_pipe = (size_t)n; continue; }
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
                if (pipe2(c->pipe, O_NONBLOCK | O_CLOEXEC) < 0) {
                    free(c);
                    close(fd);
                    continue;
                }
                c->fd = fd;
                c->in_pipe = 0;
                watch(c, EPOLL_CTL_ADD, 0);
                if (!serve(c)) drop_conn(c);
            }
        }
    }
}
