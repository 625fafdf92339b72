#!/usr/bin/python3
"""tests/integration/ss_server.py: a static file server for a simplestreams tree, on
loopback only, for t_simplestreams.sh:

  ss_server.py DIR PORTFILE LOG [--rate BYTES_PER_S] [--die-after BYTES]

listens on 127.0.0.1 on a free port (written to PORTFILE), serves DIR, and appends the
path of every GET to LOG. --rate sends files at about that speed; --die-after makes
the whole server exit abruptly once it sent that many bytes of a file ending in
.tar.xz that is bigger than that (a server dying mid-download)."""
import argparse
import http.server
import os
import sys
import time


def main():
    p = argparse.ArgumentParser()
    p.add_argument("dir")
    p.add_argument("portfile")
    p.add_argument("log")
    p.add_argument("--rate", type=int, default=0)
    p.add_argument("--die-after", type=int, default=0)
    a = p.parse_args()
    root = os.path.abspath(a.dir)

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, fmt, *args):
            pass

        def do_GET(self):
            with open(a.log, "a") as f:
                f.write(self.path + "\n")
            path = os.path.normpath(os.path.join(root, self.path.split("?")[0].lstrip("/")))
            if not path.startswith(root + "/") or not os.path.isfile(path):
                self.send_error(404)
                return
            size = os.path.getsize(path)
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            try:
                self.send_file(path, size)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client went away (a cancelled download)

        def send_file(self, path, size):
            die = a.die_after if path.endswith(".tar.xz") and size > a.die_after else 0
            sent = 0
            with open(path, "rb") as f:
                while True:
                    chunk = f.read(16384)
                    if not chunk:
                        break
                    if die and sent + len(chunk) > die:
                        self.wfile.write(chunk[:die - sent])
                        self.wfile.flush()
                        os._exit(3)
                    self.wfile.write(chunk)
                    sent += len(chunk)
                    if a.rate:
                        time.sleep(len(chunk) / a.rate)

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(a.portfile + ".tmp", "w") as f:
        f.write(str(srv.server_address[1]))
    os.rename(a.portfile + ".tmp", a.portfile)
    sys.stdout.flush()
    srv.serve_forever()


if __name__ == "__main__":
    main()
