/* placeholder */
extern int berth_placeholder_lib_ws_c;
