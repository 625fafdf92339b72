#!/usr/bin/env python3
"""Exec and console helpers for t_exec.sh (python3 stdlib only).

  wsclient.py lxc-pty CMD...      run `lxc exec ... sh` on a pty: resize the window,
                                  type commands, print what came back, exit with its status
  wsclient.py lxc-console CMD...  run `lxc console ...` on a pty: Enter, expect output,
                                  ctrl+a q, expect a clean exit
  wsclient.py lxc-console-send TEXT EXPECT CMD...
                                  the same for any console: type TEXT then Enter,
                                  expect EXPECT within 20 s, ctrl+a q, a clean exit
  wsclient.py raw SOCKET          exec over raw websockets: secrets, sockets, framing, return
  wsclient.py stdio SOCKET        berth's stdio.socket next to SOCKET: what it refuses
"""
import array
import fcntl
import json
import os
import pty
import select
import signal
import socket
import struct
import sys
import termios
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rawhttp  # noqa: E402


def set_size(fd, rows, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def read_for(fd, seconds, until=None):
    out = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 0.1)
        if not r:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
        if until and until in out:
            break
    return out


def spawn_on_pty(argv, rows=24, cols=80):
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(argv[0], argv)
    set_size(fd, rows, cols)
    return pid, fd


def wait_exit(pid, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        p, st = os.waitpid(pid, os.WNOHANG)
        if p:
            return os.waitstatus_to_exitcode(st)
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None


def cmd_lxc_pty(argv):
    pid, fd = spawn_on_pty(argv)
    out = read_for(fd, 3, b"# ")
    set_size(fd, 40, 120)  # the kernel sends lxc SIGWINCH: a window-resize message
    time.sleep(0.5)
    os.write(fd, b"echo size:$(stty size); [ -t 0 ] && echo tty:yes; echo hi-$$; exit 3\r")
    out += read_for(fd, 5)
    rc = wait_exit(pid, 5)
    sys.stdout.write(out.decode("utf-8", "replace"))
    return 99 if rc is None else rc


def cmd_lxc_console(argv):
    pid, fd = spawn_on_pty(argv)
    out = read_for(fd, 2, b"ctrl+a q")
    os.write(fd, b"\r")
    got = read_for(fd, 3, b"# ")
    os.write(fd, b"echo console-$((6*7))\r")
    got += read_for(fd, 3, b"console-42")
    os.write(fd, b"\x01")  # the client looks at one key at a time
    time.sleep(0.2)
    os.write(fd, b"q")
    rc = wait_exit(pid, 5)
    out += got + read_for(fd, 0.2)
    sys.stdout.write(out.decode("utf-8", "replace"))
    if b"console-42" not in got:
        print("\nno output from the console shell")
        return 1
    if rc != 0:
        print("\nlxc console did not exit 0 after ctrl+a q: %r" % rc)
        return 1
    return 0


def cmd_lxc_console_send(argv):
    text, expect, argv = argv[0].encode(), argv[1].encode(), argv[2:]
    pid, fd = spawn_on_pty(argv)
    out = read_for(fd, 2, b"ctrl+a q")
    for ch in text + b"\r":  # a slow guest (firmware under TCG) takes one key at a time
        os.write(fd, bytes([ch]))
        time.sleep(0.05)
    got = read_for(fd, 20, expect)
    os.write(fd, b"\x01")
    time.sleep(0.2)
    os.write(fd, b"q")
    rc = wait_exit(pid, 5)
    out += got + read_for(fd, 0.2)
    sys.stdout.write(out.decode("utf-8", "replace"))
    if expect not in got:
        print("\nno %r from the console" % expect)
        return 1
    if rc != 0:
        print("\nlxc console did not exit 0 after ctrl+a q: %r" % rc)
        return 1
    return 0


def api(sock, method, path, body=None):
    s = rawhttp.connect(sock)
    s.sendall(rawhttp.build_request(method, path, json.dumps(body).encode() if body is not None else None))
    resp = rawhttp.read_response(s, time.monotonic() + 30)
    s.close()
    return resp.status, json.loads(resp.body or b"null")


def ws_status(sock, path):
    """The HTTP status a websocket request gets (101 when upgraded)."""
    try:
        s, _ = rawhttp.ws_handshake(sock, path, 10)
        s.close()
        return 101
    except SystemExit as e:
        msg = str(e)
        for code in ("400", "403", "404"):
            if " %s " % code in msg + " ":
                return int(code)
        return msg


def check(cond, what):
    if not cond:
        print("FAIL: " + what)
        sys.exit(1)
    print("ok: " + what)


def cmd_raw(args):
    sock = args[0]
    st, j = api(sock, "POST", "/1.0/instances/c1/exec",
                {"command": ["sh", "-c", "cat; echo err >&2; exit 4"],
                 "wait-for-websocket": True, "interactive": False})
    check(st == 202, "exec POST is 202 (%s)" % st)
    op = j["metadata"]
    fds = op["metadata"]["fds"]
    check(sorted(fds) == ["0", "1", "2", "control"], "fds 0 1 2 control")
    check(all(len(v) == 64 for v in fds.values()), "secrets are 64 hex digits")
    check(op["class"] == "websocket", "websocket class")
    base = "/1.0/operations/%s/websocket?secret=" % op["id"]
    check(ws_status(sock, base + "0" * 64) == 403, "a bad secret is 403")
    check(ws_status(sock, "/1.0/operations/nosuchop/websocket?secret=x") == 404,
          "an unknown operation is 404")
    conns = {}
    for k in ("1", "2", "0"):
        conns[k] = rawhttp.ws_handshake(sock, base + fds[k], 10)
    check(ws_status(sock, base + fds["0"]) == 400, "a second connection to a socket is refused")
    s0, _ = conns["0"]
    rawhttp.ws_send(s0, 0x2, b"hello ")
    rawhttp.ws_send(s0, 0x2, b"world")
    rawhttp.ws_send(s0, 0x1, b"")  # stdin EOF barrier

    def collect(k):
        s, rest = conns[k]
        data, ops = b"", []
        for opc, payload in rawhttp.ws_frames(s, rest, time.monotonic() + 10):
            ops.append((opc, len(payload)))
            if opc == 2:
                data += payload
        return data, ops

    out, ops1 = collect("1")
    err, ops2 = collect("2")
    check(out == b"hello world", "stdout echoes stdin (%r)" % out)
    check(err == b"err\n", "stderr separate (%r)" % err)
    check(ops1[-2:] == [(1, 0), (8, 2)] or ops1[-2:][0] == (1, 0),
          "stdout ends with an empty text barrier then Close (%r)" % ops1[-2:])
    st, j = api(sock, "GET", "/1.0/operations/%s/wait?timeout=10" % op["id"])
    check(j["metadata"]["status"] == "Success", "operation Success")
    check(j["metadata"]["metadata"]["return"] == 4, "metadata.return is 4")
    for s, _ in conns.values():
        s.close()

    # cancel: DELETE kills the command
    st, j = api(sock, "POST", "/1.0/instances/c1/exec",
                {"command": ["sleep", "100"], "wait-for-websocket": True})
    op = j["metadata"]
    fds = op["metadata"]["fds"]
    base = "/1.0/operations/%s/websocket?secret=" % op["id"]
    conns = {k: rawhttp.ws_handshake(sock, base + fds[k], 10) for k in ("0", "1", "2")}
    time.sleep(0.5)
    st, _ = api(sock, "DELETE", "/1.0/operations/%s" % op["id"])
    check(st == 200, "DELETE of the exec operation (%s)" % st)
    st, j = api(sock, "GET", "/1.0/operations/%s/wait?timeout=10" % op["id"])
    check(j["metadata"]["status"] in ("Success", "Cancelled"),
          "the operation ends after DELETE (%s)" % j["metadata"]["status"])
    for s, _ in conns.values():
        s.close()

    # control socket closed: the command is killed
    st, j = api(sock, "POST", "/1.0/instances/c1/exec",
                {"command": ["sleep", "100"], "wait-for-websocket": True, "interactive": True})
    op = j["metadata"]
    fds = op["metadata"]["fds"]
    check(sorted(fds) == ["0", "control"], "interactive: fds 0 and control")
    base = "/1.0/operations/%s/websocket?secret=" % op["id"]
    s0, _ = rawhttp.ws_handshake(sock, base + fds["0"], 10)
    sc, _ = rawhttp.ws_handshake(sock, base + fds["control"], 10)
    time.sleep(0.5)
    rawhttp.ws_send(sc, 0x8, struct.pack("!H", 1000))
    st, j = api(sock, "GET", "/1.0/operations/%s/wait?timeout=10" % op["id"])
    check(j["metadata"]["metadata"].get("return") == 137,
          "closing control kills the command (return %r)" % j["metadata"]["metadata"].get("return"))
    s0.close()
    sc.close()

    # the command runs only once its websockets are connected (LXD's wait-for-websocket),
    # and never if they do not connect in time
    def ran(path):
        st, j = api(sock, "POST", "/1.0/instances/c1/exec",
                    {"command": ["test", "-e", path], "wait-for-websocket": False})
        st, j = api(sock, "GET", "/1.0/operations/%s/wait?timeout=10" % j["metadata"]["id"])
        return j["metadata"]["metadata"].get("return") == 0

    st, j = api(sock, "POST", "/1.0/instances/c1/exec",
                {"command": ["sh", "-c", "echo held >/tmp/held-mark; echo done"],
                 "wait-for-websocket": True})
    op = j["metadata"]
    fds = op["metadata"]["fds"]
    time.sleep(0.5)
    check(not ran("/tmp/held-mark"), "the command has not run before its websockets connect")
    base = "/1.0/operations/%s/websocket?secret=" % op["id"]
    conns = {k: rawhttp.ws_handshake(sock, base + fds[k], 10) for k in ("1", "2", "0")}
    rawhttp.ws_send(conns["0"][0], 0x1, b"")
    s1, rest = conns["1"]
    out = b"".join(p for opc, p in rawhttp.ws_frames(s1, rest, time.monotonic() + 10) if opc == 2)
    st, j = api(sock, "GET", "/1.0/operations/%s/wait?timeout=10" % op["id"])
    check(out == b"done\n" and j["metadata"]["metadata"].get("return") == 0,
          "... and runs once they are (%r)" % out)
    check(ran("/tmp/held-mark"), "... its effect is there")
    for s, _ in conns.values():
        s.close()

    st, j = api(sock, "POST", "/1.0/instances/c1/exec",
                {"command": ["sh", "-c", "echo x >/tmp/never-mark"], "wait-for-websocket": True})
    op = j["metadata"]
    st, j = api(sock, "GET", "/1.0/operations/%s/wait?timeout=20" % op["id"])
    check(j["metadata"]["status"] == "Failure" and "websockets" in j["metadata"]["err"],
          "websockets never connected: the operation fails (%s)" % j["metadata"]["err"])
    time.sleep(0.3)
    check(not ran("/tmp/never-mark"), "... and the command never ran")
    return 0


def stdio_attach(path, line, fds):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
    s.sendmsg([line.encode()], anc)
    answer = b""
    while not answer.endswith(b"\n"):
        d = s.recv(256)
        if not d:
            break
        answer += d
    s.close()
    return answer.decode().strip()


def cmd_stdio(args):
    sock = args[0]
    path = os.path.join(os.path.dirname(sock), "stdio.socket")
    st, j = api(sock, "POST", "/1.0/instances/c1/exec",
                {"command": ["sh", "-c", "echo x >/tmp/stdio-mark"], "wait-for-websocket": True})
    op = j["metadata"]
    fds = op["metadata"]["fds"]
    r, w = os.pipe()
    null = os.open("/dev/null", os.O_RDWR)
    master, slave = pty.openpty()
    ans = stdio_attach(path, "%s %s\n" % (op["id"], fds["0"]), [null, slave, w])
    check(ans.startswith("error ") and "terminal" in ans, "a terminal is refused (%s)" % ans)
    ans = stdio_attach(path, "%s %s\n" % (op["id"], "0" * 64), [null, w, w])
    check(ans == "error Forbidden", "a bad secret is refused (%s)" % ans)
    ans = stdio_attach(path, "%s %s\n" % (op["id"], fds["1"]), [null, w, w])
    check(ans == "error Forbidden", "the secret of another socket is refused (%s)" % ans)
    ans = stdio_attach(path, "nosuchop %s\n" % fds["0"], [null, w, w])
    check(ans == "error Operation not found", "an unknown operation (%s)" % ans)
    ans = stdio_attach(path, "%s %s\n" % (op["id"], fds["0"]), [null, w])
    check(ans.startswith("error Bad request"), "two fds are refused (%s)" % ans)
    ans = stdio_attach(path, "%s %s" % (op["id"], fds["0"]), [null, w, w])
    check(ans.startswith("error Bad request"), "a request without its newline (%s)" % ans)
    # a websocket connected first: the fds are refused, the websockets carry on
    base = "/1.0/operations/%s/websocket?secret=" % op["id"]
    s1, _ = rawhttp.ws_handshake(sock, base + fds["1"], 10)
    ans = stdio_attach(path, "%s %s\n" % (op["id"], fds["0"]), [null, w, w])
    check(ans.startswith("error ") and "websocket" in ans, "after a websocket connected (%s)" % ans)
    s1.close()
    st, j = api(sock, "DELETE", "/1.0/operations/%s" % op["id"])
    # a command handed fds writes to them, and a second attach is refused
    st, j = api(sock, "POST", "/1.0/instances/c1/exec",
                {"command": ["echo", "direct"], "wait-for-websocket": True})
    op = j["metadata"]
    fds = op["metadata"]["fds"]
    ans = stdio_attach(path, "%s %s\n" % (op["id"], fds["0"]), [null, w, w])
    check(ans == "ok", "our fds are taken (%s)" % ans)
    st, j = api(sock, "GET", "/1.0/operations/%s/wait?timeout=10" % op["id"])
    check(j["metadata"]["status"] == "Success" and j["metadata"]["metadata"]["return"] == 0,
          "the operation ends with the command (%s)" % j["metadata"]["status"])
    os.close(w)
    check(os.read(r, 100) == b"direct\n", "the command wrote straight into our pipe")
    ans = stdio_attach(path, "%s %s\n" % (op["id"], fds["0"]), [null, null, null])
    check(ans.startswith("error "), "a finished operation takes no fds (%s)" % ans)
    st, j = api(sock, "POST", "/1.0/instances/c1/exec",
                {"command": ["true"], "wait-for-websocket": True, "interactive": True})
    op = j["metadata"]
    ans = stdio_attach(path, "%s %s\n" % (op["id"], op["metadata"]["fds"]["0"]), [null, null, null])
    check(ans.startswith("error ") and "non-interactive" in ans,
          "an interactive exec takes no fds (%s)" % ans)
    api(sock, "DELETE", "/1.0/operations/%s" % op["id"])
    for fd in (r, null, master, slave):
        os.close(fd)
    return 0


def main():
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "lxc-pty":
        return cmd_lxc_pty(args)
    if mode == "lxc-console":
        return cmd_lxc_console(args)
    if mode == "lxc-console-send":
        return cmd_lxc_console_send(args)
    if mode == "raw":
        return cmd_raw(args)
    if mode == "stdio":
        return cmd_stdio(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
