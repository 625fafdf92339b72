/* daemon/api/instance_backups.c: /1.0/instances/{name}/backups[/{backup}[/export]]:
 * create (backup0, backup1, ... as LXD names them), list, get, rename, delete, and the
 * tarball streamed. The handlers parse, call daemon/instance/backup.c and render. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/api/api.h"
#include "daemon/db/db.h"
#include "daemon/events.h"
#include "daemon/instance/backup.h"
#include "lib/json.h"
#include "lib/util.h"

static const struct berth_json_field create_fields[] = {
	{"name", BERTH_JSON_STRING, false, true},
	{"expires_at", BERTH_JSON_ANY, false, true},
	{"instance_only", BERTH_JSON_BOOL, false, true},
	{"container_only", BERTH_JSON_BOOL, false, true},
	{"optimized_storage", BERTH_JSON_BOOL, false, true},
	{"compression_algorithm", BERTH_JSON_STRING, false, true},
};

/* LXD's operation resources: the instance, and the backup for a create. */
static json_t *resources(const struct api_request *req, const char *backup)
{
	_cleanup_free_ char *i = api_url("instances", req->params[0], req->project);
	_cleanup_free_ char *c = api_url("containers", req->params[0], req->project);
	/* LXD's: "/1.0/backups/NAME", which `lxc export` strips to find the name. */
	_cleanup_free_ char *b = backup ? api_url("backups", backup, "default") : NULL;
	json_t *res = i && c ? json_pack("{s:[s], s:[s]}", "instances", i, "containers", c) : NULL;

	if (res && backup)
		json_object_set_new(res, "backups", json_pack("[s?]", b));
	return res;
}

static int list_backups(struct api_request *req, struct api_response *resp, struct berth_error *err)
{
	json_auto_t *inst = NULL, *list = NULL;
	json_t *out, *b;
	size_t i;
	int r = db_instance_get(req->d->db, req->project, req->params[0], &inst, err);

	if (r >= 0)
		r = backup_list(req->d, req->project, req->params[0], &list, err);
	if (r < 0)
		return r;
	if (req->recursion >= 1)
		return api_sync(resp, TAKE_PTR(list));
	out = json_array();
	if (!out)
		return -ENOMEM;
	json_array_foreach(list, i, b) {
		_cleanup_free_ char *u = backup_url(req->project, req->params[0],
						    berth_json_string(b, "name"));
		if (!u || json_array_append_new(out, json_string(u)) < 0) {
			json_decref(out);
			return -ENOMEM;
		}
	}
	return api_sync(resp, out);
}

static int get_backup(struct api_request *req, struct api_response *resp, struct berth_error *err)
{
	json_auto_t *inst = NULL;
	json_t *b = NULL;
	int r = db_instance_get(req->d->db, req->project, req->params[0], &inst, err);

	if (r >= 0)
		r = backup_get(req->d, req->project, req->params[0], req->params[1], &b, err);
	if (r < 0)
		return r;
	return api_sync(resp, b);
}

static int create_backup(struct api_request *req, struct api_response *resp,
			 struct berth_error *err)
{
	_cleanup_(backup_job_freep) struct backup_job *j = NULL;
	_cleanup_free_ char *gen = NULL;
	json_auto_t *inst = NULL, *list = NULL;
	const char *name;
	int r = api_require_body(req, err);

	if (r >= 0)
		r = berth_json_check(req->body, create_fields, ARRAY_SIZE(create_fields), "backup",
				     err);
	if (r >= 0)
		r = db_instance_get(req->d->db, req->project, req->params[0], &inst, err);
	if (r >= 0)
		r = backup_list(req->d, req->project, req->params[0], &list, err);
	if (r < 0)
		return r;
	name = berth_json_string(req->body, "name");
	if (!name || !*name) {
		name = gen = backup_next_name(list);
		if (!gen)
			return -ENOMEM;
	}
	r = backup_name_check(name, err);
	if (r < 0)
		return r;
	j = backup_job_new(req->d, req->project, req->params[0], name);
	if (!j)
		return -ENOMEM;
	r = backup_prepare(j, req->body, err);
	if (r < 0)
		return r;
	return api_async_cancellable(req, resp, "Backing up instance", resources(req, name),
				     backup_create_run, TAKE_PTR(j), backup_job_free, err);
}

static int post_backup(struct api_request *req, struct api_response *resp, struct berth_error *err)
{
	_cleanup_(backup_job_freep) struct backup_job *j = NULL;
	json_auto_t *inst = NULL, *b = NULL;
	const char *name;
	int r = api_require_body(req, err);

	if (r >= 0)
		r = db_instance_get(req->d->db, req->project, req->params[0], &inst, err);
	if (r >= 0)
		r = backup_get(req->d, req->project, req->params[0], req->params[1], &b, err);
	if (r < 0)
		return r;
	name = berth_json_string(req->body, "name");
	r = backup_name_check(name, err);
	if (r < 0)
		return r;
	j = backup_job_new(req->d, req->project, req->params[0], req->params[1]);
	if (!j || !(j->new_name = strdup(name)))
		return -ENOMEM;
	return api_async(req, resp, "Renaming instance backup", resources(req, NULL),
			 backup_rename_run, TAKE_PTR(j), backup_job_free, err);
}

static int delete_backup(struct api_request *req, struct api_response *resp,
			 struct berth_error *err)
{
	_cleanup_(backup_job_freep) struct backup_job *j = NULL;
	json_auto_t *inst = NULL, *b = NULL;
	int r = db_instance_get(req->d->db, req->project, req->params[0], &inst, err);

	if (r >= 0)
		r = backup_get(req->d, req->project, req->params[0], req->params[1], &b, err);
	if (r < 0)
		return r;
	j = backup_job_new(req->d, req->project, req->params[0], req->params[1]);
	if (!j)
		return -ENOMEM;
	return api_async(req, resp, "Removing instance backup", resources(req, NULL),
			 backup_delete_run, TAKE_PTR(j), backup_job_free, err);
}

static int export_backup(struct api_request *req, struct api_response *resp,
			 struct berth_error *err)
{
	_cleanup_free_ char *url = NULL;
	json_auto_t *inst = NULL;
	uint64_t size = 0;
	int fd = -EBADF;
	int r = db_instance_get(req->d->db, req->project, req->params[0], &inst, err);

	if (r >= 0)
		r = backup_open(req->d, req->project, req->params[0], req->params[1], &fd, &size,
				err);
	if (r < 0)
		return r;
	resp->type = API_RAW;
	resp->content_type = "application/octet-stream";
	resp->disposition = berth_strdup_printf("attachment;filename=%s", req->params[1]);
	r = api_add_part_fd(resp, fd, size);
	if (r < 0)
		return r;
	url = backup_url(req->project, req->params[0], req->params[1]);
	if (url)
		events_lifecycle(req->d->events, req->project, "instance-backup-retrieved", url,
				 NULL);
	return resp->disposition ? 0 : -ENOMEM;
}

const struct api_route api_instance_backup_routes[] = {
	{"GET", "/1.0/instances/{}/backups", list_backups, NULL},
	{"POST", "/1.0/instances/{}/backups", create_backup, NULL},
	{"GET", "/1.0/instances/{}/backups/{}", get_backup, NULL},
	{"POST", "/1.0/instances/{}/backups/{}", post_backup, NULL},
	{"DELETE", "/1.0/instances/{}/backups/{}", delete_backup, NULL},
	{"GET", "/1.0/instances/{}/backups/{}/export", export_backup, NULL},
	{0},
};
