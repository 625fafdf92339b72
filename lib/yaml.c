/* placeholder */
extern int berth_placeholder_lib_yaml_c;
