/* SPDX-License-Identifier: MIT */
#ifndef INGESTFS_CACHE_PRIV_H
#define INGESTFS_CACHE_PRIV_H

/*
 * Internals of the cache, shared by cache.c (the current snapshot, lookup
 * counts, swap and publish), refresh.c (fetch, retry policy, the refresher
 * thread) and status.c (.status); nothing else includes this.  Who may
 * touch a field of struct cache is said where it is declared: fields set
 * at creation are read-only afterwards; the refresher's fields belong to
 * whichever thread publishes (cache_first_fetch and cache_publish_body
 * before cache_start, the refresher thread after); the rest are under
 * c->lock, which is never held across a fetch, a parse or a kernel
 * notification.  c->current holds one reference, dropped by the next swap
 * or by cache_free(); retained blobs belong to c->nodes.
 */

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "api.h"
#include "cache.h"
#include "feed.h"
#include "state.h"

struct api;
struct http_client;
struct inval_list;
struct state_dir;

/* an answer as it arrived, kept until it is saved */
struct fetched {
	char *body;
	size_t len;
	uint64_t hash;
	int64_t at_ns; /* wall clock when it arrived */
};

struct cache {
	/*
	 * Set at creation, then read-only; hash_key may still be replaced by
	 * the saved one in cache_first_fetch, before anything is mounted.
	 */
	char *api_url;
	char *endpoint;
	double ttl;	       /* s */
	const char *transport; /* static: how the API is reached, for .status */
	uint64_t hash_key[2];
	struct http_client *http;
	struct api *api;
	struct state_dir *state; /* NULL with state_dir=none */
	size_t events_max;
	bool offline_start;
	size_t max_response;
	atomic_bool stopping;
	int wake[2]; /* pipe: a byte asks the refresher to look at its flags */
	/*
	 * Written by cache_start() before the thread is created and by
	 * cache_stop() after it was joined; read-only while it runs.
	 */
	pthread_t thread;
	bool started;
	struct cache_notify notify;

	/* refresher thread only */
	struct snap_ctx ctx;
	struct snapshot *restored; /* the saved snapshot, until the first fetch is done */
	int64_t restored_at_ns;	   /* when its answer arrived */
	uint64_t restored_feed_gen, restored_feed_len; /* the feed as the state knew it */
	bool stamps_moved;	 /* cache_publish moved the stamps: save again */
	bool retired;		 /* cache_retire told the kernel; cache_publish goes on */
	struct inval_list *told; /* its list (NULL without memory) */
	/* opened by cache_first_fetch; appended by the refresher; read by anyone */
	struct feed *feed;
	int64_t feed_mtime_ns; /* under lock: when the feed last grew */
	/* under lock, for .status: lines written since start, the last batch, the last failure */
	uint64_t feed_lines;
	size_t feed_last_lines;
	double feed_last_cpu_ms, feed_last_wall_ms;
	char feed_error[192]; /* "" = none */
	uint64_t body_hash;   /* of the answer behind the current snapshot */
	bool body_hash_set;
	size_t warned_skipped; /* what the last warnings said */
	size_t warned_duplicates;
	int64_t warned_total; /* -1: no mismatch warned */

	pthread_mutex_t lock;
	/* under lock */
	struct snapshot *current;
	struct nodes *nodes;
	uint64_t generation;		/* snapshots swapped in */
	uint64_t refreshes;		/* successful refreshes, changed or not */
	size_t status_blobs;		/* .status versions the kernel still holds */
	uint64_t requests;		/* API requests sent */
	uint64_t status_seq;		/* .status versions rendered */
	time_t last_success;		/* wall s, 0 = never */
	time_t last_attempt;		/* wall s */
	double next_attempt;		/* monotonic s */
	unsigned int failures;		/* consecutive */
	unsigned int recovered_from;	/* failures before the last swap */
	char last_error[API_ERROR_MAX]; /* "" = none */
	size_t last_changes;		/* notifications of the last swap */
	bool offline;			/* serving the saved answer; the API has not answered */
	struct state_save_stats saves;
	char save_error[192]; /* "" = none */
};

static inline int64_t wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline double mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- cache.c, for refresh.c ---- */

/*
 * cache_retire - before @next is stamped, saved and published: make the
 * kernel forget every name whose meaning @next changes, and answer names
 * from the current snapshot uncached until the swap.  From then until
 * the swap, every path to a changed file is resolved by us, so nobody
 * sees an old version after the new one's stamp (tar --listed-incremental
 * would skip it for good).  Only once mounted; the list is kept for
 * cache_publish.
 */
void cache_retire(struct cache *c, struct snapshot *next);
/*
 * cache_publish - swap @next in, taking its reference; 0, or -ENOMEM
 * keeping the old one.  @from_api: a refresh succeeded (health and
 * counters say so); false for the saved snapshot of an offline start.
 */
int cache_publish(struct cache *c, struct snapshot *next, bool from_api);
/*
 * cache_mark_success_locked - a refresh succeeded, and @swapped a new
 * snapshot in: health and counters; c->lock held
 */
void cache_mark_success_locked(struct cache *c, bool swapped);
/* cache_log_recovery - log the end of an outage; from the publishing thread, no lock */
void cache_log_recovery(struct cache *c, const struct snapshot *s);

/* ---- refresh.c, for status.c and the tests ---- */

/* the longest a snapshot is held back for its stamps: 1 s + a save's allowance */
#define CACHE_MAX_HOLD_NS     (3100LL * 1000 * 1000)
#define CACHE_MAX_BACKOFF     300.0  /* s: retries never wait longer... */
#define CACHE_MAX_RETRY_AFTER 3600.0 /* s: ...unless the server asks, up to this */

/*
 * cache_backoff_delay - seconds until the next attempt after @failures
 * consecutive failures (0: the ttl): the ttl doubled per failure, at most
 * CACHE_MAX_BACKOFF, and at least a Retry-After of @retry_after seconds
 * (-1: none), itself capped at CACHE_MAX_RETRY_AFTER
 */
double cache_backoff_delay(double ttl, unsigned int failures, long retry_after);

/* cache_total_mismatch - the answer's total_items disagrees with its items (paging?) */
bool cache_total_mismatch(const struct snapshot *s);

#endif
