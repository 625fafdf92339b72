/* placeholder */
extern int berth_placeholder_daemon_events_c;
