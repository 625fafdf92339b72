#!/usr/bin/python3
"""tests/integration/rawhttp.py: a raw HTTP/1.1 and websocket client over AF_UNIX.

Standard library only. The integration tests use it where the berth CLI would
hide what goes over the wire: status codes, headers, malformed requests, slow
and half-open clients, the events websocket.

Subcommands (SOCK is the path of berthd's unix socket):
  req SOCK METHOD PATH [-d BODY|-d @FILE] [-H 'K: V']...
      One well-formed request. Prints three header lines then the body:
        line 1: HTTP status, line 2: ETag (or empty), line 3: Location (or empty)
  raw SOCK [--timeout S] [--dump]
      Sends stdin's bytes as they are, prints the response like `req`
      (status 000 when the server closed without answering). With --dump,
      prints every byte received until the server closes or the timeout.
  big-header SOCK BYTES      GET /1.0 with one header of BYTES bytes; like `req`.
  big-body SOCK PATH BYTES   POST a JSON body of BYTES bytes (Content-Length); like `req`.
  slow SOCK N [--hold S]     Opens N connections that each send half a request
      line and stall, then times a normal GET /1.0 on a fresh connection. Prints
      "<status> <milliseconds>".
  half-open SOCK [--send BYTES] [--timeout S]
      Connects, sends BYTES (default nothing), then waits for the server to close
      the connection. Prints "closed <seconds>" or "open" after the timeout.
  ws SOCK PATH [--count N] [--timeout S] [--ready FILE]
      Opens a websocket and prints each text message on its own line until N
      messages arrived or the timeout passed. Touches FILE once subscribed.
  json EXPR     Reads JSON on stdin, evaluates the Python expression EXPR with the
      document bound to `j`; prints strings raw, None as nothing, the rest as JSON.
"""

import base64
import hashlib
import json
import os
import select
import socket
import struct
import sys
import time


def connect(path, timeout=10.0):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    return s


class Response:
    def __init__(self):
        self.status = 0
        self.headers = {}
        self.body = b""


def read_response(s, deadline):
    """Reads one response; tolerates a server that closes instead of answering."""
    buf = b""
    resp = Response()
    while b"\r\n\r\n" not in buf:
        chunk = recv_until(s, deadline)
        if not chunk:
            return resp
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    resp.status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    for line in lines[1:]:
        k, _, v = line.partition(":")
        resp.headers[k.strip().lower()] = v.strip()
    if resp.headers.get("transfer-encoding", "").lower() == "chunked":
        resp.body = read_chunked(s, rest, deadline)
    elif "content-length" in resp.headers:
        n = int(resp.headers["content-length"])
        while len(rest) < n:
            chunk = recv_until(s, deadline)
            if not chunk:
                break
            rest += chunk
        resp.body = rest[:n]
    else:
        while True:
            chunk = recv_until(s, deadline)
            if not chunk:
                break
            rest += chunk
        resp.body = rest
    return resp


def read_chunked(s, buf, deadline):
    body = b""
    while True:
        while b"\r\n" not in buf:
            chunk = recv_until(s, deadline)
            if not chunk:
                return body
            buf += chunk
        size_line, _, buf = buf.partition(b"\r\n")
        size = int(size_line.split(b";")[0].strip() or b"0", 16)
        while len(buf) < size + 2:
            chunk = recv_until(s, deadline)
            if not chunk:
                return body + buf[:size]
            buf += chunk
        if size == 0:
            return body
        body += buf[:size]
        buf = buf[size + 2:]


def recv_until(s, deadline):
    left = deadline - time.monotonic()
    if left <= 0:
        return b""
    s.settimeout(left)
    try:
        return s.recv(65536)
    except (socket.timeout, ConnectionResetError, BrokenPipeError):
        return b""


def print_response(resp):
    out = sys.stdout.buffer
    out.write(b"%03d\n" % resp.status)
    out.write(resp.headers.get("etag", "").encode() + b"\n")
    out.write(resp.headers.get("location", "").encode() + b"\n")
    out.write(resp.body)
    out.flush()


def build_request(method, path, body=None, headers=()):
    req = "%s %s HTTP/1.1\r\nHost: berth\r\nUser-Agent: rawhttp\r\n" % (method, path)
    for h in headers:
        req += h + "\r\n"
    if body is not None:
        if not any(h.lower().startswith("content-type:") for h in headers):
            req += "Content-Type: application/json\r\n"
        req += "Content-Length: %d\r\n" % len(body)
    req += "Connection: close\r\n\r\n"
    return req.encode("latin-1") + (body or b"")


def send_and_print(sock, data, timeout):
    s = connect(sock, timeout)
    try:
        s.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server may answer (413, 431) and close before reading everything
    resp = read_response(s, time.monotonic() + timeout)
    s.close()
    print_response(resp)


def take_opt(args, name, default=None, multi=False):
    vals = []
    while name in args:
        i = args.index(name)
        vals.append(args[i + 1])
        del args[i:i + 2]
    if multi:
        return vals
    return vals[-1] if vals else default


def cmd_req(args):
    headers = take_opt(args, "-H", multi=True)
    data = take_opt(args, "-d")
    timeout = float(take_opt(args, "--timeout", "30"))
    sock, method, path = args
    body = None
    if data is not None:
        if data.startswith("@"):
            with open(data[1:], "rb") as f:
                body = f.read()
        else:
            body = data.encode("utf-8", "surrogateescape")  # arbitrary bytes from argv
    send_and_print(sock, build_request(method, path, body, headers), timeout)


def cmd_raw(args):
    timeout = float(take_opt(args, "--timeout", "10"))
    dump = "--dump" in args
    if dump:
        args.remove("--dump")
    (sock,) = args
    if not dump:
        send_and_print(sock, sys.stdin.buffer.read(), timeout)
        return
    s = connect(sock, timeout)
    s.sendall(sys.stdin.buffer.read())
    deadline = time.monotonic() + timeout
    while True:
        chunk = recv_until(s, deadline)
        if not chunk:
            break
        sys.stdout.buffer.write(chunk)
    sys.stdout.flush()
    s.close()


def cmd_big_header(args):
    sock, size = args[0], int(args[1])
    data = build_request("GET", "/1.0", None, ["X-Big: " + "a" * size])
    send_and_print(sock, data, 30)


def cmd_big_body(args):
    sock, path, size = args[0], args[1], int(args[2])
    # A syntactically valid JSON object, so only its size is wrong.
    pad = size - len('{"description":""}')
    body = ('{"description":"' + "x" * max(pad, 0) + '"}').encode()
    send_and_print(sock, build_request("POST", path, body), 60)


def cmd_slow(args):
    hold = float(take_opt(args, "--hold", "0"))
    sock, n = args[0], int(args[1])
    slow = []
    for _ in range(n):
        s = connect(sock)
        s.sendall(b"GET /1.0 HT")
        slow.append(s)
    start = time.monotonic()
    s = connect(sock)
    s.sendall(build_request("GET", "/1.0"))
    resp = read_response(s, start + 10)
    ms = (time.monotonic() - start) * 1000
    s.close()
    if hold > 0:
        time.sleep(hold)
    for c in slow:
        c.close()
    print("%03d %.1f" % (resp.status, ms))


def cmd_half_open(args):
    data = take_opt(args, "--send", "").encode()
    timeout = float(take_opt(args, "--timeout", "10"))
    (sock,) = args
    s = connect(sock)
    if data:
        s.sendall(data)
    start = time.monotonic()
    deadline = start + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            print("open")
            return
        r, _, _ = select.select([s], [], [], left)
        if r:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                print("closed %.1f" % (time.monotonic() - start))
                return


def ws_handshake(sock, path, timeout):
    s = connect(sock, timeout)
    key = base64.b64encode(os.urandom(16)).decode()
    req = ("GET %s HTTP/1.1\r\nHost: berth\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (path, key))
    s.sendall(req.encode())
    buf = b""
    deadline = time.monotonic() + timeout
    while b"\r\n\r\n" not in buf:
        chunk = recv_until(s, deadline)
        if not chunk:
            raise SystemExit("websocket: no handshake answer")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    status = head.split(b"\r\n")[0]
    if b" 101 " not in status + b" ":
        raise SystemExit("websocket: handshake refused: %s" % status.decode("latin-1"))
    want = base64.b64encode(hashlib.sha1(
        (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
    if want.encode() not in head:
        raise SystemExit("websocket: bad Sec-WebSocket-Accept")
    return s, rest


def ws_frames(s, buf, deadline):
    """Yields (opcode, payload) for whole messages; reassembles fragments."""
    msg, msg_op = b"", None
    while True:
        while True:
            if len(buf) >= 2:
                b1, b2 = buf[0], buf[1]
                n, off = b2 & 0x7F, 2
                if n == 126 and len(buf) >= 4:
                    n, off = struct.unpack("!H", buf[2:4])[0], 4
                elif n == 127 and len(buf) >= 10:
                    n, off = struct.unpack("!Q", buf[2:10])[0], 10
                elif n >= 126:
                    n = None
                if b2 & 0x80:
                    off += 4
                if n is not None and len(buf) >= off + n:
                    break
            chunk = recv_until(s, deadline)
            if not chunk:
                return
            buf += chunk
        payload = buf[off:off + n]
        if b2 & 0x80:
            mask = buf[off - 4:off]
            payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
        buf = buf[off + n:]
        op = b1 & 0x0F
        if op == 0x9:  # ping
            ws_send(s, 0xA, payload)
            continue
        if op == 0x8:
            yield op, payload
            return
        if op != 0:
            msg_op, msg = op, b""
        msg += payload
        if b1 & 0x80:
            yield msg_op, msg


def ws_send(s, op, payload):
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        hdr = struct.pack("!BB", 0x80 | op, 0x80 | n)
    elif n < 65536:
        hdr = struct.pack("!BBH", 0x80 | op, 0x80 | 126, n)
    else:
        hdr = struct.pack("!BBQ", 0x80 | op, 0x80 | 127, n)
    s.sendall(hdr + mask + bytes(c ^ mask[i % 4] for i, c in enumerate(payload)))


def cmd_ws(args):
    count = int(take_opt(args, "--count", "1"))
    timeout = float(take_opt(args, "--timeout", "10"))
    ready = take_opt(args, "--ready")
    sock, path = args
    s, rest = ws_handshake(sock, path, timeout)
    if ready:
        open(ready, "w").close()
    got = 0
    for op, payload in ws_frames(s, rest, time.monotonic() + timeout):
        if op == 0x8:
            break
        if op == 0x1:
            sys.stdout.write(payload.decode("utf-8", "replace").replace("\n", " ") + "\n")
            sys.stdout.flush()
            got += 1
            if got >= count:
                break
    try:
        ws_send(s, 0x8, struct.pack("!H", 1000))
    except OSError:
        pass
    s.close()


def cmd_json(args):
    (expr,) = args
    j = json.load(sys.stdin)
    # One namespace, so comprehensions inside EXPR see `j` too.
    v = eval(expr, {"json": json, "j": j})
    if v is None:
        return
    if isinstance(v, str):
        print(v)
    elif isinstance(v, bool):
        print("true" if v else "false")
    else:
        print(json.dumps(v, sort_keys=True))


COMMANDS = {
    "req": cmd_req, "raw": cmd_raw, "big-header": cmd_big_header, "big-body": cmd_big_body,
    "slow": cmd_slow, "half-open": cmd_half_open, "ws": cmd_ws, "json": cmd_json,
}


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.stderr.write(__doc__)
        return 2
    try:
        COMMANDS[sys.argv[1]](sys.argv[2:])
    except (ConnectionRefusedError, FileNotFoundError) as e:
        sys.stderr.write("rawhttp: cannot connect: %s\n" % e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
