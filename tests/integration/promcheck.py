#!/usr/bin/env python3
"""promcheck.py FILE: check FILE is Prometheus text exposition as LXD writes it (HELP
and TYPE before each metric's samples, counter or gauge, label sets well quoted and not
repeated, numeric values, "# EOF" last) and print its samples as JSON
[[name, {labels}, value], ...]. Exit 1 with the reason when it is not."""
import json
import re
import sys

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')
SAMPLE = re.compile(r"^(" + NAME + r")(?:\{(.*)\})? (\S+)$")


def fail(lineno, why, line):
    sys.exit("line %d: %s: %r" % (lineno, why, line))


def labels_of(text, lineno, line):
    out, pos = {}, 0
    while pos < len(text):
        m = LABEL.match(text, pos)
        if not m:
            fail(lineno, "bad label set", line)
        if m.group(1) in out:
            fail(lineno, "label repeated", line)
        out[m.group(1)] = m.group(2).replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
        pos = m.end()
        if pos < len(text):
            if text[pos] != ",":
                fail(lineno, "labels not separated by commas", line)
            pos += 1
    return out


def main():
    lines = open(sys.argv[1]).read().split("\n")
    if lines[-1] != "" or lines[-2] != "# EOF":
        sys.exit('the text does not end with "# EOF" and a newline')
    helped, typed, seen, samples = set(), {}, set(), []
    current = None
    for n, line in enumerate(lines[:-2], 1):
        if line.startswith("# HELP "):
            name = line.split(" ")[2]
            if name in helped:
                fail(n, "metric described twice", line)
            helped.add(name)
            current = name
            continue
        if line.startswith("# TYPE "):
            parts = line.split(" ")
            if len(parts) != 4 or parts[3] not in ("counter", "gauge") or parts[2] != current:
                fail(n, "bad TYPE line", line)
            typed[parts[2]] = parts[3]
            continue
        m = SAMPLE.match(line)
        if not m:
            fail(n, "not a sample", line)
        name, labels = m.group(1), labels_of(m.group(2) or "", n, line)
        if name != current or name not in typed:
            fail(n, "sample outside its metric's HELP/TYPE block", line)
        try:
            value = float(m.group(3))
        except ValueError:
            fail(n, "value is not a number", line)
        key = (name, tuple(sorted(labels.items())))
        if key in seen:
            fail(n, "sample repeated", line)
        if typed[name] == "counter" and value < 0:
            fail(n, "negative counter", line)
        seen.add(key)
        samples.append([name, labels, value])
    json.dump(samples, sys.stdout)


main()
