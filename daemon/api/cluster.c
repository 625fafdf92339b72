/* daemon/api/cluster.c: /1.0/cluster and /1.0/cluster/members, as LXD 5.0 serves them,
 * for what berth's clustering does so far (daemon/cluster.h): enabling it on a
 * standalone server (PUT {"server_name": NAME, "enabled": true}, what `lxc cluster
 * enable NAME` sends) and describing the one member. Joining and disabling are refused
 * with a message that says so. */
#include <string.h>

#include "daemon/api/api.h"
#include "daemon/cluster.h"
#include "lib/json.h"
#include "lib/util.h"

static int get_cluster(struct api_request *req, struct api_response *resp, struct berth_error *err)
{
	(void)err;
	return api_sync(resp,
			json_pack("{s:s, s:b, s:[]}", "server_name", cluster_server_name(req->d),
				  "enabled", cluster_enabled(req->d), "member_config"));
}

/* The enabling is done before the answer: the operation only tells the client so. */
static int run_cluster_enabled(struct operation *op, void *data, struct berth_error *err)
{
	(void)op;
	(void)data;
	(void)err;
	return 0;
}

static int put_cluster(struct api_request *req, struct api_response *resp, struct berth_error *err)
{
	const char *name = berth_json_string(req->body, "server_name");
	const char *cert = berth_json_string(req->body, "cluster_certificate");
	const char *join = berth_json_string(req->body, "cluster_address");
	int r;

	r = api_require_body(req, err);
	if (r < 0)
		return r;
	if (!berth_json_bool(req->body, "enabled", false))
		return berth_error_set(err, -EOPNOTSUPP, BERTH_ERR_BAD_REQUEST,
				       "Disabling clustering is not supported by berth yet");
	/* LXD 5.0 joins when a cluster_address is given, bootstraps otherwise. */
	if ((join && *join) || (cert && *cert))
		return berth_error_set(err, -EOPNOTSUPP, BERTH_ERR_BAD_REQUEST,
				       "Joining a cluster is not supported by berth yet");
	if (cluster_enabled(req->d))
		return berth_error_set(err, -EEXIST, BERTH_ERR_BAD_REQUEST,
				       "This server is already clustered");
	if (!name || !*name)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "No server name provided");
	r = berth_name_check_entity("cluster member name", name, err);
	if (r < 0)
		return r;
	r = cluster_enable(req->d, name, err);
	if (r < 0)
		return r;
	return api_async(req, resp, "Creating bootstrap node", json_pack("{s:[]}", "cluster"),
			 run_cluster_enabled, NULL, NULL, err);
}

static int list_members(struct api_request *req, struct api_response *resp, struct berth_error *err)
{
	json_auto_t *members = NULL;
	json_t *out, *m;
	size_t i;
	int r;

	r = cluster_members(req->d, &members, err);
	if (r < 0)
		return r;
	if (req->recursion > 0)
		return api_sync(resp, json_incref(members));
	out = json_array();
	if (!out)
		return -ENOMEM;
	json_array_foreach(members, i, m) {
		char *url = api_url("cluster/members", berth_json_string(m, "server_name"), NULL);

		if (!url || json_array_append_new(out, json_string(url)) < 0) {
			free(url);
			json_decref(out);
			return -ENOMEM;
		}
		free(url);
	}
	return api_sync(resp, out);
}

static int get_member(struct api_request *req, struct api_response *resp, struct berth_error *err)
{
	json_auto_t *members = NULL;
	json_t *m;
	size_t i;
	int r;

	r = cluster_members(req->d, &members, err);
	if (r < 0)
		return r;
	json_array_foreach(members, i, m) {
		if (streq(berth_json_string(m, "server_name"), req->params[0]))
			return api_sync(resp, json_incref(m));
	}
	return berth_error_set(err, -ENOENT, BERTH_ERR_NOT_FOUND, "Cluster member not found");
}

const struct api_route api_cluster_routes[] = {
	{"GET", "/1.0/cluster", get_cluster, NULL},
	{"PUT", "/1.0/cluster", put_cluster, NULL},
	{"GET", "/1.0/cluster/members", list_members, NULL},
	{"GET", "/1.0/cluster/members/{}", get_member, NULL},
	{0},
};
