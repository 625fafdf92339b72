/* placeholder */
extern int berth_placeholder_cli_cmd_list_c;
