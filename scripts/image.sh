#!/usr/bin/env bash
# Builds the service's container image from the repository's Dockerfile, as
# written, and tests it with podman, on a machine that reaches no image
# registry: the two base images the Dockerfile names are made here first,
# under those names, from Debian's packages (debootstrap) and this
# machine's Go toolchain. Needs root and Debian's buildah, podman, runc and
# debootstrap (CI installs them; see docs/deployment.md).
#
#   scripts/image.sh bases     make golang:1.26-bookworm and
#                              gcr.io/distroless/static-debian12:nonroot
#   scripts/image.sh build     build the image (bases first if missing)
#   scripts/image.sh test      build, then run the image's tests with podman
#                              against a broker on the host (go test -tags image)
#
# Environment: IMAGE (default localhost/ingestion-service:ci), IMAGE_WORK
# (the Debian root, default <repo>/.cache/image), DEBIAN_MIRROR,
# PODMAN_FLAGS (podman's global flags, default --runtime=runc
# --cgroup-manager=cgroupfs: crun refuses this kind of machine's cgroups,
# and there is no systemd), KAFKA_TEST_BROKERS (a real broker for the
# tests; kfake in the test process otherwise).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
WORK="${IMAGE_WORK:-$REPO_ROOT/.cache/image}"
IMAGE="${IMAGE:-localhost/ingestion-service:ci}"
GOLANG_BASE="docker.io/library/golang:1.26-bookworm"
STATIC_BASE="gcr.io/distroless/static-debian12:nonroot"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

export PODMAN_FLAGS="${PODMAN_FLAGS:---runtime=runc --cgroup-manager=cgroupfs}"
read -r -a PODMAN <<<"podman $PODMAN_FLAGS"

PROG=image.sh
USAGE_FILE="${BASH_SOURCE[0]}"
# shellcheck source=scripts/lib.sh
. "$SCRIPT_DIR/lib.sh"

# debian_root makes (once) a minimal Debian bookworm root with CA
# certificates and time zones, the source of both bases.
debian_root() {
	local root="$WORK/bookworm"
	if [[ -f "$root/.done" ]]; then
		echo "$root"
		return
	fi
	rm -rf "$root"
	mkdir -p "$root"
	log "debootstrap --variant=minbase bookworm (CA certificates, time zones) ..."
	debootstrap --variant=minbase --include=ca-certificates,tzdata bookworm "$root" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 ||
		die "debootstrap failed; see $WORK/debootstrap.log"
	touch "$root/.done"
	echo "$root"
}

# host_ca_bundle prints the CA bundle this machine's own tools trust.
host_ca_bundle() {
	local f
	for f in "${SSL_CERT_FILE:-}" /etc/ssl/certs/ca-certificates.crt; do
		if [[ -n "$f" && -f "$f" ]]; then
			echo "$f"
			return
		fi
	done
	die "no CA bundle on this machine (SSL_CERT_FILE or /etc/ssl/certs/ca-certificates.crt)"
}

# golang_base imports the Debian root with this machine's Go toolchain in
# /usr/local/go, as the official golang image lays it out.
golang_base() {
	local root="$1" goroot
	goroot="$(go env GOROOT)"
	local ctr
	ctr="$(buildah from --pull=never scratch)"
	local mnt
	mnt="$(buildah mount "$ctr")"
	cp -a "$root/." "$mnt/"
	rm -f "$mnt/.done"
	mkdir -p "$mnt/usr/local/go" "$mnt/go"
	cp -a "$goroot/." "$mnt/usr/local/go/"
	# The build stage downloads modules the way this machine does, so it
	# trusts what this machine trusts (a proxy on the way may sign with a
	# CA that Debian's bundle lacks).
	cp "$(host_ca_bundle)" "$mnt/etc/ssl/certs/ca-certificates.crt"
	buildah umount "$ctr" >/dev/null
	buildah config \
		--env PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		--env GOPATH=/go --env GOTOOLCHAIN=local --workingdir /go "$ctr"
	buildah commit --quiet --rm "$ctr" "$GOLANG_BASE" >/dev/null
}

# static_base makes a distroless-like static base: root and nonroot
# (65532) users, /home/nonroot, /tmp, CA certificates and time zones.
static_base() {
	local root="$1"
	local ctr mnt
	ctr="$(buildah from --pull=never scratch)"
	mnt="$(buildah mount "$ctr")"
	mkdir -p "$mnt/etc/ssl/certs" "$mnt/usr/share" "$mnt/home/nonroot" "$mnt/tmp"
	cp -a "$root/etc/ssl/certs/ca-certificates.crt" "$mnt/etc/ssl/certs/"
	cp -a "$root/usr/share/zoneinfo" "$mnt/usr/share/"
	printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$mnt/etc/passwd"
	printf 'root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n' >"$mnt/etc/group"
	chown 65532:65532 "$mnt/home/nonroot"
	chmod 1777 "$mnt/tmp"
	buildah umount "$ctr" >/dev/null
	buildah config --user 65532:65532 --workingdir /home/nonroot "$ctr"
	buildah commit --quiet --rm "$ctr" "$STATIC_BASE" >/dev/null
}

cmd_bases() {
	need debootstrap "Debian's debootstrap package"
	need buildah "Debian's buildah package"
	mkdir -p "$WORK"
	local root start=$SECONDS
	root="$(debian_root)"
	golang_base "$root"
	static_base "$root"
	log "base images in $((SECONDS - start)) s: $GOLANG_BASE, $STATIC_BASE"
}

# cmd_build builds the image from the Dockerfile unchanged. --format docker:
# the OCI format has no HEALTHCHECK, and buildah drops it there.
cmd_build() {
	need buildah "Debian's buildah package"
	local base
	for base in "$GOLANG_BASE" "$STATIC_BASE"; do
		buildah inspect --type image "$base" >/dev/null 2>&1 || {
			cmd_bases
			break
		}
	done
	local start=$SECONDS version
	version="$(git -C "$REPO_ROOT" describe --tags --always --dirty 2>/dev/null || echo dev)"
	buildah bud --format docker --isolation chroot --pull=never --network host \
		--build-arg "VERSION=$version" -t "$IMAGE" -f "$REPO_ROOT/Dockerfile" "$REPO_ROOT"
	local size
	size="$("${PODMAN[@]}" image inspect --format '{{.Size}}' "$IMAGE")"
	log "built $IMAGE ($version) in $((SECONDS - start)) s: $((size / 1000000)) MB ($size bytes)"
}

cmd_test() {
	need podman "Debian's podman package"
	need runc "Debian's runc package"
	cmd_build
	cd "$REPO_ROOT"
	INGESTION_IMAGE="$IMAGE" go test -tags image -count=1 -timeout 15m -v -run '^TestImage$' ./cmd/ingestion-service
}

[[ $EUID -eq 0 ]] || die "run as root: buildah and podman build and run images as root here"
case "${1:-}" in
bases) cmd_bases ;;
build) cmd_build ;;
test) cmd_test ;;
*) usage ;;
esac
