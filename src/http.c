// SPDX-License-Identifier: MIT
/* The only file that knows libcurl: a bounded GET with cancellation. */
#include "http.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "bigmem.h"

#define HTTP_READ_BUFFER 262144L /* bytes per read from the socket (curl's default: 16 KiB) */

struct http_client {
	CURL *curl;
	size_t max_bytes;
	double timeout; /* s: connect, a stall, and the grace before HTTP_MIN_RATE */
	const atomic_bool *cancel;
};

struct http_xfer {
	CURL *curl;
	const struct http_client *hc;
	struct http_response *resp;
	size_t cap; /* bytes allocated for resp->body */
	size_t max_bytes;
	bool too_big;
	double start;	   /* monotonic s */
	double last_data;  /* monotonic s, when the last byte came */
	curl_off_t seen;   /* bytes received by then */
	const char *abort; /* why the progress check ended the transfer */
};

static double http_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int http_global_init(void)
{
	return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -EIO;
}

void http_global_cleanup(void)
{
	curl_global_cleanup();
}

static size_t http_write_cb(char *data, size_t size, size_t nmemb, void *arg)
{
	struct http_xfer *x = arg;
	struct http_response *r = x->resp;
	size_t n = size * nmemb;

	if (n > x->max_bytes - r->len) {
		x->too_big = true;
		return 0; /* makes curl fail with CURLE_WRITE_ERROR */
	}
	if (r->len + n + 1 > x->cap) {
		size_t cap = x->cap ? x->cap : 16384;
		curl_off_t expect = -1;

		/* the announced length, if sane, saves a copy per doubling */
		if (!x->cap &&
		    curl_easy_getinfo(x->curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &expect) ==
			    CURLE_OK &&
		    expect > 0 && (size_t)expect < x->max_bytes)
			cap = (size_t)expect + 1;
		char *body;

		while (cap < r->len + n + 1)
			cap *= 2;
		body = big_realloc(r->body, cap);
		if (!body)
			return 0;
		r->body = body;
		x->cap = cap;
	}
	memcpy(r->body + r->len, data, n);
	r->len += n;
	r->body[r->len] = '\0';
	return n;
}

/* Retry-After is either delta-seconds or an HTTP-date. */
static long http_parse_retry_after(const char *v)
{
	char *end;
	long secs;
	time_t when;

	while (*v == ' ' || *v == '\t')
		v++;
	secs = strtol(v, &end, 10);
	if (end != v && (*end == '\0' || *end == '\r' || *end == '\n' || *end == ' '))
		return secs < 0 ? 0 : secs;
	when = curl_getdate(v, NULL);
	if (when == -1)
		return -1;
	secs = (long)(when - time(NULL));
	return secs < 0 ? 0 : secs;
}

static size_t http_header_cb(char *data, size_t size, size_t nmemb, void *arg)
{
	struct http_xfer *x = arg;
	size_t n = size * nmemb;
	static const char name[] = "retry-after:", date[] = "date:";
	char value[128];

	/* a new status line starts a new header block (e.g. after 100) */
	if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) {
		x->resp->retry_after = -1;
		x->resp->date = 0;
	}
	if (n > sizeof(date) - 1 && n < sizeof(value) + sizeof(date) &&
	    strncasecmp(data, date, sizeof(date) - 1) == 0) {
		time_t when;

		memcpy(value, data + sizeof(date) - 1, n - (sizeof(date) - 1));
		value[n - (sizeof(date) - 1)] = '\0';
		when = curl_getdate(value, NULL);
		x->resp->date = when > 0 ? (long long)when : 0;
	}
	if (n > sizeof(name) - 1 && strncasecmp(data, name, sizeof(name) - 1) == 0) {
		size_t vlen = n - (sizeof(name) - 1);

		if (vlen >= sizeof(value))
			vlen = sizeof(value) - 1;
		memcpy(value, data + sizeof(name) - 1, vlen);
		value[vlen] = '\0';
		x->resp->retry_after = http_parse_retry_after(value);
	}
	return n;
}

static int http_progress_cb(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
			    curl_off_t ulnow)
{
	struct http_xfer *x = arg;
	double now = http_now();

	if (x->hc->cancel && atomic_load(x->hc->cancel))
		return 1;
	if (dlnow > x->seen) {
		x->seen = dlnow;
		x->last_data = now;
	}
	/* connecting has its own limit: CURLOPT_CONNECTTIMEOUT_MS */
	if (now - x->last_data > x->hc->timeout) {
		x->abort = "no data";
		return 1;
	}
	if (now - x->start > x->hc->timeout + (double)dlnow / HTTP_MIN_RATE) {
		x->abort = "too slow";
		return 1;
	}
	return 0;
}

struct http_client *http_client_new(const char *user_agent, long timeout_ms, size_t max_bytes,
				    const atomic_bool *cancel)
{
	struct http_client *hc = calloc(1, sizeof(*hc));

	if (!hc)
		return NULL;
	hc->curl = curl_easy_init();
	if (!hc->curl) {
		free(hc);
		return NULL;
	}
	hc->max_bytes = max_bytes;
	hc->timeout = (double)timeout_ms / 1e3;
	hc->cancel = cancel;
	curl_easy_setopt(hc->curl, CURLOPT_USERAGENT, user_agent);
	curl_easy_setopt(hc->curl, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
	curl_easy_setopt(hc->curl, CURLOPT_NOSIGNAL, 1L);
	/* answers run to tens of MiB: fewer, larger reads and write callbacks */
	curl_easy_setopt(hc->curl, CURLOPT_BUFFERSIZE, HTTP_READ_BUFFER);
	curl_easy_setopt(hc->curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(hc->curl, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(hc->curl, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(hc->curl, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(hc->curl, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(hc->curl, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(hc->curl, CURLOPT_XFERINFOFUNCTION, http_progress_cb);
	curl_easy_setopt(hc->curl, CURLOPT_WRITEFUNCTION, http_write_cb);
	curl_easy_setopt(hc->curl, CURLOPT_HEADERFUNCTION, http_header_cb);
	return hc;
}

void http_client_free(struct http_client *hc)
{
	if (!hc)
		return;
	curl_easy_cleanup(hc->curl);
	free(hc);
}

static int http_errno(CURLcode rc, const struct http_xfer *x, bool cancelled)
{
	if (x->too_big)
		return -EFBIG;
	if (cancelled)
		return -ECANCELED;
	if (x->abort)
		return -ETIMEDOUT;
	switch (rc) {
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_COULDNT_CONNECT:
		return -ECONNREFUSED;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return -EHOSTUNREACH;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	default:
		return -EIO;
	}
}

/* curl keeps its own copy of each header: wipe it before it is freed */
static void http_free_headers(struct curl_slist *list)
{
	for (struct curl_slist *h = list; h; h = h->next)
		explicit_bzero(h->data, strlen(h->data));
	curl_slist_free_all(list);
}

int http_get(struct http_client *hc, const char *url, const char *header,
	     struct http_response *resp, char *err, size_t errlen)
{
	struct curl_slist *headers = NULL;
	struct http_xfer x = {
		.curl = hc->curl, .hc = hc, .resp = resp, .max_bytes = hc->max_bytes
	};
	bool cancelled;
	CURLcode rc;
	int ret;

	memset(resp, 0, sizeof(*resp));
	resp->retry_after = -1;
	if (header) {
		headers = curl_slist_append(NULL, header);
		if (!headers) {
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
	}
	curl_easy_setopt(hc->curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(hc->curl, CURLOPT_URL, url);
	curl_easy_setopt(hc->curl, CURLOPT_WRITEDATA, &x);
	curl_easy_setopt(hc->curl, CURLOPT_HEADERDATA, &x);
	curl_easy_setopt(hc->curl, CURLOPT_XFERINFODATA, &x);

	x.start = x.last_data = http_now();
	rc = curl_easy_perform(hc->curl);
	resp->ms = (http_now() - x.start) * 1e3;
	curl_easy_getinfo(hc->curl, CURLINFO_RESPONSE_CODE, &resp->status);
	/* the URL or the header carries a signature: never keep it in the handle longer */
	curl_easy_setopt(hc->curl, CURLOPT_URL, "");
	curl_easy_setopt(hc->curl, CURLOPT_HTTPHEADER, NULL);
	http_free_headers(headers);

	if (!resp->body) {
		resp->body = calloc(1, 1);
		if (!resp->body)
			return -ENOMEM;
	}
	if (rc == CURLE_OK)
		return 0;

	cancelled = hc->cancel && atomic_load(hc->cancel);
	ret = http_errno(rc, &x, cancelled);
	if (ret == -EFBIG)
		snprintf(err, errlen, "response larger than %zu bytes", hc->max_bytes);
	else if (ret == -ECANCELED)
		snprintf(err, errlen, "request cancelled");
	else if (x.abort && strcmp(x.abort, "no data") == 0)
		snprintf(err, errlen, "no data for %g s", hc->timeout);
	else if (x.abort)
		snprintf(err, errlen,
			 "answer too slow: %lld bytes in %.0f s, under %d bytes/s after the first "
			 "%g s",
			 (long long)x.seen, http_now() - x.start, HTTP_MIN_RATE, hc->timeout);
	else
		snprintf(err, errlen, "%s", curl_easy_strerror(rc));
	return ret;
}

void http_response_free(struct http_response *resp)
{
	free(resp->body);
	resp->body = NULL;
	resp->len = 0;
}
