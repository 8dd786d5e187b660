/* noop-queue: the baseline NFQUEUE consumer of bench/queue-bench.sh.
 *
 * Binds one queue with the same settings the enforcer worker uses (copy-packet mode,
 * 0xffff bytes, queue maxlen 4096, fail-open, 8 MiB receive buffer, NETLINK_NO_ENOBUFS),
 * then accepts every packet (NF_ACCEPT), counting them, until N packets, T seconds or
 * SIGTERM/SIGINT. Prints its count and the rate between its first and last packet.
 *
 *   noop-queue [-q QUEUE] [-n PACKETS] [-t SECONDS] [-b]
 *
 * Default: one recv and one verdict message (one sendto) per packet, the minimal loop.
 * -b: drains the socket without blocking after each wakeup and sends all verdicts of the
 * batch in one sendto (a stronger baseline; not what the goal is measured against).
 *
 * Build: gcc -O2 -o noop-queue noop-queue.c $(pkg-config --cflags --libs libnetfilter_queue libmnl)
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <libmnl/libmnl.h>
#include <libnetfilter_queue/libnetfilter_queue.h>

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

static volatile sig_atomic_t stop_requested;
static void on_signal(int sig) { (void)sig; stop_requested = 1; }

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what) {
    fprintf(stderr, "noop-queue: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* A config message, and its ACK. */
static void configure(struct mnl_socket *nl, struct nlmsghdr *nlh) {
    char buf[MNL_SOCKET_BUFFER_SIZE];
    nlh->nlmsg_flags |= NLM_F_ACK;
    if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) die("config send");
    ssize_t n = mnl_socket_recvfrom(nl, buf, sizeof buf);
    if (n < 0) die("config recv");
    if (mnl_cb_run(buf, n, 0, mnl_socket_get_portid(nl), NULL, NULL) < 0) die("queue config");
}

int main(int argc, char **argv) {
    unsigned queue = 0;
    long limit = 0;
    double seconds = 0;
    int batch = 0;
    for (int opt; (opt = getopt(argc, argv, "q:n:t:b")) != -1;) {
        switch (opt) {
        case 'q': queue = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'n': limit = strtol(optarg, NULL, 10); break;
        case 't': seconds = strtod(optarg, NULL); break;
        case 'b': batch = 1; break;
        default:
            fprintf(stderr, "usage: noop-queue [-q QUEUE] [-n PACKETS] [-t SECONDS] [-b]\n");
            return 2;
        }
    }
    struct sigaction sa = { .sa_handler = on_signal };  /* no SA_RESTART: recv returns EINTR */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    struct mnl_socket *nl = mnl_socket_open(NETLINK_NETFILTER);
    if (!nl) die("mnl_socket_open");
    if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) die("mnl_socket_bind");
    int fd = mnl_socket_get_fd(nl);
    int one = 1, size = 8 << 20;
    setsockopt(fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size);
    struct timeval tick = { .tv_sec = 0, .tv_usec = 200000 };  /* to look at the deadline */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tick, sizeof tick);

    char cfg[MNL_SOCKET_BUFFER_SIZE];
    struct nlmsghdr *nlh = nfq_nlmsg_put(cfg, NFQNL_MSG_CONFIG, queue);
    nfq_nlmsg_cfg_put_cmd(nlh, AF_UNSPEC, NFQNL_CFG_CMD_BIND);
    configure(nl, nlh);
    nlh = nfq_nlmsg_put(cfg, NFQNL_MSG_CONFIG, queue);
    nfq_nlmsg_cfg_put_params(nlh, NFQNL_COPY_PACKET, 0xffff);
    nfq_nlmsg_cfg_put_qmaxlen(nlh, 4096);
    mnl_attr_put_u32(nlh, NFQA_CFG_FLAGS, htonl(NFQA_CFG_F_FAIL_OPEN));
    mnl_attr_put_u32(nlh, NFQA_CFG_MASK, htonl(NFQA_CFG_F_FAIL_OPEN));
    configure(nl, nlh);
    fprintf(stderr, "noop-queue: bound queue %u (%s)\n", queue, batch ? "batched verdicts" : "one verdict per packet");

    size_t bufsize = 0xffff + (MNL_SOCKET_BUFFER_SIZE / 2);
    char *buf = malloc(bufsize);
    static char verdicts[64 * 1024];
    size_t verdict_len = 0;
    long count = 0;
    double first = 0, last = 0, deadline = seconds > 0 ? now_seconds() + seconds : 0;

    while (!stop_requested && (limit == 0 || count < limit)) {
        if (deadline && now_seconds() >= deadline) break;
        int flags = 0;
        for (;;) {  /* in batch mode: every message already waiting, then one sendto */
            ssize_t n = recv(fd, buf, bufsize, flags);
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ENOBUFS) break;
                die("recv");
            }
            int remaining = (int)n;
            for (struct nlmsghdr *h = (struct nlmsghdr *)buf; mnl_nlmsg_ok(h, remaining); h = mnl_nlmsg_next(h, &remaining)) {
                if (h->nlmsg_type != ((NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET)) continue;
                struct nlattr *attr[NFQA_MAX + 1] = { 0 };
                if (nfq_nlmsg_parse(h, attr) < 0 || !attr[NFQA_PACKET_HDR]) continue;
                struct nfqnl_msg_packet_hdr *ph = mnl_attr_get_payload(attr[NFQA_PACKET_HDR]);
                uint32_t id = ntohl(ph->packet_id);
                if (verdict_len + 64 > sizeof verdicts) {
                    if (mnl_socket_sendto(nl, verdicts, verdict_len) < 0) die("verdict");
                    verdict_len = 0;
                }
                struct nlmsghdr *v = nfq_nlmsg_put(verdicts + verdict_len, NFQNL_MSG_VERDICT, queue);
                nfq_nlmsg_verdict_put(v, (int)id, NF_ACCEPT);
                verdict_len += NLMSG_ALIGN(v->nlmsg_len);
                if (!batch) {
                    if (mnl_socket_sendto(nl, verdicts, verdict_len) < 0) die("verdict");
                    verdict_len = 0;
                }
                if (count == 0) first = now_seconds();
                count++;
            }
            if (!batch || (limit && count >= limit)) break;
            flags = MSG_DONTWAIT;
        }
        if (verdict_len) {
            if (mnl_socket_sendto(nl, verdicts, verdict_len) < 0) die("verdict");
            verdict_len = 0;
        }
        if (count) last = now_seconds();
    }
    double span = last - first;
    printf("noop-queue: packets %ld in %.3f s (%.0f/s between first and last packet)\n",
           count, span, span > 0 ? (count - 1) / span : 0.0);
    mnl_socket_close(nl);
    return 0;
}
