/* cli/tls_helper.c: berth-tls, the berth CLI's TLS end. The CLI is linked static-pie so
 * that every command starts without the dynamic loader; libssl and libcrypto inside it
 * would cost every command, remote or not, their relocations (some 19,000, 100 pages
 * written at start). So the CLI speaks plain HTTP on a socketpair to this helper, which
 * the client starts only for an https remote, one per connection:
 *
 *   berth-tls connect HOST PORT [--cert F --key F] [--pinned PEM | --accept-any]
 *     fd 0 is the CLI's end of the socketpair. The helper connects and runs the handshake
 *     (lib/client_tls.c), writes "ok LEN\n" and LEN bytes of the server's certificate
 *     (PEM), or "error ERRNO MESSAGE\n" and exits 1; then relays bytes both ways until
 *     either side ends.
 *   berth-tls gen-cert CERT KEY
 *     makes the client certificate (berth_cert_generate_client); errors on stderr. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/client_tls.h"
#include "lib/util.h"

static int report_error(int r, const struct berth_error *err)
{
	_cleanup_free_ char *line = NULL;
	const char *msg = berth_error_msg(err, r);

	line = berth_strdup_printf("error %d %.*s\n", -r, (int)strcspn(msg, "\n"), msg);
	if (line)
		(void)berth_send_all(0, line, strlen(line));
	return 1;
}

/* Move bytes between the CLI (fd 0) and the TLS connection until one side ends. */
static int relay(struct berth_conn *tls)
{
	static char buf[65536];

	for (;;) {
		struct pollfd p[2] = { { .fd = 0, .events = POLLIN },
				       { .fd = tls->fd, .events = POLLIN } };
		ssize_t n;

		if (!berth_conn_pending(tls) && poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return 1;
		}
		if (p[0].revents) {
			do
				n = recv(0, buf, sizeof(buf), MSG_DONTWAIT);
			while (n < 0 && errno == EINTR);
			if (n == 0 || (n < 0 && errno != EAGAIN))
				return 0; /* the CLI is done */
			if (n > 0 && berth_conn_write(tls, buf, (size_t)n) < 0)
				return 0;
		}
		do {
			n = berth_conn_read(tls, buf, sizeof(buf), false);
			if (n == 0 || (n < 0 && n != -EAGAIN))
				return 0; /* the server is done */
			if (n > 0 && berth_send_all(0, buf, (size_t)n) < 0)
				return 0;
		} while (n > 0 && berth_conn_pending(tls));
	}
}

static int run_connect(int argc, char **argv)
{
	struct berth_tls_options o = { 0 };
	struct berth_error err = { 0 };
	struct berth_tls *t = NULL;
	struct berth_conn conn = BERTH_CONN_NULL;
	_cleanup_free_ char *pem = NULL, *head = NULL;
	int r;

	for (int i = 4; i < argc; i++) {
		if (streq(argv[i], "--accept-any"))
			o.accept_any = true;
		else if (i + 1 < argc && streq(argv[i], "--cert"))
			o.cert_file = argv[++i];
		else if (i + 1 < argc && streq(argv[i], "--key"))
			o.key_file = argv[++i];
		else if (i + 1 < argc && streq(argv[i], "--pinned"))
			o.server_cert_pem = argv[++i];
		else
			return report_error(berth_error_set(&err, -EINVAL, BERTH_ERR_INTERNAL,
							    "berth-tls: bad argument %s", argv[i]),
					    &err);
	}
	r = berth_tls_new(&o, &t, &err);
	if (r >= 0)
		r = berth_tls_connect(t, argv[2], argv[3], &conn, &err);
	if (r >= 0)
		r = berth_conn_peer_cert(&conn, &pem);
	if (r < 0)
		return report_error(r, &err);
	head = berth_strdup_printf("ok %zu\n", strlen(pem));
	if (!head || berth_send_all(0, head, strlen(head)) < 0 ||
	    berth_send_all(0, pem, strlen(pem)) < 0)
		return 1;
	r = relay(&conn);
	berth_conn_close(&conn);
	berth_tls_free(t);
	return r;
}

int main(int argc, char **argv)
{
	struct berth_error err = { 0 };
	int r;

	signal(SIGPIPE, SIG_IGN);
	if (argc >= 4 && streq(argv[1], "connect"))
		return run_connect(argc, argv);
	if (argc == 4 && streq(argv[1], "gen-cert")) {
		r = berth_cert_generate_client(argv[2], argv[3], &err);
		if (r < 0)
			fprintf(stderr, "%s\n", berth_error_msg(&err, r));
		berth_error_release(&err);
		return r < 0 ? 1 : 0;
	}
	fprintf(stderr, "usage: berth-tls connect HOST PORT [--cert F --key F] "
			"[--pinned PEM | --accept-any]\n       berth-tls gen-cert CERT KEY\n");
	return 2;
}
