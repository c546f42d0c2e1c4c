#!/usr/bin/env bash
# ci-gate.sh -- gate a CI pipeline on the Coze Plus Agent API conformance suite.
#
# Usage: ci-gate.sh TARGET_URL [BASELINE.toml] [-- more pytest arguments]
#
#   TARGET_URL     base URL of the deployment under test, or "embedded" for the
#                  suite's own reference server (then set no credentials)
#   BASELINE.toml  the expected-failures file kept in the implementation's
#                  repository (docs/reports.md, "Expected-failures baseline")
#
# Credentials come from the environment only -- a command line is visible to
# every user of the machine (ps): COZE_API_KEY and/or COZE_SESSION_KEY, and for
# the isolation tests COZE_API_KEY_2 / COZE_SESSION_KEY_2.
# Reports go to $COZE_REPORT_DIR (default ./conformance-reports).
# COZE_CONFORMANCE names the command to run (default: coze-conformance).
#
# The exit code is the suite's, unchanged (docs/reports.md, "Exit codes"):
#   0 pass (read the verdict: it may say INCOMPLETE)   1 a failure outside the
#   baseline, or a stale baseline entry   2 interrupted   3 a suite error, or the
#   target unreachable / not this API / refusing the credentials   4 usage error
#   5 no tests collected
set -uo pipefail

usage() {
    # The comment block at the top of this file, without its "# ".
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2
    exit 4
}

[ $# -ge 1 ] || usage
case $1 in -h|--help) usage ;; esac
target=$1
shift
baseline=""
if [ $# -ge 1 ] && [ "$1" != "--" ]; then
    baseline=$1
    shift
fi
if [ $# -ge 1 ] && [ "$1" = "--" ]; then
    shift
fi

args=(run)
if [ "$target" != "embedded" ]; then
    args+=(--target-url "$target")
fi
if [ -n "$baseline" ]; then
    if [ ! -f "$baseline" ]; then
        echo "ci-gate: no baseline file $baseline" >&2
        exit 4
    fi
    args+=(--expected-failures "$baseline")
fi

# Word splitting of COZE_CONFORMANCE is wanted: "python -m conformance.cli" works too.
# shellcheck disable=SC2086
${COZE_CONFORMANCE:-coze-conformance} "${args[@]}" "$@"
code=$?

case $code in
    0) meaning="passed (the verdict line above says whether every MUST requirement ran)" ;;
    1) meaning="FAILED: a requirement failed outside the baseline, or a baseline entry is stale" ;;
    2) meaning="interrupted" ;;
    3) meaning="ERROR: a suite error, or the target is unreachable, not this API, or refused the credentials" ;;
    4) meaning="usage error" ;;
    5) meaning="no tests collected" ;;
    *) meaning="unexpected exit code" ;;
esac
echo "ci-gate: exit $code -- $meaning" >&2
exit "$code"
