/* SPDX-License-Identifier: MIT */
#ifndef INGESTFS_AUTH_H
#define INGESTFS_AUTH_H

#include <stddef.h>
#include <stdint.h>

#define AUTH_SIG_LEN 64 /* lowercase hex of HMAC-SHA256 */

/*
 * auth_sign - the classic Uplynk v4 request signature.
 * Builds {"_owner": @user, "_timestamp": @now}, compresses it with zlib
 * (level 9), base64-encodes it into *@msg (malloc'd, caller frees) and
 * writes the hex HMAC-SHA256 of that text under @key into @sig.
 * Pure: no clock, no I/O.  Returns 0 or -errno.
 */
/* auth_hmac_hex - lowercase hex HMAC-SHA256 of @msg under @key; 0 or -EIO */
int auth_hmac_hex(const char *key, const char *msg, char sig[AUTH_SIG_LEN + 1]);

int auth_sign(const char *user, const char *key, int64_t now, char **msg,
	      char sig[AUTH_SIG_LEN + 1]);

#endif
