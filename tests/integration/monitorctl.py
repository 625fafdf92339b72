#!/usr/bin/env python3
"""tests/integration/monitorctl.py: talk to a berth-monitor socket (doc/runtime.md).

  monitorctl.py SOCKET REQUEST [--timeout S]
      sends one request line and prints the reply line (no reply before the
      connection closes: prints nothing and exits 1; timeout: exits 2).
  monitorctl.py SOCKET console [--send TEXT] [--timeout S] [--expect RE]
      attaches to the console, sends TEXT (backslash escapes allowed), and
      prints what the console writes until RE matches or the timeout.
"""
import argparse
import re
import socket
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("socket")
    ap.add_argument("request")
    ap.add_argument("--timeout", type=float, default=10)
    ap.add_argument("--send", default=None)
    ap.add_argument("--expect", default=None)
    a = ap.parse_args()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(a.timeout)
    s.connect(a.socket)
    s.sendall(a.request.encode() + b"\n")
    buf = b""
    deadline = time.monotonic() + a.timeout
    try:
        while b"\n" not in buf:
            d = s.recv(4096)
            if not d:
                return 1
            buf += d
    except socket.timeout:
        return 2
    line, rest = buf.split(b"\n", 1)
    if a.request != "console":
        print(line.decode())
        return 0
    if line != b"ok":
        print(line.decode())
        return 1
    if a.send is not None:
        s.sendall(a.send.encode().decode("unicode_escape").encode())
    out = rest
    while time.monotonic() < deadline:
        if a.expect and re.search(a.expect.encode(), out):
            break
        s.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            d = s.recv(4096)
        except socket.timeout:
            break
        if not d:
            break
        out += d
    sys.stdout.write(out.decode(errors="replace"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
