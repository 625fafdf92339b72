/* daemon/instance/pack.c: running tar for publish and backups (see pack.h). */
#include "daemon/instance/pack.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/json.h"
#include "lib/macros.h"
#include "lib/spawn.h"
#include "lib/util.h"

#define SHIFT_COUNT_MAX (1ul << 20) /* lines of a tar id map */

int pack_shift_read(const char *dir, struct pack_shift *ret, struct berth_error *err)
{
	_cleanup_free_ char *marker = berth_strdup_printf("%s/berth-shift", dir);
	_cleanup_free_ char *text = NULL;
	int r;

	*ret = (struct pack_shift){0};
	if (!marker)
		return -ENOMEM;
	r = berth_read_file(marker, 128, &text, NULL);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "Reading %s: %s", marker,
				       strerror(-r));
	if (sscanf(text, "%lu %lu %lu", &ret->base[0], &ret->base[1], &ret->count) != 3 ||
	    ret->count > SHIFT_COUNT_MAX)
		return berth_error_set(err, -EINVAL, BERTH_ERR_INTERNAL,
				       "Cannot pack: bad or too large shift marker %s", marker);
	ret->on = true;
	return 0;
}

/* `name` in `dir`: "+HOST +CONTAINER" for each id. */
static int map_write(const char *dir, const char *name, unsigned long base, unsigned long count,
		     char **ret, struct berth_error *err)
{
	_cleanup_free_ char *path = berth_strdup_printf("%s/%s", dir, name);
	FILE *f;
	int r = 0;

	if (!path)
		return -ENOMEM;
	f = fopen(path, "wxe");
	if (!f)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "Creating %s: %m", path);
	*ret = TAKE_PTR(path);
	for (unsigned long i = 0; i < count && r >= 0; i++)
		if (fprintf(f, "+%lu +%lu\n", base + i, i) < 0)
			r = -EIO;
	if (fclose(f) != 0 && r >= 0)
		r = -errno;
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "Writing %s: %s", *ret,
				       strerror(-r));
	return 0;
}

int pack_shift_maps_write(const char *dir, const struct pack_shift *sh, char *ret[2],
			  struct berth_error *err)
{
	int r = map_write(dir, "owner-map", sh->base[0], sh->count, &ret[0], err);

	if (r >= 0)
		r = map_write(dir, "group-map", sh->base[1], sh->count, &ret[1], err);
	return r;
}

/* The fastest gzip-format compressor installed where tar looks for programs
 * (berth_program_find: BERTH_SPAWN_PATH, tar's PATH). The format is what the caller asked
 * for; only the speed and a little of the size differ: igzip (ISA-L) at level 1 on every
 * CPU is ten times pigz -6 here for output about a tenth larger; pigz keeps gzip's ratio
 * on every CPU; tar's --gzip runs one gzip. */
static pthread_once_t gzip_once = PTHREAD_ONCE_INIT;
static char gzip_flag[64];

static void gzip_look(void)
{
	_cleanup_free_ char *path = NULL;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	if (berth_program_find("igzip", &path) == 0)
		snprintf(gzip_flag, sizeof(gzip_flag), "--use-compress-program=igzip -1 -T %ld",
			 cpus > 0 ? cpus : 1);
	else if (berth_program_find("pigz", &path) == 0)
		snprintf(gzip_flag, sizeof(gzip_flag), "--use-compress-program=pigz");
	else
		snprintf(gzip_flag, sizeof(gzip_flag), "--gzip");
}

const char *pack_compress_flag(const char *algo)
{
	static const char *const flags[][2] = {
		{"xz", "--xz"},
		{"zstd", "--zstd"},
		{"bzip2", "--bzip2"},
		{"lzma", "--lzma"},
	};

	if (streq(algo, "gzip")) {
		pthread_once(&gzip_once, gzip_look);
		return gzip_flag;
	}
	for (size_t i = 0; i < ARRAY_SIZE(flags); i++)
		if (streq(algo, flags[i][0]))
			return flags[i][1];
	return NULL;
}

static void progress(struct operation *op, const struct pack_labels *l, int out, uint64_t start_ns)
{
	struct stat st;
	double secs = (double)(berth_monotonic_ns() - start_ns) / 1e9;
	char text[96];

	if (fstat(out, &st) < 0)
		return;
	snprintf(text, sizeof(text), "%s: %.2fMB (%.2fMB/s)", l->progress_text,
		 (double)st.st_size / 1e6, secs > 0 ? (double)st.st_size / 1e6 / secs : 0.0);
	operation_set_metadata(op, json_pack("{s:s}", l->progress_key, text));
}

/* The last line that says why tar failed, from its stderr (`fd`, a memfd), in `buf`. */
static const char *last_line(int fd, char *buf, size_t size)
{
	struct stat st;
	off_t off = 0;
	ssize_t n;
	char *nl;

	if (fstat(fd, &st) == 0 && st.st_size > (off_t)size - 1)
		off = st.st_size - (off_t)size + 1;
	n = pread(fd, buf, size - 1, off);
	buf[n > 0 ? n : 0] = '\0';
	while (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	nl = strrchr(buf, '\n');
	/* "tar: Exiting with failure status due to previous errors": the one before says why */
	if (nl && strstr(nl + 1, "Exiting with failure status")) {
		*nl = '\0';
		nl = strrchr(buf, '\n');
	}
	if (nl)
		return nl + 1;
	return *buf ? buf : "tar failed";
}

/* Wait for tar (`pid`, `pidfd`), reporting the size written to `out` twice a second and
 * killing it when the operation is cancelled. */
static int wait_tar(struct operation *op, const struct pack_labels *l, pid_t pid, int pidfd,
		    int out, int errfd, struct berth_error *err)
{
	const atomic_bool *cancel = operation_cancel_flag(op);
	uint64_t start = berth_monotonic_ns();
	bool killed = false;
	siginfo_t si = {0};
	char tail[512] = "";

	for (;;) {
		struct pollfd p = {.fd = pidfd, .events = POLLIN};
		int r = poll(&p, 1, 500);
		if (r < 0 && errno != EINTR)
			return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "poll: %m");
		if (r > 0)
			break;
		progress(op, l, out, start);
		if (!killed && cancel && atomic_load(cancel)) {
			kill(pid, SIGTERM);
			killed = true;
		}
	}
	if (waitid(P_PIDFD, (id_t)pidfd, &si, WEXITED) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "waitid: %m");
	if (killed || (cancel && atomic_load(cancel)))
		return berth_error_set(err, -ECANCELED, BERTH_ERR_INTERNAL, "%s", l->cancelled);
	if (si.si_code == CLD_EXITED && (si.si_status == 0 || (l->changed_ok && si.si_status == 1)))
		return 0;
	return berth_error_set(err, -EIO, BERTH_ERR_INTERNAL, "%s: %s", l->failed,
			       last_line(errfd, tail, sizeof(tail)));
}

#define COMPRESS_FLAG "--use-compress-program="

/* A pack as two programs: tar, and the compressor it was told to run (one of
 * pack_compress_flag's, "PROG ARGS..."), which berthd starts itself on tar's output:
 * tar would put a shell in between, one more program to start for each pack. */
struct pipeline {
	const char **tar; /* tar's argv without the flag */
	char *words;	  /* the compressor's command line, split in place */
	const char *z[8]; /* its argv; z[0] NULL: none */
};

static void pipeline_release(struct pipeline *p)
{
	free(p->tar);
	free(p->words);
}

static int pipeline_split(const char *const *argv, struct pipeline *p)
{
	size_t n = 0, k = 0;
	char *save = NULL;

	while (argv[n])
		n++;
	p->tar = calloc(n + 1, sizeof(*p->tar));
	if (!p->tar)
		return -ENOMEM;
	for (n = 0; *argv; argv++) {
		if (!p->words && berth_startswith(*argv, COMPRESS_FLAG)) {
			p->words = strdup(*argv + strlen(COMPRESS_FLAG));
			if (!p->words)
				return -ENOMEM;
			for (char *w = strtok_r(p->words, " ", &save);
			     w && k + 1 < ARRAY_SIZE(p->z); w = strtok_r(NULL, " ", &save))
				p->z[k++] = w;
			continue;
		}
		p->tar[n++] = *argv;
	}
	return 0;
}

/* The compressor's exit, once tar is done: 0, or -EIO. */
static int wait_compressor(int pidfd, const struct pack_labels *l, int errfd,
			   struct berth_error *err)
{
	siginfo_t si = {0};
	char tail[512] = "";

	if (waitid(P_PIDFD, (id_t)pidfd, &si, WEXITED) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "waitid: %m");
	if (si.si_code == CLD_EXITED && si.si_status == 0)
		return 0;
	return berth_error_set(err, -EIO, BERTH_ERR_INTERNAL, "%s: %s", l->failed,
			       last_line(errfd, tail, sizeof(tail)));
}

/* Start the compressor of `p` reading a pipe and writing `out`; *ret_in: the pipe's
 * end tar writes to. */
static int start_compressor(const struct pipeline *p, int out, int errfd, int *ret_in, pid_t *pid,
			    int *pidfd, struct berth_error *err)
{
	int fds[2], r;

	if (pipe2(fds, O_CLOEXEC) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "pipe: %m");
	struct berth_spawn z = {
		.argv = p->z,
		.io = {BERTH_SPAWN_FD, BERTH_SPAWN_FD, BERTH_SPAWN_FD},
		.fds = {fds[0], out, errfd},
	};
	r = berth_spawn_start(&z, pid, pidfd, err);
	close(fds[0]);
	if (r < 0) {
		close(fds[1]);
		return r;
	}
	*ret_in = fds[1];
	return 0;
}

int pack_run(struct operation *op, const char *const *argv, int out,
	     const struct pack_labels *labels, struct berth_error *err)
{
	_cleanup_close_ int errfd = memfd_create("berth-pack-err", MFD_CLOEXEC);
	_cleanup_close_ int pidfd = -EBADF, zpidfd = -EBADF, zin = -EBADF;
	_cleanup_(pipeline_release) struct pipeline p = {0};
	struct berth_spawn s = {
		.io = {BERTH_SPAWN_NULL, BERTH_SPAWN_FD, BERTH_SPAWN_FD},
		.fds = {-1, out, errfd},
	};
	pid_t pid, zpid;
	int r = pipeline_split(argv, &p);

	if (r < 0)
		return r;
	if (errfd < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL, "memfd_create: %m");
	if (p.z[0]) {
		r = start_compressor(&p, out, errfd, &zin, &zpid, &zpidfd, err);
		if (r < 0)
			return r;
		s.fds[1] = zin;
	}
	s.argv = p.z[0] ? p.tar : argv;
	r = berth_spawn_start(&s, &pid, &pidfd, err);
	/* the compressor's input ends with tar: its only writer */
	berth_closep(&zin);
	zin = -EBADF;
	if (r >= 0)
		r = wait_tar(op, labels, pid, pidfd, out, errfd, err);
	if (zpidfd >= 0) {
		int z = wait_compressor(zpidfd, labels, errfd, r < 0 ? NULL : err);
		if (r >= 0)
			r = z;
	}
	return r;
}
