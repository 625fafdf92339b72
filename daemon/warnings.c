/* daemon/warnings.c: raising and resolving warnings (see warnings.h), and the checks that
 * berthd runs for them: the host's facts at start, pool space on the minute tick. */
#define LOG_CATEGORY "warnings"
#include "daemon/warnings.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <uv.h>

#include "daemon/daemon.h"
#include "daemon/db/db.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/util.h"
#include "storage/driver.h"

static const struct {
	const char *name;
	const char *severity;
} types[WARNING_TYPE_MAX] = {
	[WARNING_APPARMOR_UNAVAILABLE] = {"AppArmor support has been disabled", "low"},
	[WARNING_INSTANCE_TYPE] = {"Instance type not operational", "low"},
	[WARNING_NETWORK_UNAVAILABLE] = {"Network unavailable", "high"},
	[WARNING_POOL_UNAVAILABLE] = {"Storage pool unavailable", "high"},
	[WARNING_SNAPSHOT_FAILED] = {"Failed to take scheduled snapshot", "moderate"},
	[WARNING_POOL_LOW_SPACE] = {"Storage pool running out of space", "moderate"},
};

const char *warnings_type_name(enum warning_type type)
{
	assert(type < WARNING_TYPE_MAX);
	return types[type].name;
}

int warnings_raise(struct db *db, enum warning_type type, const char *project,
		   const char *entity_url, const char *fmt, ...)
{
	struct berth_error err = {0};
	_cleanup_free_ char *msg = NULL;
	struct db_warning w;
	va_list ap;
	int r;

	assert(type < WARNING_TYPE_MAX);
	va_start(ap, fmt);
	r = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (r < 0) {
		msg = NULL;
		return log_error_errno(-ENOMEM, "Cannot record a warning: out of memory");
	}
	log_warn("%s", msg);
	w = (struct db_warning){
		.project = project,
		.type = types[type].name,
		.entity_url = entity_url,
		.severity = types[type].severity,
		.message = msg,
	};
	r = db_warning_raise(db, &w, &err);
	if (r < 0) {
		log_error("Cannot record warning \"%s\": %s", w.type, berth_error_msg(&err, r));
		berth_error_release(&err);
	}
	return r;
}

int warnings_resolve(struct db *db, enum warning_type type, const char *project,
		     const char *entity_url)
{
	struct berth_error err = {0};
	int r;

	assert(type < WARNING_TYPE_MAX);
	r = db_warning_resolve(db, project, types[type].name, entity_url, &err);
	if (r < 0) {
		log_error("Cannot resolve warning \"%s\": %s", types[type].name,
			  berth_error_msg(&err, r));
		berth_error_release(&err);
	} else if (r > 0) {
		log_info("Resolved warning \"%s\"%s%s", types[type].name, entity_url ? " for " : "",
			 entity_url ?: "");
	}
	return r;
}

char *warnings_entity_url(const char *kind, const char *name, const char *project)
{
	if (!project || streq(project, "default"))
		return berth_strdup_printf("/1.0/%s/%s", kind, name);
	return berth_strdup_printf("/1.0/%s/%s?project=%s", kind, name, project);
}

/* Instance type "virtual-machine": QEMU missing, or no KVM (berth runs VMs under TCG
 * where LXD would refuse them). */
static void host_vm(struct db *db, const json_t *vm)
{
	const json_t *missing = json_object_get(vm, "missing");
	const char *why;

	if (!json_is_object(vm))
		return;
	if (!berth_json_bool(vm, "usable", false)) {
		why = berth_json_string(missing, "qemu") ?: berth_json_string(missing, "ovmf");
		warnings_raise(db, WARNING_INSTANCE_TYPE, NULL, NULL,
			       "Instance type \"virtual-machine\" is not operational: %s",
			       why ?: "QEMU is missing");
	} else if (!berth_json_bool(vm, "kvm", false)) {
		warnings_raise(db, WARNING_INSTANCE_TYPE, NULL, NULL,
			       "KVM support is missing (%s): virtual machines run under TCG, "
			       "emulated and slow",
			       berth_json_string(missing, "kvm") ?: "no /dev/kvm");
	} else {
		warnings_resolve(db, WARNING_INSTANCE_TYPE, NULL, NULL);
	}
}

void warnings_host(struct db *db, const json_t *environment)
{
	const json_t *features = json_object_get(environment, "kernel_features");
	const char *apparmor = berth_json_string(features, "apparmor");

	if (apparmor && streq(apparmor, "false"))
		warnings_raise(db, WARNING_APPARMOR_UNAVAILABLE, NULL, NULL,
			       "AppArmor support has been disabled: the running kernel has no "
			       "AppArmor, instances run without an AppArmor profile");
	else
		warnings_resolve(db, WARNING_APPARMOR_UNAVAILABLE, NULL, NULL);
	host_vm(db, json_object_get(environment, "vm"));
}

/* 1 when the pool's filesystem has less than WARNINGS_POOL_FREE_PERCENT free (warning
 * raised), 0 when it has enough (warning resolved), -errno when it cannot be measured. */
static int check_pool(struct db *db, const char *state_dir, const json_t *p)
{
	_cleanup_(storage_pool_freep) struct storage_pool *pool = NULL;
	_cleanup_free_ char *url = NULL;
	struct berth_error err = {0};
	const char *name = berth_json_string(p, "name");
	struct statvfs st;
	uint64_t size, avail;
	int r;

	r = storage_pool_new(state_dir, p, &pool, &err);
	if (r < 0) {
		berth_error_release(&err);
		return r;
	}
	if (statvfs(pool->path, &st) < 0 || st.f_blocks == 0) {
		r = st.f_blocks == 0 ? -EINVAL : -errno;
		return log_debug("Cannot measure storage pool \"%s\", ignoring", name), r;
	}
	url = warnings_entity_url("storage-pools", name, NULL);
	if (!url)
		return -ENOMEM;
	size = (uint64_t)st.f_blocks * st.f_frsize;
	avail = (uint64_t)st.f_bavail * st.f_frsize;
	if (avail * 100 >= size * WARNINGS_POOL_FREE_PERCENT) {
		warnings_resolve(db, WARNING_POOL_LOW_SPACE, NULL, url);
		return 0;
	}
	warnings_raise(db, WARNING_POOL_LOW_SPACE, NULL, url,
		       "Storage pool \"%s\" is running out of space: %" PRIu64 " of %" PRIu64
		       " bytes free (less than %d%%)",
		       name, avail, size, WARNINGS_POOL_FREE_PERCENT);
	return 1;
}

int warnings_check_pools(struct db *db, const char *state_dir)
{
	struct berth_error err = {0};
	json_auto_t *list = NULL;
	json_t *p;
	size_t i;
	int r, n = 0;

	r = db_pool_list(db, &list, &err);
	if (r < 0) {
		log_warn("Cannot list storage pools to check their space: %s, ignoring",
			 berth_error_msg(&err, r));
		berth_error_release(&err);
		return r;
	}
	json_array_foreach(list, i, p)
		if (check_pool(db, state_dir, p) > 0)
			n++;
	return n;
}

struct tick {
	uv_work_t work;
	struct berth_daemon *d;
};

/* Resolved warnings go a day after they were resolved, as LXD prunes them. */
static void prune(struct db *db)
{
	struct berth_error err = {0};
	struct timespec ts;
	char before[BERTH_RFC3339_MAX];
	int r;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec -= WARNINGS_PRUNE_AFTER_S;
	berth_time_rfc3339(&ts, before);
	r = db_warning_prune(db, before, &err);
	if (r < 0) {
		log_warn("Cannot prune resolved warnings: %s, ignoring", berth_error_msg(&err, r));
		berth_error_release(&err);
	} else if (r > 0) {
		log_info("Pruned %d resolved warnings", r);
	}
}

static void tick_work(uv_work_t *w)
{
	struct tick *t = container_of(w, struct tick, work);

	warnings_check_pools(t->d->db, t->d->dir);
	prune(t->d->db);
}

static void tick_done(uv_work_t *w, int status)
{
	(void)status;
	free(container_of(w, struct tick, work));
}

void warnings_tick(struct berth_daemon *d)
{
	struct tick *t = calloc(1, sizeof(*t));

	if (!t)
		return;
	t->d = d;
	if (uv_queue_work(d->loop, &t->work, tick_work, tick_done) < 0)
		free(t);
}
