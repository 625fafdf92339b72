/* daemon/instance/disk.c: disk devices of containers (see disk.h). */
#include "daemon/instance/disk.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/db/db.h"
#include "daemon/instance/container.h"
#include "daemon/runtime/idmap.h"
#include "daemon/runtime/mounts.h"
#include "lib/json.h"
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

/* The host path of the custom volume `source` on pool `pool`. */
static int volume_source(struct berth_daemon *d, const char *project, const char *pool,
			 const char *source, char **ret, struct berth_error *err)
{
	json_auto_t *pobj = NULL;
	_cleanup_(storage_pool_freep) struct storage_pool *sp = NULL;
	_cleanup_free_ char *owner = NULL; /* the project whose volumes this one sees */
	_cleanup_free_ char *disk = NULL;
	struct storage_vol vol = {STORAGE_VOL_CUSTOM, NULL};
	int r = db_project_feature_project(project, "features.storage.volumes", &owner, err);

	if (r < 0)
		return r;
	vol.name = disk = storage_vol_disk_name(owner, source);
	if (!disk)
		return -ENOMEM;
	r = db_pool_get(pool, &pobj, err);
	if (r >= 0)
		r = storage_pool_new(d->dir, pobj, &sp, err);
	if (r >= 0)
		r = storage_volume_path(sp, &vol, NULL, ret);
	return r;
}

/* The mount of disk device `dname` for a container (privileged or not). */
static int disk_mount(struct berth_daemon *d, const char *project, bool privileged,
		      const char *dname, const json_t *dev, struct runtime_mount *ret,
		      struct berth_error *err)
{
	const char *source = berth_json_string(dev, "source");
	const char *pool = berth_json_string(dev, "pool");
	_cleanup_free_ char *src = NULL, *target = NULL;
	struct stat st;
	int r = 0;

	if (pool && *pool)
		r = volume_source(d, project, pool, source, &src, err);
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
	target = strdup(berth_json_string(dev, "path"));
	if (!target)
		return -ENOMEM;
	*ret = (struct runtime_mount){
		.source = TAKE_PTR(src),
		.target = TAKE_PTR(target),
		.ro = is_true(berth_json_string(dev, "readonly")),
		.create_dir = S_ISDIR(st.st_mode),
		.create_file = !S_ISDIR(st.st_mode),
		/* a custom volume holds the container's own ids; a host path only with shift */
		.idmap = !privileged &&
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

		if (!is_disk_mount(dev))
			continue;
		r = disk_mount(d, project, spec->privileged, dname, dev, &m, err);
		if (r >= 0 && (r = mounts_push(spec, &m)) < 0)
			mount_release(&m);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- hot-plug ---- */

/* Disk devices of `a` that `b` lacks or has differently (an object devname -> dev). */
static json_t *disk_diff(const json_t *a, const json_t *b)
{
	const json_t *bdevs = json_object_get(b, "expanded_devices");
	json_t *out = json_object();
	const char *dname;
	json_t *dev;

	json_object_foreach(json_object_get(a, "expanded_devices"), dname, dev)
		if (out && is_disk_mount(dev) && !json_equal(dev, json_object_get(bdevs, dname)))
			json_object_set(out, dname, dev);
	return out;
}

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
		int r = disk_mount(d, project, spec->privileged, dname, dev, &m, err);

		if (r < 0)
			return r; /* its message names the device */
		r = runtime_idmap_open_tree(m.source, m.idmap ? ns->userns : -EBADF, m.ro, &tree,
					    err);
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

int disk_hotplug(struct berth_daemon *d, const char *project, const json_t *before,
		 const json_t *after, struct berth_error *err)
{
	const char *name = berth_json_string(after, "name");
	json_auto_t *gone = disk_diff(before, after), *added = disk_diff(after, before);
	_cleanup_(runtime_spec_freep) struct runtime_spec *spec = NULL;
	_cleanup_free_ char *rundir = NULL, *specpath = NULL;
	struct ct_ns ns = {.mntns = -EBADF, .userns = -EBADF};
	pid_t pid = 0;
	int r, w;

	if (!gone || !added)
		return -ENOMEM;
	if (!json_object_size(gone) && !json_object_size(added))
		return 0;
	if (container_power(d, project, name, &pid) == CONTAINER_STOPPED || pid <= 0)
		return 0; /* it stopped meanwhile: the next start mounts them */
	rundir = container_rundir(d, project, name);
	specpath = rundir ? berth_strdup_printf("%s/spec", rundir) : NULL;
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
