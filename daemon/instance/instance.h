/* daemon/instance/instance.h: the instance domain layer. The API handlers (api/instances.c)
 * parse a request, fill a struct instance_job with what it asks, run the checks below
 * (before any operation exists, so bad input fails at once with the right status), then
 * hand the job to an operation whose body is one of the *_run functions. Everything that
 * differs by instance type goes through the job's driver (driver.h).
 *
 * The *_run functions have operation_run_fn's shape: blocking (a worker), the job in
 * `data`, `op` (may be NULL: a synchronous call) only for progress metadata. Each emits
 * its lifecycle event on success and, on failure, leaves what was there before: no row,
 * no volume of a failed creation. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "daemon/instance/volume.h"
#include "daemon/daemon.h"
#include "daemon/instance/driver.h"
#include "daemon/operation.h"
#include "lib/error.h"

struct instance_job {
	struct berth_daemon *d;
	const struct instance_driver *drv; /* the instance's type; NULL: a record of a type
					    * without a driver (never ran) */
	char *project;
	char *name;
	char *new_name;
	json_t *object;		  /* owned: what to create or store */
	struct operation *op;	  /* borrowed while running: for progress */
	char *notice;		  /* owned: what an update of a running instance applies later */
	char *fingerprint;	  /* owned: source image (create from an image) */
	char *pool_name;	  /* owned: pool of the new root volume */
	char *src_name;		  /* owned: copy source instance */
	char *src_snap;		  /* owned: copy source snapshot, or NULL */
	char *restore;		  /* owned: snapshot to restore */
	json_t *snapshots;	  /* owned: snapshot rows a copy records */
	struct instance_volume v; /* the instance's own root volume (rename, delete, restore) */
	char *action;		  /* owned: state change: start, stop, restart, freeze, unfreeze */
	int timeout;		  /* state change: seconds, < 0 the driver's default */
	bool force;		  /* state change: kill rather than stop cleanly */
	int last_pct;
	bool done;
	json_t *pull_source; /* owned: create from an image on a server: the request's source */
	bool arch_given;     /* create from an image: the request named an architecture */
	json_t *migration;   /* owned: the source of a migration (migrate_target.h) */
};

/* A job on instance `name` of `project` (copied), of type `drv`. NULL when out of memory. */
struct instance_job *instance_job_new(struct berth_daemon *d, const char *project, const char *name,
				      const struct instance_driver *drv);
/* Takes a struct instance_job (NULL: nothing). For operation_spec's free_data. */
void instance_job_free(void *j);

/* ---- checks (before the operation) ---- */

/* Each profile name in the array `profiles` exists for instances of `project`: 400
 * "Profile \"NAME\" doesn't exist" otherwise. */
int instance_check_profiles(struct db *db, const char *project, const json_t *profiles,
			    struct berth_error *err);
/* Creation from an image (source type "image", LXD's fields alias/fingerprint/server):
 * j->object gets the image's properties as image.* config keys, volatile.base_image and
 * its architecture when `body` names none; j->fingerprint and j->pool_name are set. */
int instance_prepare_image(struct instance_job *j, const json_t *body, const json_t *source,
			   struct berth_error *err);
/* Creation as a copy (source type "copy", "source": "c1" or "c1/snap"): j->object starts
 * from the source's config and devices; j->src_name, j->src_snap, j->snapshots set. */
int instance_prepare_copy(struct instance_job *j, const json_t *body, const json_t *source,
			  struct berth_error *err);
/* j->pool_name: the pool of j->object's root disk device, expanded with its profiles (400
 * when there is none or the pool does not exist). */
int instance_job_root_pool(struct instance_job *j, struct berth_error *err);
/* Creation of j->name (j->object built): the profiles it names exist (400) and no
 * instance has that name (409 "Instance \"NAME\" already exists"). */
int instance_create_check(const struct instance_job *j, struct berth_error *err);
/* Rename to j->new_name: the instance does not run (400) and the name is free (409). */
int instance_rename_check(const struct instance_job *j, struct berth_error *err);
/* Delete of stored instance `inst`: it does not run (400 pointing at --force) and
 * security.protection.delete is off (400). */
int instance_delete_check(const struct instance_job *j, const json_t *inst,
			  struct berth_error *err);
/* volatile.* keys are the server's: copy those of `cur` that `next`'s config lacks. */
void instance_keep_volatile(const json_t *cur, json_t *next);
/* A state change `action` makes sense now: 400 "The instance is already running" ... */
int instance_state_check(const struct instance_job *j, const char *action, struct berth_error *err);

/* ---- operation bodies ---- */

/* Record j->object (no root volume). */
int instance_create_run(struct operation *op, void *data, struct berth_error *err);
/* Root volume from image j->fingerprint on pool j->pool_name, then the rows. */
int instance_create_image_run(struct operation *op, void *data, struct berth_error *err);
/* Root volume copied from j->src_name (its snapshot j->src_snap), then the rows. */
int instance_copy_run(struct operation *op, void *data, struct berth_error *err);
/* Store j->object in place of the instance, applied live when it runs; j->notice tells
 * of what waits for the next start. */
int instance_update_run(struct operation *op, void *data, struct berth_error *err);
/* Restore snapshot j->restore (volume j->v, opened by the caller), disk then config. */
int instance_restore_run(struct operation *op, void *data, struct berth_error *err);
/* Rename to j->new_name (volume j->v opened by the caller; rows and volume move together). */
int instance_rename_run(struct operation *op, void *data, struct berth_error *err);
/* Delete rows, then the volume j->v (opened by the caller) and the leases of its NICs. */
int instance_delete_run(struct operation *op, void *data, struct berth_error *err);
/* j->action through the driver. */
int instance_state_run(struct operation *op, void *data, struct berth_error *err);

/* ---- state and live changes ---- */

/* The InstanceState object of stored instance `inst` (its status says Stopped: a stopped
 * state without asking the runtime). New reference. Blocking. */
json_t *instance_state(struct berth_daemon *d, const char *project, const json_t *inst);
/* A virtual machine whose record says it runs while its QEMU is gone (the guest powered
 * itself off: nothing tells berthd) is recorded Stopped, and `inst`'s status with it.
 * Containers' monitors report their ends themselves: nothing asked. Blocking. */
void instance_status_refresh(struct berth_daemon *d, const char *project, json_t *inst);
/* Whether the runtime of stored instance `inst` of `project` runs (or is frozen). */
bool instance_running(struct berth_daemon *d, const char *project, const json_t *inst);
/* The running instance's limits follow a profile change from expanded `before` to
 * `after`, through its driver. */
int instance_update_limits(struct berth_daemon *d, const char *project, const json_t *before,
			   const json_t *after, struct berth_error *err);
char *instance_next_start_notice(struct berth_daemon *d, const char *project, const json_t *before,
				 const json_t *after);
/* A profile's devices may have changed: every running instance that uses it has the
 * devices served from outside it follow (same-named profiles of other projects included:
 * a sync that changes nothing keeps every helper). Failures are logged. Blocking. */
void instance_profile_updated(struct berth_daemon *d, const char *profile);
