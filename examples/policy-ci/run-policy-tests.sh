#!/usr/bin/env sh
# Runs a policy repository's test suites with Warden and writes a JUnit report for the CI system.
# Both example pipelines call this script; it keeps `warden policies test`'s exit code:
#   0 every test passed, 3 a policy does not compile, 4 a test failed or errored, 1 unreadable dir.
#
#   WARDEN       the warden command (default: `warden` on PATH; e.g. `node warden/bin/warden.js`)
#   POLICY_DIR   the policy directory, Cerbos layout with tests next to the policies (default: policies)
#   REPORT       where the JUnit XML goes (default: reports/policies.junit.xml)
set -u
WARDEN="${WARDEN:-warden}"
POLICY_DIR="${POLICY_DIR:-policies}"
REPORT="${REPORT:-reports/policies.junit.xml}"
mkdir -p "$(dirname "$REPORT")"

# Compile first: a policy that does not compile has no test report, only file:line:col errors.
$WARDEN policies validate "$POLICY_DIR" || exit $?

$WARDEN policies test "$POLICY_DIR" --output junit > "$REPORT"
status=$?
echo "warden policies test: exit $status, JUnit report in $REPORT"
exit $status
