// SPDX-License-Identifier: MIT
/* The current snapshot: lifecycle, lookup counts, and publishing a new one. */
#include "cache_priv.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "diff.h"
#include "http.h"
#include "log.h"

struct cache *cache_new(const struct config *cfg, const struct creds *creds,
			struct state_dir *state)
{
	struct cache *c = calloc(1, sizeof(*c));

	if (!c) {
		state_dir_close(state);
		return NULL;
	}
	c->state = state;
	c->offline_start = cfg->offline_start;
	c->max_response = cfg->max_response;
	c->events_max = cfg->events_max;
	c->wake[0] = c->wake[1] = -1;
	pthread_mutex_init(&c->lock, NULL);
	atomic_init(&c->stopping, false);
	c->ttl = cfg->ttl;
	if (strncmp(cfg->api_url, "https://", 8) == 0)
		c->transport = "https";
	else
		c->transport = cfg->insecure_http && !config_url_is_loopback(cfg->api_url)
				       ? "http (insecure_http: not encrypted, not authenticated)"
				       : "http (loopback)";
	c->api_url = strdup(cfg->api_url);
	c->endpoint = strdup(cfg->endpoint);
	c->nodes = nodes_new();
	c->http = http_client_new("ingestfs/" INGESTFS_VERSION, (long)ceil(cfg->timeout * 1000),
				  cfg->max_response, &c->stopping);
	if (!c->api_url || !c->endpoint || !c->nodes || !c->http)
		goto out_free;
	c->api = api_new(cfg->api_url, cfg->endpoint, creds, c->http);
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
	snapshot_put(c->restored);
	feed_close(c->feed);
	state_dir_close(c->state);
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
	if (b && snap_is_status_nodeid(nodeid))
		c->status_blobs--;
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
 * What a swap must tell the kernel, worked out by cache_retire before the
 * snapshot is stamped: the names are told then, the folders right after
 * the swap (cache_publish).  Names point into the old or new snapshot,
 * both alive until the swap is done.
 */
struct inval_list {
	struct inval_name {
		uint64_t parent;
		const char *name;
		size_t len;
	} * names;
	size_t nnames, capnames;
	uint64_t *folders;
	size_t nfolders, capfolders;
	size_t changes;
	bool oom;
};

static bool list_room(void **v, size_t *cap, size_t n, size_t size)
{
	void *p;
	size_t c;

	if (n < *cap)
		return true;
	c = *cap ? *cap * 2 : 64;
	p = realloc(*v, c * size);
	if (!p)
		return false;
	*v = p;
	*cap = c;
	return true;
}

static void list_entry(void *arg, uint64_t parent, const char *name, size_t len)
{
	struct inval_list *l = arg;

	if (!list_room((void **)&l->names, &l->capnames, l->nnames, sizeof(*l->names))) {
		l->oom = true;
		return;
	}
	l->names[l->nnames++] = (struct inval_name){ parent, name, len };
}

static void list_inode(void *arg, uint64_t nodeid)
{
	struct inval_list *l = arg;

	if (!list_room((void **)&l->folders, &l->capfolders, l->nfolders, sizeof(*l->folders))) {
		l->oom = true;
		return;
	}
	l->folders[l->nfolders++] = nodeid;
}

/* without memory for a list, a second diff tells names, or folders, as it goes */
static void direct_entry(void *arg, uint64_t parent, const char *name, size_t len)
{
	const struct cache_notify *n = arg;

	n->entry(n->arg, parent, name, len);
}

static void direct_inode(void *arg, uint64_t nodeid)
{
	const struct cache_notify *n = arg;

	n->inode(n->arg, nodeid);
}

static void skip_entry(void *arg, uint64_t parent, const char *name, size_t len)
{
	(void)arg;
	(void)parent;
	(void)name;
	(void)len;
}

static void skip_inode(void *arg, uint64_t nodeid)
{
	(void)arg;
	(void)nodeid;
}

static void inval_list_free(struct inval_list *l)
{
	if (!l)
		return;
	free(l->names);
	free(l->folders);
	free(l);
}

/*
 * Names first, before the stamps are set.  A name the kernel holds is
 * used without asking us for up to a day; if it still led to the old
 * version after the swap, a tar run starting then would read the old
 * version, note its start time, and never take the new one, stamped
 * before that start.  So: mark the current snapshot retiring (lookups
 * and READDIRPLUS from it answer with entry timeout 0, fs_entry_timeout),
 * then invalidate each changed name.  The kernel's invalidation waits
 * for lookups in flight under the same folder, so a name handed out
 * before the mark is gone when it returns, and one handed out after it
 * is asked for again at each use.  Hence every path to a changed file
 * is resolved by us from here on, and we give the new version from the
 * swap on, stamped at most a moment before it (cache_publish).
 */
void cache_retire(struct cache *c, struct snapshot *next)
{
	struct snap_diff_ops list = { list_entry, list_inode };
	struct snapshot *old;
	struct inval_list *l;

	pthread_mutex_lock(&c->lock);
	old = c->current;
	pthread_mutex_unlock(&c->lock);
	/* only the refresher swaps, so @old stays current until we do */
	if (!old || !c->started || !c->notify.entry || atomic_load(&c->stopping))
		return;
	l = calloc(1, sizeof(*l));
	atomic_store(&old->retiring, true);
	if (l)
		l->changes = diff_snapshots(old, next, c->hash_key, &list, l);
	if (!l || l->oom) {
		struct snap_diff_ops names = { direct_entry, skip_inode };

		inval_list_free(l);
		l = NULL;
		diff_snapshots(old, next, c->hash_key, &names, &c->notify);
	} else {
		for (size_t i = 0; i < l->nnames && !atomic_load(&c->stopping); i++)
			c->notify.entry(c->notify.arg, l->names[i].parent, l->names[i].name,
					l->names[i].len);
	}
	c->told = l; /* NULL without memory: cache_publish diffs for the folders */
	c->retired = true;
}

/*
 * After the swap: the folders whose listing or attributes changed.
 * Folder invalidation does not wait for a READDIR in flight, which may
 * still carry the old listing into the kernel's cache; saying it again
 * 20 ms later closes that window.
 */
static void cache_send_folders(struct cache *c, const struct snapshot *old,
			       const struct snapshot *next, struct inval_list *l)
{
	size_t changes;

	if (!l) {
		struct snap_diff_ops folders = { skip_entry, direct_inode };

		changes = diff_snapshots(old, next, c->hash_key, &folders, &c->notify);
	} else {
		changes = l->changes;
		for (size_t i = 0; i < l->nfolders; i++)
			c->notify.inode(c->notify.arg, l->folders[i]);
		if (l->nfolders && !atomic_load(&c->stopping)) {
			struct timespec pause = { 0, 20 * 1000 * 1000 };

			nanosleep(&pause, NULL);
			for (size_t i = 0; i < l->nfolders && !atomic_load(&c->stopping); i++)
				c->notify.inode(c->notify.arg, l->folders[i]);
		}
	}
	pthread_mutex_lock(&c->lock);
	c->last_changes = changes;
	pthread_mutex_unlock(&c->lock);
}

/*
 * The feed grew: its size and pages in the kernel are stale (.events is
 * not answered through a cached name, see fs_lookup.c, but an open one
 * is read through the page cache).  A new generation is a new name too.
 */
static void cache_feed_notify(struct cache *c, bool rotated)
{
	uint64_t gen, len, prev;

	feed_visible(c->feed, &gen, &len, &prev);
	c->notify.inode(c->notify.arg, SNAP_EVENTS_NODEID_BASE + gen);
	if (rotated) {
		c->notify.inode(c->notify.arg, SNAP_EVENTS_NODEID_BASE + gen - 1);
		c->notify.entry(c->notify.arg, SNAP_ROOT_NODEID, ".events", 7);
		c->notify.entry(c->notify.arg, SNAP_ROOT_NODEID, ".events.1", 9);
	}
}

int cache_feed_stat(struct cache *c, uint64_t nodeid, uint64_t *len, int64_t *mtime_ns)
{
	uint64_t gen, cur, prev;

	if (!c->feed || !snap_is_events_nodeid(nodeid))
		return -ENOENT;
	feed_visible(c->feed, &gen, &cur, &prev);
	pthread_mutex_lock(&c->lock);
	*mtime_ns = c->feed_mtime_ns;
	pthread_mutex_unlock(&c->lock);
	if (nodeid == SNAP_EVENTS_NODEID_BASE + gen)
		*len = cur;
	else if (gen > 1 && nodeid == SNAP_EVENTS_NODEID_BASE + gen - 1)
		*len = prev;
	else
		return -ESTALE;
	return 0;
}

uint64_t cache_feed_nodeid(struct cache *c, bool previous)
{
	uint64_t gen, cur, prev;

	if (!c->feed)
		return 0;
	feed_visible(c->feed, &gen, &cur, &prev);
	if (previous)
		return gen > 1 ? SNAP_EVENTS_NODEID_BASE + gen - 1 : 0;
	return SNAP_EVENTS_NODEID_BASE + gen;
}

void cache_feed_hold(struct cache *c)
{
	if (c->feed)
		feed_hold(c->feed);
}

void cache_feed_release(struct cache *c)
{
	if (c->feed)
		feed_release(c->feed);
}

ssize_t cache_feed_read(struct cache *c, uint64_t nodeid, char *buf, size_t size, uint64_t off)
{
	if (!c->feed || !snap_is_events_nodeid(nodeid))
		return -ENOENT;
	return feed_read(c->feed, nodeid - SNAP_EVENTS_NODEID_BASE, buf, size, off);
}

/* A refresh succeeded: health and counters, under the lock. */
void cache_mark_success_locked(struct cache *c, bool swapped)
{
	if (swapped)
		c->generation++;
	c->refreshes++;
	c->recovered_from = c->failures;
	c->failures = 0;
	c->offline = false;
	c->last_error[0] = '\0';
	c->last_success = time(NULL);
	c->next_attempt = mono_now() + c->ttl;
}

void cache_log_recovery(struct cache *c, const struct snapshot *s)
{
	/* recovered_from is only written by the refresher: no lock to read it */
	if (c->recovered_from)
		log_info("refresh recovered after %u failed attempt(s); %zu tasks",
			 c->recovered_from, s->ntasks);
}

/*
 * A new snapshot's stamps may lie ahead of the clock: in the next second
 * when the last change was stamped in this one (snapshot.c, next_stamp),
 * and by the time its save is expected to take (refresh.c, restamp).  Hold the snapshot back
 * until the clock passes them, so that no reader sees a file from the
 * future.  A clock stepped back by more than that is not waited for.
 */
static void wait_for_clock(struct cache *c, int64_t newest_ns)
{
	int64_t ahead;

	while ((ahead = newest_ns - wall_ns()) >= 0 && ahead < CACHE_MAX_HOLD_NS &&
	       !atomic_load(&c->stopping)) {
		struct timespec pause = { 0, ahead > 50000000 ? 50000000 : ahead + 1 };

		nanosleep(&pause, NULL);
	}
}

/*
 * Swap @next in (taking its reference).  Node ids of the old snapshot
 * that the kernel still holds keep their bytes as blobs, so an open file
 * never changes under its reader; if that cannot be done (no memory) the
 * swap is refused and -ENOMEM returned, keeping the old snapshot.
 */
int cache_publish(struct cache *c, struct snapshot *next, bool from_api)
{
	struct gone_list gone = { 0 };
	struct inval_list *told = c->told;
	struct snapshot *old;
	int feed_grew;
	bool tell = c->retired;

	pthread_mutex_lock(&c->lock);
	old = c->current;
	pthread_mutex_unlock(&c->lock);
	/* only the refresher swaps, so @old stays current until we do */
	if (old)
		diff_for_each_gone(old, next, gone_add, &gone);
	c->told = NULL;
	c->retired = false;
	c->stamps_moved = false;
	wait_for_clock(c, c->ctx.newest_ns);

	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < gone.n && !gone.oom; i++) {
		const struct snap_node *nd = gone.v[i];
		const struct snap_task *t = &old->tasks[nd->task];
		const struct snap_file *f = &t->file[nd->kind];
		const char *data;
		char *to_free;
		struct blob *b;

		if (!nodes_count(c->nodes, nd->nodeid) || nodes_blob(c->nodes, nd->nodeid))
			continue;
		data = snap_file_read(old, t, (enum snap_kind)nd->kind, &to_free);
		b = data ? blob_new(f->nodeid, f->mtime_ns, data, f->len) : NULL;
		free(to_free);
		if (!b || nodes_set_blob(c->nodes, nd->nodeid, b) < 0) {
			blob_put(b);
			gone.oom = true;
		}
	}
	if (gone.oom) {
		/* blobs already made for still-current node ids do no harm */
		pthread_mutex_unlock(&c->lock);
		free(gone.v);
		inval_list_free(told);
		snapshot_put(next);
		/* still current: its names may be cached again */
		if (old)
			atomic_store(&old->retiring, false);
		if (c->feed)
			feed_abandon(c->feed);
		return -ENOMEM;
	}
	/*
	 * The save, the work above or a busy CPU kept us past the stamps by
	 * more than a moment: move them to now, under the lock that readers
	 * take, so that no version shows with an mtime before the moment it
	 * is shown (the caller then saves again).
	 */
	if (from_api && c->started && c->ctx.stamped) {
		int64_t now = wall_ns();

		if (now > c->ctx.first_ns + 1000 * 1000) {
			snapshot_restamp(next, &c->ctx, now);
			c->stamps_moved = true;
		}
	}
	c->current = next;
	/* the feed's lines for this change show with it */
	feed_grew = c->feed ? feed_commit(c->feed) : 0;
	if (feed_grew)
		c->feed_mtime_ns = wall_ns();
	/* health changes with the data, so .status never lags what readers see */
	if (from_api) {
		cache_mark_success_locked(c, true);
	} else {
		c->generation++;
	}
	pthread_mutex_unlock(&c->lock);
	free(gone.v);
	if (from_api)
		cache_log_recovery(c, next);

	if (tell && !atomic_load(&c->stopping))
		cache_send_folders(c, old, next, told);
	if (feed_grew && c->started && c->notify.entry && !atomic_load(&c->stopping))
		cache_feed_notify(c, feed_grew == 2);
	inval_list_free(told);
	snapshot_put(old);
#ifdef __GLIBC__
	/* parsing left many small blocks free; give the pages back */
	malloc_trim(0);
#endif
	return 0;
}

int cache_publish_body(struct cache *c, char *body, size_t len, int64_t now_ns, char *err,
		       size_t errlen)
{
	struct snapshot *prev, *next;
	int ret;

	if (c->started)
		return -EBUSY;
	pthread_mutex_lock(&c->lock);
	prev = c->current ? snapshot_get(c->current) : NULL;
	pthread_mutex_unlock(&c->lock);
	c->ctx.now_ns = now_ns;
	ret = snapshot_parse(body, len, prev, &c->ctx, &next, err, errlen);
	snapshot_put(prev);
	if (ret == 0 && (ret = cache_publish(c, next, true)) < 0)
		snprintf(err, errlen, "out of memory");
	c->body_hash_set = false;
	return ret;
}
