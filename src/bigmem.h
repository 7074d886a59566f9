/* SPDX-License-Identifier: MIT */
#ifndef INGESTFS_BIGMEM_H
#define INGESTFS_BIGMEM_H

/*
 * The large buffers of a refresh: the answer as it arrives, a snapshot's
 * arrays and arena, the item list, the state file being written.  At 100k
 * tasks they are some 70 MiB, all fresh memory each refresh, and with
 * 4 KiB pages the kernel's page faults (fault, zero, charge, and unmap at
 * the free) were a quarter of a refresh's CPU.
 *
 * These are malloc(), calloc() and realloc() as ever, plus a hint: a
 * block of BIGMEM_HINT_MIN bytes or more asks madvise(MADV_HUGEPAGE) for
 * the 2 MiB-aligned part inside it, so that where transparent huge pages
 * are "madvise" (Debian's default) or "always" it is faulted in 2 MiB at
 * a time.  The hint is only that: where THP is off or the call fails,
 * nothing changes, and the block is freed with free().  Small blocks
 * (small mounts) are left alone, so RSS of a small mount does not grow.
 */

#include <stddef.h>

#define BIGMEM_HINT_MIN ((size_t)4 << 20)

void *big_malloc(size_t n);
void *big_calloc(size_t n, size_t size);
void *big_realloc(void *p, size_t n);

/* big_hint - the hint alone, for @n bytes at @p (nothing below BIGMEM_HINT_MIN) */
void big_hint(void *p, size_t n);

#endif
