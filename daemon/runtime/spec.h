/* daemon/runtime/spec.h: the container spec file (doc/runtime.md, "The spec file"):
 * what berthd writes into RUNDIR/spec and berth-monitor reads back.
 *
 * Plain C and lib/error only (no libuv, jansson or SQLite): both berthd and the small
 * berth-monitor binary link it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/error.h"

/* One line of uid_map or gid_map: CONTAINER_ID HOST_ID COUNT. */
struct runtime_idmap {
	uint32_t container;
	uint32_t host;
	uint32_t count;
};

/* One `mount` entry: a bind mount of a host path into the container. */
struct runtime_mount {
	char *source; /* owned, absolute host path */
	char *target; /* owned, absolute path inside the container */
	bool ro;
	bool create_dir;
	bool create_file;
	bool idmap;
};

/* One `nic` entry: a network interface the monitor creates in the container's network
 * namespace at every (re)boot (doc/runtime.md, "NICs"). */
enum runtime_nic_type {
	RUNTIME_NIC_VETH,    /* host end `host` (in `link` when set, else unbridged: p2p) */
	RUNTIME_NIC_MACVLAN, /* on host interface `parent`, mode `mode` */
	RUNTIME_NIC_TYPE_MAX,
};

struct runtime_nic {
	enum runtime_nic_type type;
	char *name;   /* owned: the interface name inside the container */
	char *host;   /* owned: veth host end; NULL for macvlan */
	char *link;   /* owned: bridge the host end joins; NULL: none */
	char *parent; /* owned: macvlan parent */
	char *mode;   /* owned: macvlan mode; NULL: bridge */
	unsigned char hwaddr[6];
	bool has_hwaddr;
	unsigned int mtu; /* 0: the kernel's default */
	uint64_t ingress; /* bit/s into the container (veth only); 0: none */
	uint64_t egress;  /* bit/s out of the container (veth only); 0: none */
};

struct runtime_spec {
	char *name; /* owned; every char * below is owned, NULL when absent */
	char *project;
	char *rootfs;
	char *volume;
	char *hostname;
	char *cgroup;
	bool privileged;
	struct runtime_idmap *uid_map; /* owned array of n_uid_map */
	size_t n_uid_map;
	struct runtime_idmap *gid_map;
	size_t n_gid_map;
	char **init; /* owned NULL-terminated lists; init is never empty after parsing */
	char **env;
	int stop_signal;	 /* 0: detect */
	uint64_t start_grace_ms; /* default 20 */
	uint64_t limits_memory;	 /* bytes; 0: none */
	bool limits_memory_swap; /* default true */
	char *limits_cpus;
	uint64_t limits_cpu_quota_us; /* 0: none */
	uint64_t limits_cpu_period_us;
	uint64_t limits_cpu_share_pct;	   /* 1-100: percent of the full CPU weight; 0: 100 */
	uint64_t limits_cpu_priority_drop; /* 10 - limits.cpu.priority, 0-10 */
	uint64_t limits_processes;	   /* 0: none */
	char **seccomp_deny;
	char **seccomp_allow;
	bool seccomp_default; /* default true */
	char **caps_drop;
	struct runtime_mount *mounts; /* owned array of n_mounts */
	size_t n_mounts;
	uint64_t console_log_size; /* default 1 MiB */
	char *apparmor_profile;
	char *net;		  /* "none" */
	struct runtime_nic *nics; /* owned array of n_nics */
	size_t n_nics;
};

/* A spec with every default set and nothing else (name, rootfs... NULL). */
struct runtime_spec *runtime_spec_new(void);
void runtime_spec_free(struct runtime_spec *spec);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct runtime_spec *, runtime_spec_free)

/* Parse `len` bytes of spec text. Refuses (-EINVAL, `err` naming the line and key) an
 * unknown key, a repeated non-list key, a bad value, a missing `rootfs` or `cgroup`, or
 * `seccomp_allow` together with `seccomp_deny`. */
int runtime_spec_parse(const char *text, size_t len, struct runtime_spec **ret,
		       struct berth_error *err);
/* Read and parse a spec file. */
int runtime_spec_load(const char *path, struct runtime_spec **ret, struct berth_error *err);

/* Render `spec` as spec text (newly allocated into *ret). -EINVAL when a value holds a
 * newline (or a `|` in a mount path), which the format cannot carry. */
int runtime_spec_render(const struct runtime_spec *spec, char **ret);
/* Render and write atomically (mode 0600). */
int runtime_spec_write(const char *path, const struct runtime_spec *spec);

/* Parse one `nic` value (without "nic=") into *ret (fields owned by *ret). */
int runtime_nic_parse(const char *value, struct runtime_nic *ret);
/* Render one nic as a `nic` value (new string). -EINVAL for a value the format cannot carry. */
int runtime_nic_render(const struct runtime_nic *nic, char **ret);
void runtime_nic_release(struct runtime_nic *nic);
/* Replace spec->nics by `nics` (n entries, taken). */
void runtime_spec_set_nics(struct runtime_spec *spec, struct runtime_nic *nics, size_t n);

/* Map a container id to the host through `map`; -ERANGE when unmapped. */
int runtime_idmap_to_host(const struct runtime_idmap *map, size_t n, uint32_t id, uint32_t *ret);
/* Append `item` to a NULL-terminated list *list (both owned by the list afterwards). */
int runtime_strv_push(char ***list, char *item);
void runtime_strv_free(char **list);
size_t runtime_strv_len(char *const *list);
