/* placeholder */
extern int berth_placeholder_daemon_db_profiles_c;
