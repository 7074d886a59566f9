// SPDX-License-Identifier: MIT
/* ingestfs --check: test the credentials with one request, mount nothing. */
#include "credcheck.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "http.h"
#include "snapshot.h"

int check_credentials(const struct config *cfg, const struct creds *creds, char *line,
		      size_t linelen)
{
	struct http_client *http;
	struct snap_ctx ctx = { .next_nodeid = SNAP_FIRST_FILE_NODEID };
	struct snapshot *s = NULL;
	struct api_result res;
	struct api *api;
	char perr[160];
	int ret;

	http = http_client_new("ingestfs/" INGESTFS_VERSION, (long)ceil(cfg->timeout * 1000),
			       cfg->max_response, NULL);
	api = http ? api_new(cfg->api_url, cfg->endpoint, creds, http) : NULL;
	if (!api) {
		http_client_free(http);
		snprintf(line, linelen, "out of memory");
		return -ENOMEM;
	}
	ret = api_fetch_tasks(api, time(NULL), &res);
	if (ret == 0) {
		ret = snapshot_parse(res.resp.body, res.resp.len, NULL, &ctx, &s, perr,
				     sizeof(perr));
		if (ret < 0)
			snprintf(res.error, sizeof(res.error), "unusable answer: %s", perr);
	}
	if (ret < 0)
		snprintf(line, linelen, "cannot load tasks from %s: %s", api_url(api), res.error);
	else
		snprintf(line, linelen, "ok: %zu tasks from %s (%s key%s%s, %.0f ms)", s->ntasks,
			 api_url(api), api_auth_kind(api), *api_kid(api) ? " " : "", api_kid(api),
			 res.resp.ms);
	snapshot_put(s);
	api_result_free(&res);
	api_free(api);
	http_client_free(http);
	return ret;
}
