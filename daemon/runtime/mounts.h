/* daemon/runtime/mounts.h: the container's filesystem view, built by the child inside its
 * new mount namespace (doc/runtime.md, steps 3 and 4): the root tree moved into place,
 * /proc, /sys, /dev, lxcfs, the spec's bind mounts, then pivot_root. */
#pragma once

#include <stddef.h>
#include <sys/types.h>

#include "daemon/runtime/spec.h"
#include "lib/error.h"

struct runtime_mounts_in {
	const struct runtime_spec *spec; /* borrowed */
	int root_tree;		  /* detached mount of the root (open_tree), moved onto the cwd */
	const int *extra;	  /* one detached mount per spec->mounts entry */
	int console_slave;	  /* the console pty's slave */
	const char *console_path; /* its path on the host (/dev/pts/N) */
};

/* Make the host's mounts slaves of this namespace, move the root tree onto the current
 * directory (the caller's cwd is the host's rootfs directory, inherited across clone),
 * mount everything under it and pivot_root into it. On return "/" is the container's
 * root and the host's tree is gone from this namespace. */
int runtime_mounts_setup(const struct runtime_mounts_in *in, struct berth_error *err);

/* Hot-plug: attach the detached tree `tree` (runtime_idmap_open_tree) at `m->target` in
 * the mount namespace `mntns` (an fd of /proc/PID/ns/mnt of a running container). A
 * missing target is made (a directory when m->create_dir, else an empty file) and given
 * to `uid`:`gid` (the container's root on the host); an existing one of the other kind is
 * refused (-ENOTDIR/-EISDIR, 400). Runs in a short-lived child that joins the namespace,
 * so that a threaded caller can use it. */
int runtime_mount_attach(int mntns, int tree, const struct runtime_mount *m, uid_t uid, gid_t gid,
			 struct berth_error *err);
/* Hot-unplug: unmount (lazily) what is on `m->target` in `mntns`; nothing mounted there
 * is not an error. */
int runtime_mount_detach(int mntns, const struct runtime_mount *m, struct berth_error *err);
