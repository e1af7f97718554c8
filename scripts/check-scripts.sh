#!/usr/bin/env bash
# Checks the project's shell scripts (run in CI by scripts/test.sh):
#   1. shellcheck at severity "warning" on every tracked *.sh and .ci/run;
#   2. no early-exit reader fed from a variable in a script that sets
#      pipefail: `echo "$x" | grep -q ...` (also grep -l/-m, head). grep -q
#      exits at its first match; once "$x" is bigger than the pipe buffer
#      (64 KiB), echo is still writing, dies of SIGPIPE, and pipefail turns
#      the match into a failure. CI's image smoke test failed this way on a
#      /metrics page of 571 series ("no microbatch_queue_requests" with the
#      series there). Write `grep -q PATTERN <<<"$x"` instead.
# Then its self-test: rule 2 must flag a known-bad line and pass its fix, and
# the bad form must really fail under pipefail on a 200 KB variable (so the
# rule guards against a real failure, not a style). CHECK_SCRIPTS_SELFTEST=0
# skips the self-test.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v shellcheck >/dev/null || {
  echo "check-scripts: shellcheck is required (apt-get install shellcheck; scripts/install-deps.sh --test)" >&2
  exit 1
}

# Prints "file:line: text" for each rule-2 violation in the files given.
EARLY_EXIT_READER='(echo|printf)[^|]*"\$[^|]*\|[[:space:]]*(grep[[:space:]]+(-[[:alnum:]]*[qlm][[:alnum:]]*|--quiet|--max-count)|head)([[:space:]]|$)'
early_exit_readers() {
  local f
  for f in "$@"; do
    grep -q 'pipefail' "$f" || continue
    grep -nE "$EARLY_EXIT_READER" "$f" | sed "s|^|$f:|" || true
  done
}

mapfile -t SCRIPTS < <({ git ls-files '*.sh' 2>/dev/null || find . -name '*.sh' -not -path './build*' -not -path '*/node_modules/*'; echo .ci/run; } | sort -u)

failed=0
if ! shellcheck -S warning -f gcc "${SCRIPTS[@]}"; then
  echo "check-scripts: shellcheck found warnings (above)" >&2
  failed=1
fi
# This file quotes the bad forms (above and in its self-test): rule 2 skips it.
RULE2_SCRIPTS=()
for f in "${SCRIPTS[@]}"; do [[ $f -ef "$0" ]] || RULE2_SCRIPTS+=("$f"); done
bad=$(early_exit_readers "${RULE2_SCRIPTS[@]}")
if [[ -n $bad ]]; then
  echo "$bad" >&2
  echo "check-scripts: an early-exit reader (grep -q/-l/-m, head) fed by echo/printf under pipefail SIGPIPEs the writer once the text outgrows the pipe buffer; use 'grep -q PATTERN <<<\"\$var\"'" >&2
  failed=1
fi
((failed == 0)) || exit 1
echo "check-scripts: ${#SCRIPTS[@]} scripts, shellcheck clean, no early-exit reader fed from a variable under pipefail"

[[ ${CHECK_SCRIPTS_SELFTEST:-1} == 0 ]] && exit 0
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
selftest_failed=0
expect() { # name, want (flagged|clean), script body
  printf '#!/usr/bin/env bash\nset -euo pipefail\n%s\n' "$3" >"$TMP/$1.sh"
  local got=clean
  [[ -n $(early_exit_readers "$TMP/$1.sh") ]] && got=flagged
  if [[ $got == "$2" ]]; then echo "selftest: ok   $1"; else echo "selftest: FAIL $1: $got, expected $2"; selftest_failed=1; fi
}
expect echo-grep-q flagged 'echo "$metrics" | grep -q "^x" || exit 1'
expect echo-grep-qi flagged 'echo "$inside" | grep -qi read-only'
expect echo-grep-m flagged 'echo "$out" | grep -m1 y'
expect printf-head flagged 'printf "%s\n" "$list" | head -1'
expect herestring clean 'grep -q "^x" <<<"$metrics" || exit 1'
expect echo-grep-all clean 'echo "$metrics" | grep "^x" | awk "{s+=\$2}"'
expect file-grep-q clean 'grep -q "^x" "$file"'
# The failure the rule prevents, reproduced (the 200 KB text is made inside:
# one argument may not exceed 128 KiB).
MAKE_BIG='big="hit
$(head -c 200000 /dev/zero | tr "\0" x | fold -w 100)"'
if bash -c "set -o pipefail; $MAKE_BIG; echo \"\$big\" | grep -q '^hit'"; then
  echo "selftest: FAIL sigpipe-real: echo of 200 KB | grep -q succeeded under pipefail; the rule's reason is gone"
  selftest_failed=1
else
  echo "selftest: ok   sigpipe-real (echo of 200 KB | grep -q fails under pipefail although the line is there)"
fi
if bash -c "set -o pipefail; $MAKE_BIG; grep -q '^hit' <<<\"\$big\""; then
  echo "selftest: ok   herestring-real"
else
  echo "selftest: FAIL herestring-real: grep -q <<< of 200 KB failed"
  selftest_failed=1
fi
exit "$selftest_failed"
