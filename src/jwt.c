// SPDX-License-Identifier: MIT
/* Uplynk scoped API keys: ES256 JWTs, signed and checked with OpenSSL. */
#include "jwt.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>

#define ES256_HALF 32 /* bytes of r, and of s */

struct jwt_key {
	EVP_PKEY *pkey;
};

/* ---- base64url ---- */

size_t jwt_b64url(const unsigned char *in, size_t n, char *out)
{
	static const char abc[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t o = 0, i = 0;

	for (; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];

		out[o++] = abc[v >> 18];
		out[o++] = abc[(v >> 12) & 63];
		out[o++] = abc[(v >> 6) & 63];
		out[o++] = abc[v & 63];
	}
	if (i < n) {
		uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0);

		out[o++] = abc[v >> 18];
		out[o++] = abc[(v >> 12) & 63];
		if (i + 1 < n)
			out[o++] = abc[(v >> 6) & 63];
	}
	out[o] = '\0';
	return o;
}

static int b64url_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	return c == '-' ? 62 : c == '_' ? 63 : -1;
}

/* Decode @n characters of unpadded base64url into @out (@max bytes); length or -1. */
static long b64url_decode(const char *in, size_t n, unsigned char *out, size_t max)
{
	uint32_t acc = 0;
	size_t o = 0;
	int bits = 0;

	if (n % 4 == 1)
		return -1;
	for (size_t i = 0; i < n; i++) {
		int v = b64url_value(in[i]);

		if (v < 0)
			return -1;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o == max)
				return -1;
			out[o++] = (unsigned char)(acc >> bits);
		}
	}
	return (long)o;
}

/* ---- the key ---- */

static int no_password(char *buf, int size, int rwflag, void *u)
{
	(void)buf, (void)size, (void)rwflag, (void)u;
	return -1; /* an encrypted key is refused, never prompted for */
}

static int key_fail(char *err, size_t errlen, const char *why)
{
	snprintf(err, errlen, "PRIVATE_B64 %s", why);
	return -EINVAL;
}

int jwt_key_load(const char *b64, size_t len, struct jwt_key **out, char *err, size_t errlen)
{
	EVP_ENCODE_CTX *dec = EVP_ENCODE_CTX_new();
	unsigned char *pem = malloc(len / 4 * 3 + 4);
	int n = 0, tail = 0, ret = -EINVAL, nid;
	EVP_PKEY *pkey = NULL;
	char group[64];
	BIO *bio = NULL;

	*out = NULL;
	if (!dec || !pem || len > INT32_MAX) {
		ret = len > INT32_MAX ? key_fail(err, errlen, "is too long") : -ENOMEM;
		if (ret == -ENOMEM)
			snprintf(err, errlen, "out of memory");
		goto out;
	}
	EVP_DecodeInit(dec);
	if (EVP_DecodeUpdate(dec, pem, &n, (const unsigned char *)b64, (int)len) < 0 ||
	    EVP_DecodeFinal(dec, pem + n, &tail) < 0) {
		ret = key_fail(err, errlen, "is not base64");
		goto out;
	}
	n += tail;
	bio = BIO_new_mem_buf(pem, n);
	if (bio)
		pkey = PEM_read_bio_PrivateKey(bio, NULL, no_password, NULL);
	if (!pkey) {
		ret = key_fail(err, errlen, "does not hold a PEM private key");
		goto out;
	}
	if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_EC ||
	    !EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
					    NULL)) {
		ret = key_fail(err, errlen, "is not an EC key (ES256 needs P-256)");
		goto out;
	}
	nid = OBJ_sn2nid(group);
	if (nid == NID_undef)
		nid = EC_curve_nist2nid(group);
	if (nid != NID_X9_62_prime256v1) {
		ret = key_fail(err, errlen, "is an EC key on another curve (ES256 needs P-256)");
		goto out;
	}
	*out = calloc(1, sizeof(**out));
	if (!*out) {
		snprintf(err, errlen, "out of memory");
		ret = -ENOMEM;
		goto out;
	}
	(*out)->pkey = pkey;
	pkey = NULL;
	ret = 0;
out:
	EVP_PKEY_free(pkey);
	BIO_free(bio);
	EVP_ENCODE_CTX_free(dec);
	if (pem)
		OPENSSL_cleanse(pem, len / 4 * 3 + 4);
	free(pem);
	return ret;
}

void jwt_key_free(struct jwt_key *k)
{
	if (!k)
		return;
	EVP_PKEY_free(k->pkey); /* OpenSSL clears the private scalar */
	free(k);
}

/* ---- the token ---- */

struct buf {
	char *p;
	size_t len, cap;
	int oom;
};

static void put(struct buf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (n >= SIZE_MAX / 4 - b->len) { /* the doubling below would overflow */
		b->oom = 1;
		return;
	}
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 256;
		char *p;

		while (cap < b->len + n + 1)
			cap *= 2;
		p = realloc(b->p, cap);
		if (!p) {
			b->oom = 1;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void puts_(struct buf *b, const char *s)
{
	put(b, s, strlen(s));
}

/* a JSON string: quotes, and \" \\ \uXXXX for what JSON forbids raw */
static void put_json(struct buf *b, const char *s)
{
	put(b, "\"", 1);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		char esc[8];

		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			put(b, esc, 2);
		} else if (c < 0x20) {
			snprintf(esc, sizeof(esc), "\\u%04x", c);
			put(b, esc, 6);
		} else {
			put(b, (const char *)&c, 1);
		}
	}
	put(b, "\"", 1);
}

static void put_b64url(struct buf *b, const unsigned char *in, size_t n)
{
	char *tmp = malloc(n / 3 * 4 + 5);

	if (!tmp) {
		b->oom = 1;
		return;
	}
	put(b, tmp, jwt_b64url(in, n, tmp));
	free(tmp);
}

char *jwt_signing_input(const struct jwt_claims *c)
{
	struct buf h = { 0 }, p = { 0 }, out = { 0 };
	char num[48];

	puts_(&h, "{\"alg\":\"ES256\",\"kid\":");
	put_json(&h, c->kid);
	puts_(&h, ",\"typ\":\"JWT\"}");
	puts_(&p, "{\"sub\":");
	put_json(&p, c->sub);
	puts_(&p, ",\"scp\":[");
	for (size_t i = 0; i < c->nscopes; i++) {
		if (i)
			puts_(&p, ",");
		put_json(&p, c->scopes[i]);
	}
	snprintf(num, sizeof(num), "],\"iat\":%" PRId64 ",\"exp\":%" PRId64 "}", c->iat,
		 c->iat + c->ttl);
	puts_(&p, num);
	if (!h.oom && !p.oom) {
		put_b64url(&out, (const unsigned char *)h.p, h.len);
		put(&out, ".", 1);
		put_b64url(&out, (const unsigned char *)p.p, p.len);
	}
	free(h.p);
	free(p.p);
	if (h.oom || p.oom || out.oom) {
		free(out.p);
		return NULL;
	}
	return out.p;
}

/* the DER signature OpenSSL makes -> the 64 bytes r || s JWS wants */
static int der_to_raw(const unsigned char *der, size_t len, unsigned char raw[2 * ES256_HALF])
{
	const unsigned char *p = der;
	ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)len);
	const BIGNUM *r, *s;
	int ok;

	if (!sig)
		return -EIO;
	ECDSA_SIG_get0(sig, &r, &s);
	ok = BN_bn2binpad(r, raw, ES256_HALF) == ES256_HALF &&
	     BN_bn2binpad(s, raw + ES256_HALF, ES256_HALF) == ES256_HALF;
	ECDSA_SIG_free(sig);
	return ok ? 0 : -EIO;
}

int jwt_sign(const struct jwt_key *k, const struct jwt_claims *c, char **token)
{
	unsigned char der[80], raw[2 * ES256_HALF];
	char sig[2 * ES256_HALF / 3 * 4 + 8];
	size_t derlen = sizeof(der);
	char *input = jwt_signing_input(c);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	struct buf out = { 0 };
	int ret = -EIO;

	*token = NULL;
	if (!input || !md) {
		ret = -ENOMEM;
		goto out;
	}
	if (EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, k->pkey) != 1 ||
	    EVP_DigestSign(md, der, &derlen, (const unsigned char *)input, strlen(input)) != 1 ||
	    der_to_raw(der, derlen, raw) < 0)
		goto out;
	jwt_b64url(raw, sizeof(raw), sig);
	puts_(&out, input);
	put(&out, ".", 1);
	puts_(&out, sig);
	if (out.oom) {
		free(out.p);
		ret = -ENOMEM;
		goto out;
	}
	*token = out.p;
	ret = 0;
out:
	EVP_MD_CTX_free(md);
	free(input);
	return ret;
}

int jwt_verify(const struct jwt_key *k, const char *token)
{
	const char *dot2 = strrchr(token, '.');
	unsigned char raw[2 * ES256_HALF + 1], *der = NULL;
	ECDSA_SIG *sig = NULL;
	EVP_MD_CTX *md = NULL;
	BIGNUM *r = NULL, *s = NULL;
	int derlen, ret = 0;

	if (!dot2 || dot2 == token || !memchr(token, '.', (size_t)(dot2 - token)) ||
	    b64url_decode(dot2 + 1, strlen(dot2 + 1), raw, sizeof(raw)) != 2 * ES256_HALF)
		return 0;
	r = BN_bin2bn(raw, ES256_HALF, NULL);
	s = BN_bin2bn(raw + ES256_HALF, ES256_HALF, NULL);
	sig = ECDSA_SIG_new();
	md = EVP_MD_CTX_new();
	if (!r || !s || !sig || !md || !ECDSA_SIG_set0(sig, r, s)) {
		BN_free(r);
		BN_free(s);
		ret = -ENOMEM;
		goto out;
	}
	derlen = i2d_ECDSA_SIG(sig, &der);
	if (derlen <= 0) {
		ret = -ENOMEM;
		goto out;
	}
	if (EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, k->pkey) == 1)
		ret = EVP_DigestVerify(md, der, (size_t)derlen, (const unsigned char *)token,
				       (size_t)(dot2 - token)) == 1;
out:
	OPENSSL_free(der);
	ECDSA_SIG_free(sig); /* frees r and s once set */
	EVP_MD_CTX_free(md);
	return ret;
}
