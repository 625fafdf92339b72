/* lib/macros.h: cleanup attributes and ownership helpers used everywhere.
 *
 * A variable declared with a _cleanup_ attribute is released when it leaves
 * scope. Hand ownership away with TAKE_PTR()/TAKE_FD(), which return the value
 * and leave NULL/-EBADF behind so the cleanup does nothing. */
#pragma once

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _warn_unused_ __attribute__((warn_unused_result))

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* BERTH_ASAN: 1 in AddressSanitizer builds. A child started with CLONE_VM on a stack of
 * its own leaves that stack's shadow poisoned after it is gone: such builds fork. */
#if defined(__SANITIZE_ADDRESS__)
#define BERTH_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BERTH_ASAN 1
#endif
#endif
#ifndef BERTH_ASAN
#define BERTH_ASAN 0
#endif

static inline void berth_freep(void *p)
{
	free(*(void **)p);
}
#define _cleanup_free_ _cleanup_(berth_freep)

/* Close *fd if open and mark it closed, so that a second call (an explicit close, then the
 * cleanup at the end of the scope) never closes a number another thread has since been
 * given. */
static inline void berth_closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
	*fd = -EBADF;
}
#define _cleanup_close_ _cleanup_(berth_closep)

/* Define `name##p(type **)` calling `func` on a non-NULL pointer. */
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)                                                    \
	static inline void func##p(type *p)                                                        \
	{                                                                                          \
		if (*p)                                                                            \
			func(*p);                                                                  \
	}

#define TAKE_PTR(p)                                                                                \
	({                                                                                         \
		__typeof__(p) _tp = (p);                                                           \
		(p) = NULL;                                                                        \
		_tp;                                                                               \
	})

#define TAKE_FD(fd)                                                                                \
	({                                                                                         \
		int _tf = (fd);                                                                    \
		(fd) = -EBADF;                                                                     \
		_tf;                                                                               \
	})

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#define streq(a, b) (strcmp((a), (b)) == 0)
#define strneq(a, b, n) (strncmp((a), (b), (n)) == 0)
