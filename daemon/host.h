/* daemon/host.h: what this host is and can do, for GET /1.0 "environment":
 * kernel, architectures, firewall, storage drivers, and whether AppArmor,
 * seccomp, cgroup v1/v2, idmapped mounts and KVM are usable. Probed once at
 * start; probing only reads /proc, /sys and /dev and makes harmless syscalls. */
#pragma once

#include <jansson.h>

/* A new ServerEnvironment object. `socket_path` is only informational. */
json_t *host_environment_probe(void);
