// SPDX-License-Identifier: MIT
/* The .status file: the cache's health, rendered afresh for every lookup. */
#include "cache_priv.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static void fmt_time(char *buf, size_t len, time_t t)
{
	struct tm tm;

	if (t == 0 || !gmtime_r(&t, &tm))
		snprintf(buf, len, "never");
	else
		strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int status_render(struct cache *c, char *buf, size_t len)
{
	const struct snapshot *s = c->current;
	char succ[32], att[32], next[32], warning[96] = "none", skips[160] = "none";
	char save[96] = "never", feed_last[96] = "none", feed_bytes[96] = "none";
	time_t now = time(NULL);
	double until = c->next_attempt - mono_now();

	if (s && cache_total_mismatch(s))
		snprintf(warning, sizeof(warning),
			 "total_items is %lld but items has %zu (paging?)",
			 (long long)s->stats.total_items, s->stats.items);
	if (s)
		items_skip_summary(&s->stats, skips, sizeof(skips));
	if (c->saves.saves)
		snprintf(save, sizeof(save), "%zu bytes, %.1f ms cpu, %.1f ms, %s", c->saves.bytes,
			 c->saves.cpu_ms, c->saves.wall_ms, c->saves.whole ? "whole" : "delta");
	if (c->feed_last_lines)
		snprintf(feed_last, sizeof(feed_last), "%zu lines, %.2f ms cpu, %.1f ms",
			 c->feed_last_lines, c->feed_last_cpu_ms, c->feed_last_wall_ms);
	if (c->feed) {
		uint64_t gen, cur, prev;

		feed_visible(c->feed, &gen, &cur, &prev);
		snprintf(feed_bytes, sizeof(feed_bytes), "%llu in .events, %llu in .events.1",
			 (unsigned long long)cur, (unsigned long long)prev);
	}
	fmt_time(succ, sizeof(succ), c->last_success);
	fmt_time(att, sizeof(att), c->last_attempt);
	fmt_time(next, sizeof(next), now + (time_t)ceil(until > 0 ? until : 0));
	return snprintf(
		buf, len,
		"api_url: %s\n"
		"endpoint: %s\n"
		"transport: %s\n"
		"auth: %s\n"
		"kid: %s\n"
		"scopes: %s\n"
		"ttl: %g\n"
		"tasks: %zu\n"
		"generation: %llu\n"
		"refreshes: %llu\n"
		"requests: %llu\n"
		"last_success: %s\n"
		"last_attempt: %s\n"
		"age_seconds: %lld\n"
		"last_error: %s\n"
		"consecutive_failures: %u\n"
		"next_attempt: %s\n"
		"items: %zu\n"
		"total_items: %lld\n"
		"skipped_items: %zu\n"
		"skipped_why: %s\n"
		"duplicate_ids: %zu\n"
		"warning: %s\n"
		"retained_versions: %zu\n"
		"source: %s\n"
		"state_dir: %s\n"
		"state_saves: %llu\n"
		"state_whole_saves: %llu\n"
		"state_last_save: %s\n"
		"state_error: %s\n"
		"events: %s\n"
		"events_bytes: %s\n"
		"events_lines: %llu\n"
		"events_last: %s\n"
		"events_error: %s\n",
		c->api_url, c->endpoint, c->transport, api_auth_kind(c->api),
		*api_kid(c->api) ? api_kid(c->api) : "none",
		*api_scopes(c->api) ? api_scopes(c->api) : "none", c->ttl, s ? s->ntasks : 0,
		(unsigned long long)c->generation, (unsigned long long)c->refreshes,
		(unsigned long long)c->requests, succ, att,
		(long long)(c->last_success ? now - c->last_success : -1),
		c->last_error[0] ? c->last_error : "none", c->failures, c->started ? next : "never",
		s ? s->stats.items : 0, (long long)(s ? s->stats.total_items : -1),
		s ? s->stats.skipped : 0, skips, s ? s->stats.duplicates : 0, warning,
		nodes_blobs(c->nodes) - c->status_blobs,
		c->offline ? "saved (the API has not answered since start)" : "api",
		c->state ? state_dir_path(c->state) : "none", (unsigned long long)c->saves.saves,
		(unsigned long long)c->saves.whole_saves, save,
		c->save_error[0] ? c->save_error : "none",
		!c->feed   ? "off"
		: c->state ? "in the state folder"
			   : "in memory (state_dir=none)",
		feed_bytes, (unsigned long long)c->feed_lines, feed_last,
		c->feed_error[0] ? c->feed_error : "none");
}

struct blob *cache_status_blob(struct cache *c, uint64_t *nodeid)
{
	char text[8192];
	struct blob *b;
	int len;

	pthread_mutex_lock(&c->lock);
	len = status_render(c, text, sizeof(text));
	if (len < 0 || (size_t)len >= sizeof(text))
		len = (int)strlen(text);
	/* each rendering is a version of its own, with its own inode number */
	*nodeid = SNAP_STATUS_NODEID_BASE + c->status_seq;
	b = blob_new(*nodeid, wall_ns(), text, (size_t)len);
	if (!b)
		goto out_unlock;
	c->status_seq++;
	if (nodes_ref(c->nodes, *nodeid, 1) < 0) {
		blob_put(b);
		b = NULL;
		goto out_unlock;
	}
	if (nodes_set_blob(c->nodes, *nodeid, blob_get(b)) < 0) {
		blob_put(b); /* the reference meant for the table */
		blob_put(b);
		b = NULL;
		nodes_forget(c->nodes, *nodeid, 1);
		goto out_unlock;
	}
	c->status_blobs++;
out_unlock:
	pthread_mutex_unlock(&c->lock);
	return b;
}
