/* daemon/instance/migrate_source.h: the source of a migration (LXD's
 * POST /1.0/instances/NAME {"migration": true}): a websocket operation whose metadata holds
 * the secrets of its "control" and "fs" websockets. The target connects to both; then the
 * operation's worker offers a MigrationHeader, reads the target's answer, sends each
 * snapshot and then the instance with rsync, and ends on the target's MigrationControl.
 * The instance itself is only read. doc/migration.md tells the whole exchange.
 *
 * Loop thread: migrate_source_connect (the operation's connect), which bridges each
 * websocket to a socket pair whose other end the worker reads and writes (migrate_io.h's
 * framed channel). Worker: migrate_source_run. */
#pragma once

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "daemon/daemon.h"
#include "daemon/operation.h"
#include "lib/error.h"
#include "lib/http_server.h"

struct migrate_source;

/* A source for instance `name` of `project`: 404 when it does not exist; `live` on a
 * running container is refused as LXD refuses it without CRIU. Blocking (database). */
/* `target` (may be NULL): push mode, LXD's {"operation": URL, "websockets": {"control",
 * "fs"}}: the worker connects to the target's operation (URL forms: migrate_io.h). */
int migrate_source_new(struct berth_daemon *d, const char *project, const char *name, bool live,
		       bool instance_only, const json_t *target, struct migrate_source **ret,
		       struct berth_error *err);
/* A source for custom volume `name` of `pool` (LXD's POST
 * /1.0/storage-pools/POOL/volumes/custom/NAME {"migration": true}): the same exchange,
 * the volume's snapshots offered (volume_only: none), then its content. 404 when it does
 * not exist, 400 for a block volume. Blocking (database). */
int migrate_source_new_volume(struct berth_daemon *d, const char *project, const char *pool,
			      const char *name, bool volume_only, const json_t *target,
			      struct migrate_source **ret, struct berth_error *err);
/* Send snapshot `snap` as the instance (no snapshots of its own): 404 when it does not
 * exist. Blocking (database). */
int migrate_source_set_snapshot(struct migrate_source *s, const char *snap,
				struct berth_error *err);
/* Push mode: the operation has no websockets of its own (class "task"). */
bool migrate_source_pushes(const struct migrate_source *s);
/* Takes a struct migrate_source (NULL: nothing). For operation_spec's free_data. */
void migrate_source_free(void *s);
/* {"control": SECRET, "fs": SECRET}: the operation's metadata (new reference). */
json_t *migrate_source_metadata(const struct migrate_source *s);

int migrate_source_run(struct operation *op, void *data, struct berth_error *err);
void migrate_source_connect(struct operation *op, void *data, const char *secret,
			    struct berth_http_conn *conn);
void migrate_source_cancel(void *data);

/* A listener: the secrets and websockets of a source without its transfer, for a target
 * in push mode (the pushing source connects to it). Its metadata, connect, cancel and
 * free are the source's. migrate_listener_wait (worker) waits as the source does for
 * both websockets and gives the worker ends of their bridges (borrowed: they close with
 * the listener, which closes the websockets). */
int migrate_listener_new(struct berth_daemon *d, const char *project, const char *name,
			 struct migrate_source **ret);
int migrate_listener_wait(struct migrate_source *s, const atomic_bool *cancel, int *ret_ctl,
			  int *ret_fs, struct berth_error *err);
/* Close the worker ends: the websockets close once what was written is sent. */
void migrate_listener_close(struct migrate_source *s);

/* LXD's architecture number of `name` ("x86_64": 2), 0 when unknown; and back (NULL). */
int migrate_arch_id(const char *name);
const char *migrate_arch_name(int id);
