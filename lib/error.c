/* lib/error.c: the error object (see error.h). */
#include "lib/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int error_vset(struct berth_error *err, int code, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

static int error_vset(struct berth_error *err, int code, const char *fmt, va_list ap)
{
	char *msg = NULL;

	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL; /* keep the old message rather than lose the code */
	err->code = code;
	if (msg) {
		free(err->msg);
		err->msg = msg;
	}
	return 0;
}

int berth_error_set(struct berth_error *err, int ret, int code, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return ret;
	va_start(ap, fmt);
	error_vset(err, code, fmt, ap);
	va_end(ap);
	return ret;
}

int berth_error_wrap(struct berth_error *err, int ret, const char *fmt, ...)
{
	_cleanup_free_ char *ctx = NULL;
	char *msg = NULL;
	va_list ap;

	if (!err)
		return ret;
	va_start(ap, fmt);
	if (vasprintf(&ctx, fmt, ap) < 0)
		ctx = NULL;
	va_end(ap);
	if (!ctx)
		return ret;
	if (asprintf(&msg, "%s: %s", ctx, berth_error_msg(err, ret)) < 0)
		return ret;
	if (!err->code)
		err->code = berth_error_code_for(NULL, ret);
	free(err->msg);
	err->msg = msg;
	return ret;
}

int berth_error_code_for(const struct berth_error *err, int ret)
{
	if (err && err->code)
		return err->code;
	switch (ret) {
	case -ENOENT:
		return BERTH_ERR_NOT_FOUND;
	case -EEXIST:
	case -EBUSY:
		return BERTH_ERR_CONFLICT;
	case -EINVAL:
	case -ERANGE:
	case -ENAMETOOLONG:
		return BERTH_ERR_BAD_REQUEST;
	case -EPERM:
	case -EACCES:
		return BERTH_ERR_FORBIDDEN;
	case -E2BIG:
	case -EMSGSIZE:
		return BERTH_ERR_TOO_LARGE;
	default:
		return BERTH_ERR_INTERNAL;
	}
}

const char *berth_error_msg(const struct berth_error *err, int ret)
{
	if (err && err->msg)
		return err->msg;
	return strerror(ret < 0 ? -ret : ret);
}

void berth_error_release(struct berth_error *err)
{
	if (!err)
		return;
	free(err->msg);
	err->msg = NULL;
	err->code = 0;
}
