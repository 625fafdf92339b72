/* daemon/instance/metrics.h: the instance metrics of GET /1.0/metrics, in LXD 5.0.2's
 * names, labels and Prometheus text layout (doc/api.md, "Metrics").
 *
 * A metrics_set gathers samples by metric; metrics_set_render() writes each metric that
 * has samples as a "# HELP" and "# TYPE" line followed by its samples, in LXD's order of
 * metrics, then "# EOF". Nothing is cached or sampled in the background: a scrape reads
 * the cgroups and interfaces of each running instance there and then. */
#pragma once

#include <jansson.h>
#include <stdio.h>

#include "daemon/daemon.h"
#include "lib/error.h"

enum metric_type {
	METRIC_CPU_SECONDS_TOTAL,
	METRIC_DISK_READ_BYTES_TOTAL,
	METRIC_DISK_READS_COMPLETED_TOTAL,
	METRIC_DISK_WRITTEN_BYTES_TOTAL,
	METRIC_DISK_WRITES_COMPLETED_TOTAL,
	METRIC_FILESYSTEM_AVAIL_BYTES,
	METRIC_FILESYSTEM_FREE_BYTES,
	METRIC_FILESYSTEM_SIZE_BYTES,
	METRIC_MEMORY_ACTIVE_ANON_BYTES,
	METRIC_MEMORY_ACTIVE_FILE_BYTES,
	METRIC_MEMORY_ACTIVE_BYTES,
	METRIC_MEMORY_CACHED_BYTES,
	METRIC_MEMORY_DIRTY_BYTES,
	METRIC_MEMORY_HUGEPAGES_FREE_BYTES,
	METRIC_MEMORY_HUGEPAGES_TOTAL_BYTES,
	METRIC_MEMORY_INACTIVE_ANON_BYTES,
	METRIC_MEMORY_INACTIVE_FILE_BYTES,
	METRIC_MEMORY_INACTIVE_BYTES,
	METRIC_MEMORY_MAPPED_BYTES,
	METRIC_MEMORY_MEM_AVAILABLE_BYTES,
	METRIC_MEMORY_MEM_FREE_BYTES,
	METRIC_MEMORY_MEM_TOTAL_BYTES,
	METRIC_MEMORY_RSS_BYTES,
	METRIC_MEMORY_SHMEM_BYTES,
	METRIC_MEMORY_SWAP_BYTES,
	METRIC_MEMORY_UNEVICTABLE_BYTES,
	METRIC_MEMORY_WRITEBACK_BYTES,
	METRIC_NETWORK_RECEIVE_BYTES_TOTAL,
	METRIC_NETWORK_RECEIVE_DROP_TOTAL,
	METRIC_NETWORK_RECEIVE_ERRS_TOTAL,
	METRIC_NETWORK_RECEIVE_PACKETS_TOTAL,
	METRIC_NETWORK_TRANSMIT_BYTES_TOTAL,
	METRIC_NETWORK_TRANSMIT_DROP_TOTAL,
	METRIC_NETWORK_TRANSMIT_ERRS_TOTAL,
	METRIC_NETWORK_TRANSMIT_PACKETS_TOTAL,
	METRIC_PROCS_TOTAL,
	METRIC_TYPE_MAX,
};

struct metrics_set {
	FILE *f[METRIC_TYPE_MAX];   /* owned: open_memstream over buf, opened on first use */
	char *buf[METRIC_TYPE_MAX]; /* owned */
	size_t len[METRIC_TYPE_MAX];
	int error; /* the first failure (-ENOMEM), 0 */
};

void metrics_set_release(struct metrics_set *m);
/* One sample of `type`: `labels` is the text between the braces, names sorted (made with
 * metrics_labels()), NULL or "" for none. A failure is kept in m->error. */
void metrics_add(struct metrics_set *m, enum metric_type type, const char *labels, double value);
/* `k=v` pairs (NULL-terminated, names given in sorted order) as label text with the
 * values escaped; a NULL value skips its pair. New string or NULL. */
char *metrics_labels(const char *name, ...) __attribute__((sentinel));
/* The exposition text (new string in *ret); the set is released. -ENOMEM. */
int metrics_set_render(struct metrics_set *m, char **ret);
/* A value as Go's strconv.FormatFloat(v, 'g', -1, 64) writes it, as LXD does. */
void metrics_format_value(double v, char buf[40]);

/* Add the samples of stored instance `inst` (a db_instance_list() row) of `project` when
 * it runs. Containers only: VMs are left out (doc/api.md says why). Blocking. */
int metrics_instance_collect(struct berth_daemon *d, const char *project, const json_t *inst,
			     struct metrics_set *m);
