#!/usr/bin/env python3
"""tests/integration/monitorctl.py: talk to a berth-monitor socket (doc/runtime.md).

  monitorctl.py SOCKET REQUEST [--timeout S]
      sends one request line and prints the reply line (no reply before the
      connection closes: prints nothing and exits 1; timeout: exits 2).
  monitorctl.py SOCKET console [--send TEXT] [--timeout S] [--expect RE]
      attaches to the console, sends TEXT (backslash escapes allowed), and
      prints what the console writes until RE matches or the timeout.
  monitorctl.py SOCKET exec [--proto FILE] [--signal-after S] [--leave] [--nfds N]
                [--raw WORDS] -- OPTION... -- CMD...
      an `exec` request: the words after the first "--" (berth-monitor exec's
      options after RUNDIR) %-escaped, with this process's stdin, stdout and stderr
      as SCM_RIGHTS (only the first N with --nfds; --raw sends WORDS unescaped).
      The monitor's lines go to FILE; exits with the command's status from
      "exit N" (255 without one). --signal-after sends "signal 15" S seconds
      after "started"; --leave closes the connection right after "started".
"""
import argparse
import array
import os
import re
import socket
import sys
import time


def escape(word):
    out = ""
    for b in word.encode():
        c = chr(b)
        out += c if (c.isascii() and c.isalnum()) or c in "-_./=:,+@" else "%%%02X" % b
    return out


def do_exec(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("socket")
    ap.add_argument("--proto", default=os.devnull)
    ap.add_argument("--signal-after", type=float, default=None)
    ap.add_argument("--leave", action="store_true")
    ap.add_argument("--nfds", type=int, default=3)
    ap.add_argument("--raw", default=None)
    ap.add_argument("--timeout", type=float, default=30)
    words = []
    if "--" in argv:
        i = argv.index("--")
        argv, words = argv[:i], argv[i + 1:]
    a = ap.parse_args(argv)
    a.words = words
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(a.timeout)
    s.connect(a.socket)
    req = "exec " + (a.raw if a.raw is not None else " ".join(escape(w) for w in a.words))
    fds = [0, 1, 2][: a.nfds]
    anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
    s.sendmsg([req.encode() + b"\n"], anc)
    status = 255
    buf = b""
    with open(a.proto, "w") as proto:
        while True:
            try:
                d = s.recv(4096)
            except socket.timeout:
                proto.write("timeout\n")
                return 2
            if not d:
                break
            buf += d
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                text = line.decode(errors="replace")
                proto.write(text + "\n")
                proto.flush()
                if text.startswith("exit "):
                    status = int(text[5:])
                if text.startswith("started ") and a.leave:
                    return 0
                if text.startswith("started ") and a.signal_after is not None:
                    time.sleep(a.signal_after)
                    s.sendall(b"signal 15\n")
    return status


def main():
    if len(sys.argv) > 2 and sys.argv[2] == "exec":
        return do_exec([sys.argv[1]] + sys.argv[3:])
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
