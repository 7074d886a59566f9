// SPDX-License-Identifier: MIT
/*
 * Concurrency stress: readers look files up, read them, hold them and
 * forget them the way the FUSE handlers do, while the main thread swaps in
 * a new snapshot every millisecond or two.  The invariant under test: a
 * node id handed to a reader always reads back the same bytes, however
 * many swaps happen in between.  Built normally and under ThreadSanitizer.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache.h"
#include "check.h"

#define READERS	  6
#define TASKS	  40
#define MIN_SWAPS 20   /* a run must swap more than this many snapshots... */
#define MIN_READS 1000 /* ...and readers must read more than this */

static struct cache *cache;
static atomic_bool stop;
static atomic_long reads, mismatches, lost;

/* What lookup does: resolve under the lock and count the node id. */
static uint64_t lookup(const char *id, enum snap_kind kind)
{
	const struct snap_task *t;
	uint64_t nodeid = 0;

	cache_lock(cache);
	t = snapshot_find(cache_current_locked(cache), cache_hash_key(cache), id, strlen(id));
	if (t && t->file[kind].nodeid) {
		nodeid = t->file[kind].nodeid;
		cache_ref_locked(cache, nodeid, 1);
	}
	cache_unlock(cache);
	return nodeid;
}

/* What read does: the current snapshot, else a retained version. */
static char *read_node(uint64_t nodeid, size_t *len)
{
	struct snapshot *s = cache_acquire(cache);
	const struct snap_task *t;
	enum snap_kind k;
	struct blob *b;
	char *out = NULL;

	if (snapshot_find_node(s, nodeid, &t, &k)) {
		char *to_free;
		const char *data = snap_file_read(s, t, k, &to_free);

		*len = t->file[k].len;
		out = malloc(*len);
		memcpy(out, data, *len);
		free(to_free);
	} else if ((b = cache_blob_get(cache, nodeid))) {
		*len = b->len;
		out = malloc(*len);
		memcpy(out, b->data, *len);
		blob_put(b);
	}
	snapshot_put(s);
	return out;
}

static void *reader(void *arg)
{
	unsigned int seed = (unsigned int)(uintptr_t)arg;
	char id[32];

	while (!atomic_load(&stop)) {
		enum snap_kind kind = (enum snap_kind)(rand_r(&seed) % SNAP_NKINDS);
		uint64_t nodeid;
		size_t len1, len2;
		char *a, *b;

		snprintf(id, sizeof(id), "task-%d", rand_r(&seed) % TASKS);
		nodeid = lookup(id, kind);
		if (!nodeid)
			continue;
		a = read_node(nodeid, &len1);
		/* hold it across a few swaps */
		for (int i = 0; i < 200 + rand_r(&seed) % 2000; i++)
			__asm__ volatile("" ::: "memory");
		b = read_node(nodeid, &len2);
		if (!a || !b)
			atomic_fetch_add(&lost, 1);
		else if (len1 != len2 || memcmp(a, b, len1) != 0)
			atomic_fetch_add(&mismatches, 1);
		free(a);
		free(b);
		cache_forget(cache, nodeid, 1);
		atomic_fetch_add(&reads, 1);
	}
	return NULL;
}

static char *make_body(int gen, size_t *len)
{
	size_t cap = 64 + TASKS * 200, n = 0;
	char *body = malloc(cap);

	n += (size_t)sprintf(body + n, "{\"items\": [");
	for (int i = 0; i < TASKS; i++) {
		/* a third of the tasks change each generation, with varying length */
		int v = (i % 3 == gen % 3) ? gen : 0;

		if ((i + gen) % 17 == 0)
			continue; /* and some come and go */
		n += (size_t)sprintf(body + n,
				     "%s{\"id\": \"task-%d\", \"state\": \"S%d%.*s\", "
				     "\"operation\": \"CREATE\", \"timestamp\": %d}",
				     n > 12 ? "," : "", i, v, v % 13, "xxxxxxxxxxxxx", 1000 + i);
	}
	n += (size_t)sprintf(body + n, "]}");
	*len = n;
	return body;
}

/*
 * Answers "arrive" a second apart in 1970: every swap's stamps lie in the
 * past, so the cache never holds one back for the clock.
 */
static int64_t stamp(int gen)
{
	return (int64_t)(gen + 1) * 1000000000;
}

int main(int argc, char **argv)
{
	double seconds = argc > 1 ? atof(argv[1]) : 2.0, elapsed;
	struct config cfg;
	struct creds creds = { .kind = CREDS_CLASSIC, .user_id = "user", .api_key = "key" };
	pthread_t th[READERS];
	struct timespec t0, now;
	char err[160];
	int gen = 0;

	config_init(&cfg);
	cache = cache_new(&cfg, &creds, NULL);
	CHECK(cache != NULL);
	if (!cache)
		return 1;
	{
		size_t len;
		char *body = make_body(gen++, &len);

		CHECK(cache_publish_body(cache, body, len, stamp(gen), err, sizeof(err)) == 0);
		free(body);
	}
	for (int i = 0; i < READERS; i++)
		pthread_create(&th[i], NULL, reader, (void *)(uintptr_t)(i + 1));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		size_t len;
		char *body = make_body(gen++, &len);
		struct timespec pause = { 0, 1000000 + (gen % 3) * 500000 };

		CHECK(cache_publish_body(cache, body, len, stamp(gen), err, sizeof(err)) == 0);
		free(body);
		nanosleep(&pause, NULL);
		clock_gettime(CLOCK_MONOTONIC, &now);
		elapsed =
			(double)(now.tv_sec - t0.tv_sec) + (double)(now.tv_nsec - t0.tv_nsec) / 1e9;
		/*
		 * At least @seconds; on a loaded machine (valgrind on a shared
		 * 2-core box made 15 swaps in 2 s) go on until the run has done
		 * enough to mean something, up to 60 s.
		 */
	} while (elapsed < seconds ||
		 ((gen <= MIN_SWAPS || atomic_load(&reads) <= MIN_READS) && elapsed < 60));
	atomic_store(&stop, true);
	for (int i = 0; i < READERS; i++)
		pthread_join(th[i], NULL);

	printf("stress_cache: %d swaps, %ld reads, %ld changed under a reader, %ld lost\n", gen,
	       atomic_load(&reads), atomic_load(&mismatches), atomic_load(&lost));
	CHECK(gen > MIN_SWAPS); /* valgrind slows it to well under 100 a second */
	CHECK(atomic_load(&reads) > MIN_READS);
	CHECK(atomic_load(&mismatches) == 0);
	CHECK(atomic_load(&lost) == 0);
	cache_free(cache);
	config_free(&cfg);
	return check_done("stress_cache");
}
