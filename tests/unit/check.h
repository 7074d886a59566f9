/* SPDX-License-Identifier: MIT */
/* A minimal check harness: count failures, print each, exit 1 if any. */
#ifndef INGESTFS_CHECK_H
#define INGESTFS_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_failures;
static int check_count;

#define CHECK(cond)                                                                              \
	do {                                                                                     \
		check_count++;                                                                   \
		if (!(cond)) {                                                                   \
			check_failures++;                                                        \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
		}                                                                                \
	} while (0)

#define CHECK_STR(a, b)                                                                          \
	do {                                                                                     \
		const char *check_a_ = (a), *check_b_ = (b);                                     \
		check_count++;                                                                   \
		if (!check_a_ || !check_b_ || strcmp(check_a_, check_b_)) {                      \
			check_failures++;                                                        \
			fprintf(stderr, "%s:%d: \"%s\" != \"%s\"\n", __FILE__, __LINE__,         \
				check_a_ ? check_a_ : "(null)", check_b_ ? check_b_ : "(null)"); \
		}                                                                                \
	} while (0)

static inline int check_done(const char *name)
{
	printf("%s: %d checks, %d failed\n", name, check_count, check_failures);
	return check_failures ? 1 : 0;
}

#endif
