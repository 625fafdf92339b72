/* daemon/image_secret.h: image download secrets (LXD's POST /1.0/images/FP/secret).
 *
 * A trusted client asks for a secret for one image of one project; the answer is an
 * operation of class "token" whose metadata holds {"secret"} and whose resources name
 * the image. An untrusted client that shows the secret (?secret=) then sees that image
 * although it is private: GET /1.0/images/FP and GET /1.0/images/FP/export. The export
 * uses the secret up (LXD's single use; a pulling server asks for the record first, then
 * the export, both with it) and the operation ends in Success; cancelling the operation
 * (DELETE) withdraws the secret.
 *
 * The operation waits on a worker of its own until then. Thread-safe. */
#pragma once

#include <stdbool.h>

#include "daemon/operation.h"

struct image_secret;

/* A new secret for image `fingerprint` (full) of `project`, valid at once. The operation spec's `run`, `data` and `free_data` are filled in; the secret
 * itself is image_secret_value(). -ENOMEM, -EIO (no randomness). */
int image_secret_new(const char *project, const char *fingerprint, struct operation_spec *spec);
const char *image_secret_value(const struct image_secret *s);

/* Whether `secret` is a live secret for `fingerprint` of `project`; with `use` true, it
 * is used up (its operation ends). Compared in constant time. */
bool image_secret_check(const char *project, const char *fingerprint, const char *secret, bool use);
