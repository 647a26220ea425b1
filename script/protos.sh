#!/usr/bin/env bash
# Regenerates the Go code for the API protos under api/, or verifies that the
# checked-in code is current.
#
#   script/protos.sh          regenerate api/**/*.pb.go in place
#   script/protos.sh check    regenerate into a temp dir, fail if anything differs
#
# Generators are pinned and installed into bin/tools so output is reproducible.
# protoc itself comes from the distribution (Debian bookworm: 3.21.12); its
# version is written into file headers, so those header lines are ignored when
# checking to keep `check` usable with a different protoc.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

PROTOC_GEN_GO_VERSION=v1.36.12
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2
PROTOC_GEN_GO_TTRPC_VERSION=v1.2.10
EXPECTED_PROTOC=3.21.12

TOOLS=$ROOT/bin/tools
MODULE=github.com/llitfkitfk/containerd

# Directories (relative to api/) generated with protoc-gen-go and
# protoc-gen-go-grpc (the latter emits nothing for files without services).
GRPC_DIRS=(
	types
	types/task
	types/transfer
	types/runc/options
	runtime/bootstrap/v1
	events
	services/version/v1
	services/introspection/v1
	services/namespaces/v1
	services/events/v1
	services/content/v1
	services/images/v1
	services/leases/v1
	services/snapshots/v1
	services/diff/v1
	services/containers/v1
	services/tasks/v1
	services/transfer/v1
	services/streaming/v1
)

# Directories generated with protoc-gen-go and protoc-gen-go-ttrpc: the
# shim-facing services, which are served over ttrpc.
TTRPC_DIRS=(
	runtime/task/v2
	services/ttrpc/events/v1
)

log() { echo "protos: $*" >&2; }
die() { log "error: $*"; exit 1; }

ensure_protoc() {
	if command -v protoc >/dev/null 2>&1; then
		return
	fi
	if [[ $(id -u) -ne 0 ]]; then
		die "protoc not found; install it (Debian/Ubuntu: apt-get install -y protobuf-compiler) or rerun as root"
	fi
	log "installing protoc (protobuf-compiler)"
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y protobuf-compiler
	command -v protoc >/dev/null 2>&1 || die "protoc still missing after apt-get install"
}

# install_tool <binary> <package> <version>: go install unless the binary in
# bin/tools was already built from that module version.
install_tool() {
	local bin=$1 pkg=$2 version=$3 have=""
	if [[ -x $TOOLS/$bin ]]; then
		have=$(go version -m "$TOOLS/$bin" 2>/dev/null | awk '$1 == "mod" { print $3; exit }')
	fi
	if [[ $have != "$version" ]]; then
		log "installing $pkg@$version"
		GOBIN=$TOOLS go install "$pkg@$version"
	fi
}

ensure_tools() {
	mkdir -p "$TOOLS"
	install_tool protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go "$PROTOC_GEN_GO_VERSION"
	install_tool protoc-gen-go-grpc google.golang.org/grpc/cmd/protoc-gen-go-grpc "$PROTOC_GEN_GO_GRPC_VERSION"
	install_tool protoc-gen-go-ttrpc github.com/containerd/ttrpc/cmd/protoc-gen-go-ttrpc "$PROTOC_GEN_GO_TTRPC_VERSION"
}

# Include path for the well-known types that ship with protoc
# (e.g. /usr/bin/protoc -> /usr/include/google/protobuf/*.proto).
wkt_include() {
	local dir
	dir=$(dirname "$(readlink -f "$(command -v protoc)")")/../include
	if [[ -f $dir/google/protobuf/any.proto ]]; then
		(cd "$dir" && pwd)
	fi
}

# protos_in <dir>: the .proto files directly in api/<dir>, relative to api/.
protos_in() {
	(cd "$ROOT/api" && find "$1" -maxdepth 1 -name '*.proto' 2>/dev/null | sort)
}

# generate <out_root>: write generated Go under <out_root>/api, reading the
# .proto files from the repository. api/third_party is include-only.
generate() {
	local out=$1 dir files wkt
	local -a inc=(-I "$ROOT/api" -I "$ROOT/api/third_party")
	wkt=$(wkt_include)
	if [[ -n $wkt ]]; then
		inc+=(-I "$wkt")
	fi

	local have
	have=$(protoc --version | awk '{ print $2 }')
	if [[ $have != "$EXPECTED_PROTOC" ]]; then
		log "warning: protoc $have, checked-in code was generated with $EXPECTED_PROTOC"
	fi

	mkdir -p "$out/api"
	# One protoc run per Go package, as protoc-gen-go expects.
	for dir in "${GRPC_DIRS[@]}"; do
		mapfile -t files < <(protos_in "$dir")
		[[ ${#files[@]} -gt 0 ]] || die "no .proto files in api/$dir"
		PATH=$TOOLS:$PATH protoc "${inc[@]}" \
			--go_out="$out/api" --go_opt=paths=source_relative \
			--go-grpc_out="$out/api" --go-grpc_opt=paths=source_relative \
			"${files[@]}"
	done
	for dir in "${TTRPC_DIRS[@]}"; do
		mapfile -t files < <(protos_in "$dir")
		[[ ${#files[@]} -gt 0 ]] || die "no .proto files in api/$dir"
		PATH=$TOOLS:$PATH protoc "${inc[@]}" \
			--go_out="$out/api" --go_opt=paths=source_relative \
			--go-ttrpc_out="$out/api" --go-ttrpc_opt=paths=source_relative \
			"${files[@]}"
	done
}

# Fail early if a .proto was added in a directory the lists above miss, or
# points its go_package outside this module.
check_sources() {
	local bad
	bad=$(cd "$ROOT/api" && grep -L "option go_package = \"$MODULE/api/" $(find . -path ./third_party -prune -o -name '*.proto' -print) || true)
	[[ -z $bad ]] || die "go_package must start with $MODULE/api/: $bad"

	local dir known
	while IFS= read -r dir; do
		known=0
		for d in "${GRPC_DIRS[@]}" "${TTRPC_DIRS[@]}"; do
			[[ $d == "$dir" ]] && known=1
		done
		[[ $known -eq 1 ]] || die "api/$dir has .proto files but is not listed in script/protos.sh"
	done < <(cd "$ROOT/api" && find . -path ./third_party -prune -o -name '*.proto' -printf '%h\n' | sed 's|^\./||' | sort -u)
}

# Generated files currently in the tree (relative to the repo root).
checked_in() {
	find api -path api/third_party -prune -o -name '*.pb.go' -print | sort
}

strip_protoc_version() {
	# protoc-gen-go writes "//	protoc  vX", protoc-gen-go-grpc "// - protoc  vX".
	grep -Ev '^//([[:space:]]|[[:space:]]-[[:space:]])protoc[[:space:]]+(v|\(unknown\))' "$1"
}

cmd_generate() {
	check_sources
	ensure_protoc
	ensure_tools
	# Generate aside first so a protoc failure leaves the tree untouched, then
	# replace all old output so deleted protos leave no stale code behind.
	local f
	TMP=$(mktemp -d)
	trap 'rm -rf "$TMP"' EXIT
	generate "$TMP"
	checked_in | xargs -r rm -f
	while IFS= read -r f; do
		cp "$TMP/$f" "$ROOT/$f"
	done < <(cd "$TMP" && find api -name '*.pb.go')
	log "generated $(checked_in | wc -l) files"
	(cd "$ROOT" && go build ./api/...) || die "generated code does not build"
}

cmd_check() {
	check_sources
	ensure_protoc
	ensure_tools
	local f bad=0
	TMP=$(mktemp -d)
	trap 'rm -rf "$TMP"' EXIT
	generate "$TMP"

	while IFS= read -r f; do
		if [[ ! -f $f ]]; then
			echo "missing: $f"
			bad=1
		elif ! cmp -s <(strip_protoc_version "$TMP/$f") <(strip_protoc_version "$f"); then
			echo "out of date: $f"
			bad=1
		fi
	done < <(cd "$TMP" && find api -name '*.pb.go' | sort)

	while IFS= read -r f; do
		if [[ ! -f $TMP/$f ]]; then
			echo "stale (no .proto generates it): $f"
			bad=1
		fi
	done < <(checked_in)

	if [[ $bad -ne 0 ]]; then
		die "generated Go is not up to date; run script/protos.sh"
	fi
	log "generated Go is up to date"
}

case ${1:-generate} in
generate) cmd_generate ;;
check) cmd_check ;;
*) die "usage: $0 [generate|check]" ;;
esac
