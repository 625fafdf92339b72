/* daemon/runtime/monitor_limits.c: what berthd changes in a running container
 * (monitor_internal.h): the "limits" request, which sets the cgroups and what the next
 * boot applies, and the NICs and disks hot-plugged or unplugged through the spec, which
 * the teardown and the next boot take from the spec berthd rewrote. */
#include "daemon/runtime/monitor_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* "limits MEMORY SWAP CPUS QUOTA PERIOD PROCESSES SHARE DROP" (CPUS "-" for none, 0 for the
 * others): the cgroup gets exactly these, and so does the next boot (a restart from inside). */
void handle_limits(struct monitor *m, struct client *c, const char *args)
{
	unsigned long long mem, quota, period, procs;
	unsigned share, drop;
	_cleanup_free_ char *cpus = NULL;
	char *cpus_copy = NULL;
	struct berth_error err = {0};
	struct runtime_cgroup_limits l = {0};
	int swap, n = 0, r;

	if (sscanf(args, "%llu %d %ms %llu %llu %llu %u %u%n", &mem, &swap, &cpus, &quota, &period,
		   &procs, &share, &drop, &n) != 8 ||
	    args[n] || (swap != 0 && swap != 1) || share > 100 || drop > 10) {
		client_send(c, "error bad limits request");
		return;
	}
	if (!streq(cpus, "-") && !(cpus_copy = strdup(cpus))) {
		client_send(c, "error %s", strerror(ENOMEM));
		return;
	}
	l = (struct runtime_cgroup_limits){.memory = mem,
					   .memory_swap = swap,
					   .cpus = cpus_copy,
					   .cpu_quota_us = quota,
					   .cpu_period_us = period,
					   .processes = procs,
					   .cpu_share_pct = share,
					   .cpu_priority_drop = drop};
	r = runtime_cgroup_set_limits(m->cg, &l, &err);
	if (r < 0) {
		client_send(c, "error %s", berth_error_msg(&err, r));
		berth_error_release(&err);
		free(cpus_copy);
		return;
	}
	m->spec->limits_memory = mem;
	m->spec->limits_memory_swap = swap;
	free(m->spec->limits_cpus);
	m->spec->limits_cpus = cpus_copy;
	m->spec->limits_cpu_quota_us = quota;
	m->spec->limits_cpu_period_us = period;
	m->spec->limits_cpu_share_pct = share;
	m->spec->limits_cpu_priority_drop = drop;
	m->spec->limits_processes = procs;
	log_msg("limits changed");
	client_send(c, "ok");
}

/* ---- hot-plug ---- */

/* NICs and disks hot-plugged or unplugged while the container ran are in the spec berthd
 * rewrote: the teardown deletes the host ends of those NICs, and a reboot from inside (or
 * a restart) comes back with them. The rest of the spec stays as it was at the start. */
void reload_nics(struct monitor *m)
{
	_cleanup_(runtime_spec_freep) struct runtime_spec *now = NULL;
	_cleanup_free_ char *path = rpath(m, "spec");
	struct berth_error err = {0};

	if (!path || runtime_spec_load(path, &now, &err) < 0) {
		log_msg("re-reading the spec: %s, keeping its NICs as they were",
			berth_error_msg(&err, -ENOMEM));
		berth_error_release(&err);
		return;
	}
	runtime_spec_set_nics(m->spec, now->nics, now->n_nics);
	now->nics = NULL;
	now->n_nics = 0;
	{ /* the old mounts go with `now` */
		struct runtime_mount *mounts = m->spec->mounts;
		size_t n = m->spec->n_mounts;

		m->spec->mounts = now->mounts;
		m->spec->n_mounts = now->n_mounts;
		now->mounts = mounts;
		now->n_mounts = n;
	}
}
