/* daemon/runtime/mounts.h: the container's filesystem view, built by the child inside its
 * new mount namespace (doc/runtime.md, steps 3 and 4): the root tree moved into place,
 * /proc, /sys, /dev, lxcfs, the spec's bind mounts, then pivot_root. */
#pragma once

#include <stddef.h>

#include "daemon/runtime/spec.h"
#include "lib/error.h"

struct runtime_mounts_in {
	const struct runtime_spec *spec; /* borrowed */
	int root_tree;	   /* detached mount of the root (open_tree), moved onto the cwd */
	const int *extra;  /* one detached mount per spec->mounts entry */
	int console_slave; /* the console pty's slave */
	const char *console_path; /* its path on the host (/dev/pts/N) */
};

/* Make the host's mounts slaves of this namespace, move the root tree onto the current
 * directory (the caller's cwd is the host's rootfs directory, inherited across clone),
 * mount everything under it and pivot_root into it. On return "/" is the container's
 * root and the host's tree is gone from this namespace. */
int runtime_mounts_setup(const struct runtime_mounts_in *in, struct berth_error *err);
