#!/usr/bin/env python3
"""TCP traffic that a normal client socket cannot make, for the live tests and bench/flood-bench.sh.

The kernel's TCP only ever sends what a well-behaved connection sends. To test the worker and
the kernel rules in front of it, the tests need more: SYNs from made-up ports as fast as they
can go, with no connection behind them, and a ClientHello whose segments arrive out of order
(this kernel has no netem to reorder them on the way). So this script writes the TCP header,
and for the flood the IPv4 header too, and sends the packets on a raw socket. That needs
root: the tests and the benchmark run it inside network namespaces they made.

Usage: raw_tcp.py SUBCOMMAND ARGUMENTS...

  syn-flood SRC DST PORT SECONDS
      SYNs from the address SRC, each from a random port with a random sequence number, to
      DST:PORT for SECONDS, as fast as one raw socket sends them. Nothing answers the
      server's SYN-ACKs but the client host's own resets. Prints "SENT SECONDS": how many
      SYNs, in how long. (QueueFloodLiveTests, bench/flood-bench.sh)

  reordered-hello NAME DST PORT SPORT
      From port SPORT: the TCP handshake, then a real ClientHello for NAME in two
      back-to-back segments, the second half first, then the rest of the TLS handshake.
      Prints "SPORT RESULT HELLOBYTES", RESULT being ok (handshake done), reset, closed,
      timeout or no-syn-ack. (ResetOrderLiveTests)

  reversed-hello NAME DST PORT SPORT
      From port SPORT: the TCP handshake, then a real ClientHello for NAME in three segments
      sent last first (from half to the end, from byte 40 to half, the first 40 bytes),
      50 ms apart. Prints "serverhello" when the server answers with a TLS record, "reset"
      when a reset comes, "timeout" otherwise; "no syn-ack" (exit 1) if the handshake
      never started. (WebWorkerLiveTests)

  second-syn NAME DST PORT SPORT
      From port SPORT: the TCP handshake, then a second SYN with another sequence number on
      the open connection, then a real ClientHello for NAME in one segment where the first
      handshake put the stream. Prints what the server answers, as reversed-hello does.
      (WebWorkerLiveTests)

  segmented-hello NAME DST PORT MODE
      Not raw: a kernel socket (TCP_NODELAY) can cut a ClientHello where it is told, as
      long as the pieces go in order. It writes the ClientHello for NAME in back-to-back
      writes, one segment each: MODE "two" halves, "three" pieces (40 bytes, up to half,
      the rest), or "large": one write of a ClientHello padded past 1,500 bytes with ALPN
      names, which TCP cuts at the MSS. Then it finishes the handshake. Prints "SPORT
      RESULT HELLOBYTES": ok, reset, closed or timeout. It lives here because it shares the
      making of the ClientHello with the raw clients. (ResetOrderLiveTests)

reordered-hello, reversed-hello and second-syn speak from a port that no kernel socket owns, so the
client host's kernel answers the server's SYN-ACK with a reset of its own: the caller must
drop those (the tests add an nft rule in the client's namespace for the ports they use).
IPv4 only.
"""
import random
import socket
import ssl
import struct
import sys
import time

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
WRAP = 1 << 32  # sequence numbers wrap around here


def checksum(data):
    """The Internet checksum (RFC 1071) over data."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def tcp_segment(saddr, daddr, sport, dport, seq, ack, flags, payload=b""):
    """A TCP header with no options (window 64240) and its payload, the checksum computed
    over the IPv4 pseudo-header of the packed addresses saddr and daddr."""
    header = struct.pack("!HHIIBBHHH", sport, dport, seq % WRAP, ack % WRAP, 5 << 4, flags, 64240, 0, 0)
    pseudo = saddr + daddr + struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(header) + len(payload))
    return header[:16] + struct.pack("!H", checksum(pseudo + header + payload)) + header[18:] + payload


def client_hello(name, alpn=None):
    """A TLS client for NAME (certificates not checked) on memory buffers, so that the caller
    carries its bytes as it likes, and the ClientHello it starts with."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(alpn)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname=name)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return tls, incoming, outgoing, outgoing.read()


class RawFlow:
    """One TCP flow from this host's port sport to dst:port, over a raw socket: the kernel
    writes the IPv4 header, this class the TCP one."""

    def __init__(self, dst, port, sport):
        # The source address is the one the kernel would pick for dst (a UDP connect sends nothing).
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.connect((dst, 9))
        self.src = probe.getsockname()[0]
        self.dst, self.port, self.sport = dst, port, sport
        self.raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
        self.raw.settimeout(0.2)

    def send(self, seq, ack, flags, payload=b""):
        segment = tcp_segment(socket.inet_aton(self.src), socket.inet_aton(self.dst), self.sport, self.port, seq, ack, flags, payload)
        self.raw.sendto(segment, (self.dst, 0))

    def receive(self, until):
        """Yields (seq, flags, payload) of each segment of this flow from the server until
        the time.time() until. The raw socket sees every TCP packet of the host: others are skipped."""
        while time.time() < until:
            try:
                packet = self.raw.recv(65536)
            except socket.timeout:
                continue
            tcp = packet[(packet[0] & 15) * 4:]
            a, b, seq, _, offset, flags = struct.unpack("!HHIIBB", tcp[:14])
            if a != self.port or b != self.sport:
                continue
            yield seq, flags, tcp[(offset >> 4) * 4:]

    def syn_ack(self, isn):
        """Sends a SYN with sequence number isn; the server's sequence number from its
        SYN-ACK, or None when none came within 3 s."""
        self.send(isn, 0, SYN)
        for seq, flags, _ in self.receive(time.time() + 3):
            if flags & (SYN | ACK) == SYN | ACK:
                return seq
        return None


def syn_flood(src, dst, port, seconds):
    # IPPROTO_RAW: the IP header is ours too, so the SYNs leave from src whatever the
    # routing says; the kernel fills in the IP checksum and id.
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    saddr, daddr = socket.inet_aton(src), socket.inet_aton(dst)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 0, 0, 64, socket.IPPROTO_TCP, 0, saddr, daddr)
    start = time.time()
    end, sent = start + seconds, 0
    while time.time() < end:
        for _ in range(200):  # reading the clock less often sends more
            tcp = tcp_segment(saddr, daddr, random.randint(20000, 60000), port, random.getrandbits(32), 0, SYN)
            s.sendto(ip + tcp, (dst, 0))
            sent += 1
    print(sent, "%.2f" % (time.time() - start), flush=True)


def reordered_hello(name, dst, port, sport):
    tls, incoming, outgoing, hello = client_hello(name)
    flow = RawFlow(dst, port, sport)

    def finish(result):
        print(sport, result, len(hello), flush=True)
        sys.exit(0)

    mine = random.randrange(WRAP)
    server = flow.syn_ack(mine)
    if server is None:
        finish("no-syn-ack")
    server = (server + 1) % WRAP
    mine += 1
    flow.send(mine, server, ACK)
    # The server accepts first: a reset for a connection still in its accept queue only
    # removes it there, and the server would never see it.
    time.sleep(0.3)
    half = len(hello) // 2
    flow.send(mine + half, server, PSH | ACK, hello[half:])
    flow.send(mine, server, PSH | ACK, hello[:half])
    mine += len(hello)
    for seq, flags, data in flow.receive(time.time() + 3):
        if flags & RST:
            finish("reset")
        skip = (server - seq) % WRAP  # bytes of this segment that came before
        if data and skip < len(data):
            incoming.write(data[skip:])
            server = (server + len(data) - skip) % WRAP
            flow.send(mine, server, ACK)
            try:
                tls.do_handshake()
                out = outgoing.read()
                flow.send(mine, server, PSH | ACK, out)
                mine += len(out)
                finish("ok")
            except ssl.SSLWantReadError:
                pass
        if flags & FIN:
            finish("closed")
    finish("timeout")


def handshake(name, dst, port, sport):
    """The TCP handshake from port sport: the flow, its ISN, the server's ISN and the
    ClientHello for name; exits 1 printing "no syn-ack" when the server does not answer."""
    _, _, _, hello = client_hello(name)
    flow = RawFlow(dst, port, sport)
    isn = random.randrange(WRAP)
    server = flow.syn_ack(isn)
    if server is None:
        print("no syn-ack")
        sys.exit(1)
    flow.send(isn + 1, server + 1, ACK)
    return flow, isn, server, hello


def reversed_hello(name, dst, port, sport):
    flow, isn, server, hello = handshake(name, dst, port, sport)
    cuts = [0, 40, len(hello) // 2, len(hello)]
    for a, b in reversed(list(zip(cuts, cuts[1:]))):
        flow.send(isn + 1 + a, server + 1, PSH | ACK, hello[a:b])
        time.sleep(0.05)
    print(server_answer(flow))


def second_syn(name, dst, port, sport):
    flow, isn, server, hello = handshake(name, dst, port, sport)
    # Another SYN on the open connection, from another sequence number: the server's TCP
    # and the kernel's conntrack ignore it, a worker that believed it would look for the
    # ClientHello in the wrong place.
    flow.send((isn + 100_000) % WRAP, 0, SYN)
    time.sleep(0.05)
    flow.send((isn + 1) % WRAP, (server + 1) % WRAP, PSH | ACK, hello)
    print(server_answer(flow))


def server_answer(flow):
    """What the server sends back within 3 s: "reset", "serverhello" for a TLS record, or
    "timeout"."""
    for _, flags, data in flow.receive(time.time() + 3):
        if flags & RST:
            return "reset"
        if data[:1] == b"\x16":  # a TLS handshake record: the ServerHello
            return "serverhello"
    return "timeout"


def segmented_hello(name, address, port, mode):
    alpn = ["h2", "http/1.1"] + ["pad-%02d-" % i + "x" * 60 for i in range(30)] if mode == "large" else None
    tls, incoming, outgoing, hello = client_hello(name, alpn)
    s = socket.create_connection((address, port), timeout=3)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sport = s.getsockname()[1]
    # The server accepts first (see reordered_hello).
    time.sleep(0.3)
    n = len(hello)
    cuts = {"two": [0, n // 2, n], "three": [0, 40, n // 2, n], "large": [0, n]}[mode]
    result = "ok"
    try:
        for a, b in zip(cuts, cuts[1:]):
            s.sendall(hello[a:b])
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                out = outgoing.read()
                if out:
                    s.sendall(out)
                data = s.recv(65536)
                if not data:
                    result = "closed"
                    break
                incoming.write(data)
        out = outgoing.read()
        if out:
            s.sendall(out)
    except (ConnectionResetError, BrokenPipeError):
        result = "reset"
    except TimeoutError:
        result = "timeout"
    print(sport, result, n, flush=True)
    time.sleep(0.2)  # let the last bytes leave before the socket closes


COMMANDS = {
    "syn-flood": (syn_flood, (str, str, int, float)),
    "reordered-hello": (reordered_hello, (str, str, int, int)),
    "reversed-hello": (reversed_hello, (str, str, int, int)),
    "segmented-hello": (segmented_hello, (str, str, int, str)),
    "second-syn": (second_syn, (str, str, int, int)),
}


def main(argv):
    if len(argv) < 2 or argv[1] not in COMMANDS or len(argv) - 2 != len(COMMANDS[argv[1]][1]):
        sys.exit(__doc__)
    command, types = COMMANDS[argv[1]]
    if argv[1] == "segmented-hello" and argv[5] not in ("two", "three", "large"):
        sys.exit("segmented-hello: MODE is two, three or large")
    command(*(kind(value) for kind, value in zip(types, argv[2:])))


if __name__ == "__main__":
    main(sys.argv)
