#!/usr/bin/env bash
# Stops every component of the test environment (idempotent). Data stays under .testenv/ and
# caches under .cache/; `make testenv-clean` removes the data too.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
HERE=$(dirname "${BASH_SOURCE[0]}")
rm -f "$TESTENV_DIR/env"
rc=0
for comp in k8s kafka redis postgres; do
  bash "$HERE/$comp.sh" down || rc=1
done
exit $rc
