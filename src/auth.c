// SPDX-License-Identifier: MIT
/* Request signing: JSON -> zlib -> base64 -> HMAC-SHA256. */
#include "auth.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* Append @s as a JSON string body (without quotes) to @out. */
static size_t json_escape(char *out, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = 0;

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			out[n++] = '\\';
			out[n++] = (char)c;
		} else if (c < 0x20) {
			memcpy(out + n, "\\u00", 4);
			out[n + 4] = hex[c >> 4];
			out[n + 5] = hex[c & 15];
			n += 6;
		} else {
			out[n++] = (char)c;
		}
	}
	return n;
}

int auth_hmac_hex(const char *key, const char *msg, char sig[AUTH_SIG_LEN + 1])
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int mac_len = 0;

	if (!HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)msg, strlen(msg), mac,
		  &mac_len) ||
	    mac_len * 2 != AUTH_SIG_LEN)
		return -EIO;
	for (unsigned int i = 0; i < mac_len; i++)
		sprintf(sig + 2 * i, "%02x", mac[i]);
	sig[AUTH_SIG_LEN] = '\0';
	OPENSSL_cleanse(mac, sizeof(mac));
	return 0;
}

int auth_sign(const char *user, const char *key, int64_t now, char **msg,
	      char sig[AUTH_SIG_LEN + 1])
{
	size_t ulen = strlen(user);
	char *json, *b64;
	unsigned char *z;
	uLongf zlen;
	size_t jlen;
	int ret = -ENOMEM;

	/* worst case every byte escapes to \u00XX, plus the fixed text */
	json = malloc(ulen * 6 + 64);
	if (!json)
		return -ENOMEM;
	jlen = (size_t)sprintf(json, "{\"_owner\": \"");
	jlen += json_escape(json + jlen, user);
	jlen += (size_t)sprintf(json + jlen, "\", \"_timestamp\": %" PRId64 "}", now);

	zlen = compressBound(jlen);
	z = malloc(zlen);
	if (!z)
		goto out_free_json;
	if (compress2(z, &zlen, (const Bytef *)json, jlen, 9) != Z_OK) {
		ret = -EIO;
		goto out_free_z;
	}

	b64 = malloc(4 * ((zlen + 2) / 3) + 1);
	if (!b64)
		goto out_free_z;
	EVP_EncodeBlock((unsigned char *)b64, z, (int)zlen);

	if (auth_hmac_hex(key, b64, sig) < 0) {
		free(b64);
		ret = -EIO;
		goto out_free_z;
	}
	*msg = b64;
	ret = 0;

out_free_z:
	free(z);
out_free_json:
	free(json);
	return ret;
}
