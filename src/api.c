// SPDX-License-Identifier: MIT
/* Endpoint URLs, request signing glue and HTTP status mapping. */
#include "api.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"

struct api {
	char *url; /* base URL + endpoint, no query */
	char *user;
	char *key; /* wiped on free */
	struct http_client *http;
};

struct api *api_new(const char *base_url, const char *endpoint, const char *user, const char *key,
		    struct http_client *http)
{
	struct api *api = calloc(1, sizeof(*api));
	size_t blen = strlen(base_url);

	if (!api)
		return NULL;
	while (blen > 0 && base_url[blen - 1] == '/')
		blen--;
	if (asprintf(&api->url, "%.*s%s", (int)blen, base_url, endpoint) < 0)
		api->url = NULL;
	api->user = strdup(user);
	api->key = strdup(key);
	api->http = http;
	if (!api->url || !api->user || !api->key) {
		api_free(api);
		return NULL;
	}
	return api;
}

void api_free(struct api *api)
{
	if (!api)
		return;
	if (api->key)
		OPENSSL_cleanse(api->key, strlen(api->key));
	free(api->key);
	free(api->user);
	free(api->url);
	free(api);
}

char *api_percent_encode(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	char *out = malloc(strlen(s) * 3 + 1), *p = out;

	if (!out)
		return NULL;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '_' || c == '.' || c == '~') {
			*p++ = (char)c;
		} else {
			*p++ = '%';
			*p++ = hex[c >> 4];
			*p++ = hex[c & 15];
		}
	}
	*p = '\0';
	return out;
}

int api_status_errno(long status)
{
	if (status >= 200 && status < 300)
		return 0;
	switch (status) {
	case 401:
	case 403:
		return -EACCES;
	case 404:
		return -ENOENT;
	case 429:
		return -EAGAIN;
	default:
		return status >= 500 && status < 600 ? -EIO : -EPROTO;
	}
}

static const char *api_status_cause(long status)
{
	switch (status) {
	case 401:
		return "credentials rejected";
	case 403:
		return "access forbidden";
	case 404:
		return "endpoint not found";
	case 429:
		return "rate limited";
	default:
		return status >= 500 ? "server error" : "unexpected status";
	}
}

int api_fetch_tasks(struct api *api, int64_t now, struct api_result *res)
{
	char sig[AUTH_SIG_LEN + 1];
	char *msg, *emsg, *url;
	int ret;

	memset(res, 0, sizeof(*res));
	ret = auth_sign(api->user, api->key, now, &msg, sig);
	if (ret < 0) {
		snprintf(res->error, sizeof(res->error), "cannot sign request: %s", strerror(-ret));
		return ret;
	}
	emsg = api_percent_encode(msg);
	free(msg);
	if (!emsg || asprintf(&url, "%s?msg=%s&sig=%s", api->url, emsg, sig) < 0) {
		free(emsg);
		snprintf(res->error, sizeof(res->error), "out of memory");
		return -ENOMEM;
	}
	free(emsg);

	ret = http_get(api->http, url, &res->resp, res->error, sizeof(res->error));
	free(url);
	if (ret < 0)
		return ret;

	ret = api_status_errno(res->resp.status);
	if (ret < 0)
		snprintf(res->error, sizeof(res->error), "HTTP %ld: %s", res->resp.status,
			 api_status_cause(res->resp.status));
	return ret;
}

void api_result_free(struct api_result *res)
{
	http_response_free(&res->resp);
}
