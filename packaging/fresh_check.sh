#!/usr/bin/env bash
# The fresh-machine check (`make fresh-check`, as root): proves the README's `make run` on a
# machine that has nothing installed, instead of trusting a developer machine that keeps what
# earlier work left behind.
#
# 1. A minimal Debian 12 root (debootstrap --variant=minbase bookworm) gets python3,
#    python3-venv, make and git, and nothing else. To reach the package registries it gets this
#    host's resolv.conf and CA bundle (and a pip.conf naming that bundle); the folder holding the CPU torch wheel (TORCH_WHEELS) is
#    bind-mounted where the Makefile looks for it. Commands inside run under `env -i`.
# 2. The repository is cloned into it (the committed HEAD, not the working tree) and
#    `make run` starts in the background.
# 3. packaging/fresh_check_client.py waits for the portal, signs in as the demo user alice,
#    asks the README's question over the streaming endpoint and checks that a cited answer
#    comes back.
# 4. It prints the wall time from clone to first cited answer, then stops everything.
#
# Not part of `make test`/CI: it downloads every wheel afresh (several minutes).
set -euo pipefail

REPO=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
FRESH_ROOT=${FRESH_ROOT:-/var/tmp/kb-fresh-root}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
TORCH_WHEELS=${TORCH_WHEELS:-/opt/wheels}
PORT=${FRESH_PORT:-8765}
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
QUESTION=${FRESH_QUESTION:-Who approves invoices above 50,000 EUR?}
INSIDE_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

[ "$(id -u)" -eq 0 ] || { echo "fresh-check builds a chroot: run it as root" >&2; exit 1; }
command -v debootstrap >/dev/null || {
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap
}

inside() {  # a command in the root, with nothing of this host's environment
  chroot "$FRESH_ROOT" env -i HOME=/root PATH="$INSIDE_PATH" LANG=C.UTF-8 bash -c "$1"
}
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then
    pkill -TERM -s "$server_pid" 2>/dev/null || true
    sleep 2
    pkill -KILL -s "$server_pid" 2>/dev/null || true
  fi
  for mount in opt/wheels mnt/repo dev/pts dev proc; do
    mountpoint -q "$FRESH_ROOT/$mount" && umount -l "$FRESH_ROOT/$mount"
  done
  return 0
}
trap cleanup EXIT

step() { printf '[%s] %s\n' "$(date +%T)" "$*"; }

step "debootstrap --variant=minbase bookworm into $FRESH_ROOT"
cleanup
rm -rf "$FRESH_ROOT"
started=$(date +%s)
debootstrap --variant=minbase bookworm "$FRESH_ROOT" "$DEBIAN_MIRROR" >"$FRESH_ROOT.debootstrap.log" 2>&1 \
  || { tail -20 "$FRESH_ROOT.debootstrap.log"; exit 1; }
step "debootstrap done in $(($(date +%s) - started)) s"

cp /etc/resolv.conf "$FRESH_ROOT/etc/resolv.conf"
mkdir -p "$FRESH_ROOT/etc/ssl/certs" "$FRESH_ROOT/opt/wheels" "$FRESH_ROOT/mnt/repo"
mount -t proc proc "$FRESH_ROOT/proc"
mount --bind /dev "$FRESH_ROOT/dev"
mount --bind /dev/pts "$FRESH_ROOT/dev/pts"
mount --bind -o ro "$TORCH_WHEELS" "$FRESH_ROOT/opt/wheels"
mount --bind -o ro "$REPO" "$FRESH_ROOT/mnt/repo"

step "apt-get install python3 python3-venv make git (nothing else)"
inside "apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
  --no-install-recommends python3 python3-venv make git >/dev/null"
inside "python3 --version; make --version | head -1; git --version"
# After apt (its ca-certificates package rewrites the bundle): this host's CA bundle, and pip
# pointed at it as this host's pip configuration does. Registry access only.
cp "$CA_BUNDLE" "$FRESH_ROOT/etc/ssl/certs/ca-certificates.crt"
printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$FRESH_ROOT/etc/pip.conf"

step "git clone, then make run (log: $FRESH_ROOT/root/make-run.log)"
clone_started=$(date +%s)
inside "git clone -q /mnt/repo /root/kb && git -C /root/kb log --oneline -1"
# setsid: its own session, so everything `make run` starts is stopped together at the end.
setsid chroot "$FRESH_ROOT" env -i HOME=/root PATH="$INSIDE_PATH" LANG=C.UTF-8 \
  bash -c "cd /root/kb && make run PORT=$PORT" >"$FRESH_ROOT/root/make-run.log" 2>&1 &
server_pid=$!

if python3 "$REPO/packaging/fresh_check_client.py" --base "http://127.0.0.1:$PORT" \
    --question "$QUESTION" --server-pid "$server_pid" --log "$FRESH_ROOT/root/make-run.log"; then
  elapsed=$(($(date +%s) - clone_started))
  step "PASS: clone -> first cited answer in ${elapsed} s ($((elapsed / 60)) min $((elapsed % 60)) s)"
  echo "make run's own output, abridged:"
  grep -v -e '^  ' -e 'WARNING' "$FRESH_ROOT/root/make-run.log" | tail -25
else
  step "FAIL: see $FRESH_ROOT/root/make-run.log"
  tail -40 "$FRESH_ROOT/root/make-run.log"
  exit 1
fi
