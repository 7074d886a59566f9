/* SPDX-License-Identifier: MIT */
#ifndef INGESTFS_API_H
#define INGESTFS_API_H

#include <stdint.h>

#include "creds.h"
#include "http.h"

#define API_DEFAULT_URL	     "https://services.uplynk.com"
#define API_DEFAULT_ENDPOINT "/api/v4/managed-slicer/ingest-points/tasks"

#define API_ERROR_MAX 320 /* bytes of a request's error text */

/* the header a scoped key's token travels in */
#define API_JWT_HEADER "X-Auth-Uplynk-Jwt"

struct api;

struct api_result {
	struct http_response resp; /* body of a 200 answer, else the error body */
	char error[API_ERROR_MAX]; /* short cause when the call failed; no secrets */
};

/*
 * api_new - a client for @base_url + @endpoint signed with @c: classic
 * msg/sig in the query, or for a scoped key a fresh ES256 token per
 * request in the API_JWT_HEADER header.  What it needs of @c is copied
 * (the secret copies are wiped by api_free).  @http is borrowed and used
 * from the calling thread only.  NULL on ENOMEM.
 */
struct api *api_new(const char *base_url, const char *endpoint, const struct creds *c,
		    struct http_client *http);
void api_free(struct api *api);

/*
 * api_fetch_tasks - one signed GET of the collection, signed for @now.
 * Returns 0 for a 200 answer (body in res->resp), else -errno: -EACCES
 * (401/403), -EAGAIN (429, see resp.retry_after), -ENOENT (404), -EIO
 * (5xx), -EPROTO (any other status) or the transport errors of http_get().
 * res->error names the cause; for 401 and 403 also the likely reason (a
 * clock off by more than the API allows, seen from its Date header; the
 * scoped key and its scopes).  Release with api_result_free() always.
 */
int api_fetch_tasks(struct api *api, int64_t now, struct api_result *res);
void api_result_free(struct api_result *res);

/* api_auth_kind - "classic" or "scoped"; api_kid, api_scopes: "" for classic */
const char *api_auth_kind(const struct api *api);
const char *api_kid(const struct api *api);
const char *api_scopes(const struct api *api);

/* api_url - the collection's URL, without any signature */
const char *api_url(const struct api *api);

/* api_status_errno - the errno an HTTP status maps to (0 for 2xx) */
int api_status_errno(long status);

/* api_percent_encode - RFC 3986 unreserved kept, all else %XX; malloc'd */
char *api_percent_encode(const char *s);

#endif
