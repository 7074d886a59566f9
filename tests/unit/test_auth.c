// SPDX-License-Identifier: MIT
/* auth: the DESIGN.md known-answer vector, with the clock injected. */
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "api.h"
#include "auth.h"
#include "check.h"

#define USER "1234567890abcdefghijklmnopqrstu"
#define KEY  "1234567890abcdefghijklmnopqrstuvwxyz1234"
#define MSG                                           \
	"eNqrVorPL89LLVKyUlAyNDI2MTUzt7A0SExKTklNS8/" \
	"IzMrOyc3LLygsKi4pVdJRUIovycxNLS5JzC0AajA0N4CCWgAxdRY+"
#define SIG "efc00f6953c10a881964ef3413a80652cfdc28e0bbe5044aaffc1d35ec19baa8"

/* Undo base64 + zlib, to check what a msg says. */
static char *decode_msg(const char *msg)
{
	unsigned char raw[1024];
	static char json[1024];
	uLongf jlen = sizeof(json) - 1;
	size_t mlen = strlen(msg);
	int n;

	if (mlen > 1300)
		return NULL;
	n = EVP_DecodeBlock(raw, (const unsigned char *)msg, (int)mlen);
	if (n < 0)
		return NULL;
	/* EVP_DecodeBlock counts the padding bytes as data */
	while (mlen && msg[mlen - 1] == '=') {
		n--;
		mlen--;
	}
	if (uncompress((Bytef *)json, &jlen, raw, (uLong)n) != Z_OK)
		return NULL;
	json[jlen] = '\0';
	return json;
}

int main(void)
{
	char sig[AUTH_SIG_LEN + 1], sig2[AUTH_SIG_LEN + 1];
	char *msg = NULL, *msg2 = NULL, *enc;

	/* the HMAC half of the vector does not depend on zlib's output */
	CHECK(auth_hmac_hex(KEY, MSG, sig) == 0);
	CHECK_STR(sig, SIG);
	CHECK(auth_hmac_hex("other key", MSG, sig) == 0);
	CHECK(strcmp(sig, SIG) != 0);

	CHECK(auth_sign(USER, KEY, 1700000000, &msg, sig) == 0);
	CHECK(msg != NULL);
	if (msg) {
		CHECK_STR(decode_msg(msg),
			  "{\"_owner\": \"" USER "\", \"_timestamp\": 1700000000}");
		/* with Debian's zlib the whole pair matches byte for byte */
		CHECK_STR(msg, MSG);
		CHECK_STR(sig, SIG);
		CHECK(strchr(msg, '\n') == NULL);
	}

	/* a fresh pair for another second */
	CHECK(auth_sign(USER, KEY, 1700000001, &msg2, sig2) == 0);
	CHECK(msg2 && msg && strcmp(msg, msg2) != 0);
	CHECK(strcmp(sig, sig2) != 0);
	if (msg2)
		CHECK_STR(decode_msg(msg2),
			  "{\"_owner\": \"" USER "\", \"_timestamp\": 1700000001}");
	free(msg2);
	msg2 = NULL;

	/* owners are JSON-escaped, never able to inject fields */
	CHECK(auth_sign("a\"b\\c\n", KEY, 5, &msg2, sig2) == 0);
	if (msg2)
		CHECK_STR(decode_msg(msg2),
			  "{\"_owner\": \"a\\\"b\\\\c\\u000a\", \"_timestamp\": 5}");
	free(msg2);

	/* base64 has + / = which must be percent-encoded in the query */
	enc = api_percent_encode("a+b/c=d-_.~");
	CHECK_STR(enc, "a%2Bb%2Fc%3Dd-_.~");
	free(enc);

	CHECK(api_status_errno(200) == 0);
	CHECK(api_status_errno(401) < 0 && api_status_errno(403) == api_status_errno(401));
	CHECK(api_status_errno(429) != api_status_errno(503));
	free(msg);
	return check_done("test_auth");
}
