/* daemon/vm/config_drive.h: the config drive of a VM: the directory QEMU shares with the
 * guest under the 9p/virtiofs tag `config`, laid out so that the agent loader of LXD's
 * VM images starts berth-agent from it unchanged, with the NoCloud seed of cloud-init.
 * doc/agent.md ("The config drive") lists what it holds and why. */
#pragma once

#include <stdint.h>

#include "agent/proto.h"
#include "lib/error.h"

struct config_drive {
	const char *agent_path;	 /* the host's berth-agent binary, copied in as lxd-agent */
	const uint8_t *key;	 /* AGENT_KEY_LEN bytes: the VM's agent key */
	const char *name;	 /* instance name: local-hostname */
	const char *instance_id; /* cloud-init's instance-id; NULL: the name */
	/* cloud-init.* keys; NULL: an empty #cloud-config (network-config: left out, so that
	 * the image's own network setup applies) */
	const char *user_data, *vendor_data, *network_config;
	/* may be NULL: berth-mounts, the shares berth-agent mounts at its start, one a line
	 * (TAG, tab, "ro" or "rw", tab, the absolute path) */
	const char *mounts;
};

/* Build the drive in `dir` (created 0700 when missing; what it held is replaced). The key
 * file is 0400, the agent 0500, for the guest's root only. -errno with `err` set. */
int config_drive_build(const char *dir, const struct config_drive *cd, struct berth_error *err);

/* A new random agent key. 0 or -errno (getrandom). */
int config_drive_new_key(uint8_t key[AGENT_KEY_LEN]);
/* The key as the agent reads it: 64 lowercase hex digits and a newline, into `out`. */
void config_drive_key_hex(const uint8_t key[AGENT_KEY_LEN], char out[2 * AGENT_KEY_LEN + 2]);
