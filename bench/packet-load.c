/* packet-load: the load generators of bench/packet-bench.sh.
 *
 *   packet-load tcp-server PORT                   accepts each connection and closes it at once
 *   packet-load tcp-client ADDR PORT SECONDS [THREADS]
 *       each thread: connect, read until the server's close (EOF), close; again, for SECONDS.
 *       The server closes first, so the TIME_WAIT is the server's and the client's ports
 *       come free at once. Prints "tcp-client: N connections in S s, R/s, E errors, cpu U S"
 *       (U, S: the client's user and system CPU seconds, all threads; the system time holds
 *       the receiver's packet processing too, which the kernel does on the sending task).
 *   packet-load udp-server PORT                   echoes every datagram to its sender
 *   packet-load udp-client ADDR PORT SECONDS [THREADS]
 *       each thread: one connected UDP socket, 32 bytes out, the echo back, again, for SECONDS.
 *       Prints "udp-client: N round trips in S s, R/s, E timeouts, cpu U S".
 *
 * IPv4 or IPv6 (ADDR as written). A connect or an echo that takes longer than 1 s counts as an
 * error (a timeout), so a ruleset that drops the flow shows as errors, not as a hang.
 *
 * Build: cc -O2 -pthread -o packet-load packet-load.c
 */
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>

static struct sockaddr_storage target;
static socklen_t target_len;
static double run_seconds;
static double started;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what) { perror(what); exit(1); }

static void resolve(const char *addr, const char *port, int socktype) {
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = socktype, .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV }, *res;
    int rc = getaddrinfo(addr, port, &hints, &res);
    if (rc != 0) { fprintf(stderr, "packet-load: %s: %s\n", addr, gai_strerror(rc)); exit(2); }
    memcpy(&target, res->ai_addr, res->ai_addrlen);
    target_len = res->ai_addrlen;
    freeaddrinfo(res);
}

static int listener(const char *port, int socktype) {
    /* Both families on one socket: [::]:PORT with IPV6_V6ONLY off. */
    int fd = socket(AF_INET6, socktype, 0), off = 0, on = 1;
    if (fd < 0) die("socket");
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)atoi(port)), .sin6_addr = in6addr_any };
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) die("bind");
    if (socktype == SOCK_STREAM && listen(fd, 4096) < 0) die("listen");
    return fd;
}

static void set_timeouts(int fd) {
    struct timeval tv = { .tv_sec = 1 };
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);  /* connect() honours it */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

struct counts { uint64_t done, errors; };

static void *tcp_thread(void *arg) {
    struct counts *c = arg;
    char buf[64];
    while (now() - started < run_seconds) {
        int fd = socket(target.ss_family, SOCK_STREAM, 0);
        if (fd < 0) die("socket");
        set_timeouts(fd);
        if (connect(fd, (struct sockaddr *)&target, target_len) < 0) { c->errors++; close(fd); continue; }
        ssize_t n;
        while ((n = read(fd, buf, sizeof buf)) > 0) {}
        if (n < 0) c->errors++; else c->done++;
        close(fd);
    }
    return NULL;
}

static void *udp_thread(void *arg) {
    struct counts *c = arg;
    char out[32] = "packet-load udp request", in[64];
    int fd = socket(target.ss_family, SOCK_DGRAM, 0);
    if (fd < 0) die("socket");
    set_timeouts(fd);
    if (connect(fd, (struct sockaddr *)&target, target_len) < 0) die("connect");
    while (now() - started < run_seconds) {
        if (send(fd, out, sizeof out, 0) < 0) { c->errors++; continue; }
        if (recv(fd, in, sizeof in, 0) < 0) c->errors++; else c->done++;
    }
    close(fd);
    return NULL;
}

static int client(int argc, char **argv, int socktype) {
    if (argc < 5) return 2;
    resolve(argv[2], argv[3], socktype);
    run_seconds = atof(argv[4]);
    int threads = argc > 5 ? atoi(argv[5]) : 1;
    if (threads < 1 || threads > 64 || run_seconds <= 0) return 2;
    pthread_t t[64];
    struct counts c[64];
    memset(c, 0, sizeof c);
    started = now();
    for (int i = 0; i < threads; i++) pthread_create(&t[i], NULL, socktype == SOCK_STREAM ? tcp_thread : udp_thread, &c[i]);
    uint64_t done = 0, errors = 0;
    for (int i = 0; i < threads; i++) { pthread_join(t[i], NULL); done += c[i].done; errors += c[i].errors; }
    double elapsed = now() - started;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double user = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6, sys = ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    printf("%s: %llu %s in %.2f s, %.0f/s, %llu %s, cpu %.3f %.3f\n", socktype == SOCK_STREAM ? "tcp-client" : "udp-client",
           (unsigned long long)done, socktype == SOCK_STREAM ? "connections" : "round trips", elapsed, done / elapsed,
           (unsigned long long)errors, socktype == SOCK_STREAM ? "errors" : "timeouts", user, sys);
    return 0;
}

static _Noreturn void tcp_server(const char *port) {
    int fd = listener(port, SOCK_STREAM);
    fprintf(stderr, "tcp-server: listening on %s\n", port);
    for (;;) {
        int c = accept(fd, NULL, NULL);
        if (c < 0) { if (errno == EINTR || errno == ECONNABORTED) continue; die("accept"); }
        close(c);
    }
}

static _Noreturn void udp_server(const char *port) {
    int fd = listener(port, SOCK_DGRAM);
    fprintf(stderr, "udp-server: listening on %s\n", port);
    char buf[2048];
    for (;;) {
        struct sockaddr_storage from;
        socklen_t len = sizeof from;
        ssize_t n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &len);
        if (n < 0) { if (errno == EINTR) continue; die("recvfrom"); }
        sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&from, len);
    }
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    int rc = 2;
    if (argc >= 3 && strcmp(argv[1], "tcp-server") == 0) tcp_server(argv[2]);
    if (argc >= 3 && strcmp(argv[1], "udp-server") == 0) udp_server(argv[2]);
    if (argc >= 2 && strcmp(argv[1], "tcp-client") == 0) rc = client(argc, argv, SOCK_STREAM);
    else if (argc >= 2 && strcmp(argv[1], "udp-client") == 0) rc = client(argc, argv, SOCK_DGRAM);
    if (rc == 2)
        fprintf(stderr, "usage: packet-load tcp-server PORT | udp-server PORT | tcp-client ADDR PORT SECONDS [THREADS] | udp-client ADDR PORT SECONDS [THREADS]\n");
    return rc;
}
