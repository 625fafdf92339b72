/* placeholder */
extern int berth_placeholder_lib_http_util_c;
