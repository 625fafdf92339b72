#!/usr/bin/env python3
"""tests/integration/old_monitor.py: stand in for a berth-monitor that predates `exec`
requests (one started by an older berth, still running after an upgrade).

  old_monitor.py SOCKET REAL_SOCKET

Listens on SOCKET; every request line but `exec ...` is passed to the real monitor at
REAL_SOCKET and its answer relayed (both ways, until either side closes); `exec`
requests get the old monitor's answer, `error unknown request "..."`. Each refused
exec appends a line to SOCKET.refused. Runs until killed.
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


def serve(conn, real, refused):
    buf = b""
    while b"\n" not in buf:
        d = conn.recv(65536)
        if not d:
            conn.close()
            return
        buf += d
    line = buf.split(b"\n", 1)[0]
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
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    os.chmod(path, 0o600)
    s.listen(16)
    print("ready", flush=True)
    while True:
        conn, _ = s.accept()
        threading.Thread(target=serve, args=(conn, real, path + ".refused"), daemon=True).start()


if __name__ == "__main__":
    main()
