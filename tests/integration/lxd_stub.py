#!/usr/bin/python3
"""tests/integration/lxd_stub.py: an LXD-protocol image server that lies, on loopback
only, for t_image_pull.sh:

  lxd_stub.py CERT KEY PORTFILE

listens over HTTPS on 127.0.0.1 on a free port (written to PORTFILE). Image "lying"
announces 1000 bytes and its export sends 8 MiB; image "huge" has a 2 MiB record;
image "slow" sends its 8 MiB at 256 KiB/s; image "vast" announces 1 EiB (no disk has room)."""
import http.server
import json
import os
import socket
import ssl
import sys
import time

LYING = "ab" * 32
HUGE = "cd" * 32
SLOW = "ef" * 32
VAST = "0f" * 32


def main():
    cert, key, portfile = sys.argv[1:4]

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            pass

        def send(self, code, ctype, body):
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def sync(self, meta):
            self.send(200, "application/json",
                      json.dumps({"type": "sync", "status_code": 200, "metadata": meta}).encode())

        def do_GET(self):
            path = self.path.split("?")[0]
            try:
                if path.startswith("/1.0/images/aliases/"):
                    name = path.rsplit("/", 1)[1]
                    self.sync({"name": name, "type": "container",
                               "target": {"lying": LYING, "slow": SLOW, "vast": VAST}.get(name, HUGE)})
                elif path == "/1.0/images/" + LYING:
                    self.sync({"fingerprint": LYING, "size": 1000, "type": "container"})
                elif path == "/1.0/images/" + SLOW:
                    self.sync({"fingerprint": SLOW, "size": 8 << 20, "type": "container"})
                elif path == "/1.0/images/" + VAST:
                    self.sync({"fingerprint": VAST, "size": 1 << 60, "type": "container"})
                elif path == "/1.0/images/" + HUGE:
                    self.sync({"fingerprint": HUGE, "size": 1000, "type": "container",
                               "properties": {"pad": "x" * (2 << 20)}})
                elif path == "/1.0/images/%s/export" % LYING:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/octet-stream")
                    self.send_header("Content-Length", str(8 << 20))
                    self.end_headers()
                    for _ in range(128):
                        self.wfile.write(b"\0" * 65536)
                elif path == "/1.0/images/%s/export" % SLOW:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/octet-stream")
                    self.send_header("Content-Length", str(8 << 20))
                    self.end_headers()
                    for _ in range(128):
                        self.wfile.write(b"\0" * 65536)
                        self.wfile.flush()
                        time.sleep(0.25)
                else:
                    self.send(404, "application/json", json.dumps(
                        {"type": "error", "error": "not found", "error_code": 404}).encode())
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError, socket.error):
                self.close_connection = True

    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True

    srv = Server(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    with open(portfile + ".tmp", "w") as f:
        f.write(str(srv.server_address[1]))
    os.rename(portfile + ".tmp", portfile)
    srv.serve_forever()


main()
