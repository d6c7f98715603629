#!/usr/bin/env bash
# Installs the system packages the sandboxes use: bubblewrap (local sandbox isolation),
# docker.io (docker sandbox engine) and debootstrap (builds the docker image offline), and
# chromium (the tests open report.html in a real headless browser).
# Idempotent; runs apt directly as root, through sudo otherwise; never fails hard: it prints
# what it could not do and exits 0, so `make install` still works on machines without apt.
set -u
PKGS=(bubblewrap docker.io debootstrap chromium)
missing=()
for pkg in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-system-deps: already installed: ${PKGS[*]}"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-system-deps: no apt-get here; install these yourself: ${missing[*]}" >&2
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
  else
    echo "install-system-deps: not root and no passwordless sudo; please run:" >&2
    echo "  sudo apt-get install -y ${missing[*]}" >&2
    exit 0
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq || echo "install-system-deps: apt-get update failed (continuing)" >&2
for pkg in "${missing[@]}"; do
  if $SUDO apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null; then
    echo "install-system-deps: installed $pkg"
  else
    echo "install-system-deps: could NOT install $pkg (the sandbox that needs it will be skipped)" >&2
  fi
done
exit 0
