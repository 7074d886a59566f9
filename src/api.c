// SPDX-License-Identifier: MIT
/* Endpoint URLs, request signing glue and HTTP status mapping. */
#include "api.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "jwt.h"

struct api {
	char *url; /* base URL + endpoint, no query */
	enum creds_kind kind;
	char *user;	       /* classic */
	char *key;	       /* classic; secret, wiped on free */
	struct jwt_key *jwt;   /* scoped; secret, wiped by OpenSSL on free */
	char *kid, *sub, *scp; /* scoped; scp "a,b", not secret */
	char *scp_split;       /* scp with NULs for commas, behind scopes[] */
	const char *scopes[CREDS_SCOPES];
	size_t nscopes;
	struct http_client *http;
};

static int api_copy_creds(struct api *api, const struct creds *c)
{
	char err[160];

	api->kind = c->kind;
	if (c->kind == CREDS_CLASSIC) {
		api->user = strdup(c->user_id);
		api->key = strdup(c->api_key);
		api->kid = strdup("");
		api->scp = strdup("");
		return api->user && api->key && api->kid && api->scp ? 0 : -ENOMEM;
	}
	api->kid = strdup(c->kid);
	api->sub = strdup(c->sub);
	api->scp = strdup(c->scp);
	api->scp_split = strdup(c->scp);
	if (!api->kid || !api->sub || !api->scp || !api->scp_split)
		return -ENOMEM;
	api->nscopes = creds_split_scopes(api->scp_split, api->scopes, CREDS_SCOPES);
	/* creds_parse checked the key: this fails only when out of memory */
	return jwt_key_load(c->private_b64, strlen(c->private_b64), &api->jwt, err, sizeof(err));
}

struct api *api_new(const char *base_url, const char *endpoint, const struct creds *c,
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
	api->http = http;
	if (!api->url || api_copy_creds(api, c) < 0) {
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
	jwt_key_free(api->jwt);
	free(api->kid);
	free(api->sub);
	free(api->scp);
	free(api->scp_split);
	free(api->url);
	free(api);
}

const char *api_auth_kind(const struct api *api)
{
	return api->kind == CREDS_SCOPED ? "scoped" : "classic";
}

const char *api_kid(const struct api *api)
{
	return api->kid;
}

const char *api_scopes(const struct api *api)
{
	return api->scp;
}

const char *api_url(const struct api *api)
{
	return api->url;
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

/* The classic request: the signature in the query. */
static int api_classic_url(struct api *api, int64_t now, char **url, struct api_result *res)
{
	char sig[AUTH_SIG_LEN + 1];
	char *msg, *emsg;
	int ret;

	ret = auth_sign(api->user, api->key, now, &msg, sig);
	if (ret < 0) {
		snprintf(res->error, sizeof(res->error), "cannot sign request: %s", strerror(-ret));
		return ret;
	}
	emsg = api_percent_encode(msg);
	free(msg);
	if (!emsg || asprintf(url, "%s?msg=%s&sig=%s", api->url, emsg, sig) < 0) {
		free(emsg);
		snprintf(res->error, sizeof(res->error), "out of memory");
		return -ENOMEM;
	}
	free(emsg);
	return 0;
}

/*
 * The scoped request: a new token for each one.  Signing costs well under
 * a millisecond and a request comes at most once a ttl, so nothing is
 * gained by keeping a token; a fresh one is always inside the API's
 * window, also after a suspend or a clock step, and no usable credential
 * waits in memory between requests.
 */
static int api_jwt_header(struct api *api, int64_t now, char **header, struct api_result *res)
{
	struct jwt_claims claims = {
		.kid = api->kid,
		.sub = api->sub,
		.scopes = api->scopes,
		.nscopes = api->nscopes,
		.iat = now,
		.ttl = JWT_TTL_S,
	};
	char *token;
	int ret;

	ret = jwt_sign(api->jwt, &claims, &token);
	if (ret < 0) {
		snprintf(res->error, sizeof(res->error), "cannot sign request: %s", strerror(-ret));
		return ret;
	}
	if (asprintf(header, "%s: %s", API_JWT_HEADER, token) < 0) {
		*header = NULL;
		ret = -ENOMEM;
		snprintf(res->error, sizeof(res->error), "out of memory");
	}
	explicit_bzero(token, strlen(token));
	free(token);
	return ret;
}

/* Why the API may have refused us: the clock first, then the key. */
static void api_auth_hint(const struct api *api, long status, int64_t now, long long date,
			  char *out, size_t outlen)
{
	long long skew = date ? (long long)now - date : 0;

	if (skew > JWT_TTL_S - 60 || skew < -(JWT_TTL_S - 60))
		snprintf(out, outlen,
			 "; this machine's clock is %lld s %s the API's, and a signed request is "
			 "only good for %d s",
			 skew < 0 ? -skew : skew, skew < 0 ? "behind" : "ahead of", JWT_TTL_S);
	else if (api->kind == CREDS_SCOPED && status == 403)
		snprintf(out, outlen,
			 " (scoped key %.40s has scope%s %.100s; this endpoint may need another)",
			 api->kid, api->nscopes == 1 ? "" : "s", api->scp);
	else if (api->kind == CREDS_SCOPED)
		snprintf(
			out, outlen,
			" (scoped key %.40s: revoked, or PRIVATE_B64 or SUB not those of the key?)",
			api->kid);
	else
		out[0] = '\0';
}

int api_fetch_tasks(struct api *api, int64_t now, struct api_result *res)
{
	char *url = NULL, *header = NULL, hint[200] = "";
	int ret;

	memset(res, 0, sizeof(*res));
	if (api->kind == CREDS_SCOPED) {
		ret = api_jwt_header(api, now, &header, res);
		if (ret == 0 && !(url = strdup(api->url))) {
			ret = -ENOMEM;
			snprintf(res->error, sizeof(res->error), "out of memory");
		}
	} else {
		ret = api_classic_url(api, now, &url, res);
	}
	if (ret < 0)
		goto out;

	ret = http_get(api->http, url, header, &res->resp, res->error, sizeof(res->error));
	if (ret < 0)
		goto out;

	ret = api_status_errno(res->resp.status);
	if (ret == -EACCES)
		api_auth_hint(api, res->resp.status, now, res->resp.date, hint, sizeof(hint));
	if (ret < 0)
		snprintf(res->error, sizeof(res->error), "HTTP %ld: %s%s", res->resp.status,
			 api_status_cause(res->resp.status), hint);
out:
	if (header)
		explicit_bzero(header, strlen(header));
	free(header);
	free(url);
	return ret;
}

void api_result_free(struct api_result *res)
{
	http_response_free(&res->resp);
}
