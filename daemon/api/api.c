/* placeholder */
extern int berth_placeholder_daemon_api_api_c;
