/* SPDX-License-Identifier: MIT */
#ifndef INGESTFS_JWT_H
#define INGESTFS_JWT_H

/*
 * Uplynk scoped API keys: ES256-signed JWTs (RFC 7515, 7518, 7519), sent
 * in the header X-Auth-Uplynk-Jwt.  Everything this project knows of the
 * scheme lives here, so that it is easy to correct:
 *
 *   header  {"alg":"ES256","kid":KID,"typ":"JWT"}
 *   claims  {"sub":SUB,"scp":[SCOPE,...],"iat":NOW,"exp":NOW+TTL}
 *   token   b64url(header) "." b64url(claims) "." b64url(r || s)
 *
 * b64url is base64 with - and _ and without padding; r and s are the two
 * 32-byte halves of the P-256 ECDSA signature over SHA-256 of the first
 * two parts (not DER).  The key is PRIVATE_B64 of the downloaded .env
 * file: base64 of a PEM PKCS#8 EC P-256 private key.
 *
 * Pure apart from OpenSSL: the caller gives the clock.  Owns the key
 * (struct jwt_key, wiped and freed by jwt_key_free); may include OpenSSL,
 * nothing else of this project.
 */

#include <stddef.h>
#include <stdint.h>

#define JWT_TTL_S 300 /* the lifetime Uplynk's own clients use */

struct jwt_key;

/*
 * jwt_key_load - the P-256 private key from @b64 (@len bytes, the value of
 * PRIVATE_B64).  0, or -EINVAL with one line in @err that names the field,
 * never its value.  Intermediate copies of the key are wiped.
 */
int jwt_key_load(const char *b64, size_t len, struct jwt_key **out, char *err, size_t errlen);
void jwt_key_free(struct jwt_key *k);

struct jwt_claims {
	const char *kid, *sub;
	const char *const *scopes;
	size_t nscopes;
	int64_t iat;
	int ttl; /* exp = iat + ttl */
};

/*
 * jwt_signing_input - b64url(header) "." b64url(claims), malloc'd (the
 * caller frees), or NULL when out of memory.  Strings are JSON-escaped.
 */
char *jwt_signing_input(const struct jwt_claims *c);

/* jwt_sign - the whole token, malloc'd (the caller frees); 0 or -errno */
int jwt_sign(const struct jwt_key *k, const struct jwt_claims *c, char **token);

/*
 * jwt_verify - whether @token carries a valid ES256 signature by @k over
 * its first two parts (for tests and --check diagnostics); 1, 0 or -errno.
 */
int jwt_verify(const struct jwt_key *k, const char *token);

/* b64url without padding of @n bytes into @out (room for 4 * (n + 2) / 3 + 1) */
size_t jwt_b64url(const unsigned char *in, size_t n, char *out);

#endif
