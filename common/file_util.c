/* file_util.c - whole files into memory. */
#include "file_util.h"

#include <errno.h>
#include <stdio.h>

#define CHUNK 65536

char *rm__file_read(const char *path, size_t *len, void *(*grow)(void *, size_t),
                    void (*release)(void *)) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  char *buf = NULL;
  size_t n = 0, cap = 0;
  for (;;) {
    if (cap - n < CHUNK + 1) {
      size_t ncap = cap ? cap * 2 : 2 * CHUNK;
      char *g = grow(buf, ncap);
      if (!g) {
        release(buf);
        fclose(f);
        errno = ENOMEM;
        return NULL;
      }
      buf = g;
      cap = ncap;
    }
    size_t got = fread(buf + n, 1, CHUNK, f);
    n += got;
    if (got < CHUNK)
      break;
  }
  int bad = ferror(f);
  fclose(f);
  if (bad) {
    release(buf);
    errno = EIO;
    return NULL;
  }
  buf[n] = '\0';
  if (len)
    *len = n;
  return buf;
}
