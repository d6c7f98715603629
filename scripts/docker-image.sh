#!/usr/bin/env bash
# Starts dockerd when no engine answers, then builds the docker sandbox image when missing:
# a minimal Debian rootfs made by debootstrap (python3 + numpy/pandas/sklearn from Debian
# packages, no registry pulls) imported with `docker import`.
# Usage: scripts/docker-image.sh [IMAGE]   (default sandmle/sandbox:bookworm)
# Exit status: 0 when the engine runs and the image exists, 1 otherwise (with the reason).
set -u
IMAGE="${1:-${SANDMLE_DOCKER_IMAGE:-sandmle/sandbox:bookworm}}"
SUITE="${SANDMLE_DEBIAN_SUITE:-bookworm}"
MIRROR="${SANDMLE_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
LOG="${TMPDIR:-/tmp}/sandmle-dockerd.log"
SUDO=""
[ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null && SUDO="sudo -n"

if ! command -v docker >/dev/null 2>&1; then
  echo "docker-image: no docker client; run scripts/install-system-deps.sh" >&2; exit 1
fi
if ! docker info >/dev/null 2>&1; then
  if ! command -v dockerd >/dev/null 2>&1; then
    echo "docker-image: no engine answers and dockerd is not installed" >&2; exit 1
  fi
  echo "docker-image: starting dockerd (log: $LOG)"
  $SUDO sh -c "nohup dockerd >'$LOG' 2>&1 &"
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  if ! docker info >/dev/null 2>&1; then
    echo "docker-image: dockerd did not start; last log lines:" >&2; tail -5 "$LOG" >&2; exit 1
  fi
fi
if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "docker-image: $IMAGE present"; exit 0
fi
if ! command -v debootstrap >/dev/null 2>&1; then
  echo "docker-image: debootstrap missing; run scripts/install-system-deps.sh" >&2; exit 1
fi
ROOTFS="$(mktemp -d "${TMPDIR:-/tmp}/sandmle-rootfs.XXXXXX")"
trap '$SUDO rm -rf "$ROOTFS"' EXIT
echo "docker-image: debootstrap $SUITE into $ROOTFS (about a minute)"
if ! $SUDO debootstrap --variant=minbase \
    --include=python3,python3-numpy,python3-pandas,python3-sklearn,procps \
    "$SUITE" "$ROOTFS" "$MIRROR" >"$ROOTFS.log" 2>&1; then
  echo "docker-image: debootstrap with the scientific stack failed; trying python3 only" >&2
  $SUDO rm -rf "$ROOTFS"; mkdir -p "$ROOTFS"
  if ! $SUDO debootstrap --variant=minbase --include=python3,procps "$SUITE" "$ROOTFS" "$MIRROR" >>"$ROOTFS.log" 2>&1; then
    echo "docker-image: debootstrap failed; see $ROOTFS.log" >&2; exit 1
  fi
fi
$SUDO rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
$SUDO tar -C "$ROOTFS" -c . | docker import -c 'CMD ["python3"]' - "$IMAGE" >/dev/null \
  && echo "docker-image: built $IMAGE" || { echo "docker-image: docker import failed" >&2; exit 1; }
