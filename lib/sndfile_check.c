/* sndfile_check.c - whether a file libsndfile opened was cut off (rm/sndfile_check.h). */
#include "rm/sndfile_check.h"

#include <stdio.h>
#include <string.h>

int rm_sndfile_cut_short(SNDFILE *sf, const SF_INFO *info) {
  if ((info->format & SF_FORMAT_TYPEMASK) == SF_FORMAT_OGG && info->frames == SF_COUNT_MAX)
    return 1;
  char log[4096];
  log[0] = '\0';
  sf_command(sf, SFC_GET_LOG_INFO, log, sizeof log);
  for (const char *l = strstr(log, "data : "); l; l = strstr(l + 1, "data : ")) {
    if (l != log && l[-1] != '\n')
      continue;
    unsigned long long said = 0, real = 0;
    if (sscanf(l, "data : %llu (should be %llu)", &said, &real) == 2 && said > real &&
        said != 0xFFFFFFFFull && said != 0)
      return 1;
  }
  return 0;
}
