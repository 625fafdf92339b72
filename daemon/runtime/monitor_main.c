/* daemon/runtime/monitor_main.c: berth-monitor's command line (doc/runtime.md):
 *   berth-monitor start RUNDIR
 *   berth-monitor exec RUNDIR [--uid N] [--gid N] [--cwd DIR] [--env K=V]... [--pty]
 *                             [--status-fd FD] -- CMD [ARG]...
 *   berth-monitor --version | --help */
#include <stdio.h>
#include <unistd.h>
#include <string.h>

#include "daemon/runtime/exec.h"
#include "daemon/runtime/monitor.h"
#include "daemon/runtime/spec.h"
#include "lib/macros.h"

static void usage(FILE *f)
{
	fputs("Usage: berth-monitor start RUNDIR\n"
	      "       berth-monitor exec RUNDIR [--uid N] [--gid N] [--cwd DIR] [--env K=V]...\n"
	      "                             [--pty] [--status-fd FD] -- CMD [ARG]...\n"
	      "       berth-monitor --version | --help\n"
	      "\n"
	      "start: run the container described by RUNDIR/spec and stay its monitor.\n"
	      "exec:  run CMD inside the running container of RUNDIR.\n",
	      f);
}

static int parse_uint(const char *s, unsigned long max, unsigned long *ret)
{
	char *end = NULL;
	unsigned long v;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v > max)
		return -EINVAL;
	*ret = v;
	return 0;
}

static int exec_main(int argc, char **argv)
{
	struct runtime_exec_opts o = {.rundir = argv[2], .status_fd = -1};
	char **env = NULL;
	int i, r;

	for (i = 3; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		unsigned long n;

		if (streq(a, "--")) {
			i++;
			break;
		}
		if (streq(a, "--pty")) {
			o.pty = true;
			continue;
		}
		if (!v)
			goto bad;
		if (streq(a, "--uid") && parse_uint(v, 0xfffffffeUL, &n) == 0)
			o.uid = (uid_t)n;
		else if (streq(a, "--gid") && parse_uint(v, 0xfffffffeUL, &n) == 0)
			o.gid = (gid_t)n;
		else if (streq(a, "--status-fd") && parse_uint(v, 65535, &n) == 0)
			o.status_fd = (int)n;
		else if (streq(a, "--cwd") && v[0] == '/')
			o.cwd = v;
		else if (streq(a, "--env") && strchr(v, '=') && v[0] != '=')
			r = runtime_strv_push(&env, (char *)v);
		else
			goto bad;
		i++;
	}
	if (i >= argc)
		goto bad;
	o.env = env;
	o.argv = argv + i;
	r = runtime_exec(&o);
	free(env); /* the strings are argv's */
	/* This process has joined the container's user namespace: exit() would run
	 * LeakSanitizer's at-exit check in the sanitizer build, whose ptrace of this process
	 * can no longer succeed, and it would spin forever. Nothing is left to flush. */
	fflush(NULL);
	_exit(r);
bad:
	free(env);
	fprintf(stderr, "berth-monitor exec: bad arguments\n");
	usage(stderr);
	if (o.status_fd >= 0 && write(o.status_fd, "error bad arguments\n", 20) < 0) {
		/* nobody reads */
	}
	return 255;
}

int main(int argc, char **argv)
{
	if (argc == 2 && streq(argv[1], "--version")) {
		printf("berth-monitor %s\n", BERTH_VERSION);
		return 0;
	}
	if (argc == 2 && streq(argv[1], "--help")) {
		usage(stdout);
		return 0;
	}
	if (argc == 3 && streq(argv[1], "start"))
		return runtime_monitor_start(argv[2]);
	if (argc >= 3 && streq(argv[1], "exec"))
		return exec_main(argc, argv);
	usage(stderr);
	return 2;
}
