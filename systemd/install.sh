#!/usr/bin/env bash
# Install edge-inspect as a systemd service on a station (run as root from the repository root):
#   sudo systemd/install.sh [--extras camera] [--prefix /opt/edge-inspect]
# Creates the 'edge' user, a virtual environment with edge-inspect, /etc/edge-inspect with an
# example station.yaml (kept if present), and the edge-run@.service template.
set -euo pipefail

prefix=/opt/edge-inspect
extras=camera
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix=$2; shift 2 ;;
    --extras) extras=$2; shift 2 ;;
    *) echo "install.sh: unknown option $1 (expected --prefix DIR, --extras LIST)" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "install.sh: run as root" >&2; exit 2; }
here=$(cd "$(dirname "$0")/.." && pwd)

id edge >/dev/null 2>&1 || useradd --system --home-dir /var/lib/edge-inspect --shell /usr/sbin/nologin edge
getent group video >/dev/null && usermod -aG video edge

python3 -m venv "$prefix/venv"
"$prefix/venv/bin/pip" install --quiet "$here[${extras}]"

install -d -m 0755 /etc/edge-inspect
if [ ! -f /etc/edge-inspect/station.yaml ]; then
  install -m 0644 "$here/systemd/station.example.yaml" /etc/edge-inspect/station.yaml
  echo "wrote /etc/edge-inspect/station.yaml: edit the camera source and model before starting"
fi
[ -f /etc/edge-inspect/edge-run.env ] || install -m 0640 -g edge /dev/null /etc/edge-inspect/edge-run.env

sed "s#/opt/edge-inspect/venv#$prefix/venv#" "$here/systemd/edge-run@.service" > /etc/systemd/system/edge-run@.service
install -d /usr/share/doc/edge-inspect && install -m 0644 "$here/docs/OPERATIONS.md" /usr/share/doc/edge-inspect/
systemd-analyze verify /etc/systemd/system/edge-run@.service || true
systemctl daemon-reload
echo "installed. Start a camera with: systemctl enable --now edge-run@cam0"
