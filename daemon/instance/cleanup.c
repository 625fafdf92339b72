/* daemon/instance/cleanup.c: an instance's run directory, log directory and cgroup go with
 * it (cleanup.h).
 *
 * A delete removes what is here first, while the instance is stopped and its name still
 * taken (a same-named instance created meanwhile would otherwise lose its run directory and
 * cgroup), then the row and the volume. Files and cgroups that no row names (an older
 * berthd cleaned up after the row; or made by hand) would never go otherwise, so at start
 * the daemon lists its run/ and logs/ directories and removes every entry that is not
 * "<project>_<name>" of an instance in the database, with the cgroup of that name under
 * its cgroup parent (berth-<hash>, named after the state directory). A cgroup there with
 * no such entry is left alone: a berthd with the same state path in another mount
 * namespace shares the parent. */
#define LOG_CATEGORY "cleanup"
#include "daemon/instance/cleanup.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "daemon/db/db.h"
#include "daemon/instance/container.h"
#include "daemon/instance/proxy.h"
#include "daemon/instance/vm_driver.h"
#include "daemon/runtime/cgroup.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/util.h"
#include "storage/driver.h"

char *cleanup_logs_dir(const struct berth_daemon *d, const char *project, const char *name)
{
	return berth_strdup_printf("%s/logs/%s_%s", d->dir, project, name);
}

/* rm -rf `dir` ("what" names it in the warning). 0 when it is gone or never was. */
static int remove_dir(const char *who, const char *what, const char *dir)
{
	struct berth_error err = {0};
	struct stat st;
	int r;

	if (lstat(dir, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	r = storage_remove_tree(dir, &err);
	if (r < 0)
		log_warn("Instance \"%s\": removing its %s \"%s\": %s, ignoring", who, what, dir,
			 berth_error_msg(&err, r));
	berth_error_release(&err);
	return r;
}

/* Kill what is left in cgroup `rel` (relative to each hierarchy's root) and remove it. */
static int remove_cgroup(const char *who, const char *rel)
{
	_cleanup_(runtime_cgroup_freep) struct runtime_cgroup *cg = NULL;
	int r = runtime_cgroup_open(rel, &cg);

	if (r < 0)
		return r;
	r = runtime_cgroup_remove(cg, 1000);
	if (r < 0)
		log_warn("Instance \"%s\": removing its cgroup \"%s\": %s, ignoring", who, rel,
			 strerror(-r));
	return r;
}

/* Remove the run directory, log directory and cgroup named `entry` ("<project>_<name>"),
 * `who` naming the instance in warnings. A monitor that still answers in the run
 * directory is told to kill its container first. */
static int remove_entry(const struct berth_daemon *d, const char *who, const char *entry)
{
	_cleanup_free_ char *rundir = berth_strdup_printf("%s/run/%s", d->dir, entry);
	_cleanup_free_ char *logdir = berth_strdup_printf("%s/logs/%s", d->dir, entry);
	_cleanup_free_ char *any = container_cgroup(d, "x", "x");
	_cleanup_free_ char *rel = NULL, *reply = NULL;
	char *slash = any ? strchr(any, '/') : NULL;
	int r = 0, k;

	if (!rundir || !logdir || !slash)
		return -ENOMEM;
	*slash = '\0';
	rel = berth_strdup_printf("%s/%s", any, entry);
	if (!rel)
		return -ENOMEM;
	if (container_request(rundir, "kill", 5, &reply, NULL) >= 0)
		log_info("Instance \"%s\": its monitor still ran: killed", who);
	k = remove_cgroup(who, rel);
	r = k < 0 ? k : r;
	/* what the run directory lists outside it: a nat table, a VM's macvtaps */
	proxy_rundir_release(rundir);
	vm_rundir_release(rundir);
	k = remove_dir(who, "run directory", rundir);
	r = k < 0 ? k : r;
	k = remove_dir(who, "log directory", logdir);
	return k < 0 ? k : r;
}

int cleanup_instance(const struct berth_daemon *d, const char *project, const char *name)
{
	_cleanup_free_ char *entry = berth_strdup_printf("%s_%s", project, name);

	/* Test-only: nothing has gone yet, the row included (t_cleanup.sh). */
	berth_test_pause("instance-delete-before-cleanup");
	if (!entry)
		return -ENOMEM;
	return remove_entry(d, name, entry);
}

/* The log directory of an older instance of that name, which a rename onto it finds. */
static void logs_remove(const struct berth_daemon *d, const char *project, const char *name)
{
	_cleanup_free_ char *dir = cleanup_logs_dir(d, project, name);
	struct berth_error err = {0};
	struct stat st;

	if (!dir || lstat(dir, &st) < 0)
		return;
	if (storage_remove_tree(dir, &err) < 0)
		log_warn("Instance \"%s\": removing its logs: %s, ignoring", name,
			 berth_error_msg(&err, -EIO));
	berth_error_release(&err);
}

void cleanup_logs_rename(const struct berth_daemon *d, const char *project, const char *from,
			 const char *to)
{
	_cleanup_free_ char *src = cleanup_logs_dir(d, project, from);
	_cleanup_free_ char *dst = cleanup_logs_dir(d, project, to);

	if (!src || !dst)
		return;
	logs_remove(d, project, to); /* leftovers of an older instance of that name */
	if (rename(src, dst) < 0 && errno != ENOENT)
		log_warn("Instance \"%s\": moving its logs to \"%s\": %m, ignoring", from, dst);
}

/* ---- start-up reconcile ---- */

/* Whether a monitor answers in run directory `entry` under `run`: a container that
 * still runs is never killed because our database lost track of it. */
static bool monitor_answers(const char *run, const char *entry)
{
	_cleanup_free_ char *rundir = berth_strdup_printf("%s/%s", run, entry);
	_cleanup_free_ char *reply = NULL;

	return rundir &&
	       container_request(rundir, "status", CONTAINER_STATUS_TIMEOUT_S, &reply, NULL) >= 0;
}

/* Add the entries of directory `path` (all but dot files) to the set `found`. */
static int list_dir(const char *path, json_t *found)
{
	DIR *dir = opendir(path);
	struct dirent *de;
	int r = 0;

	if (!dir)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(dir)))
		if (de->d_name[0] != '.' && json_object_set_new(found, de->d_name, json_true()) < 0)
			r = -ENOMEM;
	closedir(dir);
	return r;
}

/* The set of "<project>_<name>" of every instance in the database. */
static int known_entries(struct db *db, json_t **ret)
{
	json_auto_t *all = NULL, *known = json_object();
	json_t *inst;
	size_t i;
	int r = db_instance_list(db, NULL, &all, NULL);

	if (r < 0)
		return r;
	if (!known)
		return -ENOMEM;
	json_array_foreach(all, i, inst) {
		_cleanup_free_ char *e = berth_strdup_printf("%s_%s",
							     berth_json_string(inst, "project"),
							     berth_json_string(inst, "name"));

		if (!e || json_object_set_new(known, e, json_true()) < 0)
			return -ENOMEM;
	}
	*ret = TAKE_PTR(known);
	return 0;
}

int cleanup_reconcile(const struct berth_daemon *d)
{
	_cleanup_free_ char *run = berth_strdup_printf("%s/run", d->dir);
	_cleanup_free_ char *logs = berth_strdup_printf("%s/logs", d->dir);
	json_auto_t *known = NULL, *found = json_object();
	const char *entry;
	json_t *v;
	int r, n = 0;

	if (!run || !logs || !found)
		return -ENOMEM;
	r = known_entries(d->db, &known);
	if (r < 0)
		return log_error_errno(r, "Cannot list the instances to clean up after");
	/* Only what our own run/ and logs/ hold: another berthd with the same state path in
	 * another mount namespace shares the cgroup parent, and its cgroups are not ours. An
	 * entry's cgroup goes with it (remove_entry). */
	if (list_dir(run, found) < 0 || list_dir(logs, found) < 0)
		log_warn("Cannot list all that instances left, ignoring");
	json_object_foreach(found, entry, v) {
		if (json_object_get(known, entry))
			continue;
		if (monitor_answers(run, entry)) {
			log_warn("Run directory \"%s\" belongs to no instance but its monitor "
				 "runs: left alone",
				 entry);
			continue;
		}
		log_info("\"%s\" belongs to no instance: removing what is left of it", entry);
		remove_entry(d, entry, entry);
		n++;
	}
	container_cleanup_cgroups(d);
	return n;
}
