/* images/download.h: HTTP(S) downloads from image servers, through libcurl.
 *
 * Blocking calls, meant for a worker thread (an operation's run function): berthd's loop
 * never waits on a server. A download streams into a file the caller owns (an unnamed
 * file in the image store), hashing as it goes; a body that is cut short, too large, or
 * whose SHA-256 differs from the one announced is a failure, and the caller drops its
 * unnamed file so nothing is left. Only http and https URLs are followed (redirects
 * included). A set `cancel` flag stops the transfer within a fraction of a second. */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/error.h"

/* Progress of the file labelled `what`: `done` of `total` bytes (total 0: unknown), at
 * `speed` bytes per second on average. */
typedef void (*image_download_progress_fn)(const char *what, uint64_t done, uint64_t total,
					   uint64_t speed, void *data);

struct image_download {
	const char *url;
	int fd;		    /* borrowed: written from its current offset */
	const char *sha256; /* expected, lower-case hex; NULL: not checked */
	uint64_t max_size;  /* 0: no limit; beyond it the download fails (-EFBIG) */
	const char *what;   /* for progress and errors: "metadata", "rootfs" */
	image_download_progress_fn progress; /* may be NULL */
	void *data;
	const atomic_bool *cancel; /* may be NULL */
};

/* Download dl->url into dl->fd. Errors (err names the URL): -ECANCELED, -EBADMSG for a
 * SHA-256 mismatch, -EFBIG past max_size, -EIO for the transfer (HTTP status >= 400,
 * connection refused or cut), -ENOSPC and others from writing. */
int image_download_fd(const struct image_download *dl, struct berth_error *err);

/* Download `url` into memory (NUL-terminated; *ret_len without it), at most `max` bytes.
 * The same errors as image_download_fd(). */
int image_download_buf(const char *url, size_t max, const atomic_bool *cancel, char **ret,
		       size_t *ret_len, struct berth_error *err);

/* LXD's rendering of a progress line: "rootfs: 45% (12.34MB/s)", or without a total
 * "rootfs: 1.20MB (12.34MB/s)"; `what` NULL leaves out the "rootfs: " (an LXD-protocol
 * download, one stream for both files). */
void image_download_progress_text(const char *what, uint64_t done, uint64_t total, uint64_t speed,
				  char *buf, size_t size);
