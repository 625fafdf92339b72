#!/usr/bin/python3
# pylxd_check.py IMAGE_ALIAS NAME: drive a server with Debian's pylxd (2.2.10) the way an
# admin's script would: create from an image, start, state, exec, files, stop, delete.
# The server is found through LXD_DIR (pylxd 2.2 reads $LXD_DIR/unix.socket). Prints one
# TAP line per check ("ok - ..." / "not ok - ..."); the shell test counts them.
import os
import sys
import time
import traceback

import pylxd


def check(cond, what, detail=""):
    print(("ok - " if cond else "not ok - ") + what)
    if not cond and detail:
        for line in str(detail).splitlines():
            print("# " + line)
    sys.stdout.flush()
    return cond


def main():
    alias, name = sys.argv[1], sys.argv[2]
    client = pylxd.Client()
    check(client.trusted, "pylxd connects through LXD_DIR and is trusted")
    check("instances" in client.host_info["api_extensions"],
          "the server advertises the instances extension")

    inst = client.containers.create(
        {"name": name, "source": {"type": "image", "alias": alias},
         "config": {"user.made-by": "pylxd"}}, wait=True)
    check(inst.name == name, "containers.create from alias %s" % alias)
    check(client.containers.exists(name), "containers.exists after create")
    check(inst.status == "Stopped", "a new instance is Stopped", inst.status)

    t0 = time.monotonic()
    inst.start(wait=True)
    inst.sync()
    check(inst.status == "Running", "start(wait=True) makes it Running", inst.status)
    print("# start took %.1f ms" % ((time.monotonic() - t0) * 1000))

    state = inst.state()
    check(state.pid > 1, "state() has the init pid", state.pid)
    check(state.processes >= 1, "state() counts processes", state.processes)
    check(state.memory["usage"] > 0, "state() has memory usage", state.memory)

    names = [i.name for i in client.containers.all()]
    check(name in names, "containers.all() lists it", names)

    res = inst.execute(["sh", "-c", "echo out; echo err >&2; exit 3"])
    check(res.exit_code == 3, "execute: exit code", res)
    check(res.stdout == "out\n", "execute: stdout", repr(res.stdout))
    check(res.stderr == "err\n", "execute: stderr", repr(res.stderr))
    res = inst.execute(["cat"], stdin_payload="from stdin\n")
    check(res.stdout == "from stdin\n", "execute: stdin payload", repr(res.stdout))
    res = inst.execute(["sh", "-c", "echo $FOO"], environment={"FOO": "bar"})
    check(res.stdout == "bar\n", "execute: environment", repr(res.stdout))
    res = inst.execute(["/no/such/binary"])
    check(res.exit_code == 127, "execute: a missing binary exits 127", res)

    inst.files.put("/tmp/pylxd.txt", b"hello from pylxd\n", mode="0640", uid=12, gid=34)
    got = inst.files.get("/tmp/pylxd.txt")
    check(got == b"hello from pylxd\n", "files.put then files.get", repr(got))
    res = inst.execute(["stat", "-c", "%a %u %g", "/tmp/pylxd.txt"])
    check(res.stdout.strip() == "640 12 34", "files.put honours mode, uid and gid",
          repr(res.stdout))
    inst.files.delete("/tmp/pylxd.txt")
    res = inst.execute(["test", "-e", "/tmp/pylxd.txt"])
    check(res.exit_code == 1, "files.delete removes the file", res)
    try:
        inst.files.get("/no/such/file")
        check(False, "files.get of a missing file raises")
    except pylxd.exceptions.NotFound:
        check(True, "files.get of a missing file raises NotFound")

    inst.freeze(wait=True)
    inst.sync()
    check(inst.status == "Frozen", "freeze(wait=True)", inst.status)
    inst.unfreeze(wait=True)
    inst.sync()
    check(inst.status == "Running", "unfreeze(wait=True)", inst.status)

    t0 = time.monotonic()
    inst.stop(wait=True)
    inst.sync()
    check(inst.status == "Stopped", "stop(wait=True)", inst.status)
    print("# stop took %.1f ms" % ((time.monotonic() - t0) * 1000))

    snap = inst.snapshots.create("s0", wait=True)
    check(snap.name == "s0", "snapshots.create")
    check([s.name for s in inst.snapshots.all()] == ["s0"], "snapshots.all")

    inst.delete(wait=True)
    check(not client.containers.exists(name), "delete(wait=True)")


if __name__ == "__main__":
    try:
        main()
    except Exception:
        check(False, "pylxd raised", traceback.format_exc())
