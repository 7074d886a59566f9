# SPDX-License-Identifier: MIT
"""The sanitizer-report filter sets aside the one libfuse leak and nothing else."""
import sanreport

KNOWN = """
=================================================================
==4242==ERROR: LeakSanitizer: detected memory leaks

Direct leak of 128 byte(s) in 1 object(s) allocated from:
    #0 0x7f4a242b8a37 in __interceptor_calloc ../../../../src/libsanitizer/asan/asan_malloc_linux.cpp:77
    #1 0x7f4a23f19ee5  (/lib/x86_64-linux-gnu/libfuse3.so.3+0x19ee5)
    #2 0x7f4a23f1c3f2  (/lib/x86_64-linux-gnu/libfuse3.so.3+0x1c3f2)
    #3 0x7f4a23e8a043 in start_thread nptl/pthread_create.c:442
    #4 0x7f4a23f0a87f in clone3 ../sysdeps/unix/sysv/linux/x86_64/clone3.S:81

SUMMARY: AddressSanitizer: 128 byte(s) leaked in 1 allocation(s).
"""

OURS = "    #2 0x5600a1b2c3d4 in fs_read ../src/fs.c:311\n"


def test_the_libfuse_stale_interrupt_alone_is_set_aside():
    assert sanreport.known_upstream(KNOWN) == sanreport.LIBFUSE_STALE_INTERRUPT
    two = KNOWN.replace("SUMMARY", KNOWN.split("\n\n")[1] + "\n\nSUMMARY").replace(
        "128 byte(s) leaked in 1 allocation", "256 byte(s) leaked in 2 allocation")
    assert sanreport.known_upstream(two) == sanreport.LIBFUSE_STALE_INTERRUPT
    merged = KNOWN.replace("of 128 byte(s) in 1 object", "of 256 byte(s) in 2 object").replace(
        "128 byte(s) leaked in 1 allocation", "256 byte(s) leaked in 2 allocation")
    assert sanreport.known_upstream(merged) == sanreport.LIBFUSE_STALE_INTERRUPT


def test_every_other_report_still_counts():
    frames = KNOWN.split("    #2")[0]
    variants = {
        "our frame on the stack": KNOWN.replace("    #2 0x7f4a23f1c3f2", OURS + "    #3 0x7f4a23f1c3f2"),
        "another size": KNOWN.replace("of 128 byte", "of 136 byte"),
        "two objects": KNOWN.replace("in 1 object", "in 2 object"),
        "two objects, summary of one": KNOWN.replace("of 128 byte(s) in 1 object",
                                                     "of 256 byte(s) in 2 object"),
        "two objects of another size": KNOWN.replace("of 128 byte(s) in 1 object",
                                                     "of 272 byte(s) in 2 object").replace(
            "128 byte(s) leaked in 1 allocation", "272 byte(s) leaked in 2 allocation"),
        "indirect": KNOWN.replace("Direct leak", "Indirect leak"),
        "malloc": KNOWN.replace("__interceptor_calloc", "__interceptor_malloc"),
        "not libfuse": KNOWN.replace("libfuse3.so.3+0x19ee5", "libcurl.so.4+0x19ee5"),
        "summary shows more": KNOWN.replace("128 byte(s) leaked", "4224 byte(s) leaked"),
        "summary shows more allocations": KNOWN.replace("in 1 allocation", "in 3 allocation"),
        "a block not shown in full": frames.replace("Direct leak of 128", "Direct leak of 4096"),
        "an ASan error as well": KNOWN + "==4242==ERROR: AddressSanitizer: heap-use-after-free\n",
        "a UBSan error as well": "../src/fs.c:3:1: runtime error: shift exponent\n" + KNOWN,
        "two reports": KNOWN + KNOWN,
        "no leak block at all": "==1==ERROR: LeakSanitizer: detected memory leaks\n",
    }
    for name, text in variants.items():
        assert sanreport.known_upstream(text) is None, name
