/* SPDX-License-Identifier: MIT */
#ifndef INGESTFS_STATE_PRIV_H
#define INGESTFS_STATE_PRIV_H
/*
 * What the state file's two halves of format share: state.c (the whole
 * file) and state_delta.c (the delta).  Little-endian fields, varints,
 * the trailer, and a one-line refusal.  Included by those two only.
 */
#include <endian.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>

#include "state.h"

/* ---- little-endian fields and varints ---- */

static inline void put64(unsigned char *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, 8);
}

static inline uint64_t get64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return le64toh(v);
}

static inline uint32_t get32(const unsigned char *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return le32toh(v);
}

/* LEB128, 7 bits a byte, low first */
static inline unsigned char *put_varint(unsigned char *p, uint64_t v)
{
	while (v >= 0x80) {
		*p++ = (unsigned char)(v | 0x80);
		v >>= 7;
	}
	*p++ = (unsigned char)v;
	return p;
}

static inline bool get_varint(const unsigned char **p, const unsigned char *end, uint64_t *v)
{
	uint64_t x = 0;

	for (int shift = 0; shift < 64 && *p < end; shift += 7) {
		unsigned char b = *(*p)++;

		x |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*v = x;
			return true;
		}
	}
	return false;
}

static inline int fail(char *err, size_t errlen, const char *what)
{
	snprintf(err, errlen, "%s", what);
	return -EINVAL;
}

static inline void put_trailer(unsigned char *f, size_t len)
{
	state_put32(f + len - 8, (uint32_t)crc32_z(0, f, len - STATE_TRAILER_LEN));
	state_put32(f + len - 4, 0);
}

#endif
