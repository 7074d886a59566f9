# SPDX-License-Identifier: MIT
"""Reading the sanitizer reports of the daemons the tests start.

One upstream leak is set aside, and only that one.  libfuse 3.14 queues a
FUSE_INTERRUPT that arrives after the request it names was answered on the
session's interrupt list (do_interrupt, "not found, keep for later").  The
next request frees it, but a plain fuse mount gets no FUSE_DESTROY at
unmount, so when the interrupt came last (a reader killed while its read was
being answered) fuse_session_destroy() leaves it: one struct fuse_req,
128 bytes, calloc'ed in fuse_session_process_buf_int, with no ingestfs code
on the stack (two such interrupts at the end: one block of 256 bytes in 2
objects, since LeakSanitizer merges leaks of the same stack).  It is a race
the daemon cannot reach (the list is private to libfuse).  Everything else, including any other leak that merely passes
through libfuse, still fails the test.
"""
import re

LIBFUSE_STALE_INTERRUPT = "libfuse stale FUSE_INTERRUPT (128-byte struct fuse_req)"

_BLOCK = re.compile(r"^(Direct|Indirect) leak of (\d+) byte\(s\) in (\d+) object\(s\) "
                    r"allocated from:\n((?:[ \t]+#\d+ .*\n?)+)", re.M)


def _is_libfuse_stale_interrupt(block):
    kind, size, count, frames = block.groups()
    frames = frames.strip().splitlines()
    # the same interrupt left twice is one block: LeakSanitizer merges equal stacks
    return (kind == "Direct" and int(count) >= 1 and int(size) == 128 * int(count)
            and len(frames) >= 2
            and "calloc" in frames[0]
            and "libfuse3.so" in frames[1]
            and all("libfuse3.so" in f or "libc.so" in f or "pthread_create" in f
                    or "clone" in f or "start_thread" in f for f in frames[1:]))


def known_upstream(text):
    """The name of the upstream leak when text reports that and nothing else; else None."""
    if "runtime error:" in text or "ERROR: AddressSanitizer" in text \
            or "ERROR: ThreadSanitizer" in text:
        return None
    if text.count("ERROR: LeakSanitizer") != 1:
        return None
    blocks = list(_BLOCK.finditer(text))
    if not blocks or not all(_is_libfuse_stale_interrupt(b) for b in blocks):
        return None
    # the summary must agree: nothing else leaked that the blocks did not show
    m = re.search(r"SUMMARY: AddressSanitizer: (\d+) byte\(s\) leaked in (\d+) allocation", text)
    objects = sum(int(b.group(3)) for b in blocks)
    if not m or int(m.group(1)) != 128 * objects or int(m.group(2)) != objects:
        return None
    return LIBFUSE_STALE_INTERRUPT
