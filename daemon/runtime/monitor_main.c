/* daemon/runtime/monitor_main.c: berth-monitor's command line (doc/runtime.md):
 *   berth-monitor start RUNDIR
 *   berth-monitor exec RUNDIR [--uid N] [--gid N] [--cwd DIR] [--env K=V]... [--pty]
 *                             [--status-fd FD] -- CMD [ARG]...
 *   berth-monitor --version | --help */
#include <stdio.h>
#include <stdlib.h>
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

static int exec_main(int argc, char **argv)
{
	struct runtime_exec_opts o = {.rundir = argv[2], .status_fd = -1};
	int r;

	if (runtime_exec_parse(argc - 3, argv + 3, &o) < 0) {
		fprintf(stderr, "berth-monitor exec: bad arguments\n");
		usage(stderr);
		if (o.status_fd >= 0 && write(o.status_fd, "error bad arguments\n", 20) < 0) {
			/* nobody reads */
		}
		return 255;
	}
	r = runtime_exec(&o);
	free(o.env); /* the strings are argv's */
	/* This process has joined the container's user namespace: exit() would run
	 * LeakSanitizer's at-exit check in the sanitizer build, whose ptrace of this process
	 * can no longer succeed, and it would spin forever. Nothing is left to flush. */
	fflush(NULL);
	_exit(r);
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
