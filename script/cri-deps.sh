#!/usr/bin/env bash
# Builds what the CRI tests drive the daemon with into bin/cri/:
#   critest, crictl   sigs.k8s.io/cri-tools (CRI_TOOLS_VERSION)
#   ginkgo            the ginkgo CLI of the version critest is built with,
#                     which `critest -parallel N` runs its nodes through
#   runc              github.com/opencontainers/runc (RUNC_VERSION), with
#                     seccomp (cgo, libseccomp): critest's seccomp specs
#                     need a runc that applies profiles
#   cni/*             github.com/containernetworking/plugins (CNI_VERSION):
#                     the plugins the test network's conflist names
#   busybox/busybox   Debian's dynamically linked busybox (the package is
#                     downloaded, not installed: it would replace
#                     busybox-static). The CRI test images are built on it:
#                     its shell runs commands from PATH as the busybox
#                     image's does, where the static build's runs its own
#                     applets first (critest masks /bin/ls and expects sh
#                     to fail to run it).
# They are test prerequisites, never part of the product's go.mod: each is
# built in its own module from the Go module proxy (GOFLAGS is cleared, so
# a -mod setting meant for this repository does not apply there). A binary
# is rebuilt only when it is missing or bin/cri/VERSIONS says another
# version built it. What the builds and the tests need from the
# distribution (libseccomp-dev, iptables for the portmap plugin, iproute2)
# is installed with apt when missing.
set -euo pipefail

cri_tools=${CRI_TOOLS_VERSION:-v1.37.0}
runc=${RUNC_VERSION:-v1.4.4}
cni=${CNI_VERSION:-v1.10.0}
cni_plugins=(bridge host-local loopback portmap bandwidth firewall)

cd "$(dirname "$0")/.."
dest=$PWD/bin/cri
mkdir -p "$dest/cni"
export GOFLAGS= GOTOOLCHAIN=${GOTOOLCHAIN:-auto}

missing=()
dpkg -s libseccomp-dev >/dev/null 2>&1 || missing+=(libseccomp-dev)
command -v iptables >/dev/null || missing+=(iptables)
command -v ip >/dev/null || missing+=(iproute2)
command -v pkg-config >/dev/null || missing+=(pkg-config)
command -v gcc >/dev/null || missing+=(gcc libc6-dev)
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "cri-deps: need ${missing[*]}; run as root or install them" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# fresh NAME VERSION FILE...: the files exist and VERSIONS says NAME was
# built from VERSION.
fresh() {
	local name=$1 version=$2
	shift 2
	grep -qx "$name $version" "$dest/VERSIONS" 2>/dev/null || return 1
	for f in "$@"; do [ -x "$f" ] || return 1; done
}
# stamp NAME VERSION records a build in VERSIONS.
stamp() {
	{ grep -v "^$1 " "$dest/VERSIONS" 2>/dev/null || true; echo "$1 $2"; } >"$dest/VERSIONS.new"
	mv "$dest/VERSIONS.new" "$dest/VERSIONS"
}
# moddir MODULE VERSION prints the module's source directory in the module
# cache, downloading it when missing.
moddir() {
	go mod download -json "$1@$2" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p'
}

if ! fresh cri-tools "$cri_tools" "$dest/critest" "$dest/crictl"; then
	echo "cri-deps: building critest and crictl $cri_tools" >&2
	src=$(moddir sigs.k8s.io/cri-tools "$cri_tools")
	# critest is a Go test binary (cmd/critest holds only cri_test.go):
	# built with `go test -c` in cri-tools' own module.
	(cd "$src" && CGO_ENABLED=0 go test -c -trimpath -o "$dest/critest" \
		-ldflags "-X sigs.k8s.io/cri-tools/pkg/version.Version=$cri_tools" ./cmd/critest)
	(cd "$src" && CGO_ENABLED=0 go build -trimpath -o "$dest/crictl" \
		-ldflags "-X sigs.k8s.io/cri-tools/pkg/version.Version=$cri_tools" ./cmd/crictl)
	stamp cri-tools "$cri_tools"
fi

ginkgo=$(sed -n 's/^\tgithub.com\/onsi\/ginkgo\/v2 \(v[^ ]*\).*/\1/p' "$(moddir sigs.k8s.io/cri-tools "$cri_tools")/go.mod")
if ! fresh ginkgo "$ginkgo" "$dest/ginkgo"; then
	echo "cri-deps: building ginkgo $ginkgo" >&2
	CGO_ENABLED=0 GOBIN=$dest go install -trimpath "github.com/onsi/ginkgo/v2/ginkgo@$ginkgo"
	stamp ginkgo "$ginkgo"
fi

if ! fresh runc "$runc" "$dest/runc"; then
	echo "cri-deps: building runc $runc" >&2
	src=$(moddir github.com/opencontainers/runc "$runc")
	(cd "$src" && CGO_ENABLED=1 go build -trimpath -tags seccomp -o "$dest/runc" \
		-ldflags "-X main.version=${runc#v}" .)
	stamp runc "$runc"
fi

cni_bins=()
for p in "${cni_plugins[@]}"; do cni_bins+=("$dest/cni/$p"); done
if ! fresh cni-plugins "$cni" "${cni_bins[@]}"; then
	echo "cri-deps: building CNI plugins $cni" >&2
	src=$(moddir github.com/containernetworking/plugins "$cni")
	# Each plugin's main package sits in plugins/<kind>/<name>.
	(cd "$src" && for p in "${cni_plugins[@]}"; do
		pkg=$(ls -d plugins/*/"$p")
		CGO_ENABLED=0 go build -trimpath -o "$dest/cni/$p" "./$pkg"
	done)
	stamp cni-plugins "$cni"
fi

bb_version=$(apt-cache policy busybox | sed -n 's/^  Candidate: //p')
if [ -z "$bb_version" ] || [ "$bb_version" = "(none)" ]; then
	apt-get update -qq
	bb_version=$(apt-cache policy busybox | sed -n 's/^  Candidate: //p')
fi
if ! fresh busybox "$bb_version" "$dest/busybox/busybox"; then
	echo "cri-deps: fetching Debian's busybox $bb_version" >&2
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	# apt's download user must be able to write the directory.
	chmod 777 "$tmp"
	(cd "$tmp" && apt-get download -qq "busybox=$bb_version" && dpkg-deb -x busybox_*.deb x)
	mkdir -p "$dest/busybox"
	install -m 755 "$tmp/x/bin/busybox" "$dest/busybox/busybox"
	stamp busybox "$bb_version"
fi
