#!/usr/bin/python3
"""bench/latency_probe.py: GET a path on a daemon's unix socket at a fixed pace and report
the latency of each answer.

    latency_probe.py SOCKET [--path /1.0] [--interval-ms 20] (--duration S | --until FILE)

Sends one request every INTERVAL ms (the next one right away when an answer took longer),
on one keep-alive connection (a new one after an error), until S seconds passed or FILE
exists. Prints one line: n=N errors=E p50=MS p99=MS max=MS (milliseconds). An answer
other than 200 counts as an error. Used by bench/run (get-1.0-load) and by
tests/integration/t_load.sh."""
import argparse
import http.client
import os
import socket
import sys
import time


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


def percentile(sorted_values, p):
    if not sorted_values:
        return float("nan")
    i = min(len(sorted_values) - 1, int(round(p / 100.0 * (len(sorted_values) - 1))))
    return sorted_values[i]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("socket")
    ap.add_argument("--path", default="/1.0")
    ap.add_argument("--interval-ms", type=float, default=20)
    ap.add_argument("--duration", type=float)
    ap.add_argument("--until")
    ap.add_argument("--timeout", type=float, default=30)
    a = ap.parse_args()
    if a.duration is None and a.until is None:
        ap.error("--duration or --until")
    end = time.monotonic() + a.duration if a.duration is not None else None
    conn = None
    lat = []
    errors = 0
    nxt = time.monotonic()
    while True:
        if end is not None and time.monotonic() >= end:
            break
        if a.until and os.path.exists(a.until):
            break
        now = time.monotonic()
        if now < nxt:
            time.sleep(nxt - now)
        nxt = time.monotonic() + a.interval_ms / 1000.0
        t0 = time.monotonic()
        try:
            if conn is None:
                conn = UnixConnection(a.socket, a.timeout)
            conn.request("GET", a.path)
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                errors += 1
        except (OSError, http.client.HTTPException) as e:
            errors += 1
            print("request failed: %s" % e, file=sys.stderr)
            if conn is not None:
                conn.close()
            conn = None
        lat.append((time.monotonic() - t0) * 1000.0)
    lat.sort()
    print("n=%d errors=%d p50=%.1f p99=%.1f max=%.1f" % (
        len(lat), errors, percentile(lat, 50), percentile(lat, 99), lat[-1] if lat else float("nan")))


if __name__ == "__main__":
    main()
