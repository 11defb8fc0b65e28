/* file_util.c - whole files into memory. */
#include "file_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHUNK 65536

/* fd's bytes to its end followed by a NUL, at most max of them (one more: EFBIG); hint is the
 * size fstat gave (0: unknown). At most max + 2 bytes are ever held, so a file that never ends
 * is refused after max + 1 bytes. Closes fd in every case. */
static char *read_fd(int fd, size_t max, size_t hint, size_t *len, void *(*grow)(void *, size_t),
                     void (*release)(void *)) {
  char *buf = NULL;
  size_t n = 0, cap = 0;
  int err = 0;
  for (;;) {
    if (cap - n < 2) { /* room for a byte more and the NUL */
      size_t ncap = cap ? cap * 2 : hint ? hint + 2 : CHUNK;
      if (ncap > max + 2)
        ncap = max + 2;
      char *g = grow(buf, ncap);
      if (!g) {
        err = ENOMEM;
        break;
      }
      buf = g;
      cap = ncap;
    }
    ssize_t got = read(fd, buf + n, cap - n - 1);
    if (got < 0 && errno == EINTR)
      continue;
    if (got <= 0) {
      err = got < 0 ? EIO : 0;
      break;
    }
    n += (size_t)got;
    if (n > max) {
      err = EFBIG;
      break;
    }
  }
  close(fd);
  if (err) {
    release(buf);
    errno = err;
    return NULL;
  }
  buf[n] = '\0';
  if (len)
    *len = n;
  return buf;
}

char *rm__file_read(const char *path, size_t *len, void *(*grow)(void *, size_t),
                    void (*release)(void *)) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return NULL;
  return read_fd(fd, SIZE_MAX / 4, 0, len, grow, release);
}

char *rm__file_read_regular(const char *path, size_t max, size_t *len,
                            void *(*grow)(void *, size_t), void (*release)(void *)) {
  /* O_NONBLOCK: opening a FIFO without a writer (or a device that waits) returns at once;
   * symlinks are followed (Kubernetes secret volumes are made of them), the target is what
   * fstat sees */
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0)
    return NULL;
  struct stat st;
  int err = fstat(fd, &st) != 0          ? EIO
            : S_ISDIR(st.st_mode)        ? EISDIR
            : !S_ISREG(st.st_mode)       ? EINVAL
            : (uint64_t)st.st_size > max ? EFBIG
                                         : 0;
  if (err) {
    close(fd);
    errno = err;
    return NULL;
  }
  return read_fd(fd, max, (size_t)st.st_size, len, grow, release);
}
