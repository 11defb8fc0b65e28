/* remotemedia_main.c - the `remotemedia` program (remotemedia_cli.c does the work). */
#include "remotemedia_cli.h"

int main(int argc, char **argv) { return cli_main(argc, argv); }
