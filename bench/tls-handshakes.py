#!/usr/bin/env python3
"""TLS handshakes in a loop, for bench/tls-bench.sh.

Usage: tls-handshakes.py ADDRESS PORT SERVER_NAME CA_FILE SECONDS LATENCY_FILE

One connection at a time, for SECONDS: TCP connect, TLS handshake with server_hostname
SERVER_NAME (certificate verified against CA_FILE), close. Each successful connection's
latency, from connect() to the end of the handshake, goes to LATENCY_FILE in microseconds,
one per line. Prints one line: connections, failures, elapsed seconds.
"""
import socket
import ssl
import sys
import time


def main():
    address, port, name, cafile, seconds, out = sys.argv[1:7]
    context = ssl.create_default_context(cafile=cafile)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    latencies, failures = [], 0
    start = time.perf_counter()
    deadline = start + float(seconds)
    while time.perf_counter() < deadline:
        t0 = time.perf_counter_ns()
        try:
            with socket.create_connection((address, int(port)), timeout=3) as raw:
                # Closed at once after the handshake (no close_notify round trip).
                with context.wrap_socket(raw, server_hostname=name):
                    latencies.append((time.perf_counter_ns() - t0) / 1000)
        except (OSError, ssl.SSLError):
            failures += 1
            if failures > 100 and not latencies:
                break
    elapsed = time.perf_counter() - start
    with open(out, "w") as f:
        f.write("\n".join(f"{v:.1f}" for v in latencies) + "\n")
    print(f"connections {len(latencies)} failures {failures} seconds {elapsed:.3f}")


if __name__ == "__main__":
    main()
