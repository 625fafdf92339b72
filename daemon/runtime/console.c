/* daemon/runtime/console.c: the console pty and console.log (see console.h). */
#include "daemon/runtime/console.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>

#include "lib/macros.h"

void runtime_console_free(struct runtime_console *c)
{
	if (!c)
		return;
	berth_closep(&c->master);
	berth_closep(&c->slave);
	berth_closep(&c->log_fd);
	free(c);
}

int runtime_console_open(const char *log_path, uint64_t log_max, struct runtime_console **ret)
{
	_cleanup_(runtime_console_freep) struct runtime_console *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->master = c->slave = c->log_fd = -EBADF;
	c->log_max = log_max < 4096 ? 4096 : log_max;
	c->master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
	if (c->master < 0)
		return -errno;
	if (grantpt(c->master) < 0 || unlockpt(c->master) < 0 ||
	    ptsname_r(c->master, c->slave_path, sizeof(c->slave_path)) != 0)
		return -errno;
	c->slave = open(c->slave_path, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (c->slave < 0)
		return -errno;
	c->log_fd = open(log_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (c->log_fd < 0)
		return -errno;
	*ret = TAKE_PTR(c);
	return 0;
}

static int write_all_at(int fd, const char *p, size_t len, off_t off)
{
	while (len) {
		ssize_t n = pwrite(fd, p, len, off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

int runtime_console_log(struct runtime_console *c, const char *data, size_t len)
{
	_cleanup_free_ char *keep = NULL;
	size_t half = (size_t)(c->log_max / 2);
	ssize_t n;
	int r = write_all_at(c->log_fd, data, len, (off_t)c->log_size);

	if (r < 0)
		return r;
	c->log_size += len;
	if (c->log_size <= c->log_max)
		return 0;
	keep = malloc(half);
	if (!keep)
		return -ENOMEM;
	n = pread(c->log_fd, keep, half, (off_t)(c->log_size - half));
	if (n < 0)
		return -errno;
	r = write_all_at(c->log_fd, keep, (size_t)n, 0);
	if (r < 0)
		return r;
	if (ftruncate(c->log_fd, n) < 0)
		return -errno;
	c->log_size = (uint64_t)n;
	return 0;
}

ssize_t runtime_console_read(struct runtime_console *c, char *buf, size_t size)
{
	ssize_t n = read(c->master, buf, size);

	if (n < 0)
		return errno == EAGAIN || errno == EINTR || errno == EIO ? 0 : -errno;
	if (n > 0)
		runtime_console_log(c, buf, (size_t)n); /* a full disk must not stop the console */
	return n;
}

int runtime_console_log_tail(struct runtime_console *c, size_t max, char **ret)
{
	size_t want = c->log_size < max ? (size_t)c->log_size : max;
	char *s = malloc(want + 1);
	ssize_t n;

	if (!s)
		return -ENOMEM;
	n = pread(c->log_fd, s, want, (off_t)(c->log_size - want));
	if (n < 0) {
		free(s);
		return -errno;
	}
	s[n] = '\0';
	*ret = s;
	return 0;
}

int runtime_console_resize(struct runtime_console *c, unsigned short cols, unsigned short rows)
{
	struct winsize ws = {.ws_row = rows, .ws_col = cols};

	if (ioctl(c->master, TIOCSWINSZ, &ws) < 0)
		return -errno;
	return 0;
}
