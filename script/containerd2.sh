#!/usr/bin/env bash
# Builds containerd 2.x's own containerd, ctr and containerd-shim-runc-v2
# from the Go module proxy into bin/containerd2/, for the tests that run
# containerd's daemon with our shim and our daemon with containerd's shim.
# They are test prerequisites, never part of the product's go.mod: `go
# install pkg@version` builds them in a module of their own, from the Go
# module proxy only (GOFLAGS is cleared: a -mod setting meant for this
# repository does not apply there). Rebuilds only when a binary is missing
# or was built from another version (CONTAINERD2_VERSION).
set -euo pipefail

version=${CONTAINERD2_VERSION:-v2.4.2}
cd "$(dirname "$0")/.."
dest=$PWD/bin/containerd2
bins=(containerd ctr containerd-shim-runc-v2)

stale=
[ "$(cat "$dest/VERSION" 2>/dev/null)" = "$version" ] || stale=1
for b in "${bins[@]}"; do
	[ -x "$dest/$b" ] || stale=1
done
[ -z "$stale" ] && exit 0

echo "containerd2: building containerd $version into $dest" >&2
mkdir -p "$dest"
rm -f "$dest/VERSION"
pkg=github.com/containerd/containerd/v2
# Static, without cgo: btrfs and the other cgo-only snapshotters drop out,
# and no C headers are needed. The version stamp is what `ctr version` and
# the daemon report.
CGO_ENABLED=0 GOBIN=$dest GOFLAGS= GOTOOLCHAIN=${GOTOOLCHAIN:-auto} \
	go install -trimpath -tags "no_btrfs no_devmapper no_zfs urfave_cli_no_docs" \
	-ldflags "-s -w -X $pkg/version.Version=${version#v} -X $pkg/version.Package=github.com/containerd/containerd/v2" \
	"$pkg/cmd/containerd@$version" "$pkg/cmd/ctr@$version" "$pkg/cmd/containerd-shim-runc-v2@$version"
echo "$version" >"$dest/VERSION"
