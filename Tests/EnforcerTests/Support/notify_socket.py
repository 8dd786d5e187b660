"""A stand-in for systemd's end of NOTIFY_SOCKET, for ServiceManagerLiveTests.

    python3 notify_socket.py SOCKET_PATH OUTPUT NAMESPACE

Binds a datagram socket at SOCKET_PATH and writes each message it receives to OUTPUT as a JSON
line: {"at": monotonic seconds, "message": text, "table": bool or null}. When a message says
READY=1, "table" says whether enforcer's table was in NAMESPACE's kernel at that moment, as
systemd would rely on when it lets network-pre.target pass.
"""
import json
import socket
import subprocess
import sys
import time

path, output, namespace = sys.argv[1:4]
receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
receiver.bind(path)
with open(output, "a", buffering=1) as out:
    while True:
        message = receiver.recv(65536).decode("utf-8", "replace")
        table = None
        if "READY=1" in message.split("\n"):
            listed = subprocess.run(["ip", "netns", "exec", namespace, "nft", "list", "table", "inet", "enforcer"],
                                    capture_output=True)
            table = listed.returncode == 0
        out.write(json.dumps({"at": time.monotonic(), "message": message, "table": table}) + "\n")
