/* file_util.h - whole files into memory: PEM files and tokens for the server, manifests and
 * payloads for the client and its CLI (in rm_common; never exported by librmclient). */
#ifndef RM_FILE_UTIL_H
#define RM_FILE_UTIL_H

#include <stddef.h>

/* The file's bytes followed by a NUL (so text can be used as a string), allocated with
 * grow (realloc-like) and to be released with release; *len (may be NULL) is the byte
 * count without the NUL. NULL with errno set when the file cannot be opened or read
 * (EIO) or memory runs out (ENOMEM). Any thread. */
char *rm__file_read(const char *path, size_t *len, void *(*grow)(void *, size_t),
                    void (*release)(void *));

/* The same for a file an operator names (tokens, PEM, configuration), which must not hang or
 * flood the server: opened without blocking (a FIFO without a writer does not wait), symlinks
 * followed, and refused unless what was opened is a regular file of at most max bytes. NULL
 * with errno set: open(2)'s error (ENOENT, EACCES, ...), EISDIR for a directory, EINVAL for
 * anything else that is not a regular file (a FIFO, device or socket), EFBIG when it holds more
 * than max bytes (also when it grows past max while being read), EIO, ENOMEM. Any thread. */
char *rm__file_read_regular(const char *path, size_t max, size_t *len,
                            void *(*grow)(void *, size_t), void (*release)(void *));

#endif
