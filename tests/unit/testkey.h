/* SPDX-License-Identifier: MIT */
#ifndef INGESTFS_TESTKEY_H
#define INGESTFS_TESTKEY_H

/* Keys for the unit tests: made fresh, shaped like a scoped key's PRIVATE_B64. */

#include <stdlib.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

/* PRIVATE_B64 of @pkey: base64 of its PEM PKCS#8 text, optionally encrypted; malloc'd */
static inline char *private_b64(EVP_PKEY *pkey, int encrypt)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *pem, *b64 = NULL;
	long n;

	if (!bio)
		return NULL;
	if (PEM_write_bio_PrivateKey(bio, pkey, encrypt ? EVP_aes_128_cbc() : NULL,
				     encrypt ? (unsigned char *)"pw" : NULL, encrypt ? 2 : 0, NULL,
				     NULL) == 1) {
		n = BIO_get_mem_data(bio, &pem);
		b64 = calloc(1, (size_t)n / 3 * 4 + 8);
		if (b64)
			EVP_EncodeBlock((unsigned char *)b64, (unsigned char *)pem, (int)n);
	}
	BIO_free(bio);
	return b64;
}

#endif
