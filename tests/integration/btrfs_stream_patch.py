#!/usr/bin/env python3
# btrfs_stream_patch.py SRC DST OLD=NEW...: copy a `btrfs send` stream (v1: a header,
# then commands of u32 length, u16 type, u32 crc32c, attributes) replacing the bytes OLD
# by NEW (same length) in every command, each checksum made again. Tests build hostile
# streams with it (paths a real send never writes).
import struct, sys
def crc32c(data, crc=0):
    global T
    for b in data:
        crc = T[(crc ^ b) & 0xff] ^ (crc >> 8)
    return crc
T = []
for i in range(256):
    c = i
    for _ in range(8):
        c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    T.append(c)
src, dst = sys.argv[1], sys.argv[2]
subs = [(a.encode(), b.encode()) for a, b in (x.split('=', 1) for x in sys.argv[3:])]
d = open(src, 'rb').read()
out = bytearray(d[:17])
i = 17
while i < len(d):
    ln, cmd, crc = struct.unpack_from('<IHI', d, i)
    body = d[i + 10:i + 10 + ln]
    hdr = struct.pack('<IHI', ln, cmd, 0)
    assert crc32c(hdr + body) == crc, "crc"
    for a, b in subs:
        assert len(a) == len(b)
        body = body.replace(a, b)
    out += struct.pack('<IHI', ln, cmd, crc32c(struct.pack('<IHI', ln, cmd, 0) + body)) + body
    i += 10 + ln
open(dst, 'wb').write(out)
