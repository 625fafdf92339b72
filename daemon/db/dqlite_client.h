/* daemon/db/dqlite_client.h: a client of dqlite's wire protocol (version 1), berth's own.
 *
 * Why berth has one: Debian 12's libdqlite (1.11) exports the server side only (the
 * dqlite_node_* calls); the client that LXD uses is Go (go-dqlite). So this file speaks
 * the documented protocol (https://dqlite.io/docs/reference/wire-protocol) itself.
 *
 * The protocol in short: after connecting, the client sends one 8-byte word, the protocol
 * version. Then every message, either way, is an 8-byte header (body length in words,
 * u32 LE; type; schema version; two unused bytes) and a body made of 8-byte aligned
 * fields: u64/i64/double little endian, text NUL-terminated and zero-padded to a word,
 * blobs as a u64 length and the padded bytes. The server answers each request with one
 * response, except a query whose result does not fit one page: its ROWS response ends
 * with the PART marker and the next page follows unasked, until one ends with DONE.
 *
 * Use: dqlite_client_connect() (or _from_fd()), then requests one at a time; each blocks
 * until its reply or the connection's timeout. Not thread safe: one caller at a time.
 *
 * Errors: every call returns 0 or -errno and sets `err` on failure.
 *   -EREMOTEIO  the server answered FAILURE; dqlite_client_failure_code() has its code
 *               (an SQLite extended code, e.g. SQLITE_IOERR_NOT_LEADER) and `err` its
 *               message. The connection stays usable.
 *   -EPROTO     the reply is malformed or of an unexpected type.
 *   -ETIMEDOUT  no (complete) reply within the timeout.
 *   -ECONNRESET the server closed the connection.
 *   -ENOTCONN   an earlier EPROTO/ETIMEDOUT/ECONNRESET or I/O error left the stream in
 *               an unknown state: the connection is unusable, free it.
 *   -EINVAL/-E2BIG/-ENOMEM  bad arguments (too many parameters) or no memory. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/error.h"

#define DQLITE_CLIENT_PROTOCOL_VERSION 1

/* Largest message body accepted from a server; dqlite's pages are about 4 KiB. */
#define DQLITE_CLIENT_MAX_BODY (64u * 1024 * 1024)

/* Largest number of bound parameters: the version 0 tuple header counts them in a byte. */
#define DQLITE_CLIENT_MAX_PARAMS 255

/* dqlite's codes for a value's type (SQLite's five, then dqlite's three). */
enum dqlite_client_type {
	DQLITE_CLIENT_INTEGER = 1,
	DQLITE_CLIENT_FLOAT = 2,
	DQLITE_CLIENT_TEXT = 3,
	DQLITE_CLIENT_BLOB = 4,
	DQLITE_CLIENT_NULL = 5,
	DQLITE_CLIENT_UNIXTIME = 9, /* a DATETIME column holding an integer */
	DQLITE_CLIENT_ISO8601 = 10, /* a DATETIME column holding text */
	DQLITE_CLIENT_BOOLEAN = 11, /* a BOOLEAN column */
	DQLITE_CLIENT_TYPE_MAX,
};

/* Raft roles, as CLUSTER reports and ASSIGN takes them. */
enum dqlite_client_role {
	DQLITE_CLIENT_VOTER = 0,
	DQLITE_CLIENT_STANDBY = 1,
	DQLITE_CLIENT_SPARE = 2,
	DQLITE_CLIENT_ROLE_MAX,
};

/* One value: a parameter to bind (pointers borrowed from the caller) or a column of a
 * decoded row (pointers owned by the struct dqlite_client_rows it is in). */
struct dqlite_client_value {
	enum dqlite_client_type type;
	union {
		int64_t integer;  /* INTEGER, UNIXTIME */
		double real;	  /* FLOAT */
		uint64_t boolean; /* BOOLEAN */
		const char *text; /* TEXT, ISO8601: NUL-terminated */
		struct {
			const void *data; /* BLOB; NULL only when len is 0 */
			size_t len;
		} blob;
	};
};

/* A query's result: every page's rows, in order. Release with dqlite_client_rows_release. */
struct dqlite_client_rows {
	size_t n_columns;
	char **columns; /* owned: n_columns names */
	size_t n_rows;
	struct dqlite_client_value *values; /* owned: n_rows * n_columns, row after row */
	size_t cap;			    /* values allocated */
	size_t pages;			    /* ROWS messages the result came in */
};

/* What EXEC and EXEC_SQL report. */
struct dqlite_client_result {
	uint64_t last_insert_id;
	uint64_t rows_affected;
};

/* A member of the cluster, as CLUSTER lists it. */
struct dqlite_client_node {
	uint64_t id;
	char *address; /* owned */
	enum dqlite_client_role role;
};

struct dqlite_client;

/* Connect to `address`: "@name" (abstract unix socket), "/path" (unix socket) or
 * "host:port" / "[v6]:port" (TCP), then send the protocol version. `timeout_ms` (> 0)
 * bounds the connect and each request after it. On success *ret is the caller's. */
int dqlite_client_connect(const char *address, int timeout_ms, struct dqlite_client **ret,
			  struct berth_error *err);

/* The same over an already connected stream socket `fd`, which is the client's from now
 * on, success or not (closed on failure). */
int dqlite_client_from_fd(int fd, int timeout_ms, struct dqlite_client **ret,
			  struct berth_error *err);

/* Give each later request `timeout_ms` (> 0) for its reply. */
void dqlite_client_set_timeout(struct dqlite_client *c, int timeout_ms);

/* Close the connection and free the client; NULL is fine. */
void dqlite_client_free(struct dqlite_client *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct dqlite_client *, dqlite_client_free);

/* The code of the last FAILURE reply (0 before any). */
uint64_t dqlite_client_failure_code(const struct dqlite_client *c);

/* CLIENT: register as client `id`; *ret_heartbeat_ms (optional) gets the server's
 * heartbeat timeout. */
int dqlite_client_register(struct dqlite_client *c, uint64_t id, uint64_t *ret_heartbeat_ms,
			   struct berth_error *err);

/* LEADER: the leader's id and address as this server knows them; 0 and "" when it knows
 * none. *ret_address is the caller's. */
int dqlite_client_leader(struct dqlite_client *c, uint64_t *ret_id, char **ret_address,
			 struct berth_error *err);

/* OPEN: open (or create) database `name` on this connection (one per connection). */
int dqlite_client_open(struct dqlite_client *c, const char *name, struct berth_error *err);

/* PREPARE: compile one statement; *ret_stmt names it, *ret_params (optional) counts its
 * parameters. */
int dqlite_client_prepare(struct dqlite_client *c, const char *sql, uint32_t *ret_stmt,
			  uint64_t *ret_params, struct berth_error *err);

/* EXEC / QUERY / FINALIZE a prepared statement. `params` (n of them, borrowed) are bound
 * in order. `ret` (EXEC, optional) gets the result; `rows` (QUERY) must be zeroed or
 * released: it gets every page of the result (on failure, maybe some of them: release it
 * either way). */
int dqlite_client_exec(struct dqlite_client *c, uint32_t stmt,
		       const struct dqlite_client_value *params, size_t n,
		       struct dqlite_client_result *ret, struct berth_error *err);
int dqlite_client_query(struct dqlite_client *c, uint32_t stmt,
			const struct dqlite_client_value *params, size_t n,
			struct dqlite_client_rows *rows, struct berth_error *err);
int dqlite_client_finalize(struct dqlite_client *c, uint32_t stmt, struct berth_error *err);

/* EXEC_SQL / QUERY_SQL: the same without a prepared statement. EXEC_SQL runs every
 * statement in `sql` (the parameters bind to each). */
int dqlite_client_exec_sql(struct dqlite_client *c, const char *sql,
			   const struct dqlite_client_value *params, size_t n,
			   struct dqlite_client_result *ret, struct berth_error *err);
int dqlite_client_query_sql(struct dqlite_client *c, const char *sql,
			    const struct dqlite_client_value *params, size_t n,
			    struct dqlite_client_rows *rows, struct berth_error *err);

/* CLUSTER: the members (format 1: id, address, role). *ret (n of them) is the caller's:
 * dqlite_client_nodes_free(). */
int dqlite_client_cluster(struct dqlite_client *c, struct dqlite_client_node **ret, size_t *ret_n,
			  struct berth_error *err);
void dqlite_client_nodes_free(struct dqlite_client_node *nodes, size_t n);

/* ADD a member as a spare, ASSIGN it a role, REMOVE it (leader only). */
int dqlite_client_add(struct dqlite_client *c, uint64_t id, const char *address,
		      struct berth_error *err);
int dqlite_client_assign(struct dqlite_client *c, uint64_t id, enum dqlite_client_role role,
			 struct berth_error *err);
int dqlite_client_remove(struct dqlite_client *c, uint64_t id, struct berth_error *err);

/* Free what a result holds and zero it; a zeroed one is fine. */
void dqlite_client_rows_release(struct dqlite_client_rows *rows);

/* Row `row`, column `col` of a result (both in range). */
const struct dqlite_client_value *dqlite_client_rows_get(const struct dqlite_client_rows *rows,
							 size_t row, size_t col);

/* Decoders of a response body, exposed for the tests and the fuzzer. Each refuses a
 * malformed body with -EPROTO and never reads outside [body, body + len).
 * rows: append one ROWS page to `rows` (whose columns, if any, it must repeat);
 * *ret_more is true when the page ends with PART. */
int dqlite_client_decode_rows(const uint8_t *body, size_t len, struct dqlite_client_rows *rows,
			      bool *ret_more, struct berth_error *err);
int dqlite_client_decode_servers(const uint8_t *body, size_t len, struct dqlite_client_node **ret,
				 size_t *ret_n, struct berth_error *err);
int dqlite_client_decode_failure(const uint8_t *body, size_t len, uint64_t *ret_code,
				 char **ret_message, struct berth_error *err);
