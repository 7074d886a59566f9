/* SPDX-License-Identifier: MIT */
#ifndef INGESTFS_UTF8_H
#define INGESTFS_UTF8_H

/*
 * Strict UTF-8 decoding of one sequence: no overlong forms, no
 * surrogates, nothing above U+10FFFF.  Header only, for the scanner and
 * the name rules; includes nothing of the project.
 */

#include <stddef.h>
#include <stdint.h>

/*
 * utf8_decode - the length (1 to 4) of the sequence at @s (@avail bytes
 * available) with its code point in *@cp, or 0 when it is not valid.
 */
static inline size_t utf8_decode(const unsigned char *s, size_t avail, uint32_t *cp)
{
	unsigned char c = s[0];
	size_t n;
	uint32_t v;

	if (c < 0x80) {
		*cp = c;
		return 1;
	} else if (c >= 0xc2 && c <= 0xdf) {
		n = 1;
		v = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 2;
		v = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 3;
		v = c & 0x07;
	} else {
		return 0;
	}
	if (n >= avail)
		return 0;
	for (size_t j = 1; j <= n; j++) {
		if ((s[j] & 0xc0) != 0x80)
			return 0;
		v = (v << 6) | (s[j] & 0x3f);
	}
	if ((n == 2 && v < 0x800) || (n == 3 && v < 0x10000) || v > 0x10ffff ||
	    (v >= 0xd800 && v <= 0xdfff))
		return 0;
	*cp = v;
	return n + 1;
}

#endif
