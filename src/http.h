/* SPDX-License-Identifier: MIT */
#ifndef INGESTFS_HTTP_H
#define INGESTFS_HTTP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

struct http_client;

struct http_response {
	long status;	  /* HTTP status, 0 when no answer came */
	char *body;	  /* malloc'd, NUL-terminated; owned by the response */
	size_t len;	  /* bytes in body, without the NUL */
	long retry_after; /* seconds from a Retry-After header, -1 if none */
	long long date;	  /* the Date header, seconds since 1970; 0 if none */
	double ms;	  /* wall time of the whole request, milliseconds */
};

/* http_global_init - once, in main, before any thread; 0 or -EIO */
int http_global_init(void);
void http_global_cleanup(void);

/* an answer must average at least this many bytes a second, after the timeout */
#define HTTP_MIN_RATE 16384

/*
 * http_client_new - one reusable connection for one thread.
 * @timeout_ms bounds connecting and any stall: a request fails when no
 * byte arrived for that long.  A slow answer is fine as long as it keeps
 * coming: after T ms and B bytes the request fails only once T exceeds
 * @timeout_ms + B / HTTP_MIN_RATE seconds, so a trickle is cut within
 * about the timeout, and a large answer on a modest link still loads.
 * @max_bytes bounds the body (after decompression) and is enforced while
 * downloading.  When *@cancel becomes true a transfer in flight is
 * aborted.  Checks run at least once a second.  NULL on ENOMEM.
 */
struct http_client *http_client_new(const char *user_agent, long timeout_ms, size_t max_bytes,
				    const atomic_bool *cancel);
void http_client_free(struct http_client *hc);

/*
 * http_get - GET @url into @resp (zeroed first), with one more request
 * header @header ("Name: value") unless NULL; a header holds a credential,
 * so curl's copy of it is wiped after the request.  Returns 0 when any HTTP
 * answer arrived (check resp->status), else -errno with a short cause in
 * @err: -ETIMEDOUT, -ECONNREFUSED, -EFBIG (over max_bytes), -ECANCELED,
 * -EIO.  The error text never contains the URL.  Free with
 * http_response_free() in every case.
 */
int http_get(struct http_client *hc, const char *url, const char *header,
	     struct http_response *resp, char *err, size_t errlen);
void http_response_free(struct http_response *resp);

#endif
