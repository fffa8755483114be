#!/usr/bin/env python3
"""Readiness probe for the test-environment broker (hack/testenv/kafka.sh).

Sends one Kafka Metadata request (v8, no topics) to HOST:PORT and exits 0 only when the broker
answers with itself in the broker list, i.e. it is registered and unfenced and serves metadata.
Much cheaper than starting a JVM admin tool on every poll. Usage: ready.py PORT [HOST] [NODE_ID]
"""
import socket
import struct
import sys

METADATA, VERSION = 3, 8


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed")
        buf += chunk
    return buf


def main():
    port = int(sys.argv[1])
    host = sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1"
    node_id = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    client_id = b"simptu-testenv-ready"
    # request header v1: api_key, api_version, correlation_id, client_id
    header = struct.pack(">hhih", METADATA, VERSION, 42, len(client_id)) + client_id
    # Metadata v8 body: topics = [] (none), allow_auto_topic_creation, include cluster/topic authorized ops
    body = struct.pack(">i???", 0, False, False, False)
    msg = header + body
    with socket.create_connection((host, port), timeout=3) as s:
        s.settimeout(3)
        s.sendall(struct.pack(">i", len(msg)) + msg)
        size = struct.unpack(">i", recv_exact(s, 4))[0]
        resp = recv_exact(s, size)
    corr, _throttle, nbrokers = struct.unpack_from(">iii", resp, 0)
    if corr != 42:
        return 1
    off, ids = 12, []
    for _ in range(nbrokers):
        (nid,) = struct.unpack_from(">i", resp, off)
        off += 4
        (hlen,) = struct.unpack_from(">h", resp, off)
        off += 2 + hlen + 4  # host, port
        (rlen,) = struct.unpack_from(">h", resp, off)
        off += 2 + max(rlen, 0)  # rack (nullable)
        ids.append(nid)
    return 0 if node_id in ids else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (OSError, ValueError, struct.error) as exc:
        print(f"kafka not ready: {exc}", file=sys.stderr)
        sys.exit(1)
