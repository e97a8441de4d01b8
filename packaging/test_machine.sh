#!/usr/bin/env bash
# Prepares this machine for `make test`: the Debian packages the tests use, installed when any is
# missing (as root; anyone else is shown the one apt-get line to run), and PostgreSQL and Redis
# on loopback, started when they are down. Safe to run again: it changes nothing that is there.
set -euo pipefail

# What each package is for:
# - build-essential, libldap2-dev, libsasl2-dev: python-ldap (directory sign-in) and
#   llama-cpp-python (the local model server the LLM tests run) build from source;
# - slapd, ldap-utils: the directory the sign-in tests run against (tests/ldap_server.py);
# - tesseract-ocr (+ eng, chi-sim), poppler-utils: OCR of scanned PDFs and images;
# - fonts-dejavu-core, fonts-wqy-microhei: the fonts the tests draw scanned pages with;
# - gettext: compiles the portal's translations;
# - chromium, chromium-driver: the browser tests (tests/browser/), never a downloaded browser;
# - nginx-light: `nginx -t` checks the proxy configurations (tests/test_compose.py);
# - strace: watches every process of the offline run for network calls
#   (tests/e2e/test_offline_namespace.py);
# - iproute2: the network namespace with no route that offline run uses.
PACKAGES=(
  build-essential libldap2-dev libsasl2-dev slapd ldap-utils
  tesseract-ocr tesseract-ocr-eng tesseract-ocr-chi-sim poppler-utils
  fonts-dejavu-core fonts-wqy-microhei gettext chromium chromium-driver nginx-light strace
  iproute2
)
# python-ldap also needs Python.h; a Python built from source has its own, Debian's comes
# with python3-dev.
python_include=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
[ -f "$python_include/Python.h" ] || PACKAGES+=(python3-dev)

missing=()
for package in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "make test needs Debian packages that are missing; as root, run:" >&2
    echo "  apt-get update && apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "Installing the Debian packages the tests use: ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
fi

# The services this kind of machine comes with; started again if they were stopped.
if ! command -v pg_isready >/dev/null || ! command -v redis-cli >/dev/null; then
  echo "make test needs PostgreSQL and Redis on 127.0.0.1 (ports 5432 and 6379)." >&2
  exit 1
fi
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "Starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
  for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "Starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 30); do redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && break; sleep 1; done
fi
pg_isready -q -h 127.0.0.1 -p 5432 || { echo "PostgreSQL did not start" >&2; exit 1; }
redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 || { echo "Redis did not start" >&2; exit 1; }
