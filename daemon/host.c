/* placeholder */
extern int berth_placeholder_daemon_host_c;
