#!/usr/bin/env bash
# Installs everything abook and its test suite need on a fresh Debian 12 machine (run as root):
# the system servers the tests start privately (slapd, Dovecot, PostgreSQL), the LDAP client tools,
# systemd-analyze (which checks contrib/abook.service),
# and a virtual environment in .venv with abook installed in editable mode.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
for pair in openssl:openssl slapd:slapd ldapsearch:ldap-utils dovecot:dovecot-imapd /usr/lib/dovecot/pop3:dovecot-pop3d \
            /usr/lib/postgresql/15/bin/initdb:postgresql /usr/lib/postgresql/15/lib/pg_trgm.so:postgresql \
            systemd-analyze:systemd; do
  cmd=${pair%%:*}; pkg=${pair##*:}
  if [[ $cmd == /* ]]; then [[ -e $cmd ]] || need_apt+=("$pkg"); else command -v "$cmd" >/dev/null || need_apt+=("$pkg"); fi
done
if ((${#need_apt[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  # Keep the packages from starting system-wide daemons: the tests start their own on 127.0.0.1.
  had_policy=0; [[ -e /usr/sbin/policy-rc.d ]] && had_policy=1
  if ((!had_policy)); then printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" python3-venv >/dev/null
  ((had_policy)) || rm -f /usr/sbin/policy-rc.d
fi

PY=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then "$PY" -m venv .venv; fi
stamp=.venv/.abook-installed
if [[ ! -e $stamp || pyproject.toml -nt $stamp ]]; then
  .venv/bin/pip install -q --disable-pip-version-check -e '.[test]' --config-settings editable_mode=compat
  touch "$stamp"
fi
