/* daemon/warnings.h: what berthd wants an admin to know, recorded as LXD's warnings
 * (GET /1.0/warnings, `lxc warning list`) instead of only logged. A warning is raised
 * when its condition is seen (idempotently: raising it again moves its count and
 * last_seen_at) and resolved when the condition is gone; acknowledging and deleting are
 * the admin's (daemon/api/warnings.c). Type names are LXD's where LXD has the type. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

struct berth_daemon;
struct db;

enum warning_type {
	WARNING_APPARMOR_UNAVAILABLE, /* "AppArmor support has been disabled", low */
	WARNING_INSTANCE_TYPE,	      /* "Instance type not operational", low (VMs: no KVM) */
	WARNING_NETWORK_UNAVAILABLE,  /* "Network unavailable", high */
	WARNING_POOL_UNAVAILABLE,     /* "Storage pool unavailable", high */
	WARNING_SNAPSHOT_FAILED,      /* berth's own: a scheduled snapshot failed, moderate */
	WARNING_POOL_LOW_SPACE, /* berth's own: a pool's filesystem is nearly full, moderate */
	WARNING_TYPE_MAX,
};

/* Below this share of free space on its filesystem, a pool is "nearly full". */
#define WARNINGS_POOL_FREE_PERCENT 10
/* Resolved warnings are deleted this long after they were resolved (LXD: a day). */
#define WARNINGS_PRUNE_AFTER_S (24 * 3600)

/* LXD's name of the type ("Network unavailable"). */
const char *warnings_type_name(enum warning_type type);

/* Record a warning of `type` about `entity_url` (NULL: none) in `project` (NULL: the
 * host's), its message formatted from `fmt`, and log the message once at warning level.
 * Returns 1 when it is new, 0 when it was recorded before, -errno when recording failed
 * (logged). Any thread. */
int warnings_raise(struct db *db, enum warning_type type, const char *project,
		   const char *entity_url, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
/* The condition of a warning is gone: mark it resolved (logged at info when it was not
 * yet). 1 when it was, 0 when there was nothing to resolve, -errno (logged). Cheap when
 * there is nothing: a read, no write. Any thread. */
int warnings_resolve(struct db *db, enum warning_type type, const char *project,
		     const char *entity_url);
/* "/1.0/KIND/NAME", with "?project=P" outside "default" (NULL: "default"). New string or
 * NULL. */
char *warnings_entity_url(const char *kind, const char *name, const char *project);

/* At start: raise or resolve the host's warnings from the facts GET /1.0 shows
 * (`environment`: no AppArmor, VMs without KVM or without QEMU). */
void warnings_host(struct db *db, const json_t *environment);
/* Raise or resolve each pool's low-space warning from its filesystem's free space. Returns
 * how many pools are below WARNINGS_POOL_FREE_PERCENT, or -errno. Blocks (statvfs, SQLite):
 * off the loop. */
int warnings_check_pools(struct db *db, const char *state_dir);
/* Queue warnings_check_pools and the pruning of resolved warnings on the loop's thread
 * pool (the minute tick calls it). */
void warnings_tick(struct berth_daemon *d);
