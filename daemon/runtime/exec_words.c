/* daemon/runtime/exec_words.c: request words and the options of an exec request
 * (exec_words.h, exec.h): libc only, so that berthd, berth-monitor and berth-vmmon share
 * one parser of what `berth-monitor exec` takes. */
#include "daemon/runtime/exec_words.h"
#include "daemon/runtime/exec.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/macros.h"

size_t runtime_word_room(const char *w)
{
	return *w ? 3 * strlen(w) : 3;
}

char *runtime_word_escape(char *out, const char *w)
{
	static const char hex[] = "0123456789ABCDEF";

	if (!*w) /* the empty word: an escaped NUL, which no other word holds */
		return memcpy(out, "%00", 3), out + 3;
	for (const unsigned char *p = (const unsigned char *)w; *p; p++) {
		if (isalnum(*p) || strchr("-_./=:,+@", *p)) {
			*out++ = (char)*p;
		} else {
			*out++ = '%';
			*out++ = hex[*p >> 4];
			*out++ = hex[*p & 15];
		}
	}
	return out;
}

int runtime_word_unescape(char *w)
{
	char *out = w;

	if (strcmp(w, "%00") == 0) {
		*w = '\0';
		return 0;
	}
	for (char *in = w; *in; in++) {
		if (*in != '%') {
			*out++ = *in;
			continue;
		}
		unsigned v;
		if (!isxdigit((unsigned char)in[1]) || !isxdigit((unsigned char)in[2]) ||
		    sscanf(in + 1, "%2x", &v) != 1 || v == 0)
			return -EINVAL;
		*out++ = (char)v;
		in += 2;
	}
	*out = '\0';
	return 0;
}

/* Append `s` to the NULL-terminated array *list of *n entries. */
static int strv_push(char ***list, size_t *n, char *s)
{
	char **nl = realloc(*list, (*n + 2) * sizeof(char *));

	if (!nl)
		return -ENOMEM;
	nl[(*n)++] = s;
	nl[*n] = NULL;
	*list = nl;
	return 0;
}

int runtime_words_split(char *line, char ***ret, size_t *ret_n)
{
	char **v = NULL;
	size_t n = 0;

	for (char *save = NULL, *w = strtok_r(line, " ", &save); w;
	     w = strtok_r(NULL, " ", &save)) {
		int r = runtime_word_unescape(w);

		if (r >= 0)
			r = strv_push(&v, &n, w);
		if (r < 0) {
			free(v);
			return r;
		}
	}
	if (!v && strv_push(&v, &n, NULL) < 0)
		return -ENOMEM;
	*ret = v;
	*ret_n = n;
	return 0;
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

int runtime_exec_parse(int argc, char **argv, struct runtime_exec_opts *o)
{
	char **env = NULL;
	size_t n_env = 0;
	int i;

	for (i = 0; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		unsigned long n;

		if (streq(a, "--")) {
			i++;
			break;
		}
		if (streq(a, "--pty")) {
			o->pty = true;
			continue;
		}
		if (!v)
			goto bad;
		if (streq(a, "--uid") && parse_uint(v, 0xfffffffeUL, &n) == 0)
			o->uid = (uid_t)n;
		else if (streq(a, "--gid") && parse_uint(v, 0xfffffffeUL, &n) == 0)
			o->gid = (gid_t)n;
		else if (streq(a, "--status-fd") && parse_uint(v, 65535, &n) == 0)
			o->status_fd = (int)n;
		else if (streq(a, "--cwd") && v[0] == '/')
			o->cwd = v;
		else if (streq(a, "--env") && strchr(v, '=') && v[0] != '=') {
			if (strv_push(&env, &n_env, (char *)v) < 0)
				goto bad;
		} else
			goto bad;
		i++;
	}
	if (i >= argc)
		goto bad;
	o->env = env;
	o->argv = argv + i;
	return 0;
bad:
	free(env);
	return -EINVAL;
}

static int push_copy(char ***list, size_t *n, const char *s)
{
	char *copy = strdup(s);

	if (!copy || strv_push(list, n, copy) < 0) {
		free(copy);
		return -ENOMEM;
	}
	return 0;
}

char **runtime_exec_env(const struct runtime_exec_opts *o)
{
	const char *defaults[] = {
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"LANG=C.UTF-8",
		o->uid == 0 ? "HOME=/root" : "HOME=/",
		o->uid == 0 ? "USER=root" : NULL,
	};
	char **env = NULL;
	size_t n = 0;

	for (char **e = o->env; e && *e; e++)
		if (push_copy(&env, &n, *e) < 0)
			goto oom;
	for (size_t i = 0; i < ARRAY_SIZE(defaults); i++) {
		size_t kl;
		bool given = false;
		if (!defaults[i])
			continue;
		kl = (size_t)(strchr(defaults[i], '=') - defaults[i]) + 1;
		for (char **e = o->env; e && *e; e++)
			if (strneq(*e, defaults[i], kl))
				given = true;
		if (!given && push_copy(&env, &n, defaults[i]) < 0)
			goto oom;
	}
	return env;
oom:
	runtime_exec_env_free(env);
	return NULL;
}

void runtime_exec_env_free(char **env)
{
	for (char **e = env; e && *e; e++)
		free(*e);
	free(env);
}
