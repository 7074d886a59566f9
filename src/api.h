/* SPDX-License-Identifier: MIT */
#ifndef INGESTFS_API_H
#define INGESTFS_API_H

#include <stdint.h>

#include "http.h"

#define API_DEFAULT_URL	     "https://services.uplynk.com"
#define API_DEFAULT_ENDPOINT "/api/v4/managed-slicer/ingest-points/tasks"

struct api;

struct api_result {
	struct http_response resp; /* body of a 200 answer, else the error body */
	char error[160];	   /* short cause when the call failed; no secrets */
};

/*
 * api_new - a client for @base_url + @endpoint signed as @user/@key (both
 * copied; the copy of the key is wiped by api_free).  @http is borrowed
 * and used from the calling thread only.  NULL on ENOMEM.
 */
struct api *api_new(const char *base_url, const char *endpoint, const char *user, const char *key,
		    struct http_client *http);
void api_free(struct api *api);

/*
 * api_fetch_tasks - one signed GET of the collection, signed for @now.
 * Returns 0 for a 200 answer (body in res->resp), else -errno: -EACCES
 * (401/403), -EAGAIN (429, see resp.retry_after), -ENOENT (404), -EIO
 * (5xx), -EPROTO (any other status) or the transport errors of http_get().
 * res->error names the cause.  Release with api_result_free() always.
 */
int api_fetch_tasks(struct api *api, int64_t now, struct api_result *res);
void api_result_free(struct api_result *res);

/* api_status_errno - the errno an HTTP status maps to (0 for 2xx) */
int api_status_errno(long status);

/* api_percent_encode - RFC 3986 unreserved kept, all else %XX; malloc'd */
char *api_percent_encode(const char *s);

#endif
