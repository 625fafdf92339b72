/* daemon/api/instance_exec.c: POST /1.0/instances/{name}/exec and POST
 * /1.0/instances/{name}/console (LXD-API.md §5, §6).
 *
 * The handlers run on the thread pool: they check the request and the instance, build
 * the helper's command line (`berth-monitor exec`, doc/runtime.md) or open the console
 * stream to the monitor, and return a websocket operation whose life is then driven on
 * the loop by daemon/instance/exec_session.c. */
#define LOG_CATEGORY "exec"
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon/api/api.h"
#include "daemon/api/instance_logs.h"
#include "daemon/instance/volume.h"
#include "daemon/instance/driver.h"
#include "daemon/instance/expand.h"
#include "daemon/instance/exec_session.h"
#include "daemon/instance/vm_driver.h"
#include "daemon/vm/vmmon_client.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/util.h"

#define EXEC_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

static const struct berth_json_field exec_fields[] = {
	{"command", BERTH_JSON_STRING_ARRAY, true, false},
	{"wait-for-websocket", BERTH_JSON_BOOL, false, true},
	{"interactive", BERTH_JSON_BOOL, false, true},
	{"environment", BERTH_JSON_STRING_MAP, false, true},
	{"width", BERTH_JSON_INT, false, true},
	{"height", BERTH_JSON_INT, false, true},
	{"record-output", BERTH_JSON_BOOL, false, true},
	{"user", BERTH_JSON_INT, false, true},
	{"group", BERTH_JSON_INT, false, true},
	{"cwd", BERTH_JSON_STRING, false, true},
};

static json_int_t int_field(const json_t *body, const char *key, json_int_t def)
{
	json_t *v = json_object_get(body, key);

	return json_is_integer(v) ? json_integer_value(v) : def;
}

/* The instance must exist and run. PID 1's host pid only when `ret_pid` is set (the
 * monitor is asked then; otherwise berthd may already know that it runs). */
static int check_running(struct api_request *req, json_t **ret_inst,
			 const struct instance_driver **ret_drv, pid_t *ret_pid,
			 struct berth_error *err)
{
	json_t *inst = NULL;
	const struct instance_driver *drv;
	enum instance_power p;
	int r = instance_expand_load(req->d->db, req->project, req->params[0], &inst, err);

	if (r < 0)
		return r;
	r = instance_driver_of(inst, &drv, err);
	if (r < 0) {
		json_decref(inst);
		return r;
	}
	p = ret_pid ? drv->power(req->d, req->project, req->params[0], ret_pid)
		    : drv->power_quick(req->d, req->project, req->params[0]);
	if (p == INSTANCE_UNRESPONSIVE) {
		json_decref(inst);
		return drv->unresponsive_error(req->params[0], err);
	}
	if (p == INSTANCE_FROZEN) {
		json_decref(inst);
		return berth_error_set(err, -EBUSY, BERTH_ERR_BAD_REQUEST,
				       "Instance \"%s\" is frozen", req->params[0]);
	}
	if (p != INSTANCE_RUNNING) {
		json_decref(inst);
		return berth_error_set(err, -ESRCH, BERTH_ERR_BAD_REQUEST,
				       "Instance \"%s\" is not running", req->params[0]);
	}
	*ret_inst = inst;
	*ret_drv = drv;
	return 0;
}

/* LXD's order: instance environment.* keys, then the request's, then defaults for
 * what neither set. */
static json_t *exec_environment(const json_t *inst, const json_t *body, json_int_t user)
{
	json_t *env = json_object();
	const char *k;
	json_t *v;

	if (!env)
		return NULL;
	json_object_foreach(json_object_get(inst, "expanded_config"), k, v)
		if (berth_startswith(k, "environment.") && json_is_string(v))
			json_object_set(env, k + strlen("environment."), v);
	json_object_foreach(json_object_get(body, "environment"), k, v)
		json_object_set(env, k, v);
	if (!json_object_get(env, "PATH"))
		json_object_set_new(env, "PATH", json_string(EXEC_DEFAULT_PATH));
	if (user == 0) {
		if (!json_object_get(env, "HOME"))
			json_object_set_new(env, "HOME", json_string("/root"));
		if (!json_object_get(env, "USER"))
			json_object_set_new(env, "USER", json_string("root"));
	}
	if (!json_object_get(env, "LANG"))
		json_object_set_new(env, "LANG", json_string("C.UTF-8"));
	return env;
}

struct argv_builder {
	char **v;
	size_t n, cap;
	bool failed;
};

static void argv_add(struct argv_builder *b, char *s)
{
	if (!s || b->failed) {
		free(s);
		b->failed = true;
		return;
	}
	if (b->n + 2 > b->cap) {
		size_t cap = b->cap ? 2 * b->cap : 32;
		char **v = realloc(b->v, cap * sizeof(*v));
		if (!v) {
			free(s);
			b->failed = true;
			return;
		}
		b->v = v;
		b->cap = cap;
	}
	b->v[b->n++] = s;
	b->v[b->n] = NULL;
}

static void argv_release(struct argv_builder *b)
{
	for (size_t i = 0; i < b->n; i++)
		free(b->v[i]);
	free(b->v);
}

static int helper_argv(struct api_request *req, const struct instance_driver *drv,
		       const json_t *body, const json_t *env, bool pty, char ***ret,
		       struct berth_error *err)
{
	struct argv_builder b = {0};
	_cleanup_free_ char *bin = NULL;
	const char *cwd = berth_json_string(body, "cwd");
	const char *k;
	json_t *v;
	size_t i;
	int r = drv == &vm_driver ? 0 : drv->exec_helper(&bin);

	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL,
				       "Cannot find berth-monitor (set BERTH_MONITOR)");
	/* A VM's commands run only through its berth-vmmon (monitor.sock): no program is
	 * named, so that a fall-back to a helper fails instead of running anything. */
	argv_add(&b, drv == &vm_driver ? strdup("") : TAKE_PTR(bin));
	argv_add(&b, strdup("exec"));
	argv_add(&b, drv->run_dir(req->d, req->project, req->params[0]));
	argv_add(&b, strdup("--uid"));
	argv_add(&b, berth_strdup_printf("%lld", (long long)int_field(body, "user", 0)));
	argv_add(&b, strdup("--gid"));
	argv_add(&b, berth_strdup_printf("%lld", (long long)int_field(body, "group", 0)));
	if (cwd && *cwd) {
		argv_add(&b, strdup("--cwd"));
		argv_add(&b, strdup(cwd));
	}
	json_object_foreach((json_t *)env, k, v) {
		if (!*k || strchr(k, '='))
			continue; /* not a variable name the helper could pass on */
		argv_add(&b, strdup("--env"));
		argv_add(&b, berth_strdup_printf("%s=%s", k, json_string_value(v)));
	}
	if (pty)
		argv_add(&b, strdup("--pty"));
	argv_add(&b, strdup("--status-fd"));
	argv_add(&b, strdup("3"));
	argv_add(&b, strdup("--"));
	json_array_foreach(json_object_get(body, "command"), i, v)
		argv_add(&b, strdup(json_string_value(v)));
	if (b.failed) {
		argv_release(&b);
		return -ENOMEM;
	}
	*ret = b.v;
	return 0;
}

static int open_null(int flags)
{
	int fd = open("/dev/null", flags | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

/* The operation that runs `spec` (taken over, also on failure). */
static int create_operation(struct api_request *req, struct api_response *resp, const char *class,
			    const char *description, struct exec_spec *spec,
			    struct berth_error *err)
{
	_cleanup_free_ char *url = api_url("instances", req->params[0], req->project);
	struct operation_spec os = {
		.class = class,
		.description = description,
		.project = req->project,
		.may_cancel = true,
		.data = spec,
		.free_data = exec_spec_free,
		.start = exec_session_start,
		.connect = streq(class, "websocket") ? exec_session_connect : NULL,
		.attach_fds = streq(class, "websocket") ? exec_session_attach_fds : NULL,
		.cancel = exec_session_cancel,
	};
	json_t *md = json_incref(spec->metadata);
	int r;

	os.resources = url ? json_pack("{s:[s]}", "instances", url) : NULL;
	r = operation_create(req->d->ops, &os, &resp->op);
	if (r < 0) {
		json_decref(md);
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "Failed to create operation");
	}
	operation_set_metadata(resp->op, md);
	resp->type = API_ASYNC;
	return 0;
}

/* record-output: the command's stdout and stderr go to exec-output/exec_<operation id>.*
 * in the instance's log directory (as LXD names them, hence after the operation exists).
 * The operation is not started before this handler returns, so `spec` is still ours to
 * fill; a failure is kept in it and fails the operation at its start. */
static void record_output(struct api_request *req, const char *id, struct exec_spec *spec)
{
	struct berth_error err = {0};
	int out = -EBADF, errfd = -EBADF;
	int r = instance_logs_exec_open(req->d, req->project, req->params[0], id, &out, &errfd,
					&spec->output, &err);

	if (r < 0) {
		spec->setup_error = r;
		spec->setup_msg = strdup(berth_error_msg(&err, r));
		berth_error_release(&err);
		return;
	}
	close(spec->stdio[1]);
	close(spec->stdio[2]);
	spec->stdio[1] = out;
	spec->stdio[2] = errfd;
}

/* A VM runs commands through its berth-vmmon and agent: vmmon started again if it is
 * missing; LXD's agent-not-running error while the agent is not up. Its pty is a host
 * pty (init_pid stays 0: there is no container devpts). */
static int vm_exec_ready(struct api_request *req, struct berth_error *err)
{
	_cleanup_free_ char *rundir = NULL;
	bool ready = false;
	int r = vm_monitor_ensure(req->d, req->project, req->params[0], &rundir, err);

	if (r >= 0)
		r = vmmon_status(rundir, &ready, NULL, err);
	if (r >= 0 && !ready)
		r = berth_error_set(err, -EAGAIN, BERTH_ERR_BAD_REQUEST, "%s",
				    vmmon_agent_not_running_msg);
	return r;
}

static int exec_instance(struct api_request *req, struct api_response *resp,
			 struct berth_error *err)
{
	_cleanup_(exec_spec_freep) struct exec_spec *spec = NULL;
	json_auto_t *inst = NULL;
	json_auto_t *env = NULL;
	const struct instance_driver *drv;
	json_t *fds;
	const char *cwd = berth_json_string(req->body, "cwd");
	bool wait_ws, interactive, record;
	pid_t init_pid = 0;
	struct exec_spec *borrowed;
	enum exec_kind kind;
	const char *uid_check[] = {"user", "group"};
	int r;

	r = api_require_body(req, err);
	if (r >= 0)
		r = berth_json_check(req->body, exec_fields, ARRAY_SIZE(exec_fields), "exec", err);
	if (r < 0)
		return r;
	if (json_array_size(json_object_get(req->body, "command")) == 0)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Command must not be empty");
	for (size_t i = 0; i < ARRAY_SIZE(uid_check); i++) {
		json_int_t id = int_field(req->body, uid_check[i], 0);
		if (id < 0 || id > 0xfffffffeLL)
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Invalid %s %lld", uid_check[i], (long long)id);
	}
	if (cwd && *cwd && cwd[0] != '/')
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "The working directory must be an absolute path");
	wait_ws = berth_json_bool(req->body, "wait-for-websocket", false);
	interactive = berth_json_bool(req->body, "interactive", false);
	record = berth_json_bool(req->body, "record-output", false);
	if (record && (wait_ws || interactive))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Cannot use \"record-output\" in combination with \"%s\"",
				       wait_ws ? "wait-for-websocket" : "interactive");
	r = check_running(req, &inst, &drv, interactive && wait_ws ? &init_pid : NULL, err);
	if (r >= 0 && drv == &vm_driver) {
		init_pid = 0; /* QEMU's: not a container's PID 1 */
		r = vm_exec_ready(req, err);
	}
	if (r < 0)
		return r;
	env = exec_environment(inst, req->body, int_field(req->body, "user", 0));
	if (!env)
		return -ENOMEM;
	kind = !wait_ws ? EXEC_DETACHED : interactive ? EXEC_PTY : EXEC_PIPES;
	r = exec_spec_new(kind, req->d->loop, &spec);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "Cannot set up exec");
	spec->width = (int)int_field(req->body, "width", 0);
	spec->height = (int)int_field(req->body, "height", 0);
	r = helper_argv(req, drv, req->body, env, kind == EXEC_PTY, &spec->argv, err);
	if (r < 0)
		return r;
	if (kind == EXEC_PTY) {
		r = exec_spec_open_pty(spec, init_pid);
		if (r < 0)
			return berth_error_set(err, r, BERTH_ERR_INTERNAL,
					       "Unable to open the PTY device: %s", strerror(-r));
	}
	if (kind == EXEC_DETACHED) {
		spec->stdio[0] = open_null(O_RDONLY);
		spec->stdio[1] = open_null(O_WRONLY);
		spec->stdio[2] = open_null(O_WRONLY);
		for (int i = 0; i < 3; i++)
			if (spec->stdio[i] < 0)
				return berth_error_set(err, spec->stdio[i], BERTH_ERR_INTERNAL,
						       "Cannot open /dev/null");
	}
	fds = json_object();
	static const char *const names[EXEC_NSOCKETS] = {"0", "1", "2", "control"};
	for (int i = 0; i < EXEC_NSOCKETS && fds; i++)
		if (spec->secret[i][0])
			json_object_set_new(fds, names[i], json_string(spec->secret[i]));
	spec->metadata = json_pack("{s:o, s:O, s:O, s:b}", "fds", fds, "command",
				   json_object_get(req->body, "command"), "environment", env,
				   "interactive", interactive);
	if (!spec->metadata)
		return -ENOMEM;
	if (kind == EXEC_DETACHED)
		json_object_del(spec->metadata, "fds");
	borrowed = spec;
	r = create_operation(req, resp, kind == EXEC_DETACHED ? "task" : "websocket",
			     "Executing command", TAKE_PTR(spec), err);
	if (r >= 0 && record)
		record_output(req, operation_id(resp->op), borrowed);
	return r;
}

static const struct berth_json_field console_fields[] = {
	{"width", BERTH_JSON_INT, false, true},
	{"height", BERTH_JSON_INT, false, true},
	{"type", BERTH_JSON_STRING, false, true},
};

static int console_instance(struct api_request *req, struct api_response *resp,
			    struct berth_error *err)
{
	_cleanup_(exec_spec_freep) struct exec_spec *spec = NULL;
	json_auto_t *inst = NULL;
	const struct instance_driver *drv;
	const char *type;
	json_t *fds;
	int r = 0;

	if (req->body)
		r = berth_json_check(req->body, console_fields, ARRAY_SIZE(console_fields),
				     "console", err);
	if (r < 0)
		return r;
	type = berth_json_string(req->body, "type");
	if (type && *type && !streq(type, "console")) {
		if (streq(type, "vga"))
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "VGA console is only supported by virtual "
					       "machines");
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Unknown console type \"%s\"", type);
	}
	r = check_running(req, &inst, &drv, NULL, err);
	if (r < 0)
		return r;
	r = exec_spec_new(EXEC_CONSOLE, req->d->loop, &spec);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "Cannot set up the console");
	spec->width = (int)int_field(req->body, "width", 0);
	spec->height = (int)int_field(req->body, "height", 0);
	spec->rundir = drv->run_dir(req->d, req->project, req->params[0]);
	if (!spec->rundir)
		return -ENOMEM;
	r = drv->console_open(req->d, req->project, req->params[0], &spec->console_fd, err);
	if (r < 0)
		return r;
	fds = json_pack("{s:s, s:s}", "0", spec->secret[0], "control",
			spec->secret[EXEC_SOCKET_CONTROL]);
	spec->metadata = fds ? json_pack("{s:o}", "fds", fds) : NULL;
	if (!spec->metadata)
		return -ENOMEM;
	return create_operation(req, resp, "websocket", "Showing console", TAKE_PTR(spec), err);
}

const struct api_route api_instance_exec_routes[] = {
	{"POST", "/1.0/instances/{}/exec", exec_instance, NULL},
	{"POST", "/1.0/instances/{}/console", console_instance, NULL},
	{0},
};
