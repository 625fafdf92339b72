/* daemon/runtime/launch.c: starting berth-monitor and berth-proxy (see launch.h). */
#include "daemon/runtime/launch.h"

#include "lib/macros.h"
#include "lib/spawn.h"

/* Run a helper's `start` to its end: the default environment, stdin from /dev/null,
 * stdout and stderr in one small buffer (the helper writes one line), killed if berthd
 * dies before the helper detached (what it detached is not). */
static int launch(const char *const *argv, int timeout_ms, struct berth_error *err)
{
	_cleanup_(berth_spawn_release) struct berth_spawn s = {
		.argv = argv,
		.io = {BERTH_SPAWN_NULL, BERTH_SPAWN_DEFAULT, BERTH_SPAWN_TO_STDOUT},
		.capture_max = 4096,
		.timeout_ms = timeout_ms,
		.flags = BERTH_SPAWN_DIE_WITH_PARENT,
	};

	return berth_spawn_run(&s, err);
}

static int launch_helper(const char *name, const char *const *args, int timeout_ms,
			 struct berth_error *err)
{
	_cleanup_free_ char *bin = NULL;
	const char *argv[8];
	size_t n = 0;
	int r = berth_program_find(name, &bin);

	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "Cannot find %s: %s", name,
				       r == -ENOENT ? "not installed" : "out of memory");
	argv[n++] = bin;
	for (; *args && n < ARRAY_SIZE(argv) - 1; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	return launch(argv, timeout_ms, err);
}

int runtime_monitor_launch(const char *rundir, struct berth_error *err)
{
	return launch_helper("berth-monitor", (const char *const[]){"start", rundir, NULL},
			     RUNTIME_MONITOR_START_TIMEOUT_MS, err);
}

int runtime_proxy_launch(const char *rundir, const char *device, struct berth_error *err)
{
	return launch_helper("berth-proxy", (const char *const[]){"start", rundir, device, NULL},
			     RUNTIME_PROXY_START_TIMEOUT_MS, err);
}

int runtime_vmmon_launch(const char *rundir, struct berth_error *err)
{
	return launch_helper("berth-vmmon", (const char *const[]){"start", rundir, NULL},
			     RUNTIME_VMMON_START_TIMEOUT_MS, err);
}
