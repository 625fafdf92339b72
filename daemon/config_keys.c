/* placeholder */
extern int berth_placeholder_daemon_config_keys_c;
