// SPDX-License-Identifier: MIT
/*
 * What signing a request costs: a classic msg/sig pair (auth_sign) and a
 * scoped key's ES256 token (jwt_sign), each the median of many rounds.
 *   build/bench_sign [ROUNDS]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "auth.h"
#include "jwt.h"
#include "testkey.h"

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp);
	return v[n / 2];
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 2000;
	const char *scopes[] = { "ingest-points:read" };
	struct jwt_claims c = { "kid-1", "sub-1", scopes, 1, 0, JWT_TTL_S };
	EVP_PKEY *pkey = EVP_EC_gen("P-256");
	char *b64 = pkey ? private_b64(pkey, 0) : NULL, err[160];
	double *classic = calloc((size_t)rounds, sizeof(double));
	double *scoped = calloc((size_t)rounds, sizeof(double));
	struct jwt_key *k = NULL;

	if (rounds < 1 || !b64 || !classic || !scoped ||
	    jwt_key_load(b64, strlen(b64), &k, err, sizeof(err)) < 0) {
		fprintf(stderr, "bench_sign: cannot set up\n");
		return 1;
	}
	for (int i = 0; i < rounds; i++) {
		char sig[AUTH_SIG_LEN + 1], *msg, *token;
		double t0 = now_us();

		if (auth_sign("0123456789abcdefghijklmnopqrstuv", "key", 1796054400 + i, &msg, sig))
			return 1;
		classic[i] = now_us() - t0;
		free(msg);
		c.iat = 1796054400 + i;
		t0 = now_us();
		if (jwt_sign(k, &c, &token))
			return 1;
		scoped[i] = now_us() - t0;
		free(token);
	}
	printf("| signing one request | median, microseconds (%d rounds) |\n|---|---|\n", rounds);
	printf("| classic msg/sig (zlib, base64, HMAC-SHA256) | %.1f |\n", median(classic, rounds));
	printf("| scoped ES256 token (P-256 ECDSA, base64url) | %.1f |\n", median(scoped, rounds));
	jwt_key_free(k);
	free(b64);
	free(classic);
	free(scoped);
	EVP_PKEY_free(pkey);
	return 0;
}
