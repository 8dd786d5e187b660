#ifndef ENFORCER_CNETFILTERQUEUE_SHIM_H
#define ENFORCER_CNETFILTERQUEUE_SHIM_H
#include <stdint.h>
#include <sys/types.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <libnetfilter_queue/pktbuff.h>
#include <unistd.h>
#include <sys/syscall.h>

/* recvmmsg(2) without _GNU_SOURCE (which the Glibc module is built without): the same
 * layout as struct mmsghdr, and the system call itself. */
struct enforcer_mmsghdr {
    struct msghdr msg_hdr;
    unsigned int msg_len;
};

static inline int enforcer_recvmmsg(int fd, struct enforcer_mmsghdr *vector, unsigned int length, int flags) {
    return (int)syscall(SYS_recvmmsg, fd, vector, length, flags, (void *)0);
}
#endif
