#!/usr/bin/env bash
# Installs what the integration tests and benchmarks drive the daemon with:
# ctr and containerd-shim-runc-v2 (Debian's containerd package), runc,
# busybox-static for the test image, systemd-analyze for checking the unit
# file, mkfs.ext4 for the fresh filesystems of the unpack benchmark, and a
# registry (docker-registry, with htpasswd from apache2-utils for its basic
# auth) for the pull and push tests.
# Only what is missing.
set -euo pipefail

missing=()
command -v ctr >/dev/null || missing+=(containerd)
command -v runc >/dev/null || missing+=(runc)
command -v systemd-analyze >/dev/null || missing+=(systemd)
command -v mkfs.ext4 >/dev/null || missing+=(e2fsprogs)
command -v docker-registry >/dev/null || missing+=(docker-registry)
command -v htpasswd >/dev/null || missing+=(apache2-utils)
# The containers the tests run are built from the host's static busybox.
dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "test-deps: need ${missing[*]}; run as root or install them" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian's package would start its own daemon where systemd runs; the tests
# never use it, and it must not hold the default paths.
if command -v systemctl >/dev/null && systemctl is-active --quiet containerd 2>/dev/null; then
	systemctl stop containerd || true
fi
