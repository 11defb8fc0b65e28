/* remotemedia_run.c - `remotemedia-run`: the alias of `remotemedia run` kept for the
 * scripts that call it. Same options, same JSON document, same exit statuses; in this
 * process unless --server is given. */
#include <stdlib.h>

#include "remotemedia_cli.h"

int main(int argc, char **argv) {
  char **args = calloc((size_t)argc + 2, sizeof *args);
  if (!args)
    return CLI_FAILED;
  args[0] = argv[0];
  args[1] = "run";
  for (int i = 1; i < argc; i++)
    args[i + 1] = argv[i];
  int rc = cli_main(argc + 1, args);
  free(args);
  return rc;
}
