/* placeholder */
extern int berth_placeholder_daemon_operation_c;
