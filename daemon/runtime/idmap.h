/* daemon/runtime/idmap.h: user namespace id maps and the container's view of its root
 * filesystem (doc/runtime.md, steps 2 and 3): uid_map/gid_map, idmapped detached mounts
 * made by the monitor and handed to the child over a socket, and the on-disk shift used
 * where the kernel or the filesystem refuses idmapped mounts. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "daemon/runtime/spec.h"
#include "lib/error.h"

/* Write /proc/PID/uid_map and gid_map from the spec; when a map is absent, write "deny"
 * to setgroups first (the kernel then lets a gid map in without CAP_SETGID). */
int runtime_idmap_write(pid_t pid, const struct runtime_spec *spec, struct berth_error *err);

/* A detached copy (open_tree OPEN_TREE_CLONE|AT_RECURSIVE) of the host tree at `path`,
 * idmapped to the user namespace `userns_fd` when it is >= 0, with the mount attributes
 * `attrs` (MOUNT_ATTR_RDONLY, MOUNT_ATTR_NODEV: runtime_tree_attrs) on every mount in it,
 * every one private (no propagation to or from the host's mounts).
 * *ret is an O_CLOEXEC mount fd for move_mount(). -EINVAL/-EPERM/-EOPNOTSUPP/-ENOSYS
 * from the idmap step mean "this kernel or filesystem cannot": fall back to a shift. */
int runtime_idmap_open_tree(const char *path, int userns_fd, uint64_t attrs, int *ret,
			    struct berth_error *err);

/* The attributes of a tree mounted into `spec`'s container: read-only when `ro`; nodev
 * unless the container is privileged. berth sets no device cgroup policy: an
 * unprivileged container must not open a device node that an image, a backup or a
 * host directory put in its root or a disk (the host's console, ttys, input devices).
 * Its /dev holds bind mounts of the host's standard nodes, which stay usable. */
uint64_t runtime_tree_attrs(const struct runtime_spec *spec, bool ro);

/* Shift `rootfs` on disk so that it holds host ids for `spec`'s maps, recording the
 * bases in `<volume>/berth-shift` (UIDBASE GIDBASE COUNT). A tree already shifted to the
 * same bases is left alone; one shifted to other bases is moved from those. Needs the
 * first line of each map to cover container id 0. */
int runtime_idmap_shift(const struct runtime_spec *spec, struct berth_error *err);

/* One on-disk shift: ids in [from, from + count) become to + (id - from), uids and gids
 * apart; other ids stay. */
struct runtime_idmap_shift {
	uint32_t from_uid, from_gid;
	uint32_t to_uid, to_gid;
	uint32_t count;
};

/* Shift every file under the directory `path` (itself included, not crossing into other
 * filesystems) as `sh` says, keeping set-id bits. Stops at the first error (the tree is
 * then partly shifted: shifting back with from and to swapped repairs it). */
int runtime_idmap_shift_path(const char *path, const struct runtime_idmap_shift *sh,
			     struct berth_error *err);

/* Whether the kernel and the filesystem of `path` take an idmapped mount to a user
 * namespace with `spec`'s maps: a throwaway child in a new user namespace is given the
 * maps and an idmapped detached tree of `path` is made and dropped. 1: they do; 0: they
 * refuse (EINVAL, EPERM, EOPNOTSUPP, ENOSYS); -errno (err set) when the probe itself
 * failed. Callable from a threaded process (the child only makes syscalls). */
int runtime_idmap_probe(const char *path, const struct runtime_spec *spec, struct berth_error *err);

/* Send `n` fds (and one text line) over a unix socket with SCM_RIGHTS; receive them.
 * runtime_recv_fds fills at most `max` fds into `fds` (closing extras), sets *ret_n and
 * copies the text (NUL-terminated) into `buf`. */
int runtime_send_fds(int sock, const char *msg, const int *fds, size_t n);
int runtime_recv_fds(int sock, char *buf, size_t size, int *fds, size_t max, size_t *ret_n);
