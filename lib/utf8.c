/* utf8.c - UTF-8 validity (utf8.h). */
#include "rm/utf8.h"

size_t rm_utf8_len(const unsigned char *s, size_t left) {
  if (!left)
    return 0;
  unsigned char c = s[0], lo = 0x80, hi = 0xbf; /* the range of the second byte */
  size_t n;
  if (c < 0x80)
    return 1;
  if (c >= 0xc2 && c <= 0xdf) {
    n = 2;
  } else if (c >= 0xe0 && c <= 0xef) {
    n = 3;
    lo = c == 0xe0 ? 0xa0 : 0x80; /* overlong */
    hi = c == 0xed ? 0x9f : 0xbf; /* surrogates */
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4;
    lo = c == 0xf0 ? 0x90 : 0x80; /* overlong */
    hi = c == 0xf4 ? 0x8f : 0xbf; /* above U+10FFFF */
  } else {
    return 0;
  }
  if (n > left || s[1] < lo || s[1] > hi)
    return 0;
  for (size_t i = 2; i < n; i++)
    if ((s[i] & 0xc0) != 0x80)
      return 0;
  return n;
}

int rm_utf8_valid(const unsigned char *s, size_t len) {
  size_t i = 0;
  while (i < len) {
    if (s[i] < 0x80) { /* ASCII runs are most of every string */
      i++;
      continue;
    }
    size_t n = rm_utf8_len(s + i, len - i);
    if (!n)
      return 0;
    i += n;
  }
  return 1;
}
