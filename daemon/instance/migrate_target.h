/* daemon/instance/migrate_target.h: the target of a migration (LXD's POST /1.0/instances
 * with "source": {"type": "migration", "mode": "pull", "operation": URL, "secrets":
 * {"control", "fs"}, "certificate", "instance_only"}): connect to the source's operation
 * websockets (through lib/client), read its offer, answer rsync, receive each snapshot
 * (recorded as it lands) and then the instance into a new root volume, and only then
 * write the rows. A failure (or a source that goes away mid-stream) deletes the volume:
 * no half instance stays. doc/migration.md tells the whole exchange.
 *
 * Push mode ("mode": "push", no operation or secrets): the operation holds the websockets
 * instead (migrate_target_push_spec) and the source connects to them; the rest is the
 * same.
 *
 * The source's URL: LXD's "https://HOST:PORT/1.0/operations/ID" goes through lib/client
 * once it speaks TLS; today the one other form is a berthd on this host,
 * "unix://SOCKET_PATH/1.0/operations/ID" (SOCKET_PATH absolute). */
#pragma once

#include <jansson.h>

#include "daemon/instance/instance.h"
#include "daemon/operation.h"
#include "lib/error.h"

/* Check `source` and attach what the transfer needs to `j` (built as for any creation,
 * its config's volatile keys dropped: the copy gets its own). 400 for what is refused:
 * an unknown mode, live (CRIU) sources, a refresh of a running instance, a malformed
 * operation URL. */
int migrate_target_prepare(struct instance_job *j, const json_t *source, struct berth_error *err);
/* A push-mode target (source "mode": "push"): the source connects to our operation. */
bool migrate_target_pushed(const struct instance_job *j);
/* Its operation, a websocket one: `os` gets class, run, data (taking `j`), free_data,
 * connect and cancel; *ret_metadata its secrets {"control", "fs"} (new reference). On
 * failure `j` is still the caller's. */
int migrate_target_push_spec(struct instance_job *j, struct operation_spec *os,
			     json_t **ret_metadata);
/* The operation body (operation_run_fn): `data` is the job. */
int migrate_target_run(struct operation *op, void *data, struct berth_error *err);
/* The answer to `offer`: rsync with the offer's features that berth uses, the same
 * snapshots (new reference, NULL: no memory); `final_sync`: criu NONE, a running source's
 * second pass expected. For the volume target too (migrate_volume.c). */
json_t *migrate_target_answer(const json_t *offer, bool final_sync);
