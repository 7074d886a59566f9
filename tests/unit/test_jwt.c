// SPDX-License-Identifier: MIT
/* jwt: ES256 tokens for Uplynk scoped API keys. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "check.h"
#include "jwt.h"
#include "testkey.h"

static void test_b64url(void)
{
	char out[16];

	/* RFC 4648 section 10, without the padding; then the two url-safe letters */
	jwt_b64url((const unsigned char *)"f", 1, out);
	CHECK_STR(out, "Zg");
	jwt_b64url((const unsigned char *)"fo", 2, out);
	CHECK_STR(out, "Zm8");
	jwt_b64url((const unsigned char *)"foo", 3, out);
	CHECK_STR(out, "Zm9v");
	jwt_b64url((const unsigned char *)"foob", 4, out);
	CHECK_STR(out, "Zm9vYg");
	jwt_b64url((const unsigned char *)"\xfb\xff", 2, out);
	CHECK_STR(out, "-_8");
}

static void test_signing_input(void)
{
	const char *scopes[] = { "read", "a\"b\x01" };
	struct jwt_claims c = { "k1", "s1", scopes, 2, 1796054400, JWT_TTL_S };
	char *in = jwt_signing_input(&c);

	/*
	 * {"alg":"ES256","kid":"k1","typ":"JWT"} .
	 * {"sub":"s1","scp":["read","a\"b\u0001"],"iat":1796054400,"exp":1796054700}
	 */
	CHECK_STR(in,
		  "eyJhbGciOiJFUzI1NiIsImtpZCI6ImsxIiwidHlwIjoiSldUIn0."
		  "eyJzdWIiOiJzMSIsInNjcCI6WyJyZWFkIiwiYVwiYlx1MDAwMSJdLCJpYXQiOjE3OTYwNTQ0MDAsImV4"
		  "cCI6MTc5NjA1NDcwMH0");
	free(in);
}

static void test_sign_and_verify(void)
{
	const char *scopes[] = { "ingest-points:read" };
	struct jwt_claims c = { "kid-1", "sub-1", scopes, 1, 1796054400, JWT_TTL_S };
	EVP_PKEY *pkey = EVP_EC_gen("P-256");
	char *b64 = pkey ? private_b64(pkey, 0) : NULL, *token = NULL, *input, err[160];
	struct jwt_key *k = NULL;
	size_t len;

	CHECK(b64 != NULL);
	if (!b64)
		goto out;
	CHECK(jwt_key_load(b64, strlen(b64), &k, err, sizeof(err)) == 0);
	if (!k)
		goto out;
	CHECK(jwt_sign(k, &c, &token) == 0 && token);
	if (!token)
		goto out;
	input = jwt_signing_input(&c);
	len = strlen(input);
	/* header.claims.signature, the signature 64 bytes: 86 base64url characters */
	CHECK(strncmp(token, input, len) == 0 && token[len] == '.');
	CHECK(strlen(token + len + 1) == 86 && !strchr(token + len + 1, '='));
	free(input);
	CHECK(jwt_verify(k, token) == 1);
	/* one bit of the signature flipped: 'A' (0) <-> 'B' (1) in its first character */
	token[len + 1] ^= 0x03;
	CHECK(jwt_verify(k, token) == 0);
	token[len + 1] ^= 0x03;
	CHECK(jwt_verify(k, token) == 1);
	/* one bit of the claims flipped */
	token[len - 1] ^= 0x01;
	CHECK(jwt_verify(k, token) == 0);
	token[len - 1] ^= 0x01;
	/* another key does not verify it */
	{
		EVP_PKEY *other = EVP_EC_gen("P-256");
		char *ob64 = other ? private_b64(other, 0) : NULL;
		struct jwt_key *ok = NULL;

		CHECK(ob64 && jwt_key_load(ob64, strlen(ob64), &ok, err, sizeof(err)) == 0);
		CHECK(ok && jwt_verify(ok, token) == 0);
		jwt_key_free(ok);
		free(ob64);
		EVP_PKEY_free(other);
	}
out:
	free(token);
	jwt_key_free(k);
	free(b64);
	EVP_PKEY_free(pkey);
}

/* a key that is not what PRIVATE_B64 must be: refused, the field named, no value shown */
static void refused(const char *b64, const char *why)
{
	struct jwt_key *k = NULL;
	char err[160] = "";

	CHECK(jwt_key_load(b64, strlen(b64), &k, err, sizeof(err)) == -EINVAL && !k);
	CHECK(strncmp(err, "PRIVATE_B64 ", 12) == 0);
	CHECK(strstr(err, why) != NULL);
	if (strlen(b64) > 12)
		CHECK(strstr(err, b64 + strlen(b64) - 12) == NULL);
	if (!strstr(err, why))
		fprintf(stderr, "got: %s (wanted %s)\n", err, why);
}

static void test_bad_keys(void)
{
	EVP_PKEY *rsa = EVP_RSA_gen(1024), *p384 = EVP_EC_gen("P-384"), *p256 = EVP_EC_gen("P-256");
	char *b;

	refused("!!!not base64!!!", "is not base64");
	refused("aGVsbG8gd29ybGQ=", "does not hold a PEM private key"); /* "hello world" */
	b = rsa ? private_b64(rsa, 0) : NULL;
	CHECK(b != NULL);
	if (b)
		refused(b, "is not an EC key");
	free(b);
	b = p384 ? private_b64(p384, 0) : NULL;
	CHECK(b != NULL);
	if (b)
		refused(b, "another curve");
	free(b);
	b = p256 ? private_b64(p256, 1) : NULL; /* encrypted: refused, not prompted for */
	CHECK(b != NULL);
	if (b)
		refused(b, "does not hold a PEM private key");
	free(b);
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(p384);
	EVP_PKEY_free(p256);
}

int main(void)
{
	test_b64url();
	test_signing_input();
	test_sign_and_verify();
	test_bad_keys();
	return check_done("test_jwt");
}
