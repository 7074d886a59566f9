/* SPDX-License-Identifier: MIT */
#ifndef INGESTFS_CACHE_H
#define INGESTFS_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"
#include "creds.h"
#include "nodes.h"
#include "snapshot.h"

/*
 * The cache owns the network side: the API client, the current snapshot,
 * the refresher thread and the health shown in .status.  One mutex guards
 * the current snapshot pointer, the node table and the health fields;
 * fetching and parsing happen outside it.
 */
struct cache;

struct cache_notify {
	/* called from the refresher thread, no lock held, after a swap */
	void (*entry)(void *arg, uint64_t parent, const char *name, size_t len);
	void (*inode)(void *arg, uint64_t nodeid);
	void *arg;
	/* called from the refresher thread once it has stopped for a stop request */
	void (*stopped)(void *stop_arg);
	void *stop_arg;
};

struct state_dir;

/*
 * cache_new - a cache for @cfg's API, signed with @creds (copied; the
 * caller may wipe its own), keeping its state in @state (taken over;
 * NULL: no state folder).  NULL on ENOMEM.
 */
struct cache *cache_new(const struct config *cfg, const struct creds *creds,
			struct state_dir *state);
/* cache_free - after cache_stop(); drops every snapshot and blob */
void cache_free(struct cache *c);

/*
 * cache_first_fetch - the synchronous start-up load: restore the saved
 * state, if any, then fetch.  When the fetch fails for another reason
 * than the credentials and a saved answer exists (and offline_start is
 * on), serve that and keep retrying.  0 or -errno + @err.
 */
int cache_first_fetch(struct cache *c, char *err, size_t errlen);

/*
 * cache_start - start the refresher thread (after any fork); @n tells the
 * kernel what changed.  cache_stop aborts a request in flight and joins.
 */
int cache_start(struct cache *c, const struct cache_notify *n);
void cache_stop(struct cache *c);

/*
 * cache_publish_body - parse @body as an API answer that arrived at wall
 * clock @now_ns and swap it in as if a refresh had fetched it.  For tests that exercise the cache
 * without a network: only before cache_start(), from one thread (the swap assumes a single
 * publisher).  0, -EBUSY once started, or -errno + @err.
 */
int cache_publish_body(struct cache *c, char *body, size_t len, int64_t now_ns, char *err,
		       size_t errlen);

/*
 * cache_refresh_now - ask for a refresh now; async-signal-safe.  While
 * refreshes are failing it waits for the backoff and any Retry-After.
 */
void cache_refresh_now(struct cache *c);

/*
 * cache_request_stop - async-signal-safe: cancel a request in flight, send
 * no more notifications, and let the refresher end and call n->stopped.
 * The FUSE loop must keep serving until then, since a notification may
 * wait for a reply to a request in flight.
 */
void cache_request_stop(struct cache *c);
/* cache_stop_requested - true once cache_request_stop() was called */
bool cache_stop_requested(struct cache *c);

/* cache_acquire - the current snapshot with a reference; snapshot_put it */
struct snapshot *cache_acquire(struct cache *c);
/* cache_hash_key - the per-mount key that snapshot_find() needs */
const uint64_t *cache_hash_key(const struct cache *c);

/* Lock-held helpers for FUSE handlers that hand node ids to the kernel. */
void cache_lock(struct cache *c);
void cache_unlock(struct cache *c);
struct snapshot *cache_current_locked(struct cache *c); /* borrowed */
int cache_ref_locked(struct cache *c, uint64_t nodeid, uint64_t n);

/* cache_blob_get - the retained content of an old node id, referenced; or NULL */
struct blob *cache_blob_get(struct cache *c, uint64_t nodeid);
/*
 * The change feed (.events, .events.1): the node id of the current (or,
 * @previous, the one before; 0 if none) generation; a generation's size
 * and last change (-ENOENT, -ESTALE); and a read of it.
 */
uint64_t cache_feed_nodeid(struct cache *c, bool previous);
int cache_feed_stat(struct cache *c, uint64_t nodeid, uint64_t *len, int64_t *mtime_ns);
ssize_t cache_feed_read(struct cache *c, uint64_t nodeid, char *buf, size_t size, uint64_t off);
/* around cache_feed_read() and its reply: the feed does not grow in between (feed_hold) */
void cache_feed_hold(struct cache *c);
void cache_feed_release(struct cache *c);

/* cache_forget - the kernel dropped @n lookups of @nodeid */
void cache_forget(struct cache *c, uint64_t nodeid, uint64_t n);

/*
 * cache_status_blob - render .status now as a fresh node id (returned in
 * *@nodeid, lookup counted once); the blob is returned referenced.
 */
struct blob *cache_status_blob(struct cache *c, uint64_t *nodeid);

#endif
