/* daemon/cluster.c: the dqlite node inside berthd and `cluster enable` (cluster.h).
 *
 * libdqlite is loaded with dlopen() when the server is clustered, never before: its
 * libraries (libraft, libuv) and its SQLite VFS cost a standalone berthd nothing. Its
 * node listens on an abstract unix socket that it picks ("@"), which dqlite itself
 * restricts to connections from this process; berth's dqlite backend connects there.
 * The node's Raft address is the member's core.https_address, what the cluster will
 * know it by once members join through the HTTPS endpoint. */
#define LOG_CATEGORY "cluster"
#include "daemon/cluster.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/daemon.h"
#include "daemon/db/backend.h"
#include "daemon/db/db.h"
#include "daemon/db/db_internal.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/util.h"

#define CLUSTER_LIB "libdqlite.so.0"
#define CLUSTER_DB_NAME "db.bin" /* LXD's name for the global database */
#define CLUSTER_NODE_ID 1	 /* the first member bootstraps Raft as node 1 */
#define CLUSTER_TIMEOUT_MS 5000
#define CLUSTER_FREEZE_MS 10000 /* the longest wait for running transactions at enable */

/* libdqlite's server calls, as dqlite.h (1.11) declares them, resolved at dlopen(). */
typedef struct cluster_dqlite_node cluster_node;
struct cluster_api {
	int (*node_create)(unsigned long long id, const char *address, const char *dir,
			   cluster_node **ret);
	void (*node_destroy)(cluster_node *n);
	int (*node_set_bind_address)(cluster_node *n, const char *address);
	const char *(*node_get_bind_address)(cluster_node *n);
	int (*node_start)(cluster_node *n);
	int (*node_stop)(cluster_node *n);
	const char *(*node_errmsg)(cluster_node *n);
};

struct cluster {
	void *lib; /* dlopen() handle */
	struct cluster_api api;
	cluster_node *node;
	char *name;    /* owned: the member's name */
	char *address; /* owned: its Raft and HTTPS address */
	char *bind;    /* owned: the node's abstract socket */
	struct db_dqlite_config cfg;
};

/* A failure of the cluster's own doing: INTERNAL, the message formatted. */
#define cluster_fail(err, r, ...) berth_error_set(err, r, BERTH_ERR_INTERNAL, __VA_ARGS__)

void cluster_free(struct cluster *c)
{
	if (!c)
		return;
	if (c->node) {
		c->api.node_stop(c->node);
		c->api.node_destroy(c->node);
	}
	/* The library stays mapped: its threads are gone, but its VFS registration in
	 * SQLite is process-wide. */
	free(c->name);
	free(c->address);
	free(c->bind);
	free(c);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(struct cluster *, cluster_free);

static int cluster_load_lib(struct cluster *c, struct berth_error *err)
{
	static const struct {
		const char *name;
		size_t offset;
	} syms[] = {
		{"dqlite_node_create", offsetof(struct cluster_api, node_create)},
		{"dqlite_node_destroy", offsetof(struct cluster_api, node_destroy)},
		{"dqlite_node_set_bind_address",
		 offsetof(struct cluster_api, node_set_bind_address)},
		{"dqlite_node_get_bind_address",
		 offsetof(struct cluster_api, node_get_bind_address)},
		{"dqlite_node_start", offsetof(struct cluster_api, node_start)},
		{"dqlite_node_stop", offsetof(struct cluster_api, node_stop)},
		{"dqlite_node_errmsg", offsetof(struct cluster_api, node_errmsg)},
	};

	c->lib = dlopen(CLUSTER_LIB, RTLD_NOW | RTLD_LOCAL);
	if (!c->lib)
		return cluster_fail(err, -ENOENT, "Clustering needs libdqlite (%s): %s",
				    CLUSTER_LIB, dlerror());
	for (size_t i = 0; i < ARRAY_SIZE(syms); i++) {
		void *f = dlsym(c->lib, syms[i].name);

		if (!f)
			return cluster_fail(err, -ENOENT, "%s lacks %s", CLUSTER_LIB, syms[i].name);
		memcpy((char *)&c->api + syms[i].offset, &f, sizeof(f));
	}
	return 0;
}

/* Start the node on `dir` (its Raft data), as member `name` at `address`. */
static int cluster_start(const char *name, const char *address, const char *dir,
			 struct cluster **ret, struct berth_error *err)
{
	_cleanup_(cluster_freep) struct cluster *c = calloc(1, sizeof(*c));
	int r;

	if (!c)
		return cluster_fail(err, -ENOMEM, "Out of memory");
	c->name = strdup(name);
	c->address = strdup(address);
	if (!c->name || !c->address)
		return cluster_fail(err, -ENOMEM, "Out of memory");
	r = cluster_load_lib(c, err);
	if (r < 0)
		return r;
	if (c->api.node_create(CLUSTER_NODE_ID, address, dir, &c->node) != 0) {
		r = cluster_fail(err, -EIO, "Failed to create the database node in \"%s\": %s", dir,
				 c->node ? c->api.node_errmsg(c->node) : "out of memory");
		if (c->node)
			c->api.node_destroy(c->node);
		c->node = NULL;
		return r;
	}
	if (c->api.node_set_bind_address(c->node, "@") != 0 || c->api.node_start(c->node) != 0) {
		r = cluster_fail(err, -EIO, "Failed to start the database node: %s",
				 c->api.node_errmsg(c->node));
		c->api.node_destroy(c->node);
		c->node = NULL;
		return r;
	}
	c->bind = strdup(c->api.node_get_bind_address(c->node));
	if (!c->bind)
		return cluster_fail(err, -ENOMEM, "Out of memory");
	c->cfg.address = c->bind;
	c->cfg.node_address = c->address;
	c->cfg.timeout_ms = CLUSTER_TIMEOUT_MS;
	*ret = TAKE_PTR(c);
	return 0;
}

static char *cluster_path(const struct berth_daemon *d, const char *name)
{
	return berth_strdup_printf("%s/database/%s", d->dir, name);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* Make a rename or unlink in `dir` survive a power loss. */
static int cluster_sync_dir(const char *dir)
{
	_cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0 || fsync(fd) < 0)
		return -errno;
	return 0;
}

/* Whether `dir` holds a Raft node's state: libraft writes metadata1 and metadata2 there
 * when the node is bootstrapped, and never removes both. */
static bool cluster_has_raft_data(const char *dir)
{
	_cleanup_free_ char *m1 = berth_strdup_printf("%s/metadata1", dir);
	_cleanup_free_ char *m2 = berth_strdup_printf("%s/metadata2", dir);
	struct stat st;

	return (m1 && stat(m1, &st) == 0 && st.st_size > 0) ||
	       (m2 && stat(m2, &st) == 0 && st.st_size > 0);
}

/* Retire the standalone database once cluster.json is durable: a standalone start must
 * never find it (it is out of date from the first clustered write). */
static int cluster_retire_sqlite(const char *sqlite_path)
{
	_cleanup_free_ char *retired = berth_strdup_printf("%s.pre-cluster", sqlite_path);
	_cleanup_free_ char *parent = strdup(sqlite_path);
	char *slash;

	if (!retired || !parent)
		return -ENOMEM;
	if (access(sqlite_path, F_OK) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (rename(sqlite_path, retired) < 0)
		return -errno;
	slash = strrchr(parent, '/');
	if (slash)
		*slash = '\0';
	return cluster_sync_dir(slash ? parent : ".");
}

int cluster_open_db(struct berth_daemon *d, const char *sqlite_path, const char *pool_source,
		    struct berth_error *err)
{
	_cleanup_free_ char *state_path = cluster_path(d, "cluster.json");
	_cleanup_free_ char *dir = cluster_path(d, "global");
	_cleanup_free_ char *retired = berth_strdup_printf("%s.pre-cluster", sqlite_path);
	_cleanup_free_ char *text = NULL;
	json_auto_t *state = NULL;
	const char *name, *address;
	int r;

	if (!state_path || !dir || !retired)
		return cluster_fail(err, -ENOMEM, "Out of memory");
	r = berth_read_file(state_path, 64 * 1024, &text, NULL);
	if (r == -ENOENT) {
		/* Once clustered, the server's data lives in dqlite: a standalone start on a
		 * stale or fresh berth.db would lose it (and its pools' data with it). */
		if (access(dir, F_OK) == 0)
			return cluster_fail(
				err, -EEXIST,
				"\"%s\" exists but \"%s\" does not: this server is "
				"clustered and its database is in dqlite. Restore \"%s\" "
				"to start clustered, or move \"%s\" aside and rename "
				"\"%s\" to berth.db to go back to the database as it was "
				"before clustering",
				dir, state_path, state_path, dir, retired);
		if (access(retired, F_OK) == 0 && access(sqlite_path, F_OK) < 0)
			return cluster_fail(
				err, -EEXIST,
				"\"%s\" exists but \"%s\" does not: this server was "
				"clustered. Rename it to berth.db to start standalone on "
				"the database as it was before clustering",
				retired, sqlite_path);
		return db_open(sqlite_path, pool_source, &d->db, err);
	}
	if (r < 0)
		return cluster_fail(err, r, "Cannot read \"%s\": %s", state_path, strerror(-r));
	state = json_loads(text, 0, NULL);
	name = berth_json_string(state, "server_name");
	address = berth_json_string(state, "address");
	if (!name || !*name || !address || !*address)
		return cluster_fail(err, -EINVAL, "Invalid cluster state in \"%s\"", state_path);
	/* dqlite would bootstrap an empty database on an empty directory. */
	if (!cluster_has_raft_data(dir))
		return cluster_fail(err, -ENOENT,
				    "\"%s\" says this server is clustered, but \"%s\" holds no "
				    "database: restore it from a backup (a fresh one would lose "
				    "every instance, pool and network)",
				    state_path, dir);
	/* An enable that stopped between writing cluster.json and retiring berth.db. */
	r = cluster_retire_sqlite(sqlite_path);
	if (r < 0)
		log_warn_errno(r, "Cannot rename \"%s\" to \"%s\"", sqlite_path, retired);
	r = cluster_start(name, address, dir, &d->cluster, err);
	if (r < 0)
		return r;
	return db_open_backend(&db_backend_dqlite, &d->cluster->cfg, CLUSTER_DB_NAME, pool_source,
			       &d->db, err);
}

/* One enabling at a time: two would both find the server standalone. */
static pthread_mutex_t cluster_enable_lock = PTHREAD_MUTEX_INITIALIZER;

static int cluster_enable_locked(struct berth_daemon *d, const char *name, struct berth_error *err)
{
	_cleanup_free_ char *state_path = cluster_path(d, "cluster.json");
	_cleanup_free_ char *dir = cluster_path(d, "global");
	_cleanup_free_ char *sqlite_path = cluster_path(d, "berth.db");
	_cleanup_(cluster_freep) struct cluster *c = NULL;
	_cleanup_free_ char *state = NULL;
	json_auto_t *config = NULL;
	struct db *src = NULL, *next = NULL;
	void *probe = NULL;
	const char *address;
	uint64_t rows = 0;
	int r;

	if (!state_path || !dir || !sqlite_path)
		return cluster_fail(err, -ENOMEM, "Out of memory");
	if (d->cluster)
		return berth_error_set(err, -EEXIST, BERTH_ERR_BAD_REQUEST,
				       "This server is already clustered");
	r = db_server_config_get(d->db, &config, err);
	if (r < 0)
		return r;
	address = berth_json_string(config, "core.https_address");
	if (!address || !*address)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "This server is not available on the network");
	/* A standalone start refuses to run beside one, so this is another's: keep it. */
	if (access(dir, F_OK) == 0)
		return berth_error_set(err, -EEXIST, BERTH_ERR_CONFLICT,
				       "\"%s\" already exists: move it aside first", dir);
	r = berth_mkdir_p(dir, 0700);
	if (r < 0)
		return cluster_fail(err, r, "Cannot create \"%s\": %s", dir, strerror(-r));
	r = cluster_start(name, address, dir, &c, err);
	if (r < 0)
		goto fail;

	/* The election happens now, while requests are still served: the copy below then
	 * finds the leader at once. */
	r = db_backend_dqlite.open(&c->cfg, CLUSTER_DB_NAME, &probe, err);
	if (r < 0)
		goto fail;
	db_backend_dqlite.close(probe);
	/* No request may write while the rows move: they would be lost. A transaction
	 * that does not end in time fails the enable rather than stall every request. */
	r = db_freeze(d->db, CLUSTER_FREEZE_MS);
	if (r < 0) {
		r = cluster_fail(err, r, "Database transactions still running after %d s",
				 CLUSTER_FREEZE_MS / 1000);
		goto fail;
	}
	r = db_open(sqlite_path, "", &src, err);
	if (r >= 0)
		r = db_open_copy(&db_backend_dqlite, &c->cfg, CLUSTER_DB_NAME, src, &rows, &next,
				 err);
	db_close(src);
	if (r >= 0) {
		json_auto_t *doc = json_pack("{s:s, s:s}", "server_name", name, "address", address);

		state = doc ? json_dumps(doc, JSON_SORT_KEYS) : NULL;
		r = state ? berth_write_file_atomic(state_path, state, strlen(state), 0600)
			  : -ENOMEM;
		/* The switch must survive a power loss, or the server comes back on
		 * berth.db without what is written from now on. */
		if (r >= 0) {
			_cleanup_free_ char *parent = cluster_path(d, "");

			r = parent ? cluster_sync_dir(parent) : -ENOMEM;
			if (r < 0)
				unlink(state_path);
		}
		if (r < 0)
			r = cluster_fail(err, r, "Cannot write \"%s\": %s", state_path,
					 strerror(-r));
	}
	if (r < 0) {
		db_close(next);
		db_thaw(d->db, NULL);
		goto fail;
	}
	db_thaw(d->db, next); /* closes the last connections to berth.db */
	d->cluster = TAKE_PTR(c);
	r = cluster_retire_sqlite(sqlite_path);
	if (r < 0)
		log_warn_errno(r, "Cannot rename \"%s\" aside (the next start does it)",
			       sqlite_path);
	log_info("Clustering enabled: member \"%s\" at %s, %llu rows moved into dqlite", name,
		 address, (unsigned long long)rows);
	return 0;
fail:
	cluster_free(TAKE_PTR(c));
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return r;
}

int cluster_enable(struct berth_daemon *d, const char *name, struct berth_error *err)
{
	int r;

	pthread_mutex_lock(&cluster_enable_lock);
	r = cluster_enable_locked(d, name, err);
	pthread_mutex_unlock(&cluster_enable_lock);
	return r;
}

bool cluster_enabled(const struct berth_daemon *d)
{
	return d->cluster != NULL;
}

const char *cluster_server_name(const struct berth_daemon *d)
{
	return d->cluster ? d->cluster->name : "";
}

const char *cluster_address(const struct berth_daemon *d)
{
	return d->cluster ? d->cluster->address : "";
}

int cluster_members(struct berth_daemon *d, json_t **ret, struct berth_error *err)
{
	json_auto_t *list = json_array();
	const char *arch = json_string_value(
		json_array_get(json_object_get(d->environment, "architectures"), 0));
	struct cluster *c = d->cluster;
	_cleanup_free_ char *url = NULL;

	if (!list)
		return cluster_fail(err, -ENOMEM, "Out of memory");
	if (c) {
		/* One member, which leads the database: as LXD 5.0 describes a member. */
		url = berth_strdup_printf("https://%s", c->address);
		if (!url ||
		    json_array_append_new(
			    list, json_pack("{s:s, s:s, s:b, s:[s], s:s, s:s, s:s, s:s, s:s,"
					    " s:{}, s:[s]}",
					    "server_name", c->name, "url", url, "database", 1,
					    "roles", "database", "architecture", arch ? arch : "",
					    "failure_domain", "default", "description", "",
					    "status", "Online", "message", "Fully operational",
					    "config", "groups", "default")) < 0)
			return cluster_fail(err, -ENOMEM, "Out of memory");
	}
	*ret = TAKE_PTR(list);
	return 0;
}
