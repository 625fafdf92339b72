/* daemon/instance/btrfs_stream.h: a `btrfs send` stream (format version 1) checked in
 * berthd, command by command, before `btrfs receive` is given any of it.
 *
 * The format: a header ("btrfs-stream\0", a u32 version), then commands, each a u32
 * length, a u16 type and a u32 crc32c (little-endian), then `length` bytes of attributes
 * (u16 type, u16 length, value). btrfs receive verifies each command's crc32c itself (a
 * mismatch fails the receive); the check here reads the same framing, so what it passes
 * is exactly what the receive executes.
 *
 * A stream is refused unless: its first command makes one subvolume, named by one plain
 * component not received before (`known`), and when it is a snapshot, one of the
 * subvolume received just before (`prev_uuid`); no other command makes a subvolume;
 * every path it names (the path of each command, a rename's destination, a hard link's
 * target, a clone's source) is relative and holds no ".." component; it makes no block
 * device and no character device but the harmless ones of a root file system's /dev (as
 * backup_member_check); it has only the commands and attributes version 1 defines, each
 * attribute once; it ends with its end command, and nothing follows.
 *
 * Pure functions on memory (no disk, no daemon): unit tests and the fuzz target call them
 * directly. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/error.h"

#define BTRFS_STREAM_UUID_SIZE 16
/* The stream's header: magic and version. */
#define BTRFS_STREAM_HEADER_SIZE 17
/* A command's header, and the largest command (header included) version 1 allows. */
#define BTRFS_STREAM_CMD_HEADER_SIZE 10
#define BTRFS_STREAM_CMD_MAX 65536

struct btrfs_stream_check {
	/* in */
	const json_t *known;			   /* names received before, or NULL */
	uint8_t prev_uuid[BTRFS_STREAM_UUID_SIZE]; /* the stream received before, */
	bool has_prev;				   /* if any: a snapshot's parent */
	/* out: the subvolume the stream makes, once its first command was read */
	char name[256];
	uint8_t uuid[BTRFS_STREAM_UUID_SIZE];
	bool snapshot; /* a snapshot of the one received before, not a whole subvolume */
	/* where the check is */
	bool header; /* the stream's header was read */
	bool ended;  /* its end command was read */
	uint64_t commands;
};

/* Check what of `buf` (`len` bytes: the stream from where the last call stopped) is
 * whole: the header, then each complete command. Returns how many bytes were checked
 * (the rest, a command cut short, is to be passed again with what follows), or -EINVAL
 * (400) saying what is wrong. */
ssize_t btrfs_stream_check(struct btrfs_stream_check *c, const uint8_t *buf, size_t len,
			   struct berth_error *err);

/* The stream ended with `left` bytes not taken by btrfs_stream_check: 0 when it was whole
 * (its end command, nothing left over), else -EINVAL (400). */
int btrfs_stream_check_end(const struct btrfs_stream_check *c, size_t left,
			   struct berth_error *err);
