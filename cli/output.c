/* placeholder */
extern int berth_placeholder_cli_output_c;
