/* daemon/cluster.h: this server as a member of a cluster (doc/clustering.md).
 *
 * Standalone, berthd's database is SQLite ($BERTH_DIR/database/berth.db) and nothing of
 * this module runs but one stat() at start-up. Clustered, berthd runs a dqlite node in
 * its own process (libdqlite, loaded with dlopen() only then, so a standalone daemon
 * neither maps nor initialises it), its Raft data in $BERTH_DIR/database/global as LXD
 * keeps it, and opens the database "db.bin" on it through the dqlite backend. What makes
 * the server clustered is $BERTH_DIR/database/cluster.json (the member's name and
 * address), written last by cluster_enable(), which then renames berth.db to
 * berth.db.pre-cluster. cluster_open_db() refuses a start that would lose data: global
 * without cluster.json, cluster.json without Raft data in global. Only one-member
 * clusters so far. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "lib/error.h"

struct berth_daemon;
struct cluster;

/* Open d->db: dqlite when the server is clustered (starting its node into d->cluster),
 * else SQLite at `sqlite_path`. `pool_source` as db_open() takes it. */
int cluster_open_db(struct berth_daemon *d, const char *sqlite_path, const char *pool_source,
		    struct berth_error *err);

/* Turn this standalone server into the first member of a cluster called after it,
 * member `name`: every row of the SQLite database is copied into a new dqlite database
 * in one transaction, then d->db moves over to it while no request uses it. Refused
 * (400) when clustered already or core.https_address is unset, as LXD does. On failure
 * the server stays standalone, as it was. From any API worker thread. */
int cluster_enable(struct berth_daemon *d, const char *name, struct berth_error *err);

/* Whether the server is clustered; the member's name and address ("" standalone). */
bool cluster_enabled(const struct berth_daemon *d);
const char *cluster_server_name(const struct berth_daemon *d);
const char *cluster_address(const struct berth_daemon *d);

/* The member list as GET /1.0/cluster/members?recursion=1 gives it (empty standalone). */
int cluster_members(struct berth_daemon *d, json_t **ret, struct berth_error *err);

/* Stop the node (after d->db is closed) and free; NULL is fine. */
void cluster_free(struct cluster *c);
