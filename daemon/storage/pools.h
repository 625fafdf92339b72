/* daemon/storage/pools.h: every storage pool mounted at start (and reconciled with the
 * database), unmounted at stop. */
#pragma once

#include <stdbool.h>

struct db;

/* Mount (or unmount) every pool in the database, logging each failure; returns the last
 * failure or 0. Mounting first removes pools left without a row, then reconciles each
 * pool's custom volumes, instance volumes, their snapshots and image volumes with the
 * database (removes what has no row, finishes or undoes interrupted restores and
 * renames). Main thread, after db_open() / after the loop stopped. */
int storage_pools_mount(struct db *db, const char *state_dir, bool mount);
