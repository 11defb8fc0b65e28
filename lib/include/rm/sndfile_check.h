/* sndfile_check.h - libsndfile reads what a cut-off file holds and says so only
 * indirectly: an Ogg stream whose last page is missing has no known length, and a cut WAV
 * leaves a "data : <announced> (should be <present>)" line in its log. Streaming writers mark
 * an unknown WAV length with 0 or 0xFFFFFFFF; those are not cuts. Shared by the AudioDecode
 * node and the command-line client's file inputs. */
#ifndef RM_SNDFILE_CHECK_H
#define RM_SNDFILE_CHECK_H

#include <sndfile.h>

/* Non-zero when sf (opened for reading, info filled by sf_open) holds less audio than its
 * header announced. */
int rm_sndfile_cut_short(SNDFILE *sf, const SF_INFO *info);

#endif
