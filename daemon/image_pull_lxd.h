/* daemon/image_pull_lxd.h: the client side of an image pull from an LXD-protocol server
 * (another berthd, or LXD), as LXD's ImageDownload does it for protocol "lxd":
 *
 *   GET /1.0/images/aliases/NAME      the alias's target (a name that is no alias is
 *                                     taken as a fingerprint or its prefix)
 *   GET /1.0/images/FP[?secret=S]     the image's record: full fingerprint, type, size
 *   GET /1.0/images/FP/export[?secret=S]  the unified tarball, or the split image as
 *                                     multipart/form-data (metadata, then rootfs)
 *
 * over HTTPS without a client certificate (LXD's ConnectPublicLXD: public images, and
 * private ones with the secret the requesting client got from the server; a server that
 * trusts this berthd shows it nothing more), the server's certificate
 * pinned to the source's "certificate" (PEM) when one is given, else checked against
 * the system's CAs. Whether the bytes are the image the record names is checked by the
 * import (images/store.h: the fingerprint is recomputed), not here.
 *
 * Blocking (network): an operation's worker calls it, never the loop. */
#pragma once

#include <jansson.h>
#include <stdatomic.h>

#include "daemon/daemon.h"
#include "images/download.h"
#include "lib/error.h"

struct image_lxd_source {
	struct berth_client *client; /* owned */
	char *server;		     /* owned: the https URL, for messages */
	char *secret;		     /* owned: URL-encoded "secret" of the source, or NULL */
	json_t *info;		     /* owned: the server's Image object */
	const char *fingerprint;     /* borrowed from info: full, lower-case hex */
};

void image_lxd_source_release(struct image_lxd_source *s);

/* Connect to source->server and find the image the source names (alias, else
 * fingerprint), of `type` ("container", "virtual-machine" or NULL: any). Errors: 404 when
 * the server has no such image (or shows it to us: a private image without a secret),
 * -EKEYREJECTED (400) when the server's certificate is not the pinned one, naming the
 * server; the server's own errors otherwise. */
int image_lxd_resolve(struct berth_daemon *d, const json_t *source, const char *type,
		      struct image_lxd_source *ret, struct berth_error *err);

/* Download the export of the resolved image into an unnamed file made in `dir`:
 * *ret_fd (read from offset 0) and its content type *ret_content_type (new string:
 * application/octet-stream, or multipart/form-data with its boundary). Progress is
 * reported with `what` NULL, at most every 250 ms. -ECANCELED when `cancel` was set
 * meanwhile (looked at while waiting for bytes), -EFBIG when the export passes the
 * record's `size` plus the multipart framing (a record without a size is refused),
 * -ETIMEDOUT after 30 s without a byte. */
int image_lxd_download(struct image_lxd_source *s, const char *dir,
		       image_download_progress_fn progress, void *data, const atomic_bool *cancel,
		       int *ret_fd, char **ret_content_type, struct berth_error *err);
