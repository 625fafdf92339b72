#!/usr/bin/python3
"""tests/integration/sstree.py: publish a unified image tarball as a version of a
product in a simplestreams tree, as image servers lay them out:

  sstree.py DIR --image TARBALL --serial 20260101_0000 --aliases busybox,bb [--mark TEXT]
            [--combined] [--os Busybox --release 1.36 --arch amd64]

writes DIR/images/<product>/<serial>/ (lxd.tar.xz + root.tar.xz split from the tarball,
or the tarball itself as lxd_combined.tar.gz with --combined) and DIR/streams/v1/
{index.json,images.json}, keeping versions published before. --mark adds the file
/etc/sstree-mark with TEXT to the rootfs, so that a new version has a new fingerprint.
Prints the image's fingerprint (LXD's: sha256 of the metadata then the rootfs bytes).
"""
import argparse
import hashlib
import io
import json
import os
import shutil
import tarfile


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def split(src, meta_path, root_path, mark):
    """metadata.yaml and templates/ into meta_path; rootfs/ (prefix removed) into
    root_path, with /etc/sstree-mark when `mark` is given."""
    with tarfile.open(src) as tin, \
            tarfile.open(meta_path, "w:xz", format=tarfile.GNU_FORMAT) as meta, \
            tarfile.open(root_path, "w:xz", format=tarfile.GNU_FORMAT) as root:
        for m in tin:
            name = m.name[2:] if m.name.startswith("./") else m.name
            data = tin.extractfile(m) if m.isfile() else None
            if name == "rootfs" or name == "rootfs/":
                continue
            if name.startswith("rootfs/"):
                m.name = name[len("rootfs/"):]
                if m.islnk() and m.linkname.startswith("rootfs/"):
                    m.linkname = m.linkname[len("rootfs/"):]
                root.addfile(m, data)
            else:
                m.name = name
                meta.addfile(m, data)
        if mark is not None:
            body = (mark + "\n").encode()
            info = tarfile.TarInfo("etc/sstree-mark")
            info.size = len(body)
            info.mode = 0o644
            root.addfile(info, io.BytesIO(body))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("dir")
    p.add_argument("--image", required=True)
    p.add_argument("--serial", required=True)
    p.add_argument("--aliases", required=True)
    p.add_argument("--mark")
    p.add_argument("--combined", action="store_true")
    p.add_argument("--os", default="Busybox")
    p.add_argument("--release", default="1.36")
    p.add_argument("--arch", default="amd64")
    a = p.parse_args()

    product = "%s:%s:%s:default" % (a.os.lower(), a.release, a.arch)
    rel = "images/%s/%s/%s" % (a.os.lower(), a.release, a.serial)
    out = os.path.join(a.dir, rel)
    os.makedirs(out, exist_ok=True)
    items = {}
    if a.combined:
        dst = os.path.join(out, "lxd_combined.tar.gz")
        shutil.copyfile(a.image, dst)
        fp = sha256(dst)
        items["lxd_combined.tar.gz"] = {"ftype": "lxd_combined.tar.gz",
                                        "path": rel + "/lxd_combined.tar.gz",
                                        "sha256": fp, "size": os.path.getsize(dst)}
    else:
        meta = os.path.join(out, "lxd.tar.xz")
        root = os.path.join(out, "root.tar.xz")
        split(a.image, meta, root, a.mark)
        h = hashlib.sha256()
        for f in (meta, root):
            with open(f, "rb") as fh:
                h.update(fh.read())
        fp = h.hexdigest()
        items["lxd.tar.xz"] = {"ftype": "lxd.tar.xz", "path": rel + "/lxd.tar.xz",
                               "sha256": sha256(meta), "size": os.path.getsize(meta),
                               "combined_sha256": fp, "combined_rootxz_sha256": fp}
        items["root.tar.xz"] = {"ftype": "root.tar.xz", "path": rel + "/root.tar.xz",
                                "sha256": sha256(root), "size": os.path.getsize(root)}

    streams = os.path.join(a.dir, "streams", "v1")
    os.makedirs(streams, exist_ok=True)
    images_json = os.path.join(streams, "images.json")
    doc = {"content_id": "images", "datatype": "image-downloads", "format": "products:1.0",
           "products": {}}
    if os.path.exists(images_json):
        with open(images_json) as f:
            doc = json.load(f)
    prod = doc["products"].setdefault(product, {
        "aliases": a.aliases, "arch": a.arch, "os": a.os, "release": a.release,
        "release_title": a.release, "variant": "default", "versions": {}})
    prod["aliases"] = a.aliases
    prod["versions"][a.serial] = {"items": items}
    tmp = images_json + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1)
    os.rename(tmp, images_json)
    index = {"format": "index:1.0", "index": {"images": {
        "datatype": "image-downloads", "path": "streams/v1/images.json",
        "format": "products:1.0", "products": sorted(doc["products"])}}}
    with open(os.path.join(streams, "index.json"), "w") as f:
        json.dump(index, f, indent=1)
    print(fp)


if __name__ == "__main__":
    main()
