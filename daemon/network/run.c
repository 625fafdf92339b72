/* daemon/network/run.c: running the programs networks need (nft, dnsmasq) from a
 * worker thread, and writing /proc/sys switches. fork + execve with a fixed PATH and
 * environment; the caller waits for the program itself, not for what it leaves
 * running (dnsmasq daemonizes: its parent exits once the daemon is ready). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon/network/internal.h"
#include "lib/macros.h"
#include "lib/util.h"

#define RUN_OUTPUT_MAX 2048

static char *find_program(const char *name)
{
	static const char *const dirs[] = {"/usr/sbin", "/usr/bin", "/sbin", "/bin"};

	if (name[0] == '/')
		return strdup(name);
	for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
		char *p = berth_strdup_printf("%s/%s", dirs[i], name);
		if (!p || access(p, X_OK) == 0)
			return p;
		free(p);
	}
	return NULL;
}

/* The child: only async-signal-safe calls until execve. */
__attribute__((noreturn)) static void run_child(const char *prog, const char *const *argv, int in_fd,
				 int out_fd)
{
	static char *const envp[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", NULL};
	int null_fd = open("/dev/null", O_RDWR);
	sigset_t all;

	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	if (dup2(in_fd >= 0 ? in_fd : null_fd, STDIN_FILENO) < 0 ||
	    dup2(out_fd >= 0 ? out_fd : null_fd, STDOUT_FILENO) < 0 ||
	    dup2(out_fd >= 0 ? out_fd : null_fd, STDERR_FILENO) < 0)
		_exit(126);
	syscall(SYS_close_range, 3U, ~0U, 0U);
	execve(prog, (char *const *)argv, envp);
	_exit(127);
}

int network_run(const char *const *argv, const char *input, const char *log_path,
		struct berth_error *err)
{
	_cleanup_free_ char *prog = find_program(argv[0]);
	_cleanup_close_ int in_r = -EBADF, out_r = -EBADF, out_w = -EBADF;
	char out[RUN_OUTPUT_MAX] = "";
	size_t out_len = 0;
	int fds[2], status = 0;
	pid_t pid;

	if (!prog)
		return berth_error_set(err, -ENOENT, BERTH_ERR_INTERNAL,
				       "Program \"%s\" not found (is it installed?)", argv[0]);
	if (input) {
		size_t len = strlen(input);

		/* Small inputs only (rulesets): they fit the pipe, so no writer thread. */
		if (len > 60000 || pipe2(fds, O_CLOEXEC) < 0)
			return berth_error_set(err, -EIO, BERTH_ERR_INTERNAL,
					       "Cannot pass input to \"%s\"", argv[0]);
		in_r = fds[0];
		if (write(fds[1], input, len) != (ssize_t)len) {
			close(fds[1]);
			return berth_error_set(err, -EIO, BERTH_ERR_INTERNAL,
					       "Cannot pass input to \"%s\": %m", argv[0]);
		}
		close(fds[1]);
	}
	if (log_path) {
		out_w = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (out_w < 0)
			return berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
					       "Cannot open \"%s\": %m", log_path);
	} else {
		if (pipe2(fds, O_CLOEXEC) < 0)
			return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "pipe: %m");
		out_r = fds[0];
		out_w = fds[1];
	}
	pid = fork();
	if (pid == 0)
		run_child(prog, argv, in_r, out_w);
	if (pid < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "Cannot run \"%s\": %m",
				       prog);
	close(TAKE_FD(out_w));
	while (out_r >= 0) {
		char buf[512];
		ssize_t n = read(out_r, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (out_len + (size_t)n < sizeof(out) - 1) {
			memcpy(out + out_len, buf, (size_t)n);
			out_len += (size_t)n;
		}
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "waitpid: %m");
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (log_path) {
		_cleanup_free_ char *text = NULL;
		size_t len = 0;

		if (berth_read_file(log_path, sizeof(out) - 1, &text, &len) >= 0) {
			memcpy(out, text, len);
			out_len = len;
		}
	}
	out[out_len] = '\0';
	while (out_len > 0 && (out[out_len - 1] == '\n' || out[out_len - 1] == ' '))
		out[--out_len] = '\0';
	if (WIFEXITED(status))
		return berth_error_set(err, -EIO, BERTH_ERR_INTERNAL,
				       "\"%s\" failed (exit status %d): %s", argv[0],
				       WEXITSTATUS(status), out_len ? out : "no output");
	return berth_error_set(err, -EIO, BERTH_ERR_INTERNAL, "\"%s\" killed by signal %d",
			       argv[0], WTERMSIG(status));
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
