#!/usr/bin/env bash
# Installs logcollect on a host: the static binaries, the systemd units, the system user and
# example settings. Run as root from a checkout after scripts/build-static.sh, or from any
# folder holding the three binaries (--from).
#
# Usage: scripts/install.sh [--root DIR] [--from DIR] [--uninstall [--purge]]
#   --root DIR   install under DIR instead of / (a staging or test root; nothing is started)
#   --from DIR   where log-agent, log-transfer and logctl are
#                (default target/static/x86_64-unknown-linux-musl/release)
#   --uninstall  stop and remove the binaries and units; settings and the agent's registry
#                stay unless --purge is given too
#
# Layout: /usr/local/bin/{log-agent,log-transfer,logctl}, /etc/systemd/system/log-*.service,
# /etc/logcollect/{agent,transfer}.ini (root:logcollect 0640, never overwritten),
# /usr/lib/sysusers.d/logcollect.conf (user logcollect, member of adm), the README under
# /usr/local/share/doc/logcollect. The agent keeps its registry in /var/lib/log-agent.
set -euo pipefail
cd "$(dirname "$0")/.."

ROOT=/ FROM=target/static/x86_64-unknown-linux-musl/release ACTION=install PURGE=""
while [ $# -gt 0 ]; do
    case $1 in
        --root) ROOT=${2:?--root needs a folder}; shift ;;
        --from) FROM=${2:?--from needs a folder}; shift ;;
        --uninstall) ACTION=uninstall ;;
        --purge) PURGE=1 ;;
        -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "install.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
ROOT=${ROOT%/}
BINARIES=(log-agent log-transfer logctl)
UNITS=(log-agent.service log-transfer.service)
# systemctl only on the running system, not in a staging root.
live() { [ -z "$ROOT" ] && [ -d /run/systemd/system ]; }

if [ "$(id -u)" != 0 ] && [ -z "$ROOT" ]; then
    echo "install.sh: run as root (or give --root DIR)" >&2
    exit 1
fi

if [ "$ACTION" = uninstall ]; then
    if live; then
        systemctl disable --now "${UNITS[@]}" 2>/dev/null || true
    fi
    for b in "${BINARIES[@]}"; do rm -f "$ROOT/usr/local/bin/$b"; done
    for u in "${UNITS[@]}"; do rm -f "$ROOT/etc/systemd/system/$u"; done
    rm -f "$ROOT/usr/lib/sysusers.d/logcollect.conf"
    rm -rf "$ROOT/usr/local/share/doc/logcollect"
    if [ -n "$PURGE" ]; then
        rm -rf "$ROOT/etc/logcollect" "$ROOT/var/lib/log-agent"
    fi
    live && systemctl daemon-reload
    echo "logcollect removed${PURGE:+, with its settings and registry}${PURGE:- (settings in /etc/logcollect and the registry in /var/lib/log-agent kept)}"
    exit 0
fi

for b in "${BINARIES[@]}"; do
    [ -x "$FROM/$b" ] || { echo "install.sh: $FROM/$b not found: run scripts/build-static.sh first, or give --from" >&2; exit 1; }
done

install -d -m 0755 "$ROOT/usr/local/bin" "$ROOT/etc/systemd/system" "$ROOT/usr/lib/sysusers.d" \
    "$ROOT/usr/local/share/doc/logcollect"
for b in "${BINARIES[@]}"; do install -m 0755 "$FROM/$b" "$ROOT/usr/local/bin/$b"; done
for u in "${UNITS[@]}"; do install -m 0644 "conf/deploy/$u" "$ROOT/etc/systemd/system/$u"; done
install -m 0644 conf/deploy/logcollect.sysusers "$ROOT/usr/lib/sysusers.d/logcollect.conf"
install -m 0644 README.md "$ROOT/usr/local/share/doc/logcollect/README.md"

# The user first: the settings belong to its group.
if [ -n "$ROOT" ]; then
    systemd-sysusers --root="$ROOT" "$ROOT/usr/lib/sysusers.d/logcollect.conf"
else
    systemd-sysusers /usr/lib/sysusers.d/logcollect.conf
fi
owner=()
if [ "$(id -u)" = 0 ]; then
    owner=(-o 0 -g "$(awk -F: '$1 == "logcollect" { print $3 }' "$ROOT/etc/group")")
fi

# Settings: the examples, only where there are none yet. They may hold passwords: readable
# by root and the daemons' group only.
install -d -m 0750 "${owner[@]}" "$ROOT/etc/logcollect"
for f in agent transfer; do
    if [ -e "$ROOT/etc/logcollect/$f.ini" ]; then
        echo "kept /etc/logcollect/$f.ini"
    else
        install -m 0640 "${owner[@]}" "conf/$f.ini" "$ROOT/etc/logcollect/$f.ini"
    fi
done

if live; then
    systemctl daemon-reload
fi
cat <<EOF
logcollect installed${ROOT:+ under $ROOT}. Next:
  1. edit /etc/logcollect/agent.ini (etcd endpoints, Kafka brokers) and, on the transfer's
     host, /etc/logcollect/transfer.ini;
  2. systemctl enable --now log-agent      (or log-transfer);
  3. logctl status                          (each daemon reports its configuration revision).
EOF
