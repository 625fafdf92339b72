/* daemon/vm/config_drive.c: builds a VM's config drive; see config_drive.h and
 * doc/agent.md. */
#include "daemon/vm/config_drive.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "lib/util.h"

#define AGENT_MAX_SIZE (32u << 20)

/* What LXD's loader runs (these copies serve images without it: install.sh puts them in
 * place). The unit waits for the agent's readiness (Type=notify). */
static const char unit_text[] =
	"[Unit]\n"
	"Description=berth agent (started the way LXD's lxd-agent is)\n"
	"ConditionPathExists=/dev/virtio-ports/org.linuxcontainers.lxd\n"
	"Before=cloud-init.target cloud-init.service cloud-init-local.service\n"
	"DefaultDependencies=no\n"
	"\n"
	"[Service]\n"
	"Type=notify\n"
	"WorkingDirectory=-/run/lxd_agent\n"
	"ExecStartPre=/lib/systemd/lxd-agent-setup\n"
	"ExecStart=/run/lxd_agent/lxd-agent\n"
	"Restart=on-failure\n"
	"RestartSec=5s\n"
	"StartLimitInterval=60\n"
	"StartLimitBurst=10\n";

/* Mount the share tagged "config", copy it to a root-only tmpfs, unmount it. */
static const char setup_text[] =
	"#!/bin/sh\n"
	"# Copies the config drive (9p or virtiofs tag \"config\") to /run/lxd_agent.\n"
	"set -eu\n"
	"dest=/run/lxd_agent\n"
	"umount -l \"$dest\" >/dev/null 2>&1 || true\n"
	"mkdir -p \"$dest\"\n"
	"mount -t tmpfs tmpfs \"$dest\" -o mode=0700,size=50M\n"
	"mkdir -p \"$dest/.mnt\"\n"
	"if ! mount -t virtiofs config \"$dest/.mnt\" >/dev/null 2>&1; then\n"
	"\tmodprobe 9pnet_virtio >/dev/null 2>&1 || true\n"
	"\tif ! mount -t 9p config \"$dest/.mnt\" -o access=0,trans=virtio,size=1048576; then\n"
	"\t\tumount -l \"$dest\" || true\n"
	"\t\techo \"no config drive (virtiofs or 9p tag config)\" >&2\n"
	"\t\texit 1\n"
	"\tfi\n"
	"fi\n"
	"cp -Ra \"$dest/.mnt/\"* \"$dest\"\n"
	"umount \"$dest/.mnt\"\n"
	"rmdir \"$dest/.mnt\"\n"
	"chown -R root:root \"$dest\"\n";

static const char udev_text[] =
	"ACTION==\"add\", SYMLINK==\"virtio-ports/org.linuxcontainers.lxd\", "
	"TAG+=\"systemd\", ENV{SYSTEMD_WANTS}+=\"lxd-agent.service\"\n";

static const char install_text[] =
	"#!/bin/sh\n"
	"# Installs the agent's loader in a guest image that lacks it; run from the mounted\n"
	"# config drive: mount -t 9p config /mnt && cd /mnt && ./install.sh\n"
	"set -eu\n"
	"[ \"$(id -u)\" = 0 ] || { echo \"run as root\" >&2; exit 1; }\n"
	"[ -d /lib/systemd/system ] || { echo \"no systemd\" >&2; exit 1; }\n"
	"cd \"$(dirname \"$0\")\"\n"
	"install -m 0644 systemd/lxd-agent.service /lib/systemd/system/lxd-agent.service\n"
	"install -m 0755 systemd/lxd-agent-setup /lib/systemd/lxd-agent-setup\n"
	"mkdir -p /lib/udev/rules.d\n"
	"install -m 0644 udev/99-lxd-agent.rules /lib/udev/rules.d/99-lxd-agent.rules\n"
	"systemctl daemon-reload\n"
	"systemctl enable lxd-agent.service\n"
	"echo \"agent loader installed; reboot to start it\"\n";

static const char empty_cloud_config[] = "#cloud-config\n{}\n";

int config_drive_new_key(uint8_t key[AGENT_KEY_LEN])
{
	size_t got = 0;

	while (got < AGENT_KEY_LEN) {
		ssize_t n = getrandom(key + got, AGENT_KEY_LEN - got, 0);

		if (n < 0 && errno != EINTR)
			return -errno;
		if (n > 0)
			got += (size_t)n;
	}
	return 0;
}

void config_drive_key_hex(const uint8_t key[AGENT_KEY_LEN], char out[2 * AGENT_KEY_LEN + 2])
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < AGENT_KEY_LEN; i++) {
		out[2 * i] = hex[key[i] >> 4];
		out[2 * i + 1] = hex[key[i] & 0xf];
	}
	out[2 * AGENT_KEY_LEN] = '\n';
	out[2 * AGENT_KEY_LEN + 1] = 0;
}

/* `dir`/`rel` := `len` bytes, `mode`; parents made 0755. */
static int put(const char *dir, const char *rel, const void *data, size_t len, int mode,
	       struct berth_error *err)
{
	_cleanup_free_ char *path = berth_strdup_printf("%s/%s", dir, rel);
	char *slash;
	int r;

	if (!path)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	slash = strrchr(path, '/');
	*slash = 0;
	r = berth_mkdir_p(path, 0755);
	*slash = '/';
	if (r >= 0)
		r = berth_write_file_replace(path, data, len, mode);
	if (r >= 0 && chmod(path, (mode_t)mode) < 0) /* the umask may have taken bits */
		r = -errno;
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL,
				       "config drive: writing \"%s\": %s", path, strerror(-r));
	return 0;
}

static int put_str(const char *dir, const char *rel, const char *text, int mode,
		   struct berth_error *err)
{
	return put(dir, rel, text, strlen(text), mode, err);
}

/* Whether `s` holds no control character (\r, \n, escapes...): a YAML scalar must not. */
static bool printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

/* `s` (printable) as a YAML double-quoted string, which is JSON's: `"` and `\` escaped. */
static char *yaml_quote(const char *s)
{
	char *out = malloc(2 * strlen(s) + 3), *o = out;

	if (!out)
		return NULL;
	*o++ = '"';
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			*o++ = '\\';
		*o++ = *s;
	}
	*o++ = '"';
	*o = 0;
	return out;
}

static int put_cloud_init(const char *dir, const struct config_drive *cd, struct berth_error *err)
{
	_cleanup_free_ char *id = yaml_quote(cd->instance_id ? cd->instance_id : cd->name);
	_cleanup_free_ char *host = yaml_quote(cd->name);
	_cleanup_free_ char *meta =
		id && host ? berth_strdup_printf("instance-id: %s\nlocal-hostname: %s\n", id, host)
			   : NULL;
	_cleanup_free_ char *netcfg = berth_strdup_printf("%s/cloud-init/network-config", dir);
	int r;

	if (!meta || !netcfg)
		return berth_error_set(err, -ENOMEM, BERTH_ERR_INTERNAL, "out of memory");
	r = put_str(dir, "cloud-init/meta-data", meta, 0600, err);
	if (r >= 0)
		r = put_str(dir, "cloud-init/user-data",
			    cd->user_data ? cd->user_data : empty_cloud_config, 0600, err);
	if (r >= 0)
		r = put_str(dir, "cloud-init/vendor-data",
			    cd->vendor_data ? cd->vendor_data : empty_cloud_config, 0600, err);
	if (r >= 0 && cd->network_config)
		r = put_str(dir, "cloud-init/network-config", cd->network_config, 0600, err);
	/* none now: one from an earlier build must not stay */
	if (r >= 0 && !cd->network_config && unlink(netcfg) < 0 && errno != ENOENT)
		r = berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
				    "config drive: removing \"%s\": %m", netcfg);
	return r;
}

int config_drive_build(const char *dir, const struct config_drive *cd, struct berth_error *err)
{
	_cleanup_free_ char *agent = NULL;
	char hex[2 * AGENT_KEY_LEN + 2];
	size_t agent_len = 0;
	int r;

	if (!cd->name || !cd->name[0] || !printable(cd->name) ||
	    (cd->instance_id && !printable(cd->instance_id)))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "config drive: invalid instance name or id");
	r = berth_mkdir_p(dir, 0700);
	if (r >= 0 && chmod(dir, 0700) < 0)
		r = -errno;
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "config drive: \"%s\": %s", dir,
				       strerror(-r));
	r = berth_read_file(cd->agent_path, AGENT_MAX_SIZE, &agent, &agent_len);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL,
				       "config drive: reading the agent \"%s\": %s", cd->agent_path,
				       strerror(-r));
	r = put(dir, "lxd-agent", agent, agent_len, 0500, err);
	config_drive_key_hex(cd->key, hex);
	if (r >= 0)
		r = put(dir, "berth-agent.key", hex, strlen(hex), 0400, err);
	explicit_bzero(hex, sizeof(hex));
	if (r >= 0)
		r = put_str(dir, "systemd/lxd-agent.service", unit_text, 0644, err);
	if (r >= 0)
		r = put_str(dir, "systemd/lxd-agent-setup", setup_text, 0755, err);
	if (r >= 0)
		r = put_str(dir, "udev/99-lxd-agent.rules", udev_text, 0644, err);
	if (r >= 0)
		r = put_str(dir, "install.sh", install_text, 0755, err);
	if (r >= 0)
		r = put_cloud_init(dir, cd, err);
	if (r >= 0)
		r = put_str(dir, "berth-mounts", cd->mounts ?: "", 0400, err);
	return r;
}
