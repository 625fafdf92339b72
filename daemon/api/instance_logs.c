/* daemon/api/instance_logs.c: /1.0/instances/{name}/logs[/{file}] and
 * /1.0/instances/{name}/logs/exec-output[/{file}] as LXD 5.0.2 serves them, and the
 * instance's log directory (instance_logs.h).
 *
 * Two kinds of files are served:
 * - "lxc.log" and "lxc.conf", LXD's names for what the runtime keeps in the run directory:
 *   the monitor's log and the spec it was started from (doc/runtime.md). `lxc info
 *   --show-log` reads lxc.log. They may be read, not deleted.
 * - exec-output/exec_<operation>.stdout and .stderr, written by an exec with
 *   record-output; they may be read and deleted, and go with the instance. */
#define LOG_CATEGORY "logs"
#include "daemon/api/instance_logs.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/api/api.h"
#include "daemon/db/db.h"
#include "daemon/instance/cleanup.h"
#include "daemon/instance/driver.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/util.h"

#define EXEC_OUTPUT "exec-output"

char *instance_logs_dir(const struct berth_daemon *d, const char *project, const char *name)
{
	return cleanup_logs_dir(d, project, name);
}

/* ---- file names ---- */

/* A plain file name: no separator, no "..", nothing a shell or URL would mangle. */
static bool plain_name(const char *s)
{
	if (!*s || streq(s, ".") || strstr(s, ".."))
		return false;
	for (; *s; s++)
		if (!(('a' <= *s && *s <= 'z') || ('A' <= *s && *s <= 'Z') ||
		      ('0' <= *s && *s <= '9') || *s == '_' || *s == '-' || *s == '.'))
			return false;
	return true;
}

static bool exec_output_name(const char *s)
{
	size_t n = strlen(s);

	return plain_name(s) && berth_startswith(s, "exec_") && n > 7 + 5 &&
	       (streq(s + n - 7, ".stdout") || streq(s + n - 7, ".stderr"));
}

/* LXD's name of a run directory file (NULL: not one). */
static const char *rundir_file(const char *log_name)
{
	if (streq(log_name, "lxc.log"))
		return "monitor.log";
	if (streq(log_name, "lxc.conf"))
		return "spec";
	return NULL;
}

/* The URL of a log file as a JSON string (NULL on ENOMEM). */
static json_t *log_url(const char *instance, const char *sub, const char *file)
{
	_cleanup_free_ char *s = berth_strdup_printf("/1.0/instances/%s/logs/%s%s%s", instance,
						     sub ? sub : "", sub ? "/" : "", file);

	return s ? json_string(s) : NULL;
}

/* ---- the directory ---- */

int instance_logs_exec_open(const struct berth_daemon *d, const char *project, const char *name,
			    const char *id, int *ret_out, int *ret_err, json_t **ret_urls,
			    struct berth_error *err)
{
	_cleanup_free_ char *logdir = instance_logs_dir(d, project, name);
	_cleanup_free_ char *dir = logdir ? berth_strdup_printf("%s/" EXEC_OUTPUT, logdir) : NULL;
	int fds[2] = {-EBADF, -EBADF};
	static const char *const ext[2] = {"stdout", "stderr"};
	json_auto_t *urls = json_object();
	int r;

	if (!dir || !urls)
		return -ENOMEM;
	r = berth_mkdir_p(dir, 0700);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "Cannot create \"%s\"", dir);
	for (int i = 0; i < 2; i++) {
		_cleanup_free_ char *file = berth_strdup_printf("exec_%s.%s", id, ext[i]);
		_cleanup_free_ char *path = file ? berth_strdup_printf("%s/%s", dir, file) : NULL;
		char key[2] = {(char)('1' + i), '\0'};

		if (!path) {
			r = -ENOMEM;
			break;
		}
		fds[i] = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fds[i] < 0) {
			r = berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
					    "Cannot create \"%s\": %m", path);
			break;
		}
		if (json_object_set_new(urls, key, log_url(name, EXEC_OUTPUT, file)) < 0) {
			r = -ENOMEM;
			break;
		}
	}
	if (r < 0) {
		for (int i = 0; i < 2; i++)
			if (fds[i] >= 0)
				close(fds[i]);
		return r;
	}
	*ret_out = TAKE_FD(fds[0]);
	*ret_err = TAKE_FD(fds[1]);
	*ret_urls = TAKE_PTR(urls);
	return 0;
}

/* ---- handlers ---- */

static int check_instance(struct api_request *req, struct berth_error *err)
{
	json_auto_t *inst = NULL;

	return db_instance_get(req->d->db, req->project, req->params[0], &inst, err);
}

int api_instance_run_dir(struct api_request *req, char **ret, struct berth_error *err)
{
	json_auto_t *inst = NULL;
	const struct instance_driver *drv;
	int r = db_instance_get(req->d->db, req->project, req->params[0], &inst, err);

	if (r < 0)
		return r;
	r = instance_driver_of(inst, &drv, err);
	if (r < 0)
		return r;
	*ret = drv->run_dir(req->d, req->project, req->params[0]);
	return *ret ? 0 : -ENOMEM;
}

/* Answer with the bytes of `path` (streamed from its fd). */
static int serve_file(struct api_response *resp, const char *path, const char *name,
		      struct berth_error *err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;

	if (fd < 0 && errno == ENOENT)
		return berth_error_set(err, -ENOENT, BERTH_ERR_NOT_FOUND, "not found");
	if (fd < 0 || fstat(fd, &st) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "Cannot open \"%s\": %m",
				       name);
	if (!S_ISREG(st.st_mode))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST, "\"%s\" is not a file",
				       name);
	resp->type = API_RAW;
	resp->content_type = "application/octet-stream";
	resp->disposition = berth_strdup_printf("inline;filename=%s", name);
	if (!resp->disposition)
		return -ENOMEM;
	if (st.st_size == 0)
		return 0;
	return api_add_part_fd(resp, TAKE_FD(fd), (uint64_t)st.st_size);
}

static int list_logs(struct api_request *req, struct api_response *resp, struct berth_error *err)
{
	_cleanup_free_ char *rundir = NULL;
	static const char *const names[] = {"lxc.conf", "lxc.log"};
	json_t *list;
	int r = api_instance_run_dir(req, &rundir, err);

	if (r < 0)
		return r;
	list = json_array();
	if (!list) {
		json_decref(list);
		return -ENOMEM;
	}
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		_cleanup_free_ char *p = berth_strdup_printf("%s/%s", rundir,
							     rundir_file(names[i]));
		if (p && access(p, F_OK) == 0)
			json_array_append_new(list, log_url(req->params[0], NULL, names[i]));
	}
	return api_sync(resp, list);
}

static int get_log(struct api_request *req, struct api_response *resp, struct berth_error *err)
{
	const char *file = req->params[1];
	const char *real = rundir_file(file);
	_cleanup_free_ char *rundir = NULL, *path = NULL;
	int r;

	if (!real)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Log file name \"%s\" not valid", file);
	r = api_instance_run_dir(req, &rundir, err);
	if (r < 0)
		return r;
	path = berth_strdup_printf("%s/%s", rundir, real);
	if (!path)
		return -ENOMEM;
	return serve_file(resp, path, file, err);
}

static int delete_log(struct api_request *req, struct api_response *resp, struct berth_error *err)
{
	const char *file = req->params[1];
	int r;

	if (!rundir_file(file))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Log file name \"%s\" not valid", file);
	r = check_instance(req, err);
	if (r < 0)
		return r;
	return berth_error_set(err, -EPERM, BERTH_ERR_BAD_REQUEST,
			       "lxc.log and lxc.conf may not be deleted");
}

static int list_exec_output(struct api_request *req, struct api_response *resp,
			    struct berth_error *err)
{
	_cleanup_free_ char *logdir = NULL, *dir = NULL;
	DIR *dp;
	struct dirent *de;
	json_t *list;
	int r = check_instance(req, err);

	if (r < 0)
		return r;
	logdir = instance_logs_dir(req->d, req->project, req->params[0]);
	dir = logdir ? berth_strdup_printf("%s/" EXEC_OUTPUT, logdir) : NULL;
	list = json_array();
	if (!dir || !list) {
		json_decref(list);
		return -ENOMEM;
	}
	dp = opendir(dir);
	if (!dp && errno != ENOENT) {
		json_decref(list);
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "Cannot read \"%s\": %m",
				       dir);
	}
	while (dp && (de = readdir(dp)))
		if (exec_output_name(de->d_name))
			json_array_append_new(list,
					      log_url(req->params[0], EXEC_OUTPUT, de->d_name));
	if (dp)
		closedir(dp);
	return api_sync(resp, list);
}

/* The path of exec-output file params[1], after the checks LXD makes. */
static int exec_output_path(struct api_request *req, char **ret, struct berth_error *err)
{
	_cleanup_free_ char *logdir = NULL;
	int r;

	if (!exec_output_name(req->params[1]))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Exec record-output file name \"%s\" not valid",
				       req->params[1]);
	r = check_instance(req, err);
	if (r < 0)
		return r;
	logdir = instance_logs_dir(req->d, req->project, req->params[0]);
	*ret = logdir ? berth_strdup_printf("%s/" EXEC_OUTPUT "/%s", logdir, req->params[1]) : NULL;
	return *ret ? 0 : -ENOMEM;
}

static int get_exec_output(struct api_request *req, struct api_response *resp,
			   struct berth_error *err)
{
	_cleanup_free_ char *path = NULL;
	int r = exec_output_path(req, &path, err);

	if (r < 0)
		return r;
	return serve_file(resp, path, req->params[1], err);
}

static int delete_exec_output(struct api_request *req, struct api_response *resp,
			      struct berth_error *err)
{
	_cleanup_free_ char *path = NULL;
	int r = exec_output_path(req, &path, err);

	if (r < 0)
		return r;
	if (unlink(path) < 0) {
		if (errno == ENOENT)
			return berth_error_set(err, -ENOENT, BERTH_ERR_NOT_FOUND, "not found");
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "Cannot delete \"%s\": %m",
				       req->params[1]);
	}
	return api_sync(resp, NULL);
}

/* exec-output first: "/logs/{}" would take "/logs/exec-output" too. */
const struct api_route api_instance_log_routes[] = {
	{"GET", "/1.0/instances/{}/logs/" EXEC_OUTPUT, list_exec_output, NULL},
	{"GET", "/1.0/instances/{}/logs/" EXEC_OUTPUT "/{}", get_exec_output, NULL},
	{"DELETE", "/1.0/instances/{}/logs/" EXEC_OUTPUT "/{}", delete_exec_output, NULL},
	{"GET", "/1.0/instances/{}/logs", list_logs, NULL},
	{"GET", "/1.0/instances/{}/logs/{}", get_log, NULL},
	{"DELETE", "/1.0/instances/{}/logs/{}", delete_log, NULL},
	{0},
};
