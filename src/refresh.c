// SPDX-License-Identifier: MIT
/* The refresher: fetch, retry policy and backoff, and the thread that runs them. */
#include "cache_priv.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "events.h"
#include "log.h"

/* ---- one refresh ---- */

double cache_backoff_delay(double ttl, unsigned int failures, long retry_after)
{
	double d = ttl;

	if (failures > 0) {
		d = ttl * pow(2.0, (double)(failures - 1));
		if (d > CACHE_MAX_BACKOFF)
			d = CACHE_MAX_BACKOFF;
		if (d < ttl)
			d = ttl;
	}
	/* the server may ask for longer, up to a cap; never for sooner */
	if (retry_after > 0)
		d = fmax(d, fmin((double)retry_after, CACHE_MAX_RETRY_AFTER));
	return d;
}

/*
 * Fetch and parse.  0 with a new snapshot in *@out and its answer in
 * @got (free got->body), or 0 with *@out NULL when the answer is byte for
 * byte the one behind the current (or saved) snapshot: parsing it again
 * would build the same snapshot.  Else -errno + @err.
 */
static int cache_fetch(struct cache *c, struct snapshot **out, struct fetched *got,
		       long *retry_after, char *err, size_t errlen)
{
	struct api_result res;
	struct snapshot *prev;
	char perr[160];
	time_t now = time(NULL);
	uint64_t hash;
	int ret;

	memset(got, 0, sizeof(*got));
	pthread_mutex_lock(&c->lock);
	c->requests++;
	c->last_attempt = now;
	prev = c->current ? c->current : c->restored;
	prev = prev ? snapshot_get(prev) : NULL;
	pthread_mutex_unlock(&c->lock);

	*retry_after = -1;
	ret = api_fetch_tasks(c->api, now, &res);
	log_debug("GET %s: status %ld, %zu bytes, %.0f ms", c->endpoint, res.resp.status,
		  res.resp.len, res.resp.ms);
	if (ret < 0) {
		*retry_after = res.resp.retry_after;
		snprintf(err, errlen, "%s", res.error);
		goto out;
	}
	hash = snapshot_body_hash(c->hash_key, res.resp.body, res.resp.len);
	if (prev && c->body_hash_set && hash == c->body_hash) {
		*out = NULL;
		goto out;
	}
	c->ctx.now_ns = wall_ns();
	ret = snapshot_parse(res.resp.body, res.resp.len, prev, &c->ctx, out, perr, sizeof(perr));
	if (ret < 0) {
		snprintf(err, errlen, "unusable answer: %s", perr);
		goto out;
	}
	got->body = res.resp.body;
	got->len = res.resp.len;
	got->hash = hash;
	got->at_ns = c->ctx.now_ns;
	res.resp.body = NULL;
out:
	api_result_free(&res);
	snapshot_put(prev);
	return ret;
}

/*
 * Save @s and its answer before it is published, so that whatever readers
 * were shown is in the state.  A failed save is logged once per cause and
 * shown in .status; the mount goes on without it.
 */
static void cache_save(struct cache *c, struct snapshot *s, const struct fetched *got)
{
	struct state_save_stats st;
	uint64_t feed_gen = 1, feed_len = 0;
	char err[192];
	int ret;

	if (!c->state)
		return;
	pthread_mutex_lock(&c->lock);
	st = c->saves;
	pthread_mutex_unlock(&c->lock);
	if (c->feed)
		feed_pending(c->feed, &feed_gen, &feed_len);
	ret = state_save(c->state, s, got->body, got->len, got->hash, &c->ctx, got->at_ns, feed_gen,
			 feed_len, &st, err, sizeof(err));
	pthread_mutex_lock(&c->lock);
	if (ret < 0 && strcmp(c->save_error, err) != 0)
		log_warn("%s; a restart will not know this answer's inodes and times", err);
	if (ret < 0)
		snprintf(c->save_error, sizeof(c->save_error), "%s", err);
	else
		c->save_error[0] = '\0';
	c->saves = st;
	pthread_mutex_unlock(&c->lock);
}

/*
 * The change feed's lines for @s against what was shown before it (or the
 * saved snapshot, at start): written, not yet visible; cache_publish
 * shows them (feed_commit) in the step that puts @s in place.  The first snapshot of a fresh state
 * has nothing to compare with and records nothing.
 */
static void cache_feed_append(struct cache *c, const struct snapshot *s, const struct fetched *got)
{
	/* c->current is swapped by this thread only: no lock to read it */
	const struct snapshot *old = c->current ? c->current : c->restored;
	double cpu0 = clock_ms(CLOCK_THREAD_CPUTIME_ID), cpu, wall0;
	struct events_buf b = { 0 };
	char err[192] = "";
	size_t n;

	if (!c->feed || !old)
		return;
	n = events_lines(old, s, got->at_ns, &b);
	/* the walk's CPU; the write's time is mostly the fsync: wall */
	cpu = clock_ms(CLOCK_THREAD_CPUTIME_ID) - cpu0;
	wall0 = clock_ms(CLOCK_MONOTONIC);
	if (b.oom)
		snprintf(err, sizeof(err), "out of memory: a refresh's %zu lines are missing", n);
	else if (n)
		feed_append(c->feed, b.p, b.len, err, sizeof(err));
	free(b.p);
	pthread_mutex_lock(&c->lock);
	if (err[0] && strcmp(c->feed_error, err) != 0)
		log_warn("%s", err);
	snprintf(c->feed_error, sizeof(c->feed_error), "%s", err);
	if (n && !err[0]) {
		c->feed_lines += n;
		c->feed_last_lines = n;
		c->feed_last_cpu_ms = cpu;
		c->feed_last_wall_ms = clock_ms(CLOCK_MONOTONIC) - wall0;
	}
	pthread_mutex_unlock(&c->lock);
}

/*
 * Stamp the new versions of @s with the moment they will be shown rather
 * than the moment their answer arrived, then save.  A tool that remembers
 * when it last ran (tar --listed-incremental, find -newer) must not meet
 * a version whose mtime lies before a run that could not yet see it.  The
 * save comes before the swap, so the stamps allow for it: twice the last
 * save, or the answer written at 100 MB/s, plus 5 ms; cache_publish then
 * holds the snapshot until the clock reaches them.  Before the mount
 * (@mounted false) nobody can read anything yet: no allowance, no wait.
 */
static void cache_restamp(struct cache *c, struct snapshot *s, const struct fetched *got,
			  bool mounted)
{
	double ms = mounted ? 2.0 : 0.0;

	if (c->state && mounted) {
		/* c->saves is written by this thread only: no lock to read it */
		ms = (c->saves.saves ? 2 * c->saves.wall_ms : (double)got->len / 1e5) + 5;
		if (ms > 2000)
			ms = 2000;
	}
	/* the feed's fsync comes first: the stamps' allowance covers the save only */
	cache_feed_append(c, s, got);
	snapshot_restamp(s, &c->ctx, wall_ns() + (int64_t)(ms * 1e6));
	cache_save(c, s, got);
}

bool cache_total_mismatch(const struct snapshot *s)
{
	return s->stats.total_items >= 0 && (size_t)s->stats.total_items != s->stats.items;
}

/* Log odd answers once per change, not on every refresh. */
static void log_snapshot_warnings(struct cache *c, const struct snapshot *s)
{
	const struct snap_stats *st = &s->stats;

	if (st->skipped && st->skipped != c->warned_skipped) {
		char why[160];

		items_skip_summary(st, why, sizeof(why));
		log_warn("skipped %zu item(s): %s%s%s; e.g. %s", st->skipped, why,
			 st->invalid ? "; first defect: " : "", st->invalid ? st->invalid : "",
			 st->examples);
	}
	if (st->duplicates && st->duplicates != c->warned_duplicates)
		log_warn("ignored %zu item(s) repeating an earlier id", st->duplicates);
	if (cache_total_mismatch(s) && st->total_items != c->warned_total)
		log_warn("total_items is %lld but items has %zu; the API may be paging",
			 (long long)st->total_items, st->items);
	c->warned_skipped = st->skipped;
	c->warned_duplicates = st->duplicates;
	c->warned_total = cache_total_mismatch(s) ? st->total_items : -1;
}

static void cache_refresh(struct cache *c)
{
	struct snapshot *next = NULL;
	struct fetched got;
	char err[API_ERROR_MAX];
	long retry_after;
	double t0 = mono_now(), delay;
	int ret;

	ret = cache_fetch(c, &next, &got, &retry_after, err, sizeof(err));
	if (ret == -ECANCELED)
		return;
	if (ret == 0 && next) {
		cache_retire(c, next);
		cache_restamp(c, next, &got, true);
	}
	if (ret == 0 && !next) {
		/* the same answer again: the current snapshot stands, confirmed */
		pthread_mutex_lock(&c->lock);
		cache_mark_success_locked(c, false);
		log_debug(
			"refresh: %zu tasks, generation %llu, 0 changes, %.0f ms, answer unchanged",
			c->current->ntasks, (unsigned long long)c->generation,
			(mono_now() - t0) * 1e3);
		pthread_mutex_unlock(&c->lock);
		cache_log_recovery(c, c->current);
		return;
	}
	if (ret == 0 && cache_publish(c, next, true) < 0) {
		ret = -ENOMEM;
		snprintf(err, sizeof(err), "out of memory keeping replaced files; not swapped");
	}
	/* cache_publish holds a reference: next stays valid for this save */
	if (ret == 0 && c->stamps_moved)
		cache_save(c, next, &got);
	free(got.body);
	if (ret == 0) {
		c->body_hash = got.hash;
		c->body_hash_set = true;
		pthread_mutex_lock(&c->lock);
		log_debug("refresh: %zu tasks, generation %llu, %zu changes, %.0f ms", next->ntasks,
			  (unsigned long long)c->generation, c->last_changes,
			  (mono_now() - t0) * 1e3);
		pthread_mutex_unlock(&c->lock);
		log_snapshot_warnings(c, next);
		return;
	}

	pthread_mutex_lock(&c->lock);
	/* one line when the outage starts, one when it ends: not one per attempt */
	if (c->failures == 0)
		log_warn("refresh failed: %s; serving data from %lld s ago", err,
			 (long long)(time(NULL) - c->last_success));
	else if (strcmp(c->last_error, err) != 0)
		log_debug("refresh still failing, now: %s", err);
	c->failures++;
	snprintf(c->last_error, sizeof(c->last_error), "%s", err);
	delay = cache_backoff_delay(c->ttl, c->failures, retry_after);
	c->next_attempt = mono_now() + delay;
	pthread_mutex_unlock(&c->lock);
}

/* Take the saved state over, if there is a good one: its key, allocator, snapshot. */
static void cache_restore(struct cache *c)
{
	struct state st;
	char err[192];
	int ret;

	ret = state_load(c->state, c->max_response, &c->ctx, &c->restored, &st, err, sizeof(err));
	if (ret == 1)
		return; /* nothing saved yet */
	if (ret < 0) {
		log_warn("ignoring the saved state %s/state: %s; starting afresh from the API",
			 state_dir_path(c->state), err);
		return;
	}
	/* before mounting: nobody has used the key yet */
	memcpy(c->hash_key, c->ctx.hash_key, sizeof(c->hash_key));
	c->body_hash = st.body_hash;
	c->body_hash_set = true;
	c->restored_at_ns = st.fetched_ns;
	c->restored_feed_gen = st.feed_gen;
	c->restored_feed_len = st.feed_len;
	log_debug("restored %zu tasks from %s/state", c->restored->ntasks,
		  state_dir_path(c->state));
}

/* The API cannot be reached at start: serve the saved answer, keep retrying. */
static int cache_start_offline(struct cache *c, const char *why, long retry_after, char *err,
			       size_t errlen)
{
	struct snapshot *s = c->restored;
	time_t at = (time_t)(c->restored_at_ns / 1000000000);
	char when[32];
	struct tm tm;

	c->restored = NULL;
	if (cache_publish(c, s, false) < 0) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if (!gmtime_r(&at, &tm) || !strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(when, sizeof(when), "?");
	pthread_mutex_lock(&c->lock);
	c->offline = true;
	c->failures = 1;
	c->last_success = at;
	snprintf(c->last_error, sizeof(c->last_error), "%s", why);
	c->next_attempt = mono_now() + cache_backoff_delay(c->ttl, 1, retry_after);
	pthread_mutex_unlock(&c->lock);
	log_warn("cannot reach the API at start (%s); serving the saved answer of %s (%lld s old) "
		 "from %s until it answers",
		 why, when, (long long)(time(NULL) - at), state_dir_path(c->state));
	log_snapshot_warnings(c, s);
	return 0;
}

int cache_first_fetch(struct cache *c, char *err, size_t errlen)
{
	struct snapshot *s;
	struct fetched got;
	char why[API_ERROR_MAX];
	long retry_after;
	int64_t now;
	int ret;

	if (c->state)
		cache_restore(c);
	if (!c->feed) {
		char ferr[160];

		/* cut back to what the state recorded: lines never recorded come again */
		if (feed_open(c->state ? state_dir_fd(c->state) : -1, c->events_max,
			      c->restored ? c->restored_feed_gen : 1,
			      c->restored ? c->restored_feed_len : 0, &c->feed, ferr,
			      sizeof(ferr)) < 0) {
			log_warn("%s; no change feed", ferr);
			snprintf(c->feed_error, sizeof(c->feed_error), "%s; no change feed", ferr);
		}
	}
	now = wall_ns();
	if (!c->restored) {
		/*
		 * Nothing known of earlier mounts: start the node ids (and so
		 * the inode numbers) where no earlier mount can have been,
		 * 2^24 a second since 1970, so that a restart without a state
		 * does not hand an old number to new content.
		 */
		uint64_t seed = (uint64_t)(now / 1000000000) << 24;

		if (seed > c->ctx.next_nodeid && seed < SNAP_LAST_FILE_NODEID / 2)
			c->ctx.next_nodeid = seed;
	}
	/*
	 * Versions an earlier mount showed may be unknown (no state, or it
	 * died before saving): stamp this mount's first new versions in the
	 * next second, so that none can share the whole-second mtime of a
	 * version shown before with the same path.
	 */
	if (c->ctx.newest_ns < now)
		c->ctx.newest_ns = now;
	ret = cache_fetch(c, &s, &got, &retry_after, why, sizeof(why));
	if (ret == -ECANCELED) {
		snprintf(err, errlen, "stopped by a signal during the first fetch");
		return ret;
	}
	if (ret < 0 && ret != -EACCES && c->restored && c->offline_start)
		return cache_start_offline(c, why, retry_after, err, errlen);
	if (ret < 0) {
		snprintf(err, errlen, "cannot load tasks from %s%s: %s", c->api_url, c->endpoint,
			 why);
		return ret;
	}
	if (s) {
		cache_restamp(c, s, &got, false);
		c->body_hash = got.hash;
		c->body_hash_set = true;
	} else {
		s = c->restored; /* the saved answer, confirmed */
		c->restored = NULL;
	}
	free(got.body);
	snapshot_put(c->restored);
	c->restored = NULL;
	if (cache_publish(c, s, true) < 0) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	log_snapshot_warnings(c, s);
	return 0;
}

/* ---- the refresher thread ---- */

static void drain_wake(struct cache *c)
{
	char buf[64];

	while (read(c->wake[0], buf, sizeof(buf)) > 0)
		;
}

static void *cache_thread(void *arg)
{
	struct cache *c = arg;

	while (!atomic_load(&c->stopping)) {
		struct pollfd pfd = { .fd = c->wake[0], .events = POLLIN };
		double wait;
		bool failing;
		int ms;

		pthread_mutex_lock(&c->lock);
		wait = c->next_attempt - mono_now();
		failing = c->failures > 0;
		pthread_mutex_unlock(&c->lock);
		if (wait > 0) {
			ms = (int)ceil(fmin(wait, 3600.0) * 1000);
			if (poll(&pfd, 1, ms) <= 0)
				continue; /* re-check the deadline: it may be later now */
			drain_wake(c);
			if (atomic_load(&c->stopping))
				break;
			if (failing) {
				/* SIGHUP does not override the backoff or Retry-After */
				log_debug("refresh requested; waiting for the retry time");
				continue;
			}
			log_debug("refresh requested");
		}
		cache_refresh(c);
	}
	if (c->notify.stopped)
		c->notify.stopped(c->notify.stop_arg);
	return NULL;
}

int cache_start(struct cache *c, const struct cache_notify *n)
{
	sigset_t all, old;
	int ret;

	c->notify = *n;
	/*
	 * Before the thread exists, so that it sees it (pthread_create orders
	 * the two): a first swap must already notify the kernel.
	 */
	c->started = true;
	/* signals belong to the FUSE loop's thread, not to the refresher */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	ret = pthread_create(&c->thread, NULL, cache_thread, c);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret) {
		c->started = false;
		return -ret;
	}
	return 0;
}

void cache_refresh_now(struct cache *c)
{
	int saved = errno;

	if (write(c->wake[1], "r", 1) < 0) {
		/* the pipe is full: a wake-up is already pending */
	}
	errno = saved;
}

void cache_request_stop(struct cache *c)
{
	atomic_store(&c->stopping, true);
	cache_refresh_now(c);
}

bool cache_stop_requested(struct cache *c)
{
	return atomic_load(&c->stopping);
}

void cache_stop(struct cache *c)
{
	if (!c->started)
		return;
	cache_request_stop(c);
	pthread_join(c->thread, NULL);
	c->started = false;
}
