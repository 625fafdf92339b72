/* placeholder */
extern int berth_placeholder_lib_http_server_c;
