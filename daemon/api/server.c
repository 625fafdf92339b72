/* daemon/api/server.c: GET / and GET/PUT/PATCH /1.0 (the Server object). */
#include <string.h>

#include "daemon/api/api.h"
#include "daemon/cluster.h"
#include "daemon/config_keys.h"
#include "daemon/db/db.h"
#include "daemon/https.h"
#include "daemon/trust.h"
#include "lib/json.h"
#include "lib/tls.h"
#include "lib/util.h"

/* Only what this berthd really implements (LXD-API.md §10): the client trusts it. */
static const char *const api_extensions[] = {
	"etag",
	"patch",
	"entity_description",
	"container_last_used_at",
	"profile_usedby",
	"operation_description",
	"event_lifecycle",
	"event_location",
	"event_project",
	"projects",
	"projects_limits", /* projects.c, daemon/project/limits.c */
	"projects_limits_instances",
	"projects_limits_disk",
	"project_usage",
	"instances",
	"container_full",
	"instance_get_full",
	"instance_all_projects",
	"image_compression_algorithm", /* instance/publish.c: compression_algorithm */
	"api_filtering",
	"kernel_features",
	"firewall_driver",
	"api_os",
	"server_supported_storage_drivers",
	"storage",
	"storage_api_volume_rename",
	"storage_api_volume_snapshots",
	"storage_api_local_volume_handling",
	"storage_volume_state",
	"resources",
	"resources_v2",
	"container_only_migration",
	"snapshot_expiry",
	"snapshot_expiry_creation",
	"snapshot_scheduling",
	/* instance_backups.c */
	"container_backup",
	"backup_compression",
	"backup_compression_algorithm",
	/* instance_files.c */
	"directory_manipulation",
	"file_delete",
	"file_append",
	"file_symlinks",
	"file_get_symlink",
	"instance_file_head",
	/* instance_exec.c */
	"console",
	"container_exec_signal_handling",
	"container_exec_user_group_cwd",
	"container_exec_recording",
	/* networks.c */
	"network",
	"network_state",
	"network_leases",
	"network_leases_location",
	"network_state_bond_bridge",
	/* instance/proxy.c (not unix_priv_drop nor proxy_haproxy_protocol) */
	"proxy_unix",
	"proxy_udp",
	"proxy_tcp_udp_multi_port_handling",
	"proxy_unix_dac_properties",
	"proxy_nat",
	/* warnings.c */
	"warnings",
	/* instance/backup_import.c: POST /1.0/instances with a backup tarball (the import
	 * half of container_backup; `lxc import` needs the name) */
	"container_backup_override_pool",
	"backup_override_name",
	/* certificates.c, daemon/https.c, daemon/trust.c */
	"certificate_update",
	"certificate_token",
	"certificate_project",
	/* instance/migrate_target.c: refresh of a migrated instance (lxc copy --refresh) */
	"container_incremental_copy",
	/* instance/migrate_source.c: a source that pushes to the target's operation given in
	 * "target" (lxc copy --mode push asks the source for both; berth's own target takes
	 * pull mode only) */
	"container_push",
	"container_push_target",
	/* metrics.c, daemon/instance/metrics.c: GET /1.0/metrics, CPU time in seconds */
	"metrics",
	"metrics_cpu_seconds",
	/* instance/migrate_volume.c: custom volumes between hosts (lxc storage volume copy
	 * a:pool/v b:pool/v), pull mode on the target, either on the source */
	"storage_api_remote_volume_handling",
	/* instance/migrate_volume.c: refresh of a volume copied from another host (lxc
	 * storage volume copy --refresh a:p/v b:p/v); within one server it is refused (400) */
	"custom_volume_refresh",
	/* cluster.c, daemon/cluster.c: enabling clustering (a one-member cluster) and
	 * describing its members with their roles and architecture */
	"clustering",
	"clustering_roles",
	"clustering_architecture",
};

static int server_config_etag(json_t *config, char **ret)
{
	*ret = api_etag(config);
	return *ret ? 0 : -ENOMEM;
}

static int get_root(struct api_request *req, struct api_response *resp, struct berth_error *err)
{
	return api_sync(resp, json_pack("[s]", "/1.0"));
}

static json_t *extensions(void)
{
	json_t *ext = json_array();

	for (size_t i = 0; ext && i < ARRAY_SIZE(api_extensions); i++)
		json_array_append_new(ext, json_string(api_extensions[i]));
	return ext;
}

/* What LXD shows a client it does not trust (api.ServerUntrusted). */
static int get_server_untrusted(struct api_response *resp)
{
	return api_sync(resp, json_pack("{s:o, s:s, s:s, s:s, s:b, s:[s]}", "api_extensions",
					extensions(), "api_status", "stable", "api_version", "1.0",
					"auth", "untrusted", "public", 0, "auth_methods", "tls"));
}

/* The config as clients see it: the trust password's hash is shown as `true`. */
static void config_hide_password(json_t *config)
{
	if (json_object_get(config, "core.trust_password"))
		json_object_set_new(config, "core.trust_password", json_true());
}

static void environment_add_https(struct api_request *req, json_t *env)
{
	struct https *h = req->d->https;

	json_object_set_new(env, "addresses", https_addresses(h));
	json_object_set_new(env, "certificate", json_string(https_certificate(h)));
	json_object_set_new(env, "certificate_fingerprint", json_string(https_fingerprint(h)));
}

static int get_server(struct api_request *req, struct api_response *resp, struct berth_error *err)
{
	json_auto_t *config = NULL;
	json_t *ext, *env;
	int r;

	if (req->client && (!req->client->trusted || req->client->metrics))
		return get_server_untrusted(resp);
	r = db_server_config_get(req->d->db, &config, err);
	if (r < 0)
		return r;
	ext = extensions();
	env = json_deep_copy(req->d->environment);
	json_object_set_new(env, "project", json_string(req->project));
	environment_add_https(req, env);
	if (cluster_enabled(req->d)) {
		json_object_set_new(env, "server_clustered", json_true());
		json_object_set_new(env, "server_name", json_string(cluster_server_name(req->d)));
	}
	r = server_config_etag(config, &resp->etag);
	if (r < 0) {
		json_decref(ext);
		json_decref(env);
		return r;
	}
	config_hide_password(config);
	return api_sync(resp, json_pack("{s:O, s:o, s:s, s:s, s:s, s:b, s:[s], s:o}", "config",
					config, "api_extensions", ext, "api_status", "stable",
					"api_version", "1.0", "auth", "trusted", "public", 0,
					"auth_methods", "tls", "environment", env));
}

/* A new core.trust_password is stored as LXD stores it: salted and hashed (scrypt). */
static int hash_password(json_t *next, const json_t *config, struct berth_error *err)
{
	const char *pw = berth_json_string(config, "core.trust_password");
	_cleanup_free_ char *hash = NULL;
	int r;

	if (!pw || !*pw)
		return 0;
	r = berth_tls_password_hash(pw, &hash);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL,
				       "Cannot hash the trust password");
	json_object_set_new(next, "core.trust_password", json_string(hash));
	return 0;
}

/* Start, move or stop the HTTPS listener before the change is recorded: a refused
 * address changes nothing. */
static int apply_https_address(struct api_request *req, const json_t *current, const json_t *next,
			       struct berth_error *err)
{
	const char *from = berth_json_string(current, "core.https_address");
	const char *to = berth_json_string(next, "core.https_address");

	if (streq(from ? from : "", to ? to : ""))
		return 0;
	/* Stopped from over HTTPS, the answer still goes out: a listener that closes lets
	 * the requests it is answering finish. */
	return https_set_address(req->d->https, to ? to : "", err);
}

/* The same for the metrics listener (daemon/https.h). */
static int apply_metrics_address(struct api_request *req, const json_t *current, const json_t *next,
				 struct berth_error *err)
{
	const char *from = berth_json_string(current, "core.metrics_address");
	const char *to = berth_json_string(next, "core.metrics_address");

	if (streq(from ? from : "", to ? to : ""))
		return 0;
	return https_set_address(req->d->metrics_https, to ? to : "", err);
}

static int update_server(struct api_request *req, struct api_response *resp,
			 struct berth_error *err, bool patch)
{
	json_auto_t *current = NULL;
	json_auto_t *next = NULL;
	_cleanup_free_ char *etag = NULL;
	json_t *config;
	const char *key;
	json_t *v;
	int r;

	r = api_require_body(req, err);
	if (r < 0)
		return r;
	config = json_object_get(req->body, "config");
	/* GET shows the password as `true`; a PUT of that config back keeps it. */
	if (json_is_true(json_object_get(config, "core.trust_password")))
		json_object_del(config, "core.trust_password");
	if (config && !json_is_null(config)) {
		r = berth_json_check_kind(config, BERTH_JSON_STRING_MAP, "config", err);
		if (r < 0)
			return r;
	}
	r = config_check_all(CONFIG_SERVER, config, err);
	if (r < 0)
		return r;
	r = db_server_config_get(req->d->db, &current, err);
	if (r < 0)
		return r;
	r = server_config_etag(current, &etag);
	if (r < 0)
		return r;
	r = api_check_etag(req, etag, err);
	if (r < 0)
		return r;
	next = patch ? json_deep_copy(current) : json_object();
	if (!patch && json_object_get(current, "core.trust_password") &&
	    !json_object_get(req->body ? json_object_get(req->body, "config") : NULL,
			     "core.trust_password"))
		json_object_set(next, "core.trust_password",
				json_object_get(current, "core.trust_password"));
	if (config)
		json_object_foreach(config, key, v) {
			if (json_string_value(v)[0] == '\0')
				json_object_del(next, key);
			else
				json_object_set(next, key, v);
		}
	{
		const char *expiry = berth_json_string(next, "core.remote_token_expiry");
		uint64_t secs;

		if (expiry && api_parse_expiry(expiry, &secs) < 0)
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Invalid value for configuration key "
					       "\"core.remote_token_expiry\": \"%s\" must be a "
					       "duration such as 30M, 1H or 2d",
					       expiry);
	}
	r = hash_password(next, config, err);
	if (r < 0)
		return r;
	r = apply_https_address(req, current, next, err);
	if (r < 0)
		return r;
	r = apply_metrics_address(req, current, next, err);
	if (r >= 0)
		r = db_server_config_replace(req->d->db, next, err);
	if (r < 0) {
		https_set_address(req->d->https, berth_json_string(current, "core.https_address"),
				  NULL);
		https_set_address(req->d->metrics_https,
				  berth_json_string(current, "core.metrics_address"), NULL);
		return r;
	}
	events_lifecycle(req->d->events, NULL, "config-updated", "/1.0", NULL);
	return api_sync(resp, NULL);
}

static int put_server(struct api_request *req, struct api_response *resp, struct berth_error *err)
{
	return update_server(req, resp, err, false);
}

static int patch_server(struct api_request *req, struct api_response *resp, struct berth_error *err)
{
	return update_server(req, resp, err, true);
}

const struct api_route api_server_routes[] = {
	{"GET", "/", get_root, NULL},
	{"GET", "/1.0", get_server, NULL},
	{"PUT", "/1.0", put_server, NULL},
	{"PATCH", "/1.0", patch_server, NULL},
	{0},
};
