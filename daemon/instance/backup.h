/* daemon/instance/backup.h: instance backups (LXD's /1.0/instances/NAME/backups): the
 * store of finished backups, their names, renames, deletes and expiry (backup.c), and the
 * making of one: a tarball in LXD 5.0's layout (backup_create.c).
 *
 * Store: $BERTH_DIR/backups/instances/<instance>/ for the default project and
 * .../<project>_<instance>/ for the others (LXD's $LXD_DIR/backups/instances/...), one
 * file per backup named as the backup (the tarball, mode 0600) and beside it
 * ".<name>.json" with what the API shows of it ({"name", "created_at", "expires_at",
 * "instance_only", "optimized_storage", "compression_algorithm"}). A backup is listed
 * when both exist. A new tarball is written to an unnamed file (O_TMPFILE) and linked
 * under its name only once complete, so a failure, a cancel or a crash never leaves half
 * a backup; a tarball whose record is missing (a crash between the two) is removed when
 * berthd starts. Names starting with '.' are refused, so the two never collide.
 *
 * Expired backups (expires_at before now) are deleted by backups_prune(), run at start and
 * by the minute tick, as LXD's hourly task does. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "daemon/daemon.h"
#include "daemon/operation.h"
#include "lib/error.h"

/* The zero time that LXD shows for "never expires". */
#define BACKUP_NEVER "0001-01-01T00:00:00Z"

struct backup_job {
	struct berth_daemon *d; /* borrowed */
	char *project;
	char *instance;
	char *name;
	char *new_name;	   /* rename */
	char *expires_at;  /* create: UTC RFC 3339, or NULL for never */
	char *compression; /* create: "gzip", "xz", "zstd", "bzip2", "lzma" or "none" */
	bool instance_only;
	bool optimized;
	bool optimized_asked; /* optimized_storage was asked (the pool may not do it) */
};
struct backup_job *backup_job_new(struct berth_daemon *d, const char *project, const char *instance,
				  const char *name);
void backup_job_free(void *j);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct backup_job *, backup_job_free)

/* "/1.0/instances/INSTANCE/backups/NAME" (+ "?project=P" outside "default"). */
char *backup_url(const char *project, const char *instance, const char *name);

/* The backups of `project`/`instance` as the API renders them (InstanceBackup objects),
 * oldest first. An instance without backups has an empty list. */
int backup_list(struct berth_daemon *d, const char *project, const char *instance, json_t **ret,
		struct berth_error *err);
/* One backup; -ENOENT (404 "Backup not found") when there is none of that name. */
int backup_get(struct berth_daemon *d, const char *project, const char *instance, const char *name,
	       json_t **ret, struct berth_error *err);
/* The tarball of a backup, opened read-only, and its size. */
int backup_open(struct berth_daemon *d, const char *project, const char *instance, const char *name,
		int *ret_fd, uint64_t *ret_size, struct berth_error *err);

/* LXD's checks of a backup name: not empty, no '/'; berth's: not starting with '.'. */
int backup_name_check(const char *name, struct berth_error *err);
/* The name LXD gives a backup created without one: "backup<N>", N one more than the
 * highest of the existing "backup<N>" (0 when there is none). New string. */
char *backup_next_name(const json_t *list);

/* Fill the create options of `j` from LXD's InstanceBackupsPost `body` (name already
 * set): expires_at, instance_only (or container_only), optimized_storage, and the
 * compression (the body's, else the project's then the server's
 * backups.compression_algorithm, else gzip). -EINVAL (400) for what LXD refuses. */
int backup_prepare(struct backup_job *j, const json_t *body, struct berth_error *err);

/* Operation bodies over a struct backup_job. */
int backup_create_run(struct operation *op, void *data, struct berth_error *err);
int backup_rename_run(struct operation *op, void *data, struct berth_error *err);
int backup_delete_run(struct operation *op, void *data, struct berth_error *err);

/* The backups of an instance that is deleted (all of them) or renamed (they follow it).
 * Failures are logged; a delete goes on with the rest. */
void backup_instance_deleted(struct berth_daemon *d, const char *project, const char *instance);
int backup_instance_renamed(struct berth_daemon *d, const char *project, const char *instance,
			    const char *new_name, struct berth_error *err);

/* Delete every expired backup (and, when `at_start`, tarballs a crash left without their
 * record). Returns how many backups went. Blocking: a worker thread or before serving. */
int backups_prune(struct berth_daemon *d, bool at_start);
/* Loop thread: backups_prune() on a worker thread (the minute tick). */
void backups_tick(struct berth_daemon *d);

/* ---- backup_create.c ---- */

/* Write the tarball of j's instance into `out` (an empty file): LXD's layout, see
 * backup_create.c. Refuses a virtual machine (-EOPNOTSUPP). Leaves nothing else behind. */
int backup_write(struct operation *op, struct backup_job *j, int out, struct berth_error *err);
/* At start: what a crash mid-backup left, the private directories in `spool_dir` and
 * the temporary snapshots of instances' volumes. Failures are logged. */
void backup_leftovers_remove(struct berth_daemon *d, const char *spool_dir);
