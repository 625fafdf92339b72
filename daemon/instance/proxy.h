/* daemon/instance/proxy.h: berthd's side of LXD's `proxy` device (doc/proxy.md): the
 * checks made when a device is added or changed, one berth-proxy helper per forwarding
 * device of a running container (started with the container, on hot-plug, re-adopted
 * after a restart of berthd, stopped on unplug and with the container), and the nftables
 * table of the nat=true devices. */
#pragma once

#include <jansson.h>

#include "daemon/daemon.h"
#include "lib/error.h"

/* Check one proxy device (name -> {type: proxy, listen, connect, ...}) as LXD does when it
 * is added or changed: known keys, address syntax, port counts, protocols, nat rules.
 * -EINVAL with a 400 error naming the device. */
int proxy_device_check(const char *name, const json_t *dev, struct berth_error *err);

/* Bring the proxies of a running container in line with `devices` (its expanded devices):
 * a helper started for each new or changed forwarding device, kept when it runs with the
 * same config (so a berthd restart re-adopts rather than duplicates), stopped for each
 * device gone; the nat table replaced. Blocking (a worker, or the main thread at start).
 * The first failure is returned (400 for what the user can fix, such as a listen address
 * in use or a nat device without a static address), after every device was tried. */
int proxy_sync(struct berth_daemon *d, const char *project, const char *name, const json_t *devices,
	       struct berth_error *err);

/* The devices of a running instance changed (PUT, PATCH, a profile): proxy_sync with its
 * newly expanded devices. The caller knows it runs (the instance driver's
 * update_proxies). Blocking. */
int proxy_instance_updated(struct berth_daemon *d, const char *project, const char *name,
			   struct berth_error *err);

/* The container stopped (or never ran): every helper of it stopped, their files and the
 * nat table removed. Idempotent; blocking. */
void proxy_stop_all(struct berth_daemon *d, const char *project, const char *name);

/* The nat table whose script run directory `rundir` still holds (proxy.nft) deleted, for
 * an instance that stopped without its proxies being stopped (a VM's guest powered itself
 * off) and whose run directory goes now (cleanup.c). Nothing when there is no script.
 * Blocking; a failure is logged. */
void proxy_rundir_release(const char *rundir);

/* The berth-proxy binary: $BERTH_PROXY, <exe dir>/../libexec/berth/berth-proxy,
 * <exe dir>/berth-proxy (the build tree). -ENOENT when none is executable. */
int proxy_helper_binary(char **ret);
