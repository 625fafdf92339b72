/* daemon/runtime/console.h: the container's console: a pty whose slave becomes
 * /dev/console and PID 1's stdio, and whose output the monitor keeps in console.log,
 * cut to its newer half when it grows past its size limit. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/macros.h"

struct runtime_console {
	int master;	     /* owned, non-blocking */
	int slave;	     /* owned; kept open so the master never reads a hangup */
	int log_fd;	     /* owned, console.log */
	char slave_path[64]; /* /dev/pts/N on the host */
	uint64_t log_size;   /* bytes in console.log */
	uint64_t log_max;    /* console_log_size */
};

/* Open a pty on the host's /dev/ptmx and create (truncate) `log_path`. */
int runtime_console_open(const char *log_path, uint64_t log_max, struct runtime_console **ret);
void runtime_console_free(struct runtime_console *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct runtime_console *, runtime_console_free)

/* Read what the container wrote (at most `size` bytes) and append it to the log.
 * Returns the count, 0 when nothing was pending, or -errno. */
ssize_t runtime_console_read(struct runtime_console *c, char *buf, size_t size);
/* Append `len` bytes to the log, keeping the newer half past the limit. */
int runtime_console_log(struct runtime_console *c, const char *data, size_t len);
/* The last `max` bytes of the log, newly allocated and NUL-terminated. */
int runtime_console_log_tail(struct runtime_console *c, size_t max, char **ret);
int runtime_console_resize(struct runtime_console *c, unsigned short cols, unsigned short rows);
