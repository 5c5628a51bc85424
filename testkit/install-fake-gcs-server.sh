#!/usr/bin/env bash
# fake-gcs-server (a real Google Cloud Storage API emulator, a Go program) built from the Go module
# proxy into the version-keyed cache outside the clone, for the --upload tests
# (`npm run test:upload`). Built under *.partial and renamed when done, so an interrupted build is
# redone, never half-used. Prints the binary's path.
set -euo pipefail
VERSION=v1.56.1
CACHE=${INFERBENCH_CACHE:-$HOME/.cache/inferbench}
DIR=$CACHE/fake-gcs-server-${VERSION#v}
BIN=$DIR/bin/fake-gcs-server
if [ ! -x "$BIN" ]; then
  command -v go >/dev/null || { echo "go is not on PATH (needed to build fake-gcs-server)" >&2; exit 1; }
  rm -rf "$DIR.partial"
  mkdir -p "$DIR.partial/bin"
  start=$(date +%s)
  GOBIN="$DIR.partial/bin" GOMODCACHE="$CACHE/go/mod" GOCACHE="$CACHE/go/build" GOTOOLCHAIN=local \
    GOFLAGS="-mod=mod -trimpath" nice -n 19 go install "github.com/fsouza/fake-gcs-server@$VERSION" >&2
  rm -rf "$DIR" && mv "$DIR.partial" "$DIR"
  echo "TIMING fake-gcs-server $VERSION built in $(($(date +%s) - start)) s" >&2
fi
echo "$BIN"
