#!/usr/bin/env python3
"""tests/integration/old_monitor.py: stand in for a berth-monitor that predates `exec`
requests (one started by an older berth, still running after an upgrade), or for a VM's
berth-vmmon.

  old_monitor.py SOCKET REAL_SOCKET [MODE]

Listens on SOCKET; every request line but `exec ...` is passed to the real monitor at
REAL_SOCKET and its answer relayed (both ways, until either side closes). `exec`
requests, by MODE:
  old (the default)  the old monitor's answer, `error unknown request "..."`; each
                     refused exec appends a line to SOCKET.refused;
  vm-offline         a VM's berth-vmmon before its agent is up: `error LXD VM agent
                     isn't currently running`;
  record             passed on to the real monitor with their fds, and what the client
                     sends after the request line appended to SOCKET.lines.
Runs until killed.
"""
import os
import socket
import sys
import threading


def relay(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            b.sendall(d)
    except OSError:
        pass
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def record(a, b, path):
    """relay() that also appends what passes to `path`."""
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            with open(path, "ab") as f:
                f.write(d)
            b.sendall(d)
    except OSError:
        pass
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def serve(conn, real, refused, mode):
    buf = b""
    fds = []
    while b"\n" not in buf:
        d, more, _, _ = socket.recv_fds(conn, 65536, 8)
        fds += more
        if not d:
            conn.close()
            return
        buf += d
    line, rest = buf.split(b"\n", 1)
    if line.startswith(b"exec ") and mode == "vm-offline":
        conn.sendall(b"error LXD VM agent isn't currently running\n")
        conn.close()
        for fd in fds:
            os.close(fd)
        return
    if line.startswith(b"exec ") and mode == "record":
        up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        up.connect(real)
        socket.send_fds(up, [line + b"\n"], fds)
        for fd in fds:
            os.close(fd)
        lines = refused.replace(".refused", ".lines")
        with open(lines, "ab") as f:
            f.write(rest)
        up.sendall(rest)
        t = threading.Thread(target=relay, args=(up, conn), daemon=True)
        t.start()
        record(conn, up, lines)
        t.join()
        return
    for fd in fds:
        os.close(fd)
    if line.startswith(b"exec "):
        conn.sendall(b'error unknown request "%s"\n' % line[:64])
        conn.close()
        with open(refused, "a") as f:
            f.write("refused\n")
        return
    up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    up.connect(real)
    up.sendall(buf)
    t = threading.Thread(target=relay, args=(up, conn), daemon=True)
    t.start()
    relay(conn, up)
    t.join()


def main():
    path, real = sys.argv[1], sys.argv[2]
    mode = sys.argv[3] if len(sys.argv) > 3 else "old"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    os.chmod(path, 0o600)
    s.listen(16)
    print("ready", flush=True)
    while True:
        conn, _ = s.accept()
        threading.Thread(target=serve, args=(conn, real, path + ".refused", mode),
                         daemon=True).start()


if __name__ == "__main__":
    main()
