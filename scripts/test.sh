#!/bin/bash
# Build ingestfs and run the whole test suite.  Installs missing Debian
# packages first.
#
#   scripts/test.sh           everything CI runs:
#                               0. ninja clang-format-check
#                               1. clang -Werror build, unit tests
#                               2. address+undefined sanitizer build, all tests
#                               3. ThreadSanitizer build of the concurrency stress test
#                               4. unit tests under valgrind (leaks are errors)
#                               5. libFuzzer harnesses, 25 s each; bench/run.sh --smoke;
#                                  the Debian package (scripts/test-deb.sh, about 40 s)
#                               6. gcc -Werror build, all tests (unit + integration)
#   scripts/test.sh --quick   step 6 only
#
# Build folders go under build-test/.  The last line is pytest's own summary
# of step 6.
set -uo pipefail

cd "$(dirname "$0")/.."
QUICK=0
[ "${1:-}" = "--quick" ] && QUICK=1
OUT=build-test
FUZZ_SECONDS=${FUZZ_SECONDS:-25}
failed=()

step() { echo; echo "=== $*"; }
fail() { echo "*** FAILED: $*"; failed+=("$*"); }

setup() { # dir, then meson options
	local dir=$1
	shift
	[ -f "$dir/build.ninja" ] || meson setup "$dir" "$@" >/dev/null || return 1
	ninja -C "$dir" >/dev/null
}

export ASAN_OPTIONS=halt_on_error=1:detect_leaks=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1

if [ "$QUICK" = 1 ]; then
	scripts/deps.sh || exit 1
else
	scripts/deps.sh extra || exit 1

	step "0. formatting: ninja clang-format-check"
	if setup $OUT/gcc -Dwerror=true; then
		ninja -C $OUT/gcc clang-format-check >/dev/null ||
			fail "clang-format-check (run: ninja -C build clang-format)"
	fi

	step "1. clang -Werror build and unit tests"
	if CC=clang setup $OUT/clang -Dwerror=true; then
		meson test -C $OUT/clang --suite unit --print-errorlogs || fail "clang unit tests"
	else
		fail "clang -Werror build"
	fi

	step "2. address+undefined sanitizer build, all tests"
	if setup $OUT/asan -Db_sanitize=address,undefined -Db_lundef=false; then
		meson test -C $OUT/asan --print-errorlogs || fail "sanitizer tests"
		if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' \
			$OUT/asan/meson-logs/testlog.txt; then
			fail "sanitizer report in the test log"
		fi
	else
		fail "sanitizer build"
	fi

	step "3. ThreadSanitizer: concurrency stress test"
	if CC=clang setup $OUT/tsan -Db_sanitize=thread -Db_lundef=false; then
		$OUT/tsan/tests/stress_cache 10 || fail "ThreadSanitizer stress test"
	else
		fail "ThreadSanitizer build"
	fi

	step "4. unit tests under valgrind"
	if setup $OUT/plain; then
		meson test -C $OUT/plain --suite unit --print-errorlogs \
			--wrapper 'valgrind --quiet --fair-sched=yes --leak-check=full --error-exitcode=1' ||
			fail "valgrind"
	else
		fail "plain build"
	fi

	step "5. fuzzing, ${FUZZ_SECONDS} s per harness"
	if CC=clang setup $OUT/fuzz -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false; then
		for f in snapshot creds options state; do
			work=$OUT/fuzz/corpus-$f
			mkdir -p "$work"
			if $OUT/fuzz/tests/fuzz_$f -max_total_time="$FUZZ_SECONDS" -max_len=16384 \
				-print_final_stats=1 -artifact_prefix="$OUT/fuzz/$f-" \
				"$work" tests/fuzz/corpus/$f >$OUT/fuzz/$f.log 2>&1; then
				echo "fuzz_$f: $(grep -E 'stat::(number_of_executed_units|average_exec_per_sec)' \
					$OUT/fuzz/$f.log | awk '{printf "%s %s  ", $1, $2}')"
			else
				tail -n 40 $OUT/fuzz/$f.log
				fail "fuzz_$f"
			fi
		done
	else
		fail "fuzz build"
	fi

	step "5b. benchmark smoke run: 10k tasks, both sides must show the same tree"
	if [ -x $OUT/plain/ingestfs ]; then
		bench/run.sh --smoke --binary $OUT/plain/ingestfs || fail "benchmark smoke run"
	else
		fail "benchmark smoke run (no build)"
	fi

	step "5c. Debian package: build, lintian, apt install, mount via fstab, purge"
	scripts/test-deb.sh || fail "Debian package"
fi

step "6. gcc -Werror build, all tests"
if setup $OUT/gcc -Dwerror=true; then
	meson test -C $OUT/gcc --print-errorlogs || fail "tests"
else
	fail "gcc -Werror build"
fi

log=$OUT/gcc/meson-logs/testlog.txt
echo
grep -Eh '^[a-z_]+: [0-9]+ checks, [0-9]+ failed' "$log" 2>/dev/null
if [ ${#failed[@]} -gt 0 ]; then
	# what failed, where CI's tail of the output shows it: meson's failed
	# tests, pytest's short summary (-rfE) and sanitizer summaries
	for d in asan gcc; do
		awk '/^test: /{t=$0} /^result: / && !/exit status 0$/{print t " -> " $0}
			/^(FAILED|ERROR) |^SUMMARY: [A-Za-z]+Sanitizer/' \
			$OUT/$d/meson-logs/testlog.txt 2>/dev/null | head -n 20 | sed "s|^|$d: |"
	done
	printf '*** failed step: %s\n' "${failed[@]}"
fi
line=$(grep -E '^=+ .*[0-9]+ (passed|failed|error).* in [0-9.]+s.* =+$' "$log" 2>/dev/null | tail -n 1)
# the tools every test needs are installed above: a skip here hides a hole
# (only a missing /dev/fuse skips, and then the whole suite reports SKIP)
asan_line=
[ "$QUICK" = 1 ] || asan_line=$(grep -hE '^=+ .* in [0-9.]+s.* =+$' $OUT/asan/meson-logs/testlog.txt 2>/dev/null | tail -n 1)
for l in "$line" "$asan_line"; do
	case "$l" in
	*skipped*) fail "tests were skipped: $l" ;;
	esac
done
if [ -z "$line" ]; then
	echo "0 passed, 1 failed (no pytest summary: the integration tests did not run)"
	exit 1
fi
# the closing line: pytest's own summary
echo "$line"
[ ${#failed[@]} -eq 0 ]
