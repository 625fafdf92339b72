/* daemon/runtime/exec_words.h: the words of a monitor request (doc/runtime.md, "`exec`
 * requests"): each word of a request line %XX-escaped so that it holds no space, newline
 * or NUL. Shared by berthd (exec_session), berth-monitor and berth-vmmon; libc only. */
#pragma once

#include <stddef.h>

/* The most bytes runtime_word_escape writes for `w`. */
size_t runtime_word_room(const char *w);
/* Write `w` escaped at `out` (which has room for runtime_word_room(w) bytes) and return
 * the end (not NUL-terminated): bytes other than [A-Za-z0-9] and -_./=:,+@ become %XX;
 * the empty word is "%00" (older writers never sent one; older readers refuse it). */
char *runtime_word_escape(char *out, const char *w);
/* Undo the escapes of one word in place: "%00" alone is the empty word. -EINVAL on a bad
 * escape or an escaped NUL within a word. */
int runtime_word_unescape(char *w);
/* Split `line` in place at spaces and unescape each word: a new NULL-terminated array
 * (free it; the strings are `line`'s) in *ret and the count in *ret_n. -EINVAL, -ENOMEM. */
int runtime_words_split(char *line, char ***ret, size_t *ret_n);
