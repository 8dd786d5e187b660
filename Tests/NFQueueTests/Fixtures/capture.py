#!/usr/bin/env python3
"""Regenerate the TLS ClientHello fixtures used by NFQueueTests.

Usage:  python3 capture.py [OUTDIR]      (default: the folder holding this script)

Every captured fixture comes from a real client talking to a one-shot listener on
127.0.0.1 (loopback only; each listener takes one connection on an ephemeral port).
The listener reads TLS record headers until the handshake message they carry is
complete, saves exactly those bytes (record headers included) and closes, so the
client sees a dropped connection and exits.

Clients (Debian 12 packages: openssl, curl, gnutls-bin, python3):
  openssl-openssl.example.bin     openssl s_client -servername openssl.example
  openssl-nosni.bin               openssl s_client -noservername (no server_name extension)
  openssl-bigalpn.example.bin     openssl s_client with 150 ALPN protocols and
                                  -max_send_frag 512: a real ClientHello larger than one
                                  Ethernet MTU, split by OpenSSL over several TLS records
  curl-curl.example.bin           curl -k --resolve curl.example:PORT:127.0.0.1 https://curl.example:PORT/
  python-python.example.bin       python3 ssl.SSLContext.wrap_socket(server_hostname="python.example")
  gnutls-gnutls.example.bin       gnutls-cli --insecure --sni-hostname gnutls.example -p PORT 127.0.0.1

Synthesised (OpenSSL 3.0 cannot offer a post-quantum key share or ECH, so these are
built byte by byte below, modelled on a current Chromium ClientHello: GREASE values,
X25519MLKEM768 (0x11ec) key share of 1216 bytes plus X25519, ALPN h2/http1.1, and an
outer encrypted_client_hello extension 0xfe0d with a GREASE-style random payload;
pseudo-random bytes come from SHA-256 of a counter, so output is deterministic):
  synthetic-pq.example.bin        one TLS record of ~1.8 KB (more than one MTU)
  synthetic-split.example.bin     the same handshake message with another SNI, cut into
                                  records of 2, 700 and the remaining bytes, so even the
                                  4-byte handshake header spans two records
"""
import hashlib
import os
import socket
import ssl
import struct
import subprocess
import sys
import threading

MAX_RECORD = 2**14 + 2048


def read_exact(conn, count):
    data = b""
    while len(data) < count:
        chunk = conn.recv(count - len(data))
        if not chunk:
            raise EOFError(f"client closed after {len(data)} of {count} bytes")
        data += chunk
    return data


def read_client_hello(conn):
    """Read whole records until the handshake message they carry is complete."""
    raw, handshake = b"", b""
    while True:
        header = read_exact(conn, 5)
        content_type, _version, length = struct.unpack("!BHH", header)
        if content_type != 22 or length == 0 or length > MAX_RECORD:
            raise ValueError(f"unexpected record header {header.hex()}")
        fragment = read_exact(conn, length)
        raw += header + fragment
        handshake += fragment
        if len(handshake) >= 4 and len(handshake) >= 4 + int.from_bytes(handshake[1:4], "big"):
            return raw


def capture(name, start_client, outdir):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(20)
    port = listener.getsockname()[1]
    client = start_client(port)
    try:
        conn, _ = listener.accept()
        conn.settimeout(20)
        with conn:
            raw = read_client_hello(conn)
    finally:
        listener.close()
        client.finish()
    path = os.path.join(outdir, name)
    with open(path, "wb") as f:
        f.write(raw)
    print(f"{name}: {len(raw)} bytes")


class Process:
    def __init__(self, argv):
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def finish(self):
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class PythonClient:
    def __init__(self, port):
        def run():
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                    with context.wrap_socket(sock, server_hostname="python.example"):
                        pass
            except (OSError, ssl.SSLError):
                pass  # the listener hangs up after the ClientHello; that is expected
        self.thread = threading.Thread(target=run)
        self.thread.start()

    def finish(self):
        self.thread.join(timeout=10)


def openssl(*extra):
    return lambda port: Process(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", *extra])


# --- synthesised ClientHello -------------------------------------------------------

def pseudo_random(label, count):
    out, counter = b"", 0
    while len(out) < count:
        out += hashlib.sha256(f"{label}:{counter}".encode()).digest()
        counter += 1
    return out[:count]


def u8(n): return struct.pack("!B", n)
def u16(n): return struct.pack("!H", n)
def u24(n): return struct.pack("!I", n)[1:]
def vec8(b): return u8(len(b)) + b
def vec16(b): return u16(len(b)) + b
def ext(kind, body): return u16(kind) + vec16(body)


def synthetic_client_hello(server_name):
    grease = 0x0A0A
    ciphers = [grease, 0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F, 0xC02C, 0xC030,
               0xCCA9, 0xCCA8, 0xC013, 0xC014, 0x009C, 0x009D, 0x002F, 0x0035]
    sigalgs = [0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601]
    host = server_name.encode()
    extensions = b"".join([
        ext(0x1A1A, b""),                                            # GREASE
        ext(0x0000, vec16(u8(0) + vec16(host))),                     # server_name
        ext(0x0017, b""),                                            # extended_master_secret
        ext(0xFF01, u8(0)),                                          # renegotiation_info
        ext(0x000A, vec16(b"".join(u16(g) for g in [0x2A2A, 0x11EC, 0x001D, 0x0017, 0x0018]))),
        ext(0x000B, vec8(u8(0))),                                    # ec_point_formats
        ext(0x0023, b""),                                            # session_ticket
        ext(0x0010, vec16(vec8(b"h2") + vec8(b"http/1.1"))),          # ALPN
        ext(0x0005, u8(1) + u16(0) + u16(0)),                        # status_request
        ext(0x000D, vec16(b"".join(u16(s) for s in sigalgs))),       # signature_algorithms
        ext(0x0012, b""),                                            # signed_certificate_timestamp
        ext(0x0033, vec16(u16(0x2A2A) + vec16(b"\x00")               # key_share
                          + u16(0x11EC) + vec16(pseudo_random("mlkem", 1216))
                          + u16(0x001D) + vec16(pseudo_random("x25519", 32)))),
        ext(0x002D, vec8(u8(1))),                                    # psk_key_exchange_modes
        ext(0x002B, vec8(u16(0x3A3A) + u16(0x0304) + u16(0x0303))),  # supported_versions
        ext(0x001B, vec8(u16(2))),                                   # compress_certificate
        ext(0x44CD, vec16(vec8(b"h2"))),                             # application_settings
        ext(0xFE0D, u8(0) + u16(0x0001) + u16(0x0001) + u8(0x42)    # encrypted_client_hello
            + vec16(pseudo_random("ech-enc", 32)) + vec16(pseudo_random("ech-payload", 208))),
        ext(0x4A4A, u8(0)),                                          # GREASE
    ])
    body = (u16(0x0303) + pseudo_random("random", 32) + vec8(pseudo_random("session", 32))
            + vec16(b"".join(u16(c) for c in ciphers)) + vec8(b"\x00") + vec16(extensions))
    return u8(1) + u24(len(body)) + body


def records(handshake, sizes):
    out, offset = b"", 0
    for size in sizes + [len(handshake)]:
        piece = handshake[offset:offset + size]
        if not piece:
            break
        out += u8(22) + u16(0x0301) + vec16(piece)
        offset += len(piece)
    return out


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    alpn = ",".join(f"proto-{i:03d}" for i in range(150))
    capture("openssl-openssl.example.bin", openssl("-servername", "openssl.example"), outdir)
    capture("openssl-nosni.bin", openssl("-noservername"), outdir)
    capture("openssl-bigalpn.example.bin",
            openssl("-servername", "bigalpn.example", "-alpn", alpn, "-max_send_frag", "512"), outdir)
    capture("curl-curl.example.bin", lambda port: Process(
        ["curl", "-k", "-s", "--max-time", "10", "--resolve", f"curl.example:{port}:127.0.0.1",
         f"https://curl.example:{port}/"]), outdir)
    capture("python-python.example.bin", PythonClient, outdir)
    capture("gnutls-gnutls.example.bin", lambda port: Process(
        ["gnutls-cli", "--insecure", "--sni-hostname", "gnutls.example", "-p", str(port),
         "127.0.0.1"]), outdir)
    for name, data in [
        ("synthetic-pq.example.bin", records(synthetic_client_hello("pq.example"), [])),
        ("synthetic-split.example.bin", records(synthetic_client_hello("split.example"), [2, 700])),
    ]:
        with open(os.path.join(outdir, name), "wb") as f:
            f.write(data)
        print(f"{name}: {len(data)} bytes")


if __name__ == "__main__":
    main()
