#!/usr/bin/env bash
# ldap_bench.sh - abook's LDAP server against OpenLDAP's slapd, back to back in one run, on the same
# generated directory, measured by bench/ldapload.py.
#
#   bash bench/ldap_bench.sh [-n 100000] [-c 8] [-d 20] [--workers N] [--json FILE]
#
#   1. generates N contacts with gen_directory.py (one LDIF for both servers);
#   2. runs slapd_baseline.sh on it (tuned substring index, anonymous read);
#   3. imports the same LDIF into a fresh SQLite abook store, creates a user "bench" with
#      organisation-wide read on every book (the visibility predicate is part of abook's cost),
#      starts `abook serve` on a free port with ldap.workers = N (default: one per CPU, as slapd's threads
#      use every CPU; each process runs on a CPU of its own), verifies ldapload against ldapsearch, then
#      measures the same workloads bound as that user (CPU time summed over all abook processes), and
#      reports abook's RSS per process and in all;
#      The vlv workload (Virtual List View windows of 50, as Outlook and Roundcube browse) runs against
#      abook only: slapd_baseline.sh has no sssvlv overlay, as a stock slapd, and refuses VLV;
#   4. prints the Markdown tables (report.py) and the abook/slapd ratios.
# Everything runs on 127.0.0.1 in a temporary directory that is removed at the end.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
PY=$ROOT/.venv/bin/python
ABOOK=$ROOT/.venv/bin/abook
N=100000; CONNS=8; DURATION=20; WARMUP=3; JSON=""; SKIP_SLAPD=0; WORKERS=$(nproc)
while [ $# -gt 0 ]; do
  case "$1" in
    -n) N=$2; shift 2 ;;
    -c) CONNS=$2; shift 2 ;;
    -d) DURATION=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --json) JSON=$2; shift 2 ;;
    --workers) WORKERS=$2; shift 2 ;;
    --skip-slapd) SKIP_SLAPD=1; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/abook-bench.XXXXXX")
[ -n "$JSON" ] || JSON=$WORK/results.jsonl
ABOOK_PID=""
cleanup() {
  if [ -n "$ABOOK_PID" ] && kill -0 "$ABOOK_PID" 2>/dev/null; then
    kill "$ABOOK_PID"; wait "$ABOOK_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

LDIF=$WORK/crm.ldif
python3 "$HERE/gen_directory.py" -n "$N" -o "$LDIF"

if [ "$SKIP_SLAPD" = 0 ]; then
  echo "load before slapd: $(uptime)"
  bash "$HERE/slapd_baseline.sh" --ldif "$LDIF" -c "$CONNS" -d "$DURATION" --warmup "$WARMUP" --json "$JSON" \
    --workloads typeahead,contains,mail,dump --verify 20
fi

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
CFG=$WORK/abook.toml
cat > "$CFG" <<TOML
[store]
data_dir = "$WORK/var"
[ldap]
listen = ["tcp:$PORT:interface=127.0.0.1"]
workers = $WORKERS
[ldap.limits]
failed_binds_per_minute = 1000
[logging]
# info: the line each LDAP worker logs once it serves is the cue to start measuring
level = "info"
TOML
"$ABOOK" init -c "$CFG" >/dev/null
"$ABOOK" bu add -c "$CFG" Bench >/dev/null
"$ABOOK" role add -c "$CFG" "Org Reader" --read account=organisation --read contact=organisation \
  --read lead=organisation --read queue=organisation --read systemuser=organisation \
  --read equipment=organisation >/dev/null
echo "bench-password" | "$ABOOK" user add -c "$CFG" bench --bu Bench --email bench@example.com --password-stdin >/dev/null
"$ABOOK" user roles -c "$CFG" bench --grant "Org Reader" >/dev/null
"$ABOOK" user set -c "$CFG" bench address_book_matching=all >/dev/null
t0=$(date +%s%N)
"$ABOOK" import -c "$CFG" --owner bench "$LDIF"
t1=$(date +%s%N)
echo "abook import: $N contacts in $(( (t1 - t0) / 1000000 )) ms"

"$ABOOK" serve -c "$CFG" > "$WORK/abook.log" 2>&1 &
ABOOK_PID=$!
for _ in $(seq 1 300); do
  if ldapsearch -x -H "ldap://127.0.0.1:$PORT" -b "" -s base -LLL '(objectClass=*)' namingContexts >/dev/null 2>&1; then break; fi
  kill -0 "$ABOOK_PID" 2>/dev/null || { echo "abook exited:"; cat "$WORK/abook.log"; exit 1; }
  sleep 0.1
done
# the workers (children of the daemon) serve once they log that they do; wait until all are there
for _ in $(seq 1 300); do
  [ "$(grep -c 'LDAP worker [0-9]* serving' "$WORK/abook.log" || true)" -ge $((WORKERS - 1)) ] && break
  sleep 0.1
done
PIDS=("$ABOOK_PID" $(pgrep -P "$ABOOK_PID" || true))
echo "abook processes: ${PIDS[*]} (ldap.workers = $WORKERS)"
PID_ARGS=(); for p in "${PIDS[@]}"; do PID_ARGS+=(--server-pid "$p"); done
ENTRIES=$(ldapsearch -x -H "ldap://127.0.0.1:$PORT" -D bench -w bench-password -b o=crm -LLL -E pr=1000/noprompt \
  '(objectClass=*)' 1.1 | grep -c '^dn:')
LABEL="abook n=$ENTRIES"
echo "load before abook: $(uptime)"
LOAD=("$PY" "$HERE/ldapload.py" -H "ldap://127.0.0.1:$PORT" -b o=crm -D bench -w bench-password --ldif "$LDIF"
      "${PID_ARGS[@]}")
for wl in typeahead contains mail; do
  "${LOAD[@]}" --workload "$wl" --verify 20 -c 4 --pipeline 2 | grep -E '^verify' || { echo "verify $wl failed"; exit 1; }
done
"${LOAD[@]}" --workload dump --verify 1 | grep -E '^verify' || { echo "verify dump failed"; exit 1; }
"${LOAD[@]}" --workload vlv --verify 10 | grep -E '^verify' || { echo "verify vlv failed"; exit 1; }
for wl in typeahead contains mail vlv; do
  "${LOAD[@]}" --workload "$wl" -c "$CONNS" -d "$DURATION" --warmup "$WARMUP" --label "$LABEL" --json "$JSON"
done
"${LOAD[@]}" --workload dump --repeat 3 --label "$LABEL" --json "$JSON"
RSS=0; HWM=0; EACH=""
for p in "${PIDS[@]}"; do
  r=$(awk '/VmRSS/ {print $2}' "/proc/$p/status"); h=$(awk '/VmHWM/ {print $2}' "/proc/$p/status")
  RSS=$((RSS + r)); HWM=$((HWM + h)); EACH="$EACH $((r / 1024))"
done
echo "abook RSS after the run: $((RSS / 1024)) MB in all (peaks $((HWM / 1024)) MB), per process:$EACH MB, $N contacts"
echo "load after abook: $(uptime)"
python3 "$HERE/report.py" "$JSON"
"$PY" "$HERE/ratios.py" "$JSON"
