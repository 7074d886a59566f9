// SPDX-License-Identifier: MIT
/* The retry policy: doubling from the ttl, capped, and Retry-After. */
#include "cache_priv.h"
#include "check.h"

int main(void)
{
	CHECK(cache_backoff_delay(30, 0, -1) == 30); /* healthy: the ttl */
	CHECK(cache_backoff_delay(30, 1, -1) == 30);
	CHECK(cache_backoff_delay(30, 2, -1) == 60);
	CHECK(cache_backoff_delay(30, 4, -1) == 240);
	CHECK(cache_backoff_delay(30, 5, -1) == CACHE_MAX_BACKOFF); /* 480 capped at 300 */
	CHECK(cache_backoff_delay(30, 1000, -1) == CACHE_MAX_BACKOFF);
	CHECK(cache_backoff_delay(0.1, 3, -1) > 0.39 && cache_backoff_delay(0.1, 3, -1) < 0.41);
	/* a ttl above the cap is never shortened by it */
	CHECK(cache_backoff_delay(7200, 3, -1) == 7200);
	/* Retry-After lengthens the wait, up to an hour, and never shortens it */
	CHECK(cache_backoff_delay(30, 1, 90) == 90);
	CHECK(cache_backoff_delay(30, 1, 10) == 30);
	CHECK(cache_backoff_delay(30, 5, 1000) == 1000);
	CHECK(cache_backoff_delay(30, 5, 99999) == CACHE_MAX_RETRY_AFTER);
	CHECK(cache_backoff_delay(7200, 1, 9000) == 7200);
	CHECK(cache_backoff_delay(30, 1, 0) == 30);
	return check_done("test_backoff");
}
