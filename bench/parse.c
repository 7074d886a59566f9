// SPDX-License-Identifier: MIT
/*
 * What building a snapshot costs, without HTTP or FUSE around it: an
 * answer of N tasks shaped like the simulator's, parsed cold, then again
 * with 10 tasks changed and the first snapshot as the previous one (what
 * a refresh with changes pays), then unchanged with a previous one.
 *   build/bench_parse [TASKS] [ROUNDS]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "snapshot.h"

static double cpu_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static const char *const states[] = { "COMPLETED", "IN_PROGRESS", "FAILED", "PENDING" };
static const char *const ops[] = { "CREATE", "UPDATE", "DELETE" };

/* the simulator's generated answer; tasks below @changed get another state */
static char *make_body(size_t n, size_t changed, size_t *len)
{
	size_t cap = n * 320 + 256, o = 0;
	char *b = malloc(cap);

	if (!b)
		return NULL;
	o += (size_t)snprintf(b + o, cap - o,
			      "{\"@id\": \"/api/v4/managed-slicer/ingest-points/tasks\", "
			      "\"@type\": \"Collection\", \"items\": [");
	for (size_t i = 0; i < n; i++) {
		char id[64];

		snprintf(id, sizeof(id), "%08zx-0000-4000-8000-%012zx",
			 (i * 2654435761u) & 0xffffffffu, i);
		o += (size_t)snprintf(
			b + o, cap - o,
			"%s{\"@id\": \"/api/v4/managed-slicer/ingest-points/tasks/%s\", "
			"\"@type\": \"ReservedEndpointTask\", \"id\": \"%s\", \"state\": \"%s\", "
			"\"operation\": \"%s\", \"timestamp\": %zu}",
			i ? ", " : "", id, id, states[(i + (i < changed)) % 4], ops[i % 3],
			1660000000 + i * 7);
	}
	o += (size_t)snprintf(b + o, cap - o, "], \"total_items\": %zu}", n);
	*len = o;
	return b;
}

static double parse(const char *body, size_t len, const struct snapshot *prev, struct snap_ctx *ctx,
		    struct snapshot **out)
{
	char *copy = malloc(len + 1), err[160];
	double t0;
	int ret;

	if (!copy)
		exit(1);
	memcpy(copy, body, len + 1);
	t0 = cpu_ms();
	ret = snapshot_parse(copy, len, prev, ctx, out, err, sizeof(err));
	t0 = cpu_ms() - t0;
	free(copy);
	if (ret < 0) {
		fprintf(stderr, "bench_parse: %s\n", err);
		exit(1);
	}
	return t0;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 100000, len, len10;
	int rounds = argc > 2 ? atoi(argv[2]) : 5;
	char *body = make_body(n, 0, &len), *body10 = make_body(n, 10, &len10);
	struct snap_ctx ctx = { .hash_key = { 1, 2 }, .next_nodeid = SNAP_FIRST_FILE_NODEID };
	double cold[64], changed[64], same[64];

	if (!body || !body10 || rounds < 1 || rounds > 64)
		return 1;
	for (int r = 0; r < rounds; r++) {
		struct snapshot *a, *b, *c;

		ctx.now_ns += 2000000000;
		cold[r] = parse(body, len, NULL, &ctx, &a);
		changed[r] = parse(body10, len10, a, &ctx, &b);
		same[r] = parse(body10, len10, b, &ctx, &c);
		snapshot_put(a);
		snapshot_put(b);
		snapshot_put(c);
	}
	qsort(cold, (size_t)rounds, sizeof(double), cmp);
	qsort(changed, (size_t)rounds, sizeof(double), cmp);
	qsort(same, (size_t)rounds, sizeof(double), cmp);
	printf("| snapshot_parse, %zu tasks, %.1f MB answer | CPU ms, median of %d |\n", n,
	       (double)len / 1e6, rounds);
	printf("|---|---|\n| cold, no previous snapshot | %.1f |\n", cold[rounds / 2]);
	printf("| 10 tasks changed, previous snapshot given | %.1f |\n", changed[rounds / 2]);
	printf("| nothing changed, previous snapshot given | %.1f |\n", same[rounds / 2]);
	free(body);
	free(body10);
	return 0;
}
