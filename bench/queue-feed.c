/* queue-feed: the packet source and stopwatch of bench/queue-bench.sh.
 *
 * Sends a fixed stream of web flows from 127.0.0.2 to 127.0.0.1:443 through a raw socket
 * (inside the benchmark's own network namespace): for each of F flows a SYN, then one
 * data segment carrying a real TLS ClientHello (a fixture file). Every packet has valid IP
 * and TCP checksums; each round sends the same 2F flows again, with new sequence numbers.
 * The kernel's queue counters are read from /proc/net/netfilter/nfnetlink_queue.
 *
 *   queue-feed drain -p PID -f HELLO [-k FLOWS] [-c CYCLES] [-w WARMUP] [-q QUEUE]
 *       Per cycle: SIGSTOP the consumer PID, send the 2F packets so they wait in the queue,
 *       SIGCONT it and time until the queue is empty again. Prints each consumer-limited
 *       rate's median (verdicts/s) over CYCLES cycles, after WARMUP cycles not counted.
 *       The consumer-limited rate is what is measured: while the consumer is stopped the
 *       queue fills completely, and nothing else competes with it while it drains.
 *
 * Build: gcc -O2 -o queue-feed queue-feed.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>

struct queue_stats { int found; long total, dropped, user_dropped, id_sequence; };

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what) {
    fprintf(stderr, "queue-feed: %s: %s\n", what, strerror(errno));
    exit(1);
}

static struct queue_stats read_stats(unsigned queue) {
    struct queue_stats s = { 0 };
    FILE *f = fopen("/proc/net/netfilter/nfnetlink_queue", "r");
    if (!f) return s;
    long q, portid, total, mode, range, dropped, udropped, idseq;
    while (fscanf(f, "%ld %ld %ld %ld %ld %ld %ld %ld %*d", &q, &portid, &total, &mode, &range, &dropped, &udropped, &idseq) == 8) {
        if (q == (long)queue) {
            s = (struct queue_stats){ 1, total, dropped, udropped, idseq };
            break;
        }
    }
    fclose(f);
    return s;
}

static uint16_t checksum(const uint8_t *data, size_t len, uint32_t sum) {
    for (size_t i = 0; i + 1 < len; i += 2) sum += (uint32_t)data[i] << 8 | data[i + 1];
    if (len & 1) sum += (uint32_t)data[len - 1] << 8;
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

struct packet { uint8_t bytes[2048]; size_t len; };

/* One IPv4 TCP segment with valid checksums. */
static void build(struct packet *p, uint32_t src, uint32_t dst, uint16_t sport, uint16_t dport,
                  uint32_t seq, uint32_t ack, uint8_t flags, const uint8_t *payload, size_t plen) {
    uint8_t *ip = p->bytes, *tcp = ip + 20;
    size_t tcplen = 20 + plen;
    p->len = 20 + tcplen;
    memset(ip, 0, 40);
    ip[0] = 0x45; ip[2] = p->len >> 8; ip[3] = p->len & 0xff;
    ip[6] = 0x40;  /* don't fragment */
    ip[8] = 64; ip[9] = IPPROTO_TCP;
    memcpy(ip + 12, &src, 4); memcpy(ip + 16, &dst, 4);
    uint16_t c = checksum(ip, 20, 0);
    ip[10] = c >> 8; ip[11] = c & 0xff;
    tcp[0] = sport >> 8; tcp[1] = sport & 0xff; tcp[2] = dport >> 8; tcp[3] = dport & 0xff;
    uint32_t nseq = htonl(seq), nack = htonl(ack);
    memcpy(tcp + 4, &nseq, 4); memcpy(tcp + 8, &nack, 4);
    tcp[12] = 5 << 4; tcp[13] = flags;
    tcp[14] = 0xfa; tcp[15] = 0xf0;  /* window 64240 */
    memcpy(tcp + 20, payload, plen);
    uint32_t pseudo = 0;
    const uint8_t *s = ip + 12;
    for (int i = 0; i < 8; i += 2) pseudo += (uint32_t)s[i] << 8 | s[i + 1];
    pseudo += IPPROTO_TCP + tcplen;
    c = checksum(tcp, tcplen, pseudo);
    tcp[16] = c >> 8; tcp[17] = c & 0xff;
}

static int sock = -1;
static struct packet *packets;
static struct mmsghdr *msgs;
static struct iovec *iovs;
static struct sockaddr_in dest;
static int npackets;

static uint8_t hello[1500];
static size_t hlen;

/* SYN then ClientHello for each flow, in flow order. Each cycle's SYNs carry new sequence
 * numbers: the same ports with another initial sequence number are new connections to the
 * worker, so every cycle's flows are judged again (a SYN repeated with its old number would
 * be a retransmission of a flow already decided, which the worker answers from its table). */
static void build_cycle(int flows, int cycle) {
    uint32_t src = htonl(0x7f000002), dst = htonl(0x7f000001);
    for (int i = 0; i < flows; i++) {
        uint32_t isn = 0x9e3779b9u * (uint32_t)(i + 1) + 0x01000193u * (uint32_t)cycle;
        uint16_t sport = (uint16_t)(10000 + i);
        build(&packets[2 * i], src, dst, sport, 443, isn, 0, 0x02, NULL, 0);                      /* SYN */
        build(&packets[2 * i + 1], src, dst, sport, 443, isn + 1, 1, 0x18, hello, hlen);           /* PSH ACK + ClientHello */
    }
}

static void prepare(const char *hello_path, int flows) {
    FILE *f = fopen(hello_path, "rb");
    if (!f) die(hello_path);
    hlen = fread(hello, 1, sizeof hello, f);
    fclose(f);
    if (hlen == 0 || hlen + 40 > 1500) { fprintf(stderr, "queue-feed: %s: empty or larger than one 1500-byte packet\n", hello_path); exit(1); }
    npackets = 2 * flows;
    packets = calloc(npackets, sizeof *packets);
    msgs = calloc(npackets, sizeof *msgs);
    iovs = calloc(npackets, sizeof *iovs);
    build_cycle(flows, 0);
    uint32_t dst = htonl(0x7f000001);
    dest = (struct sockaddr_in){ .sin_family = AF_INET, .sin_addr.s_addr = dst };
    for (int i = 0; i < npackets; i++) {
        iovs[i] = (struct iovec){ packets[i].bytes, packets[i].len };
        msgs[i].msg_hdr = (struct msghdr){ .msg_name = &dest, .msg_namelen = sizeof dest, .msg_iov = &iovs[i], .msg_iovlen = 1 };
    }
    sock = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);  /* IP_HDRINCL implied */
    if (sock < 0) die("raw socket (needs root)");
    int size = 4 << 20;
    setsockopt(sock, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size);
}

/* All prepared packets once, in batches of 64. */
static long send_round(void) {
    long sent = 0;
    for (int i = 0; i < npackets;) {
        int n = npackets - i < 64 ? npackets - i : 64;
        int r = sendmmsg(sock, msgs + i, n, 0);
        if (r < 0) {
            if (errno == ENOBUFS || errno == EAGAIN || errno == EINTR) continue;
            die("sendmmsg");
        }
        i += r;
        sent += r;
    }
    return sent;
}

static char process_state(pid_t pid) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *close = strrchr(buf, ')');
    return close && close[1] == ' ' ? close[2] : 0;
}

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void pause_us(long us) {
    struct timespec ts = { 0, us * 1000 };
    nanosleep(&ts, NULL);
}

static int drain(pid_t pid, unsigned queue, int cycles, int warmup) {
    double *rates = calloc(cycles, sizeof *rates);
    long queued_min = -1, queued_total = 0, verdicts = 0;
    double busy = 0;
    for (int c = 0; c < warmup + cycles; c++) {
        if (kill(pid, SIGSTOP) < 0) die("SIGSTOP");
        double limit = now_seconds() + 2;
        while (process_state(pid) != 'T') {
            if (now_seconds() > limit) { fprintf(stderr, "queue-feed: consumer %d did not stop\n", (int)pid); return 1; }
            pause_us(100);
        }
        struct queue_stats before = read_stats(queue);
        if (!before.found) { fprintf(stderr, "queue-feed: queue %u is not bound\n", queue); kill(pid, SIGCONT); return 1; }
        if (before.total != 0) { fprintf(stderr, "queue-feed: queue %u not empty before cycle %d (%ld waiting)\n", queue, c, before.total); kill(pid, SIGCONT); return 1; }
        build_cycle(npackets / 2, c);
        send_round();
        /* Wait until every packet sent is either in the queue or was passed by fail-open. */
        struct queue_stats filled = read_stats(queue);
        long seen = filled.id_sequence;
        double settle = now_seconds();
        limit = settle + 2;
        while (filled.id_sequence - before.id_sequence < npackets && now_seconds() < limit && now_seconds() - settle < 0.05) {
            pause_us(200);
            filled = read_stats(queue);
            if (filled.id_sequence != seen) { seen = filled.id_sequence; settle = now_seconds(); }
        }
        long queued = filled.total;
        double t0 = now_seconds();
        if (kill(pid, SIGCONT) < 0) die("SIGCONT");
        struct queue_stats s;
        /* 20 us naps: this core stays nearly idle for the kernel work it may be handed. */
        do { pause_us(20); s = read_stats(queue); } while (s.found && s.total > 0 && now_seconds() - t0 < 10);
        double t1 = now_seconds();
        if (s.total > 0) { fprintf(stderr, "queue-feed: consumer left %ld packets in the queue for 10 s\n", s.total); return 1; }
        if (c >= warmup) {
            rates[c - warmup] = queued / (t1 - t0);
            queued_total += queued;
            busy += t1 - t0;
            verdicts += queued;
            if (queued_min < 0 || queued < queued_min) queued_min = queued;
        }
    }
    printf("queue-feed: rates");
    for (int c = 0; c < cycles; c++) printf(" %.0f", rates[c]);
    printf("\n");
    qsort(rates, cycles, sizeof *rates, compare);
    printf("queue-feed: drain cycles %d, packets sent per cycle %d, queued per cycle min %ld; verdicts %ld in %.3f s busy; "
           "rate median %.0f/s (min %.0f, max %.0f; all cycles %.0f/s)\n",
           cycles, npackets, queued_min, verdicts, busy, rates[cycles / 2], rates[0], rates[cycles - 1], verdicts / busy);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) goto usage;
    const char *mode = argv[1], *hello = NULL;
    pid_t pid = 0;
    unsigned queue = 0;
    int flows = 2000, cycles = 40, warmup = 3;
    optind = 2;
    for (int opt; (opt = getopt(argc, argv, "p:f:k:c:w:q:")) != -1;) {
        switch (opt) {
        case 'p': pid = (pid_t)atoi(optarg); break;
        case 'f': hello = optarg; break;
        case 'k': flows = atoi(optarg); break;
        case 'c': cycles = atoi(optarg); break;
        case 'w': warmup = atoi(optarg); break;
        case 'q': queue = (unsigned)atoi(optarg); break;
        default: goto usage;
        }
    }
    if (!hello || flows < 1 || cycles < 1) goto usage;
    prctl(PR_SET_TIMERSLACK, 1UL);  /* naps of 20 us, not the default 50 us of slack */
    prepare(hello, flows);
    if (!strcmp(mode, "drain") && pid > 0) return drain(pid, queue, cycles, warmup);
usage:
    fprintf(stderr, "usage: queue-feed drain -p PID -f HELLO [-k FLOWS] [-c CYCLES] [-w WARMUP] [-q QUEUE]\n");
    return 2;
}
