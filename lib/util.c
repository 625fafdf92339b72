/* lib/util.c: small helpers (see util.h). */
#include "lib/util.h"

#include <ctype.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

void berth_time_rfc3339(const struct timespec *ts, char *buf)
{
	struct tm tm;
	size_t n;

	gmtime_r(&ts->tv_sec, &tm);
	n = strftime(buf, BERTH_RFC3339_MAX, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, BERTH_RFC3339_MAX - n, ".%09ldZ", ts->tv_nsec);
}

void berth_now_rfc3339(char *buf)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	berth_time_rfc3339(&ts, buf);
}

uint64_t berth_monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int berth_uuid_new(char *buf)
{
	uint8_t b[16];
	ssize_t n = getrandom(b, sizeof(b), 0);

	if (n != (ssize_t)sizeof(b))
		return n < 0 ? -errno : -EIO;
	b[6] = (b[6] & 0x0f) | 0x40;
	b[8] = (b[8] & 0x3f) | 0x80;
	snprintf(buf, BERTH_UUID_STR_LEN,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
		 b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
		 b[15]);
	return 0;
}

int berth_name_check_instance(const char *name, struct berth_error *err)
{
	size_t len = strlen(name);

	if (len == 0)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Invalid instance name: name is empty");
	if (len > 63)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Invalid instance name \"%s\": longer than 63 characters",
				       name);
	if (name[0] == '-' || name[len - 1] == '-')
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Invalid instance name \"%s\": must not start or end with "
				       "a hyphen",
				       name);
	if (isdigit((unsigned char)name[0]))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Invalid instance name \"%s\": must not start with a digit",
				       name);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = name[i];
		if (!isalnum(c) && c != '-')
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Invalid instance name \"%s\": only letters, digits "
					       "and hyphens are allowed",
					       name);
	}
	return 0;
}

int berth_name_check_entity(const char *what, const char *name, struct berth_error *err)
{
	size_t len = strlen(name);

	if (len == 0)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST, "Invalid %s: empty",
				       what);
	if (len > 63)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Invalid %s \"%s\": longer than 63 characters", what, name);
	if (streq(name, ".") || streq(name, ".."))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Invalid %s \"%s\": reserved name", what, name);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = name[i];
		if (c < 0x20 || c == 0x7f || isspace(c) || strchr("/'\"?*\\", c))
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "Invalid %s \"%s\": must not contain whitespace, "
					       "control characters or any of / ' \" ? * \\",
					       what, name);
	}
	return 0;
}

bool berth_startswith(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool berth_endswith(const char *s, const char *suffix)
{
	size_t ls = strlen(s), lx = strlen(suffix);

	return ls >= lx && memcmp(s + ls - lx, suffix, lx) == 0;
}

char *berth_strdup_printf(const char *fmt, ...)
{
	char *s = NULL;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int berth_url_decode(const char *in, size_t len, char **ret)
{
	_cleanup_free_ char *out = malloc(len + 1);
	size_t j = 0;

	if (!out)
		return -ENOMEM;
	for (size_t i = 0; i < len; i++) {
		char c = in[i];
		if (c == '%') {
			int hi, lo;
			if (i + 2 >= len)
				return -EINVAL;
			hi = hexval(in[i + 1]);
			lo = hexval(in[i + 2]);
			if (hi < 0 || lo < 0)
				return -EINVAL;
			c = (char)(hi << 4 | lo);
			i += 2;
		}
		if (c == '\0')
			return -EINVAL;
		out[j++] = c;
	}
	out[j] = '\0';
	*ret = TAKE_PTR(out);
	return 0;
}

char *berth_url_encode(const char *in)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t len = strlen(in);
	char *out = malloc(len * 3 + 1), *p = out;

	if (!out)
		return NULL;
	for (const unsigned char *s = (const unsigned char *)in; *s; s++) {
		if (isalnum(*s) || strchr("-._~", *s)) {
			*p++ = (char)*s;
		} else {
			*p++ = '%';
			*p++ = hex[*s >> 4];
			*p++ = hex[*s & 15];
		}
	}
	*p = '\0';
	return out;
}

int berth_read_file(const char *path, size_t max, char **ret, size_t *ret_len)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	_cleanup_free_ char *buf = NULL;
	size_t len = 0, cap = max < 4096 ? max : 4096;

	if (fd < 0)
		return -errno;
	buf = malloc(cap + 1);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t n;
		if (len == cap) {
			char *nb, probe;
			if (cap >= max) {
				/* Full: fine only if nothing follows. */
				n = read(fd, &probe, 1);
				if (n == 0)
					break;
				return n < 0 ? -errno : -EFBIG;
			}
			cap = cap * 2 > max ? max : cap * 2;
			nb = realloc(buf, cap + 1);
			if (!nb)
				return -ENOMEM;
			buf = nb;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	if (ret_len)
		*ret_len = len;
	*ret = TAKE_PTR(buf);
	return 0;
}

int berth_write_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int berth_send_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

bool berth_fs_room(int fd, uint64_t len)
{
	struct statvfs sv;
	uint64_t avail, reserve;

	if (fstatvfs(fd, &sv) < 0 || sv.f_frsize == 0)
		return true;
	avail = (uint64_t)sv.f_bavail * sv.f_frsize;
	reserve = (uint64_t)sv.f_blocks * sv.f_frsize / 20;
	return avail > reserve && len <= avail - reserve;
}

static int write_file_via_tmp(const char *path, const void *data, size_t len, int mode, bool sync)
{
	_cleanup_free_ char *tmp = berth_strdup_printf("%s.tmp.XXXXXX", path);
	_cleanup_close_ int fd = -EBADF;
	int r;

	if (!tmp)
		return -ENOMEM;
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = berth_write_all(fd, data, len);
	if (r < 0) {
		unlink(tmp);
		return r;
	}
	if (fchmod(fd, (mode_t)mode) < 0 || (sync && fsync(fd) < 0) || rename(tmp, path) < 0) {
		r = -errno;
		unlink(tmp);
		return r;
	}
	return 0;
}

int berth_write_file_atomic(const char *path, const void *data, size_t len, int mode)
{
	return write_file_via_tmp(path, data, len, mode, true);
}

int berth_write_file_replace(const char *path, const void *data, size_t len, int mode)
{
	return write_file_via_tmp(path, data, len, mode, false);
}

int berth_mkdir_p(const char *path, int mode)
{
	_cleanup_free_ char *p = strdup(path);

	if (!p)
		return -ENOMEM;
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, (mode_t)mode) < 0 && errno != EEXIST)
			return -errno;
		*s = '/';
	}
	if (mkdir(p, (mode_t)mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

bool berth_test_flag(const char *name)
{
	const char *v = getenv(name);

	return v && *v && getenv("BERTH_TEST_HARNESS");
}

int berth_helper_binary(const char *name, const char *env_var, char **ret)
{
	char exe[PATH_MAX];
	const char *env = getenv(env_var);
	ssize_t n;

	if (env && *env) {
		*ret = strdup(env);
		return *ret ? 0 : -ENOMEM;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n < 0)
		return -errno;
	exe[n] = '\0';
	*strrchr(exe, '/') = '\0';
	for (int i = 0; i < 2; i++) {
		_cleanup_free_ char *p =
			berth_strdup_printf(i == 0 ? "%s/../libexec/berth/%s" : "%s/%s", exe, name);
		if (!p)
			return -ENOMEM;
		if (access(p, X_OK) == 0) {
			*ret = TAKE_PTR(p);
			return 0;
		}
	}
	return -ENOENT;
}

void berth_test_pause(const char *point)
{
	const char *list = getenv("BERTH_TEST_PAUSE_AT");
	size_t len = strlen(point);

	if (!list || !getenv("BERTH_TEST_HARNESS"))
		return;
	for (const char *p = list; *p;) {
		size_t n = strcspn(p, ",");

		if (n == len && strncmp(p, point, len) == 0) {
			fprintf(stderr, "berth-test-pause: %s\n", point);
			fflush(stderr);
			for (;;)
				pause();
		}
		p += n;
		p += *p == ',';
	}
}

bool berth_fd_may_enter_instance(int fd)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return false;
	if (S_ISFIFO(st.st_mode) || S_ISREG(st.st_mode) || S_ISSOCK(st.st_mode))
		return true;
	return S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3);
}

void *berth_spawn_stack_new(size_t stack_size)
{
	void *stack;

	if (BERTH_ASAN) {
		errno = ENOSYS;
		return NULL;
	}
	stack = mmap(NULL, stack_size, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK | MAP_NORESERVE, -1, 0);
	return stack == MAP_FAILED ? NULL : stack;
}

int berth_spawn_shared_on(int (*fn)(void *), void *arg, void *stack, size_t stack_size)
{
	return clone(fn, (char *)stack + stack_size, CLONE_VM | CLONE_VFORK | SIGCHLD, arg);
}

int berth_time_normalize(const char *s, char *buf)
{
	struct tm tm = {0};
	struct timespec ts = {0};
	const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	long scale = 100000000;
	int sign, hh, mm;

	if (!p)
		return -EINVAL;
	if (*p == '.')
		for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10)
			ts.tv_nsec += scale > 0 ? (*p - '0') * scale : 0;
	ts.tv_sec = timegm(&tm);
	if (*p == 'Z' && !p[1]) {
		/* as given */
	} else if ((*p == '+' || *p == '-') && sscanf(p + 1, "%2d:%2d", &hh, &mm) == 2 &&
		   strlen(p) == 6) {
		sign = *p == '+' ? 1 : -1;
		ts.tv_sec -= sign * (hh * 3600 + mm * 60);
	} else {
		return -EINVAL;
	}
	if (tm.tm_year + 1900 <= 1) {
		snprintf(buf, BERTH_RFC3339_MAX, "%s", BERTH_TIME_ZERO);
		return 0;
	}
	berth_time_rfc3339(&ts, buf);
	/* as Go's RFC3339Nano writes it (LXD's JSON): no trailing zeros in the fraction */
	char *dot = strchr(buf, '.');
	if (dot) {
		size_t end = strlen(buf) - 1; /* the 'Z' */

		while (end > (size_t)(dot - buf) + 1 && buf[end - 1] == '0')
			end--;
		if (end == (size_t)(dot - buf) + 1)
			end--;
		memmove(buf + end, "Z", 2);
	}
	return 0;
}
