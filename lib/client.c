/* placeholder */
extern int berth_placeholder_lib_client_c;
