#!/usr/bin/env bash
# Builds a real kubelet into bin/cri/kubelet for the CRI's kubelet test
# (integration/cri/kubelet_test.go): k8s.io/kubernetes KUBELET_VERSION
# (v1.37.2) from the Go module proxy.
#
# k8s.io/kubernetes is not meant to be required as a module: its go.mod
# requires its staging modules (k8s.io/api, k8s.io/kubelet, ...) at
# v0.0.0 and replaces them with directories of its own tree, and a
# dependent module does not see those replacements. So the kubelet is
# built in a throwaway module that requires k8s.io/kubernetes and replaces
# each staging module it names with the matching published release
# (v1.37.2 -> v0.37.2). It is a test prerequisite, never part of the
# product's go.mod (GOFLAGS is cleared, so a -mod setting meant for this
# repository does not apply there).
#
# Idempotent: the kubelet is rebuilt only when bin/cri/kubelet is missing
# or bin/cri/VERSIONS says another version built it. A build takes about
# six minutes on an idle two-core machine (34 minutes when six builds
# share it).
set -euo pipefail

version=${KUBELET_VERSION:-v1.37.2}
staging=v0.${version#v1.}

cd "$(dirname "$0")/.."
dest=$PWD/bin/cri
mkdir -p "$dest"
export GOFLAGS= GOTOOLCHAIN=${GOTOOLCHAIN:-auto}

if grep -qx "kubelet $version" "$dest/VERSIONS" 2>/dev/null && [ -x "$dest/kubelet" ]; then
	exit 0
fi
echo "cri-kubelet: building kubelet $version (minutes)" >&2

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

gomod=$(go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p')
[ -n "$gomod" ] || { echo "cri-kubelet: cannot download k8s.io/kubernetes@$version" >&2; exit 1; }

# The staging modules are the ones k8s.io/kubernetes' go.mod replaces with
# ./staging/src/... directories.
mapfile -t mods < <(sed -n 's|^\t\(k8s.io/[^ ]*\) => ./staging/src/.*|\1|p' "$gomod")
[ ${#mods[@]} -gt 0 ] || { echo "cri-kubelet: no staging modules found in $gomod" >&2; exit 1; }
goversion=$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$gomod")

{
	echo "module kubelet-build"
	echo
	echo "go $goversion"
	echo
	echo "require k8s.io/kubernetes $version"
	echo
	echo "replace ("
	for m in "${mods[@]}"; do printf '\t%s => %s %s\n' "$m" "$m" "$staging"; done
	echo ")"
} >"$tmp/go.mod"
# A file importing the command, so that `go mod tidy` resolves exactly
# what the kubelet needs (and pins it in go.sum) and nothing of the rest
# of k8s.io/kubernetes.
cat >"$tmp/tools.go" <<'EOF'
//go:build tools

package tools

import _ "k8s.io/kubernetes/cmd/kubelet"
EOF

ldflags="-s -w"
for v in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	ldflags+=" -X $v.gitVersion=$version -X $v.gitMajor=1 -X $v.gitMinor=$(echo "$version" | cut -d. -f2)"
	ldflags+=" -X $v.gitTreeState=clean"
done

(
	cd "$tmp"
	# -e: tolerate test-only imports of packages that cannot be resolved;
	# only the kubelet's own import graph matters.
	go mod tidy -e
	CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$dest/kubelet.new" k8s.io/kubernetes/cmd/kubelet
)
mv "$dest/kubelet.new" "$dest/kubelet"

{ grep -v "^kubelet " "$dest/VERSIONS" 2>/dev/null || true; echo "kubelet $version"; } >"$dest/VERSIONS.new"
mv "$dest/VERSIONS.new" "$dest/VERSIONS"
"$dest/kubelet" --version >&2
