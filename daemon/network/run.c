/* daemon/network/run.c: running the programs networks need (nft, dnsmasq) from a
 * worker thread through lib/spawn, and writing /proc/sys switches. The caller waits
 * for the program itself, not for what it leaves running (dnsmasq daemonizes: its
 * parent exits once the daemon is ready). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/network/internal.h"
#include "lib/macros.h"
#include "lib/spawn.h"
#include "lib/util.h"

#define RUN_OUTPUT_MAX 2048
#define RUN_TIMEOUT_MS 60000

/* The failure message when the output went to `log_path`: its head, as before. */
static int log_failure(const struct berth_spawn *s, const char *log_path, struct berth_error *err)
{
	_cleanup_free_ char *text = NULL;
	size_t len = 0;

	if (!s->term_signal && s->exit_code == 0)
		return 0;
	if (s->term_signal || berth_read_file(log_path, RUN_OUTPUT_MAX - 1, &text, &len) < 0)
		return berth_spawn_check(s, NULL, err);
	while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' '))
		text[--len] = '\0';
	return berth_error_set(err, -EIO, BERTH_ERR_INTERNAL, "\"%s\" failed (exit status %d): %s",
			       s->argv[0], s->exit_code, len ? text : "no output");
}

int network_run(const char *const *argv, const char *input, const char *log_path,
		struct berth_error *err)
{
	_cleanup_(berth_spawn_release) struct berth_spawn s = {
		.argv = argv,
		.input = input,
		.input_len = input ? strlen(input) : 0,
		.io = {BERTH_SPAWN_DEFAULT, BERTH_SPAWN_DEFAULT, BERTH_SPAWN_TO_STDOUT},
		.capture_max = RUN_OUTPUT_MAX,
		.timeout_ms = RUN_TIMEOUT_MS,
	};
	_cleanup_close_ int log_fd = -EBADF;
	int r;

	if (log_path) {
		log_fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (log_fd < 0)
			return berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
					       "Cannot open \"%s\": %m", log_path);
		s.io[1] = BERTH_SPAWN_FD;
		s.fds[1] = log_fd;
		s.flags = BERTH_SPAWN_NO_CHECK;
	}
	r = berth_spawn_run(&s, err);
	if (r < 0 || !log_path)
		return r;
	return log_failure(&s, log_path, err);
}

int network_sysctl(const char *path, const char *value)
{
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
	size_t len = strlen(value);

	if (fd < 0)
		return -errno;
	if (write(fd, value, len) != (ssize_t)len)
		return -errno;
	return 0;
}
