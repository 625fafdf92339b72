/* placeholder */
extern int berth_placeholder_daemon_api_server_c;
