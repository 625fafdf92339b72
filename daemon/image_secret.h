/* daemon/image_secret.h: image download secrets (LXD's POST /1.0/images/FP/secret).
 *
 * A trusted client asks for a secret for one image of one project; the answer is an
 * operation of class "token" whose metadata holds {"secret"} and whose resources name
 * the image. An untrusted client that shows the secret (?secret=) then sees that image
 * although it is private: GET /1.0/images/FP and GET /1.0/images/FP/export. The export
 * uses the secret up (LXD's single use; a pulling server asks for the record first, then
 * the export, both with it) and the operation ends in Success; cancelling the operation
 * (DELETE) withdraws the secret, and so does its expiry (Cancelled).
 *
 * The operations are loop-driven: no worker waits on them. Using, cancelling or expiring
 * a secret marks it under the table's lock and wakes the loop, which finishes the
 * operation; the registry's lock is never taken under the table's. At most
 * IMAGE_SECRET_MAX live secrets per project. Thread-safe except where noted. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "daemon/operation.h"

#define IMAGE_SECRET_MAX 100
/* Without core.remote_token_expiry. */
#define IMAGE_SECRET_EXPIRY_S 3600

struct image_secret;

/* Loop thread, once at start-up / once at shutdown (after operation_registry_shutdown):
 * shutdown withdraws every live secret and finishes its operation. */
int image_secret_init(uv_loop_t *loop);
void image_secret_shutdown(void);

/* A new secret for image `fingerprint` (full) of `project`, valid at once for `expiry_s`
 * seconds (0: never). The operation spec's class, start, cancel, data and free_data are
 * filled in; the secret itself is image_secret_value(). -ENOMEM, -EIO (no randomness),
 * -EAGAIN (IMAGE_SECRET_MAX live secrets in `project` already), -ESHUTDOWN. */
int image_secret_new(const char *project, const char *fingerprint, uint64_t expiry_s,
		     struct operation_spec *spec);
const char *image_secret_value(const struct image_secret *s);

/* Whether `secret` is a live secret for `fingerprint` of `project`; with `use` true, it
 * is used up (its operation ends in Success). Compared in constant time. */
bool image_secret_check(const char *project, const char *fingerprint, const char *secret, bool use);
