/* daemon/instance/migrate_netcat.c: berth-netcat, rsync's remote shell in a migration
 * (daemon/instance/migrate_io.c). The rsync client that sends a volume runs
 * `rsync ... -e berth-netcat SRC/ localhost:/x`; rsync starts us with its pipes on our
 * stdin and stdout and the remote command in argv (ignored: the other end runs its own
 * `rsync --server`). berthd gave rsync, and so us, fd 3: a socket whose other end berthd
 * relays to the migration's websocket. We copy stdin to fd 3 and fd 3 to stdout. At EOF
 * on stdin we shut fd 3 for writing (berthd sees the end of rsync's data); we exit at
 * EOF on fd 3 (berthd's end of the peer's data). libc only. */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/socket.h>

#define SOCK_FD 3

static int copy_some(int from, int to)
{
	char buf[65536];
	ssize_t n, off = 0;

	do
		n = read(from, buf, sizeof(buf));
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return n < 0 ? -errno : 0;
	while (off < n) {
		ssize_t w = write(to, buf + off, (size_t)(n - off));

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		off += w;
	}
	return 1;
}

int main(int argc, char **argv)
{
	bool in_open = true;

	(void)argc;
	(void)argv;
	for (;;) {
		struct pollfd pfd[2] = {{.fd = in_open ? STDIN_FILENO : -1, .events = POLLIN},
					{.fd = SOCK_FD, .events = POLLIN}};
		int r;

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			perror("berth-netcat: poll");
			return 1;
		}
		if (pfd[1].revents & (POLLIN | POLLHUP | POLLERR)) {
			r = copy_some(SOCK_FD, STDOUT_FILENO);
			if (r <= 0)
				return r < 0 ? 1 : 0;
		}
		if (in_open && (pfd[0].revents & (POLLIN | POLLHUP | POLLERR))) {
			r = copy_some(STDIN_FILENO, SOCK_FD);
			if (r < 0)
				return 1;
			if (r == 0) {
				in_open = false;
				shutdown(SOCK_FD, SHUT_WR);
			}
		}
	}
}
