/* daemon/image_cache.h: images pulled from image servers (LXD's ImageDownload and its
 * tasks): the pull itself (resolve on the server, download, import, record with its
 * source), the reuse of what was already pulled, the refresh of pulled images from their
 * source (POST /1.0/images/FP/refresh, images.auto_update_interval) and the expiry of
 * cached images nobody used for images.remote_cache_expiry days.
 *
 * Two protocols are spoken: simplestreams, and "lxd" (the default when none is named, as
 * in LXD: another berthd or LXD, daemon/image_pull_lxd.h), the source's "secret" then
 * opening a private image; "direct" is refused as not supported.
 *
 * Everything here blocks (network, disk, database): operations' workers and the tick's
 * thread call it, never the loop. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "daemon/daemon.h"
#include "daemon/operation.h"
#include "lib/error.h"

struct image_pull {
	const char *project;	   /* where the image is recorded */
	const char *event_project; /* for lifecycle events; NULL: project */
	const json_t *source;	   /* {server, protocol, alias and/or fingerprint, certificate,
				    * secret} */
	const char *type;	   /* "container", "virtual-machine" or NULL (either) */
	bool cached;		   /* an instance's pull: the image is a cache entry */
	bool auto_update;
	bool public_;
	/* Reuse the newest image already pulled from the same server and alias, without
	 * asking the server (an instance's creation, as LXD's PreferCached). */
	bool prefer_cached;
	struct operation *op; /* progress ("download_progress") and cancel; may be NULL */
};

/* Check a pull source before any operation: server given (http or https), protocol
 * supported, an alias or fingerprint named. -EINVAL/-EOPNOTSUPP (400). */
int image_pull_check(const json_t *source, struct berth_error *err);

/* Pull the image `p` asks for into the store (nothing happens when `p->project` already
 * has it) and return its fingerprint in *ret_fp. Errors: 404 when the server has no such
 * image, 400 for a server that cannot be read or a file that fails its checks (nothing
 * of it stays), -ECANCELED. */
int image_pull(struct berth_daemon *d, const struct image_pull *p, char **ret_fp,
	       struct berth_error *err);

/* Refresh image `fp` of `project` from its source: when the source's alias names a newer
 * image, pull it with the same settings, move the aliases onto it and delete the old one
 * (instances made from it keep their own volumes). *ret_refreshed says whether it did.
 * 400 when the image has no source. */
int image_refresh(struct berth_daemon *d, const char *project, const char *fp, struct operation *op,
		  bool *ret_refreshed, struct berth_error *err);

/* Loop thread, from the daemon's minute tick: when images.auto_update_interval hours
 * (default 6, 0: never) have passed since the last round, refresh every pulled image with
 * auto_update on; delete cached images unused for images.remote_cache_expiry days
 * (default 10, 0: never). The work runs off the loop; a round still running makes the
 * next tick skip. Test hook: BERTH_IMAGES_HOUR_MS sets the length of an hour (a day is
 * 24 of them) for both. */
void images_tick(struct berth_daemon *d);
