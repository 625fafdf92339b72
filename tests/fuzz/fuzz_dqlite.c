/* tests/fuzz/fuzz_dqlite.c: libFuzzer target for berth's dqlite client
 * (daemon/db/dqlite_client.c). The input is what a server sends: it is written to one end
 * of a socketpair whose sending side is then shut, and the client on the other end runs
 * every request it has in turn (CLIENT, LEADER, OPEN, PREPARE, EXEC with parameters,
 * QUERY, FINALIZE, EXEC_SQL, QUERY_SQL, CLUSTER, ADD, ASSIGN, REMOVE), each reading its
 * replies from the input, until the input runs out or the connection is broken. Whatever
 * the bytes, each request must end with 0 or -errno and free what it allocated. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/db/dqlite_client.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct dqlite_client_value params[] = {
	{.type = DQLITE_CLIENT_INTEGER, .integer = -1},
	{.type = DQLITE_CLIENT_TEXT, .text = "text"},
	{.type = DQLITE_CLIENT_NULL},
	{.type = DQLITE_CLIENT_FLOAT, .real = 0.5},
	{.type = DQLITE_CLIENT_BLOB, .blob = {"\0\1", 2}},
};

/* One request of the script, by number; returns what it returned. */
static int run_one(struct dqlite_client *c, int step, uint32_t *stmt)
{
	struct dqlite_client_rows rows = {0};
	struct dqlite_client_node *nodes = NULL;
	struct berth_error err = {0};
	char *address = NULL;
	uint64_t u = 0;
	size_t n = 0;
	int r = 0;

	switch (step) {
	case 0:
		r = dqlite_client_register(c, 1, &u, &err);
		break;
	case 1:
		r = dqlite_client_leader(c, &u, &address, &err);
		break;
	case 2:
		r = dqlite_client_open(c, "db", &err);
		break;
	case 3:
		r = dqlite_client_prepare(c, "SELECT ?", stmt, &u, &err);
		break;
	case 4:
		r = dqlite_client_exec(c, *stmt, params, 5, NULL, &err);
		break;
	case 5:
		r = dqlite_client_query(c, *stmt, params, 1, &rows, &err);
		break;
	case 6:
		r = dqlite_client_finalize(c, *stmt, &err);
		break;
	case 7:
		r = dqlite_client_exec_sql(c, "x", NULL, 0, NULL, &err);
		break;
	case 8:
		r = dqlite_client_query_sql(c, "x", params, 5, &rows, &err);
		break;
	case 9:
		r = dqlite_client_cluster(c, &nodes, &n, &err);
		break;
	case 10:
		r = dqlite_client_add(c, 2, "@x", &err);
		break;
	case 11:
		r = dqlite_client_assign(c, 2, DQLITE_CLIENT_STANDBY, &err);
		break;
	default:
		r = dqlite_client_remove(c, 2, &err);
		break;
	}
	if (r < 0 && !err.msg)
		abort(); /* every failure says why */
	free(address);
	dqlite_client_rows_release(&rows);
	dqlite_client_nodes_free(nodes, n);
	berth_error_release(&err);
	return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dqlite_client *c = NULL;
	uint32_t stmt = 0;
	int sv[2];

	/* Within the socket's buffer, so that the write below never blocks. */
	if (size > 65536 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return 0;
	if (dqlite_client_from_fd(sv[0], 1000, &c, NULL) < 0) {
		close(sv[1]);
		return 0;
	}
	if (size && write(sv[1], data, size) != (ssize_t)size)
		abort();
	shutdown(sv[1], SHUT_WR);
	for (int step = 0; step < 13; step++)
		if (run_one(c, step, &stmt) == -ENOTCONN)
			break;
	dqlite_client_free(c);
	close(sv[1]);
	return 0;
}
