/* daemon/api/internal.c: PUT /internal/shutdown, what `lxd shutdown` sends (berth's
 * `berth admin shutdown`, which first stops the instances itself). berthd then shuts down
 * as on SIGTERM: running operations are cancelled, connections closed, instances that
 * still run are left running (they outlive berthd by design). */
#define LOG_CATEGORY "internal"
#include <signal.h>
#include <unistd.h>

#include "daemon/api/api.h"
#include "lib/log.h"

static int put_shutdown(struct api_request *req, struct api_response *resp, struct berth_error *err)
{
	log_info("Shutdown requested through the API");
	/* The loop's SIGTERM handler does the shutdown; this answer may or may not get out
	 * before the connection closes, and the client waits for the socket to go. */
	if (kill(getpid(), SIGTERM) < 0)
		return berth_error_set(err, -errno, BERTH_ERR_INTERNAL,
				       "Failed to start the shutdown");
	return api_sync(resp, NULL);
}

const struct api_route api_internal_routes[] = {
	{"PUT", "/internal/shutdown", put_shutdown, NULL},
	{0},
};
