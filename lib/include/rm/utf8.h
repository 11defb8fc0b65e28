/* utf8.h - the one UTF-8 validity rule every part of the server applies. */
#ifndef RM_UTF8_H
#define RM_UTF8_H

#include <stddef.h>

/* Length (1-4) of the well-formed UTF-8 sequence at s, of which at most `left` bytes may be
 * read; 0 when s does not start one. RFC 3629: no overlong forms, no surrogates, nothing above
 * U+10FFFF (what protobuf decoders and JSON parsers accept). Any thread. */
size_t rm_utf8_len(const unsigned char *s, size_t left);

/* Non-zero when s[0..len) is well-formed UTF-8 (NUL bytes are, as U+0000). Any thread. */
int rm_utf8_valid(const unsigned char *s, size_t len);

#endif
