// SPDX-License-Identifier: MIT
/* Current snapshot, refresher thread, retry policy and .status. */
#include "cache_priv.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "http.h"
#include "log.h"

#define CACHE_MAX_BACKOFF     300.0  /* s: retries never wait longer... */
#define CACHE_MAX_RETRY_AFTER 3600.0 /* s: ...unless the server asks, up to this */

struct cache *cache_new(const struct config *cfg, const struct creds *creds)
{
	struct cache *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->wake[0] = c->wake[1] = -1;
	pthread_mutex_init(&c->lock, NULL);
	atomic_init(&c->stopping, false);
	c->ttl = cfg->ttl;
	c->api_url = strdup(cfg->api_url);
	c->endpoint = strdup(cfg->endpoint);
	c->nodes = nodes_new();
	c->http = http_client_new("ingestfs/" INGESTFS_VERSION, (long)ceil(cfg->timeout * 1000),
				  cfg->max_response, &c->stopping);
	if (!c->api_url || !c->endpoint || !c->nodes || !c->http)
		goto out_free;
	c->api = api_new(cfg->api_url, cfg->endpoint, creds->user_id, creds->api_key, c->http);
	if (!c->api)
		goto out_free;
	if (pipe2(c->wake, O_CLOEXEC | O_NONBLOCK) < 0)
		goto out_free;
	if (getrandom(c->hash_key, sizeof(c->hash_key), 0) != sizeof(c->hash_key)) {
		/* not fatal: the key only guards against crafted collisions */
		c->hash_key[0] = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
		c->hash_key[1] = (uint64_t)(uintptr_t)c;
	}
	memcpy(c->ctx.hash_key, c->hash_key, sizeof(c->hash_key));
	c->ctx.next_nodeid = SNAP_FIRST_FILE_NODEID;
	c->warned_total = -1;
	return c;

out_free:
	cache_free(c);
	return NULL;
}

void cache_free(struct cache *c)
{
	if (!c)
		return;
	snapshot_put(c->current);
	snap_ctx_release(&c->ctx);
	nodes_free(c->nodes);
	api_free(c->api);
	http_client_free(c->http);
	if (c->wake[0] >= 0) {
		close(c->wake[0]);
		close(c->wake[1]);
	}
	pthread_mutex_destroy(&c->lock);
	free(c->api_url);
	free(c->endpoint);
	free(c);
}

void cache_lock(struct cache *c)
{
	pthread_mutex_lock(&c->lock);
}

void cache_unlock(struct cache *c)
{
	pthread_mutex_unlock(&c->lock);
}

struct snapshot *cache_current_locked(struct cache *c)
{
	return c->current;
}

int cache_ref_locked(struct cache *c, uint64_t nodeid, uint64_t n)
{
	return nodes_ref(c->nodes, nodeid, n);
}

struct snapshot *cache_acquire(struct cache *c)
{
	struct snapshot *s;

	pthread_mutex_lock(&c->lock);
	s = snapshot_get(c->current);
	pthread_mutex_unlock(&c->lock);
	return s;
}

const uint64_t *cache_hash_key(const struct cache *c)
{
	return c->hash_key;
}

struct blob *cache_blob_get(struct cache *c, uint64_t nodeid)
{
	struct blob *b;

	pthread_mutex_lock(&c->lock);
	b = nodes_blob(c->nodes, nodeid);
	if (b)
		blob_get(b);
	pthread_mutex_unlock(&c->lock);
	return b;
}

void cache_forget(struct cache *c, uint64_t nodeid, uint64_t n)
{
	struct blob *b;

	pthread_mutex_lock(&c->lock);
	b = nodes_forget(c->nodes, nodeid, n);
	pthread_mutex_unlock(&c->lock);
	blob_put(b);
}

/* ---- publishing a snapshot ---- */

struct gone_list {
	const struct snap_node **v;
	size_t n, cap;
	bool oom;
};

static void gone_add(void *arg, const struct snapshot *old, const struct snap_node *node)
{
	struct gone_list *g = arg;

	if (g->n == g->cap) {
		size_t cap = g->cap ? g->cap * 2 : 256;
		const struct snap_node **v = realloc(g->v, cap * sizeof(*v));

		if (!v) {
			g->oom = true;
			return;
		}
		g->v = v;
		g->cap = cap;
	}
	g->v[g->n++] = node;
}

/*
 * Swap @next in.  Node ids of @old that the kernel still holds keep their
 * bytes as blobs, so an open file never changes under its reader.
 */
/* The folders a swap invalidated, to say it again a moment later. */
struct inval_echo {
	const struct cache_notify *n;
	uint64_t *v;
	size_t len, cap;
};

static void echo_entry(void *arg, uint64_t parent, const char *name, size_t len)
{
	struct inval_echo *e = arg;

	e->n->entry(e->n->arg, parent, name, len);
}

static void echo_inode(void *arg, uint64_t nodeid)
{
	struct inval_echo *e = arg;

	e->n->inode(e->n->arg, nodeid);
	if (e->len == e->cap) {
		size_t cap = e->cap ? e->cap * 2 : 64;
		uint64_t *v = realloc(e->v, cap * sizeof(*v));

		if (!v)
			return;
		e->v = v;
		e->cap = cap;
	}
	e->v[e->len++] = nodeid;
}

/*
 * Tell the kernel what changed from @old to @next.  Folder invalidation
 * does not wait for a READDIR in flight, which may still carry the old
 * listing into the kernel's cache; saying it again 20 ms later closes that
 * window.  Names need no echo: their invalidation waits for lookups.
 */
static void cache_notify_changes(struct cache *c, const struct snapshot *old,
				 const struct snapshot *next)
{
	struct inval_echo e = { .n = &c->notify };
	struct snap_diff_ops ops = { echo_entry, echo_inode };
	size_t changes = snapshot_diff(old, next, c->hash_key, &ops, &e);

	if (e.len && !atomic_load(&c->stopping)) {
		struct timespec pause = { 0, 20 * 1000 * 1000 };

		nanosleep(&pause, NULL);
		for (size_t i = 0; i < e.len && !atomic_load(&c->stopping); i++)
			c->notify.inode(c->notify.arg, e.v[i]);
	}
	free(e.v);
	pthread_mutex_lock(&c->lock);
	c->last_changes = changes;
	pthread_mutex_unlock(&c->lock);
}

/* A refresh succeeded: health and generation, under the lock. */
static void mark_success_locked(struct cache *c)
{
	c->generation++;
	c->recovered_from = c->failures;
	c->failures = 0;
	c->last_error[0] = '\0';
	c->last_success = time(NULL);
	c->next_attempt = mono_now() + c->ttl;
}

static void log_recovery(struct cache *c, const struct snapshot *s)
{
	/* recovered_from is only written by the refresher: no lock to read it */
	if (c->recovered_from)
		log_info("refresh recovered after %u failed attempt(s); %zu tasks",
			 c->recovered_from, s->ntasks);
}

/*
 * Swap @next in (taking its reference).  Node ids of the old snapshot
 * that the kernel still holds keep their bytes as blobs, so an open file
 * never changes under its reader; if that cannot be done (no memory) the
 * swap is refused and -ENOMEM returned, keeping the old snapshot.
 */
static int cache_publish(struct cache *c, struct snapshot *next)
{
	struct gone_list gone = { 0 };
	struct snapshot *old;
	int ret = 0;

	pthread_mutex_lock(&c->lock);
	old = c->current;
	pthread_mutex_unlock(&c->lock);
	/* only the refresher swaps, so @old stays current until we do */
	if (old)
		snapshot_for_each_gone(old, next, gone_add, &gone);

	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < gone.n && !gone.oom; i++) {
		const struct snap_node *nd = gone.v[i];
		const struct snap_task *t = &old->tasks[nd->task];
		const struct snap_file *f = &t->file[nd->kind];
		struct blob *b;

		if (!nodes_count(c->nodes, nd->nodeid) || nodes_blob(c->nodes, nd->nodeid))
			continue;
		b = blob_new(snap_file_ino(t->key, (enum snap_kind)nd->kind), f->mtime,
			     snap_file_data(old, f), f->len);
		if (!b)
			gone.oom = true;
		else
			nodes_set_blob(c->nodes, nd->nodeid, b);
	}
	if (gone.oom) {
		/* blobs already made for still-current node ids do no harm */
		pthread_mutex_unlock(&c->lock);
		free(gone.v);
		snapshot_put(next);
		return -ENOMEM;
	}
	c->current = next;
	/* health changes with the data, so .status never lags what readers see */
	mark_success_locked(c);
	next->generation = c->generation;
	pthread_mutex_unlock(&c->lock);
	free(gone.v);
	log_recovery(c, next);

	if (old && c->started && c->notify.entry && !atomic_load(&c->stopping))
		cache_notify_changes(c, old, next);
	snapshot_put(old);
#ifdef __GLIBC__
	/* parsing left many small blocks free; give the pages back */
	malloc_trim(0);
#endif
	return ret;
}

int cache_publish_body(struct cache *c, char *body, size_t len, char *err, size_t errlen)
{
	struct snapshot *prev, *next;
	int ret;

	if (c->started)
		return -EBUSY;
	pthread_mutex_lock(&c->lock);
	prev = c->current ? snapshot_get(c->current) : NULL;
	pthread_mutex_unlock(&c->lock);
	c->ctx.now = time(NULL);
	ret = snapshot_parse(body, len, prev, &c->ctx, &next, err, errlen);
	snapshot_put(prev);
	if (ret == 0 && (ret = cache_publish(c, next)) < 0)
		snprintf(err, errlen, "out of memory");
	c->body_hash_set = false;
	return ret;
}

/* ---- one refresh ---- */

static double backoff_delay(double ttl, unsigned int failures, long retry_after)
{
	double d = ttl;

	if (failures > 0) {
		d = ttl * pow(2.0, (double)(failures - 1));
		if (d > CACHE_MAX_BACKOFF)
			d = CACHE_MAX_BACKOFF;
		if (d < ttl)
			d = ttl;
	}
	if (retry_after > 0 && (double)retry_after > d)
		d = fmin((double)retry_after, CACHE_MAX_RETRY_AFTER);
	return d;
}

/* Fetch and parse; 0 with a new snapshot in *@out, else -errno + @err. */
/*
 * Fetch and parse.  0 with a new snapshot in *@out, or 0 with *@out NULL
 * when the answer is byte for byte the one behind the current snapshot
 * (parsing it again would build the same snapshot); else -errno + @err.
 */
static int cache_fetch(struct cache *c, struct snapshot **out, time_t stamp, long *retry_after,
		       char *err, size_t errlen)
{
	struct api_result res;
	struct snapshot *prev;
	char perr[160];
	time_t now = time(NULL);
	uint64_t hash;
	int ret;

	pthread_mutex_lock(&c->lock);
	c->requests++;
	c->last_attempt = now;
	prev = c->current ? snapshot_get(c->current) : NULL;
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
	c->ctx.now = stamp ? stamp : now;
	ret = snapshot_parse(res.resp.body, res.resp.len, prev, &c->ctx, out, perr, sizeof(perr));
	if (ret < 0) {
		snprintf(err, errlen, "unusable answer: %s", perr);
		goto out;
	}
	/* taken as the current answer's once the swap succeeds */
	c->pending_hash = hash;
out:
	api_result_free(&res);
	snapshot_put(prev);
	return ret;
}

bool cache_total_mismatch(const struct snapshot *s)
{
	return s->stats.total_items >= 0 && (size_t)s->stats.total_items != s->stats.items;
}

/* Log odd answers once per change, not on every refresh. */
static void log_snapshot_warnings(struct cache *c, const struct snapshot *s)
{
	const struct snap_stats *st = &s->stats;

	if (st->skipped && st->skipped != c->warned_skipped)
		log_warn("skipped %zu item(s) without a usable id, e.g. %s", st->skipped,
			 st->examples);
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
	char err[192];
	long retry_after;
	double t0 = mono_now(), delay;
	int ret;

	ret = cache_fetch(c, &next, 0, &retry_after, err, sizeof(err));
	if (ret == -ECANCELED)
		return;
	if (ret == 0 && !next) {
		/* the same answer again: the current snapshot stands, confirmed */
		pthread_mutex_lock(&c->lock);
		mark_success_locked(c);
		log_debug(
			"refresh: %zu tasks, generation %llu, 0 changes, %.0f ms, answer unchanged",
			c->current->ntasks, (unsigned long long)c->generation,
			(mono_now() - t0) * 1e3);
		pthread_mutex_unlock(&c->lock);
		log_recovery(c, c->current);
		return;
	}
	if (ret == 0 && cache_publish(c, next) < 0) {
		ret = -ENOMEM;
		snprintf(err, sizeof(err), "out of memory keeping replaced files; not swapped");
	}
	if (ret == 0) {
		c->body_hash = c->pending_hash;
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
	delay = backoff_delay(c->ttl, c->failures, retry_after);
	c->next_attempt = mono_now() + delay;
	pthread_mutex_unlock(&c->lock);
}

int cache_first_fetch(struct cache *c, char *err, size_t errlen)
{
	struct timespec now;
	struct snapshot *s;
	char why[192];
	long retry_after;
	time_t stamp;
	int ret;

	/*
	 * The first snapshot's files are stamped with the next whole second,
	 * and we wait for it: a previous mount served only stamps up to the
	 * second it started in, so a remount can never show changed content
	 * with an old file's size and mtime (rsync compares whole seconds).
	 */
	clock_gettime(CLOCK_REALTIME, &now);
	stamp = now.tv_sec + 1;
	ret = cache_fetch(c, &s, stamp, &retry_after, why, sizeof(why));
	if (ret < 0) {
		snprintf(err, errlen, "cannot load tasks from %s%s: %s", c->api_url, c->endpoint,
			 why);
		return ret;
	}
	/* bounded by the monotonic clock, in case the wall clock steps back */
	for (double limit = mono_now() + 1.1; mono_now() < limit;) {
		struct timespec wait;

		clock_gettime(CLOCK_REALTIME, &now);
		if (now.tv_sec >= stamp)
			break;
		wait.tv_sec = 0;
		wait.tv_nsec = 1000000000L - now.tv_nsec;
		nanosleep(&wait, NULL);
	}
	if (cache_publish(c, s) < 0) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	c->body_hash = c->pending_hash;
	c->body_hash_set = true;
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
	/* signals belong to the FUSE loop's thread, not to the refresher */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	ret = pthread_create(&c->thread, NULL, cache_thread, c);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret)
		return -ret;
	c->started = true;
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

void cache_stop(struct cache *c)
{
	if (!c->started)
		return;
	cache_request_stop(c);
	pthread_join(c->thread, NULL);
	c->started = false;
}
