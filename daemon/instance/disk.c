/* daemon/instance/disk.c: disk devices of containers (see disk.h). */
#define LOG_CATEGORY "disk"
#include "daemon/instance/disk.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/db/db.h"
#include "daemon/instance/common.h"
#include "daemon/runtime/idmap.h"
#include "daemon/runtime/mounts.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/util.h"
#include "storage/driver.h"

/* A disk device that becomes a mount (not the root disk). */
static bool is_disk_mount(const json_t *dev)
{
	const char *type = berth_json_string(dev, "type");
	const char *path = berth_json_string(dev, "path");

	return type && streq(type, "disk") && path && !streq(path, "/") &&
	       berth_json_string(dev, "source");
}

static bool is_true(const char *v)
{
	return v && (streq(v, "true") || streq(v, "1") || streq(v, "yes") || streq(v, "on"));
}

/* The host path of the custom volume `source` on pool `pool` (*ret) and the project that
 * owns it (*ret_owner: `project`, or "default" when its features.storage.volumes is off). */
static int volume_source(struct berth_daemon *d, const char *project, const char *pool,
			 const char *source, char **ret, char **ret_owner, struct berth_error *err)
{
	json_auto_t *pobj = NULL, *row = NULL;
	_cleanup_(storage_pool_freep) struct storage_pool *sp = NULL;
	_cleanup_free_ char *owner = NULL; /* the project whose volumes this one sees */
	_cleanup_free_ char *disk = NULL;
	struct storage_vol vol = {STORAGE_VOL_CUSTOM, NULL};
	int r = db_project_feature_project(d->db, project, "features.storage.volumes", &owner, err);

	if (r < 0)
		return r;
	/* a block volume's directory holds the file a VM's QEMU is given: never a container's
	 * (whatever its path) */
	if (db_volume_get(d->db, pool, owner, "custom", source, &row, NULL) >= 0 &&
	    streq(berth_json_string(row, "content_type") ?: "", "block"))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Custom block volumes cannot be used on containers");
	vol.name = disk = storage_vol_disk_name(owner, source);
	if (!disk)
		return -ENOMEM;
	r = db_pool_get(d->db, pool, &pobj, err);
	if (r >= 0)
		r = storage_pool_new(d->dir, pobj, &sp, err);
	if (r >= 0)
		r = storage_volume_path(sp, &vol, NULL, ret);
	if (r >= 0)
		*ret_owner = TAKE_PTR(owner);
	return r;
}

/* ---- custom volumes shifted on disk (where idmapped mounts are refused) ----
 *
 * As LXD does for custom volumes: the volume's files are shifted once to the map of the
 * container it is attached to, and the map recorded in the volume's config as
 * volatile.idmap.last (and .next), in LXD's JSON idmap format. A volume shifted to the
 * same map is mounted as it is; one shifted to another map is shifted again only when no
 * other instance with another map uses it. */

static pthread_mutex_t shift_lock = PTHREAD_MUTEX_INITIALIZER;

/* The LXD JSON idmap of `spec`'s uid and gid lines; "[]" when privileged. Only maps of one
 * uid and one gid line are shifted on disk (volume_shift refuses others). */
static char *map_json(const struct runtime_spec *spec)
{
	json_auto_t *j = NULL;

	if (spec->privileged || !spec->n_uid_map || !spec->n_gid_map)
		return strdup("[]");
	j = json_pack("[{s:b, s:b, s:I, s:i, s:I}, {s:b, s:b, s:I, s:i, s:I}]", "Isuid", 1, "Isgid",
		      0, "Hostid", (json_int_t)spec->uid_map[0].host, "Nsid", 0, "Maprange",
		      (json_int_t)spec->uid_map[0].count, "Isuid", 0, "Isgid", 1, "Hostid",
		      (json_int_t)spec->gid_map[0].host, "Nsid", 0, "Maprange",
		      (json_int_t)spec->gid_map[0].count);
	return j ? json_dumps(j, JSON_COMPACT) : NULL;
}

/* Whether two JSON idmaps are the same map (absent and "[]" are both "unshifted"). */
static bool map_equal(const char *a, const char *b)
{
	json_auto_t *ja = json_loads(a && *a ? a : "[]", 0, NULL);
	json_auto_t *jb = json_loads(b && *b ? b : "[]", 0, NULL);

	return ja && jb && json_equal(ja, jb);
}

/* The host bases of container id 0 in a JSON idmap (0 0 0 for "[]" or absent). */
static int map_bases(const char *json, uint32_t *uid, uint32_t *gid, uint32_t *count)
{
	json_auto_t *j = json_loads(json && *json ? json : "[]", 0, NULL);
	json_t *e;
	size_t i;

	*uid = *gid = *count = 0;
	if (!json_is_array(j))
		return -EINVAL;
	json_array_foreach(j, i, e) {
		json_int_t host = json_integer_value(json_object_get(e, "Hostid"));
		json_int_t range = json_integer_value(json_object_get(e, "Maprange"));

		if (json_integer_value(json_object_get(e, "Nsid")) != 0 || host < 0 || range <= 0)
			continue;
		if (json_is_true(json_object_get(e, "Isuid")))
			*uid = (uint32_t)host;
		if (json_is_true(json_object_get(e, "Isgid")))
			*gid = (uint32_t)host;
		if (!*count || (uint32_t)range < *count)
			*count = (uint32_t)range;
	}
	return 0;
}

/* The instance name and project of used_by URL `url` ("/1.0/instances/x?project=p",
 * "default" without ?project=); 0 with *ret_name NULL when it is not an instance's. */
static int user_instance(const char *url, char **ret_name, char **ret_project)
{
	const char *prefix = "/1.0/instances/";
	const char *rest, *q, *p;
	_cleanup_free_ char *name = NULL, *project = NULL;

	*ret_name = NULL;
	if (!url || !berth_startswith(url, prefix))
		return 0; /* a profile */
	rest = url + strlen(prefix);
	q = strchr(rest, '?');
	name = strndup(rest, q ? (size_t)(q - rest) : strlen(rest));
	p = q ? strstr(q, "project=") : NULL;
	if (p && (p == q + 1 || p[-1] == '&'))
		project = strndup(p + strlen("project="), strcspn(p + strlen("project="), "&"));
	else
		project = strdup("default");
	if (!name || !project)
		return -ENOMEM;
	*ret_name = TAKE_PTR(name);
	*ret_project = TAKE_PTR(project);
	return 0;
}

/* Refuse when another instance (of any project) using volume `vol` of project `owner` has
 * a map other than `next` (the map of a running instance, else its last one; one never
 * started is checked at its start). `project`/`name` is the instance being started. */
static int others_agree(struct db *db, const char *owner, const char *project, const char *name,
			const char *pool, const char *vol, const char *next,
			struct berth_error *err)
{
	json_auto_t *users = NULL;
	json_t *u;
	size_t i;
	int r = db_volume_used_by(db, pool, owner, vol, &users, err);

	if (r < 0)
		return r;
	json_array_foreach(users, i, u) {
		_cleanup_free_ char *other = NULL, *oproj = NULL;
		json_auto_t *inst = NULL;
		const json_t *cfg;
		const char *map;

		r = user_instance(json_string_value(u), &other, &oproj);
		if (r < 0)
			return r;
		if (!other || (streq(other, name) && streq(oproj, project)))
			continue;
		r = db_instance_get(db, oproj, other, &inst, err);
		if (r < 0)
			return berth_error_wrap(err, r, "Storage volume \"%s\": user \"%s\"", vol,
						json_string_value(u));
		cfg = json_object_get(inst, "config");
		map = berth_json_string(cfg, "volatile.idmap.current")
			      ?: berth_json_string(cfg, "volatile.idmap.next");
		if (map && !map_equal(map, next))
			return berth_error_set(
				err, -EBUSY, BERTH_ERR_BAD_REQUEST,
				"Idmaps of container \"%s\" and storage volume \"%s\" "
				"are not identical",
				other, vol);
	}
	return 0;
}

/* Whether host ranges [a, a+n) and [b, b+n) share an id (not when either is unshifted). */
static bool ranges_overlap(uint32_t a, uint32_t b, uint32_t n)
{
	return a && b && a != b && (uint64_t)a < (uint64_t)b + n && (uint64_t)b < (uint64_t)a + n;
}

/* Shift volume `vol` of project `owner` (at `path`, row `row`) from map `last` to `next`
 * and record it. Refused between overlapping host ranges, which a failed shift could not
 * put back (ids shifted and ids still to shift would be the same). */
static int volume_reshift(struct db *db, const char *owner, const char *pool, const char *vol,
			  const char *path, const json_t *row, const char *last, const char *next,
			  struct berth_error *err)
{
	json_auto_t *upd = json_deep_copy(row);
	json_t *cfg = upd ? json_object_get(upd, "config") : NULL;
	struct runtime_idmap_shift sh = {0}, back;
	uint32_t lc = 0, nc = 0;
	int r;

	if (!upd)
		return -ENOMEM;
	if (map_bases(last, &sh.from_uid, &sh.from_gid, &lc) < 0 ||
	    map_bases(next, &sh.to_uid, &sh.to_gid, &nc) < 0)
		return berth_error_set(err, -EINVAL, BERTH_ERR_INTERNAL,
				       "Storage volume \"%s\": bad volatile.idmap.last", vol);
	sh.count = !lc ? nc : !nc ? lc : lc < nc ? lc : nc;
	if (ranges_overlap(sh.from_uid, sh.to_uid, sh.count) ||
	    ranges_overlap(sh.from_gid, sh.to_gid, sh.count))
		return berth_error_set(err, -EBUSY, BERTH_ERR_BAD_REQUEST,
				       "Storage volume \"%s\" is shifted to a map overlapping "
				       "%s: it cannot be shifted again in place",
				       vol, next);
	if (!json_is_object(cfg)) {
		cfg = json_object();
		if (!cfg || json_object_set_new(upd, "config", cfg) < 0)
			return -ENOMEM;
	}
	if (json_object_set_new(cfg, "volatile.idmap.last", json_string(next)) < 0 ||
	    json_object_set_new(cfg, "volatile.idmap.next", json_string(next)) < 0)
		return -ENOMEM;
	log_info("Shifting storage volume \"%s\" on disk to %s", vol, next);
	r = runtime_idmap_shift_path(path, &sh, err);
	if (r >= 0)
		r = db_volume_update(db, pool, owner, "custom", vol, upd, NULL, NULL, err);
	if (r < 0) {
		/* nothing half-shifted: put the ids back as recorded */
		back = (struct runtime_idmap_shift){sh.to_uid, sh.to_gid, sh.from_uid, sh.from_gid,
						    sh.count};
		if (runtime_idmap_shift_path(path, &back, NULL) < 0)
			log_error("Storage volume \"%s\": shifting back failed", vol);
		return berth_error_wrap(err, r, "Failed to shift storage volume \"%s\"", vol);
	}
	return 0;
}

/* 1 when `path` can be idmapped for `spec`'s container (its user namespace `userns`
 * when >= 0, else a probe's), 0 when the kernel or filesystem refuses. */
static int idmap_works(const char *path, const struct runtime_spec *spec, int userns,
		       struct berth_error *err)
{
	_cleanup_(berth_error_release) struct berth_error perr = {0};
	_cleanup_close_ int tree = -EBADF;
	int r;

	if (userns < 0)
		return runtime_idmap_probe(path, spec, err);
	r = runtime_idmap_open_tree(path, userns, 0, &tree, &perr);
	if (r == -EINVAL || r == -EPERM || r == -EOPNOTSUPP || r == -ENOSYS)
		return 0;
	if (r < 0)
		return berth_error_set(err, r, berth_error_code_for(&perr, r), "%s",
				       berth_error_msg(&perr, r));
	return 1;
}

/* Whether custom volume `vol` of project `owner` at `path` is mounted shifted on disk (*ret_shifted) rather
 * than idmapped for `spec`'s container: when BERTH_MONITOR_NO_IDMAP is set, when it is
 * shifted already, or when the kernel or filesystem refuses the idmapped mount (probed
 * with `userns` when >= 0, else with a throwaway user namespace). Shifts it as needed. */
static int volume_shift(struct db *db, const char *owner, const char *project,
			const struct runtime_spec *spec, int userns, const char *pool,
			const char *vol, const char *path, bool *ret_shifted,
			struct berth_error *err)
{
	_cleanup_free_ char *next = map_json(spec);
	json_auto_t *row = NULL;
	const char *last;
	int r;

	if (!next)
		return -ENOMEM;
	r = db_volume_get(db, pool, owner, "custom", vol, &row, err);
	if (r < 0)
		return r;
	last = berth_json_string(json_object_get(row, "config"), "volatile.idmap.last");
	*ret_shifted = !map_equal(last, "[]");
	if (!*ret_shifted && (spec->privileged || !getenv("BERTH_MONITOR_NO_IDMAP"))) {
		if (spec->privileged)
			return 0;
		r = idmap_works(path, spec, userns, err);
		if (r != 0)
			return r < 0 ? r : 0; /* idmapped it is (or the probe failed) */
		log_info("Idmapped mounts of \"%s\" refused: shifting it on disk", path);
	}
	*ret_shifted = !spec->privileged;
	if (!spec->privileged && (spec->n_uid_map > 1 || spec->n_gid_map > 1))
		return berth_error_set(err, -EOPNOTSUPP, BERTH_ERR_BAD_REQUEST,
				       "Storage volume \"%s\" cannot be shifted on disk for "
				       "container \"%s\": its idmap has more than one uid or gid "
				       "range",
				       vol, spec->name);
	if (map_equal(last, next))
		return 0;
	r = others_agree(db, owner, project, spec->name, pool, vol, next, err);
	if (r >= 0)
		r = volume_reshift(db, owner, pool, vol, path, row, last, next, err);
	return r;
}

/* The mount of disk device `dname` for `spec`'s container (privileged or not); `userns`
 * is its user namespace when it runs (hot-plug), else -EBADF. */
static int disk_mount(struct berth_daemon *d, const char *project, const struct runtime_spec *spec,
		      int userns, const char *dname, const json_t *dev, struct runtime_mount *ret,
		      struct berth_error *err)
{
	const char *source = berth_json_string(dev, "source");
	const char *pool = berth_json_string(dev, "pool");
	_cleanup_free_ char *src = NULL, *target = NULL, *owner = NULL;
	bool shifted = false;
	struct stat st;
	int r = 0;

	if (pool && *pool)
		r = volume_source(d, project, pool, source, &src, &owner, err);
	else if (!(src = strdup(source)))
		r = -ENOMEM;
	if (r < 0)
		return berth_error_wrap(err, r, "Device \"%s\"", dname);
	if (stat(src, &st) < 0) {
		if (errno == ENOENT)
			return berth_error_set(err, -ENOENT, BERTH_ERR_BAD_REQUEST,
					       "Missing source path \"%s\" for disk \"%s\"", src,
					       dname);
		return berth_error_set(err, -errno, BERTH_ERR_BAD_REQUEST,
				       "Device \"%s\": source \"%s\": %m", dname, src);
	}
	if (pool && *pool && S_ISDIR(st.st_mode)) {
		pthread_mutex_lock(&shift_lock);
		r = volume_shift(d->db, owner, project, spec, userns, pool, source, src, &shifted,
				 err);
		pthread_mutex_unlock(&shift_lock);
		if (r < 0)
			return r; /* its message names the volume */
	}
	target = strdup(berth_json_string(dev, "path"));
	if (!target)
		return -ENOMEM;
	*ret = (struct runtime_mount){
		.source = TAKE_PTR(src),
		.target = TAKE_PTR(target),
		.ro = is_true(berth_json_string(dev, "readonly")),
		.create_dir = S_ISDIR(st.st_mode),
		.create_file = !S_ISDIR(st.st_mode),
		/* a custom volume holds the container's own ids (unless shifted on disk for
		 * it); a host path only with shift */
		.idmap = !spec->privileged && !shifted &&
			 ((pool && *pool) || is_true(berth_json_string(dev, "shift"))),
	};
	return 0;
}

static int mounts_push(struct runtime_spec *spec, struct runtime_mount *m)
{
	struct runtime_mount *na = realloc(spec->mounts, (spec->n_mounts + 1) * sizeof(*na));

	if (!na)
		return -ENOMEM;
	spec->mounts = na;
	spec->mounts[spec->n_mounts++] = *m;
	*m = (struct runtime_mount){0};
	return 0;
}

static void mount_release(struct runtime_mount *m)
{
	free(m->source);
	free(m->target);
	*m = (struct runtime_mount){0};
}

int disk_spec_build(struct runtime_spec *spec, struct berth_daemon *d, const char *project,
		    const json_t *devices, struct berth_error *err)
{
	const char *dname;
	json_t *dev;

	json_object_foreach((json_t *)devices, dname, dev) {
		struct runtime_mount m = {0};
		int r;

		/* a disk naming a volume without a path is a block volume's (VMs only; the
		 * API refused one naming a filesystem volume) */
		if (streq(berth_json_string(dev, "type") ?: "", "disk") &&
		    !berth_json_string(dev, "path") && berth_json_string(dev, "pool") &&
		    berth_json_string(dev, "source"))
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Invalid devices: Device validation failed for "
					       "\"%s\": Custom block volumes cannot be used on "
					       "containers",
					       dname);
		if (!is_disk_mount(dev))
			continue;
		r = disk_mount(d, project, spec, -EBADF, dname, dev, &m, err);
		if (r >= 0 && (r = mounts_push(spec, &m)) < 0)
			mount_release(&m);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- hot-plug ---- */

struct ct_ns {
	int mntns;
	int userns; /* -EBADF: privileged */
	uid_t uid;  /* the container's root on the host */
	gid_t gid;
};

static void ct_ns_close(struct ct_ns *ns)
{
	if (ns->mntns >= 0)
		close(ns->mntns);
	if (ns->userns >= 0)
		close(ns->userns);
}

static int ct_ns_open(pid_t pid, const struct runtime_spec *spec, struct ct_ns *ns,
		      struct berth_error *err)
{
	uint32_t uid = 0, gid = 0;
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/ns/mnt", (int)pid);
	ns->mntns = open(path, O_RDONLY | O_CLOEXEC);
	if (ns->mntns < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "opening %s: %m", path);
	if (!spec->privileged) {
		snprintf(path, sizeof(path), "/proc/%d/ns/user", (int)pid);
		ns->userns = open(path, O_RDONLY | O_CLOEXEC);
		if (ns->userns < 0)
			return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "opening %s: %m",
					       path);
		runtime_idmap_to_host(spec->uid_map, spec->n_uid_map, 0, &uid);
		runtime_idmap_to_host(spec->gid_map, spec->n_gid_map, 0, &gid);
	}
	ns->uid = uid;
	ns->gid = gid;
	return 0;
}

/* Unmount the spec's entries for the targets of `gone` and drop them from the spec. */
static int unplug(struct runtime_spec *spec, const struct ct_ns *ns, const json_t *gone,
		  struct berth_error *err)
{
	size_t kept = 0;
	int r = 0;

	for (size_t i = 0; i < spec->n_mounts; i++) {
		struct runtime_mount *m = &spec->mounts[i];
		bool drop = false;
		const char *dname;
		json_t *dev;

		json_object_foreach((json_t *)gone, dname, dev)
			drop |= streq(m->target, berth_json_string(dev, "path"));
		if (drop && r >= 0)
			r = runtime_mount_detach(ns->mntns, m, err);
		if (drop && r >= 0) {
			mount_release(m);
			continue;
		}
		spec->mounts[kept++] = *m;
	}
	spec->n_mounts = kept;
	return r;
}

/* Mount each device of `added` inside and record it in the spec. */
static int plug(struct berth_daemon *d, const char *project, struct runtime_spec *spec,
		const struct ct_ns *ns, const json_t *added, struct berth_error *err)
{
	const char *dname;
	json_t *dev;

	json_object_foreach((json_t *)added, dname, dev) {
		struct runtime_mount m = {0};
		_cleanup_close_ int tree = -EBADF;
		int r = disk_mount(d, project, spec, ns->userns, dname, dev, &m, err);

		if (r < 0)
			return r; /* its message names the device */
		r = runtime_idmap_open_tree(m.source, m.idmap ? ns->userns : -EBADF,
					    runtime_tree_attrs(spec, m.ro), &tree, err);
		if (r >= 0)
			r = runtime_mount_attach(ns->mntns, tree, &m, ns->uid, ns->gid, err);
		if (r >= 0)
			r = mounts_push(spec, &m);
		mount_release(&m);
		if (r < 0)
			return berth_error_wrap(err, r, "Failed to add device \"%s\"", dname);
	}
	return 0;
}

int disk_hotplug(struct berth_daemon *d, const char *project, pid_t pid, const json_t *before,
		 const json_t *after, struct berth_error *err)
{
	const char *name = berth_json_string(after, "name");
	json_auto_t *gone = container_devices_diff(before, after, is_disk_mount);
	json_auto_t *added = container_devices_diff(after, before, is_disk_mount);
	_cleanup_(runtime_spec_freep) struct runtime_spec *spec = NULL;
	_cleanup_free_ char *specpath = NULL;
	struct ct_ns ns = {.mntns = -EBADF, .userns = -EBADF};
	int r, w;

	if (!gone || !added)
		return -ENOMEM;
	if (!json_object_size(gone) && !json_object_size(added))
		return 0;
	if (pid <= 0)
		return 0; /* it stopped meanwhile: the next start mounts them */
	specpath = container_spec_path(d, project, name);
	if (!specpath)
		return -ENOMEM;
	r = runtime_spec_load(specpath, &spec, err);
	if (r < 0)
		return r;
	r = ct_ns_open(pid, spec, &ns, err);
	if (r >= 0)
		r = unplug(spec, &ns, gone, err);
	if (r >= 0)
		r = plug(d, project, spec, &ns, added, err);
	ct_ns_close(&ns);
	/* What is mounted now, whatever failed, so that a restart matches it. */
	w = runtime_spec_write(specpath, spec);
	if (w < 0 && r >= 0)
		r = berth_error_set(err, w, BERTH_ERR_INTERNAL, "rewriting the spec: %s",
				    strerror(-w));
	return r;
}
