/* lib/remote_config.h: the client's configuration directory, in the stock lxc client's
 * layout so that a user's habits (and files) carry over:
 *
 *   $BERTH_CONF (default ~/.config/berth)/
 *     config.yml        default-remote, remotes (addr, protocol, auth_type, public,
 *                       project), aliases: the format `lxc` writes
 *     client.crt/.key   the client certificate shown to https remotes (ECDSA P-384,
 *                       self-signed, made on first use)
 *     servercerts/NAME.crt   the certificate pinned for remote NAME
 *
 * The configuration is held as the JSON of config.yml (keys this code does not know are
 * kept as they are). The remote `local` (addr unix://: berth's own socket, as
 * berth_client_default_socket finds it) always exists and cannot be changed; there is no
 * built-in image server (this code invents none). */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "lib/client.h"
#include "lib/error.h"

struct berth_remote_config {
	char *dir;   /* owned: the configuration directory */
	json_t *yml; /* owned: config.yml as JSON, with default-remote and remotes present */
};

/* $BERTH_CONF, else $HOME/.config/berth. A new string; -ENOENT without either. */
int berth_remote_config_dir(char **ret, struct berth_error *err);

/* Read `dir`/config.yml (a missing file is the defaults: local only). -EINVAL with the
 * file named for a malformed one (not YAML, remotes not a map, a remote without addr). */
int berth_remote_config_load(const char *dir, struct berth_remote_config *ret,
			     struct berth_error *err);
/* Parse config.yml's text (the file named `where` in errors). */
int berth_remote_config_parse(const char *text, size_t len, const char *where, json_t **ret,
			      struct berth_error *err);
/* Write config.yml (the directory made 0700 when missing), atomically. */
int berth_remote_config_save(const struct berth_remote_config *c, struct berth_error *err);
void berth_remote_config_release(struct berth_remote_config *c);

/* The default remote's name. Borrowed. */
const char *berth_remote_config_default(const struct berth_remote_config *c);
/* Remote `name`'s object (addr, protocol, ...), or NULL. Borrowed. */
json_t *berth_remote_config_get(const struct berth_remote_config *c, const char *name);
/* Whether `name` is a built-in remote that cannot be changed (local). */
bool berth_remote_config_is_static(const char *name);

/* Split "REMOTE:NAME" as lxc does: no colon, the default remote; a prefix that names no
 * remote is an error ("The remote \"X\" doesn't exist"), unless the whole is a snapshot
 * name ("c1/snap:1") whose prefix has a '/'. *ret_remote is borrowed from `c`,
 * *ret_name from `raw`. */
int berth_remote_config_split(const struct berth_remote_config *c, const char *raw,
			      const char **ret_remote, const char **ret_name,
			      struct berth_error *err);

/* The paths of the client certificate, its key and remote `name`'s pinned certificate.
 * New strings. */
char *berth_remote_config_path(const struct berth_remote_config *c, const char *file);
char *berth_remote_config_server_cert_path(const struct berth_remote_config *c, const char *name);
/* Make client.crt and client.key unless both exist. 1 when they were made, 0 when they
 * were there. */
int berth_remote_config_ensure_client_cert(const struct berth_remote_config *c,
					   struct berth_error *err);

/* A client for remote `name`: the unix socket for unix:// addresses; for https ones the
 * client certificate (made on first use) and the pinned servercerts/NAME.crt when there
 * is one (else the system CAs decide), with the remote's project set. A simplestreams
 * remote has no REST API: -EPROTONOSUPPORT naming it. */
int berth_remote_config_client(const struct berth_remote_config *c, const char *name,
			       struct berth_client **ret, struct berth_error *err);

/* The SHA-256 fingerprint (64 lower-case hex digits + NUL) of the first certificate in
 * `pem`, as lxc shows it. -EINVAL when `pem` holds none. */
int berth_remote_cert_fingerprint(const char *pem, char out[65]);

/* A certificate add token (as `lxc config trust add` prints it): base64 of a JSON object
 * with client_name, fingerprint, addresses (HOST:PORT strings), secret and expires_at.
 * *ret is that object; -EINVAL when `text` is not such a token (so an address or a
 * password is told from a token). */
int berth_remote_token_decode(const char *text, json_t **ret);
