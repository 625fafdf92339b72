/* cli/preseed.h: LXD's init preseed document (what `lxd init --dump` prints and
 * `lxd init --preseed` reads), applied to and dumped from a server through its API:
 *
 *   config: {key: value}                        server config, merged
 *   networks: [{name, type, description, config, project}]
 *   storage_pools: [{name, driver, description, config}]
 *   profiles: [{name, description, config, devices}]
 *   projects: [{name, description, config}]
 *
 * Applying is idempotent: a missing object is created; an existing one gets the
 * document's config keys (and devices, by name) merged in and its description when one is
 * given, and is left alone when that changes nothing. A conflict (an existing pool of
 * another driver, a network of another type, a field of the wrong kind) is refused before
 * anything changes; a server refusal half-way undoes what the run did (objects created
 * are deleted, updated ones put back), so nothing is half-applied. */
#pragma once

#include <jansson.h>

#include "cli/cli.h"

/* Apply `doc` (an object parsed from the YAML). */
int preseed_apply(struct cli_ctx *ctx, const json_t *doc, struct berth_error *err);
/* The server's current state as a preseed document (new reference in *ret). */
int preseed_dump(struct cli_ctx *ctx, json_t **ret, struct berth_error *err);
