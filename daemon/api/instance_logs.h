/* daemon/api/instance_logs.h: an instance's log directory, $BERTH_DIR/logs/<project>_<name>,
 * which holds what exec's record-output wrote (exec-output/exec_<operation>.stdout and
 * .stderr), and the /1.0/instances/{name}/logs routes that serve it (instance_logs.c). */
#pragma once

#include <jansson.h>

#include "daemon/daemon.h"
#include "lib/error.h"

struct api_request;

/* The run directory of the request's instance (req->params[0]), from its driver (new
 * string in *ret); 404 when the instance does not exist. Blocking. */
int api_instance_run_dir(struct api_request *req, char **ret, struct berth_error *err);

/* $BERTH_DIR/logs/<project>_<name> (new string, NULL on ENOMEM). */
char *instance_logs_dir(const struct berth_daemon *d, const char *project, const char *name);

/* Create exec-output/exec_<id>.stdout and .stderr (truncated, 0600) for a recorded exec.
 * On success *ret_out and *ret_err are the open fds (owned by the caller) and *ret_urls
 * is {"1": URL, "2": URL} as LXD puts it in the operation's metadata. Blocking. */
int instance_logs_exec_open(const struct berth_daemon *d, const char *project, const char *name,
			    const char *id, int *ret_out, int *ret_err, json_t **ret_urls,
			    struct berth_error *err);
