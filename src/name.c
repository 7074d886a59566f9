// SPDX-License-Identifier: MIT
/* Which names the mount may show. */
#include "name.h"

#include <stdint.h>

#include "utf8.h"

/*
 * Code points that would let a name mislead whoever reads a listing: C0
 * and C1 controls (a terminal takes U+009B as CSI), DEL, the line and
 * paragraph separators, and the bidirectional marks, embeddings,
 * overrides and isolates that make "\u202egpj.exe" show as "exe.jpg".
 */
static bool name_refused(uint32_t cp)
{
	return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x061c || cp == 0x200e ||
	       cp == 0x200f || (cp >= 0x2028 && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

bool name_valid(const char *name, size_t len)
{
	const unsigned char *s = (const unsigned char *)name;
	size_t i = 0;

	if (len == 0 || len > 255 || name[0] == '.')
		return false;
	while (i < len) {
		uint32_t cp;
		size_t n;

		/* the usual id: printable ASCII, nothing to decode */
		if (s[i] > 0x20 && s[i] < 0x7f && s[i] != '/') {
			i++;
			continue;
		}
		n = utf8_decode(s + i, len - i, &cp);
		if (!n || cp == '/' || name_refused(cp))
			return false;
		i += n;
	}
	return true;
}
