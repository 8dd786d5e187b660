#!/usr/bin/env python3
"""Writes the hand-made seeds in fuzz/corpus/: HTTP request heads and a few IP packets.

The ClientHello seeds are copies of Tests/NFQueueTests/Fixtures/*.bin (see run.sh's
header comment); this script only makes the rest. Re-running it rewrites the same files.
"""
import pathlib
import struct

out = pathlib.Path(__file__).resolve().parent / "corpus"
out.mkdir(exist_ok=True)

http = {
    "http-get.txt": b"GET /index.html?q=1 HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n",
    "http-lf-only.txt": b"GET / HTTP/1.1\nHost: A.Example.:8080\nAccept: */*\n\n",
    "http-absolute.txt": b"GET http://b.example:81/x?y HTTP/1.1\r\nHost: a.example\r\n\r\n",
    "http-connect.txt": b"CONNECT b.example:443 HTTP/1.1\r\nHost: b.example:443\r\nProxy-Connection: keep-alive\r\n\r\n",
    "http-10-nohost.txt": b"\r\nGET /old HTTP/1.0\r\nUser-Agent: \tMozilla/5.0 (X11)\t\r\n\r\n",
    "http-options-ipv6.txt": b"OPTIONS * HTTP/1.1\r\nHost: [2001:DB8::1]:8080\r\n\r\n",
    "http-post-body.txt": b"POST /form HTTP/1.1\r\nHost: x.test\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello",
    "http-partial.txt": b"GET /partial HTTP/1.1\r\nHost: partial.example\r\nX-Long:",
}

SRC4, DST4 = bytes([10, 0, 0, 1]), bytes([192, 0, 2, 7])
SRC6 = bytes([0x20, 0x01, 0x0d, 0xb8]) + bytes(11) + b"\x01"
DST6 = bytes([0x20, 0x01, 0x0d, 0xb8]) + bytes(11) + b"\x02"


def tcp(payload, sport=40000, dport=80, seq=1000, flags=0x18):
    return struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, flags, 64240, 0, 0) + payload


def udp(payload, sport=5353, dport=53):
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def ipv4(proto, body, frag=0x4000):
    return struct.pack("!BBHHHBBH", 0x45, 0, 20 + len(body), 0x1234, frag, 64, proto, 0) + SRC4 + DST4 + body


def ipv6(next_header, body):
    return struct.pack("!IHBB", 0x60000000, len(body), next_header, 64) + SRC6 + DST6 + body


hello_start = (pathlib.Path(__file__).resolve().parent.parent
               / "Tests/NFQueueTests/Fixtures/openssl-openssl.example.bin").read_bytes()[:120]
hop_by_hop = bytes([44, 0]) + bytes(6)             # next: fragment
fragment = bytes([6, 0, 0, 0, 0, 0, 0x0a, 0xbc])  # next: TCP, offset 0, last fragment
packets = {
    "ip4-tcp-http.bin": ipv4(6, tcp(http["http-get.txt"])),
    "ip6-tcp-tls.bin": ipv6(6, tcp(hello_start, dport=443)),
    "ip6-hbh-frag-tcp.bin": ipv6(0, hop_by_hop + fragment + tcp(b"GET / HTTP/1.0\r\n\r\n")),
    "ip4-udp.bin": ipv4(17, udp(b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00")),
    "ip4-fragment.bin": ipv4(6, b"later fragment data", frag=0x2000 | 3),
    "ip4-syn.bin": ipv4(6, tcp(b"", flags=0x02)),
}

for name, data in {**http, **packets}.items():
    (out / name).write_bytes(data)
