/* lib/util.h: small helpers without a better home: time stamps, UUIDs, LXD's
 * naming rules, string and file helpers. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "lib/error.h"

#define BERTH_RFC3339_MAX 40
#define BERTH_UUID_STR_LEN 37

/* "2026-11-23T16:11:33.123456789Z" (UTC, nanoseconds). `buf` holds BERTH_RFC3339_MAX. */
void berth_time_rfc3339(const struct timespec *ts, char *buf);
/* Go's zero time, LXD's "never" for expiry dates. */
#define BERTH_TIME_ZERO "0001-01-01T00:00:00Z"
/* RFC 3339 `s` (any offset, optional fraction) as UTC, into `buf` (BERTH_RFC3339_MAX), the
 * way Go's RFC3339Nano writes it (LXD's JSON): "2030-01-01T00:00:00Z",
 * "2030-01-01T00:00:00.5Z". A year 1 or earlier (Go's zero time) gives BERTH_TIME_ZERO.
 * Compared as text, results are in time order to the second. -EINVAL when `s` is not
 * RFC 3339. */
int berth_time_normalize(const char *s, char *buf);
void berth_now_rfc3339(char *buf);
/* Monotonic clock in nanoseconds. */
uint64_t berth_monotonic_ns(void);

/* A random version-4 UUID, lower-case with dashes, into `buf` (BERTH_UUID_STR_LEN). */
int berth_uuid_new(char *buf);

/* LXD's rule for instance names (they become hostnames): 1..63 characters of
 * [a-zA-Z0-9-], not starting with a digit or '-', not ending with '-'.
 * -EINVAL with `err` naming the rule broken. */
int berth_name_check_instance(const char *name, struct berth_error *err);
/* Names of profiles, projects, pools and the like: non-empty, at most 63 bytes (LXD
 * limits projects to 63; profiles share it here), not "." or "..", none of
 * '/', whitespace, control characters, '\'', '"', '?', '*', '\\'. `what` appears in the
 * message ("profile name"). */
int berth_name_check_entity(const char *what, const char *name, struct berth_error *err);

bool berth_startswith(const char *s, const char *prefix);
bool berth_endswith(const char *s, const char *suffix);
/* printf into a new string; NULL on allocation failure. */
char *berth_strdup_printf(const char *fmt, ...) _printf_(1, 2);
/* Percent-decode `in` (len bytes) into a new NUL-terminated string; '+' stays '+'.
 * -EINVAL on a bad escape or an embedded NUL. */
int berth_url_decode(const char *in, size_t len, char **ret);
/* Percent-encode for a path segment or query value. NULL on allocation failure. */
char *berth_url_encode(const char *in);

/* Write all `len` bytes to the blocking `fd`: write(2) again after a short write or
 * EINTR. 0, or -errno. */
int berth_write_all(int fd, const void *data, size_t len);
/* The same on a socket with send(2) and MSG_NOSIGNAL: a gone peer is -EPIPE, never
 * SIGPIPE. */
int berth_send_all(int fd, const void *data, size_t len);
/* Whether the file system holding `fd` has room for `len` more bytes while keeping 5% of
 * it free for everything else on it: what a spool (an upload, a stream) asks before it
 * writes, so that it is refused rather than fill the disk. Unknown (fstatvfs failed):
 * true. */
bool berth_fs_room(int fd, uint64_t len);
/* Read a whole small file (at most `max` bytes) into a NUL-terminated buffer. */
int berth_read_file(const char *path, size_t max, char **ret, size_t *ret_len);
/* Write `len` bytes to `path` atomically (temp file in the same dir, fsync, rename). */
int berth_write_file_atomic(const char *path, const void *data, size_t len, int mode);
/* The same without the fsync: readers never see a partial file, but a crash may lose it.
 * For run-time state that a reboot makes meaningless (pid files, a container's spec). */
int berth_write_file_replace(const char *path, const void *data, size_t len, int mode);
/* A helper program of berth's (`name`): $`env_var` when set, else
 * <our exe's dir>/../libexec/berth/NAME (installed), else <our exe's dir>/NAME (the
 * build tree). New string in *ret; -ENOENT when none is executable. */
int berth_helper_binary(const char *name, const char *env_var, char **ret);
/* mkdir -p with `mode` for created components. */
int berth_mkdir_p(const char *path, int mode);

/* Test-only: when berthd runs under the test harness (BERTH_TEST_HARNESS set) and
 * BERTH_TEST_PAUSE_AT (a comma-separated list) names `point`, print
 * "berth-test-pause: POINT" on stderr and sleep until killed, so that a test can SIGKILL
 * the daemon at exactly that point. Otherwise (always in production) returns at once.
 * The points are listed in doc/internals.md. */
void berth_test_pause(const char *point);
/* Test-only: whether the environment variable `name` is set and non-empty while under the
 * test harness (BERTH_TEST_HARNESS set); always false in production. */
bool berth_test_flag(const char *name);

/* Whether the open fd may be handed to a command in an instance as it is: a pipe, a
 * regular file, a socket or /dev/null, never a terminal (TIOCSTI could type into it) or
 * another device. */
bool berth_fd_may_enter_instance(int fd);

/* A child that shares our memory (CLONE_VM | CLONE_VFORK, posix_spawn's way: no page
 * tables copied, no copy-on-write fault either side), for the callers that are not
 * starting a program (those use lib/spawn.h, which is built on these). A stack of
 * `stack_size` bytes to munmap() once done (NULL with errno set: ENOSYS in
 * AddressSanitizer builds, see BERTH_ASAN: the caller forks instead), then fn(arg) run
 * on it while the calling thread sleeps until the child exec'd or died. fn may allocate
 * nothing and change no global. The child's pid, or -1 with errno set. */
void *berth_spawn_stack_new(size_t stack_size);
int berth_spawn_shared_on(int (*fn)(void *), void *arg, void *stack, size_t stack_size);
