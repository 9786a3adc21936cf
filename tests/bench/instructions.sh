#!/usr/bin/env bash
# Instructions the all-in-one process executes per authorized request, per `/healthz` request
# and per tracked event, counted by valgrind's callgrind: unlike CPU time, the count hardly moves from run to
# run (within 0.5 % on one machine), so two builds compare closely (README, "Benchmarks").
#
#   tests/bench/instructions.sh [path/to/zenovay] [requests]
#
# Starts the binary (default target/release/zenovay) under callgrind on a fresh data
# directory, makes an Enterprise key whose limits are lifted and three websites, warms up, then
# counts `requests` (default 2000) sequential `GET /api/external/v1/websites` on one keep-alive
# connection, then as many `GET /healthz`, then as many tracker events (`POST /api/event`) with
# the analytics writer's work (in batches as small as events sent one at a time make them).
# Kernel work (system calls, the loopback) is not counted. Needs valgrind, curl and python3. With
# `KEEP=dir`, the three profiles are copied there (`callgrind_annotate dir/callgrind.out.1`
# shows where the authorized request's instructions go).
#
# `SPLIT=gateway` or `SPLIT=policy` counts that process of the split mode instead: identity,
# policy and analytics run as processes of their own on a new PostgreSQL database
# (`ZENOVAY_BENCH_POSTGRES`, default postgres://postgres@127.0.0.1:5432) and Redis
# (`ZENOVAY_BENCH_REDIS`, default redis://127.0.0.1:6379, under a prefix of its own), and only
# the one named runs under callgrind. The gateway's events' phase counts its part alone; policy
# prints its instructions per authorized request (a decision call each) only.
set -euo pipefail
bin=$(realpath "${1:-target/release/zenovay}")
requests=${2:-2000}
dir=$(mktemp -d)
pids=()
database=""
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  if [[ -n "$database" ]]; then
    psql -q "$postgres/postgres" -c "DROP DATABASE IF EXISTS $database WITH (FORCE)" || true
  fi
  rm -rf "$dir"
}
trap cleanup EXIT
# Waits for `zenovay <role>`'s "listening on" line in `$dir/<role>.out` and prints the address.
listening() {
  for _ in $(seq 1 600); do
    local addr
    addr=$(sed -n "s/.*listening on //p" "$dir/$1.out" | head -1)
    [[ -n "$addr" ]] && { echo "$addr"; return; }
    kill -0 "${pids[-1]}" 2>/dev/null || break
    sleep 0.1
  done
  cat "$dir/$1.err" >&2
  echo "zenovay $1 did not start" >&2
  exit 1
}
# Starts `zenovay <role> args…` (`all`: the all-in-one), under callgrind when it is the one
# counted, and sets `addr` to where it listens (not a subshell: `server` and `pids` must stay).
start() {
  local role=$1
  shift
  local command=("$bin" "$role" "$@")
  if [[ "$role" == all ]]; then command=("$bin" "$@"); fi
  if [[ "$role" == "${SPLIT:-all}" ]]; then
    valgrind --tool=callgrind --callgrind-out-file="$dir/callgrind.out" "${command[@]}" >"$dir/$role.out" 2>"$dir/$role.err" &
    server=$!
  else
    "${command[@]}" >"$dir/$role.out" 2>"$dir/$role.err" &
  fi
  pids+=($!)
  addr=$(listening "$role")
}
case "${SPLIT:-}" in
  "")
    storage=(--data-dir "$dir/data")
    start all --http-addr 127.0.0.1:0 "${storage[@]}"
    ;;
  gateway | policy)
    postgres=${ZENOVAY_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432}
    database=zenovay_instructions_$$
    psql -q "$postgres/postgres" -c "CREATE DATABASE $database"
    # Every process, and the admin command that sets the plan, on the same storage and Redis.
    storage=(--database-url "$postgres/$database" --redis-url "${ZENOVAY_BENCH_REDIS:-redis://127.0.0.1:6379}"
      --redis-prefix "instructions-$$:" --key-hash-secrets "1:instructions-key-hash-secret-0123456789")
    urls=()
    for role in identity policy analytics; do
      start "$role" "${storage[@]}" "--$role-listen" 127.0.0.1:0
      urls+=("--$role-url" "http://$addr")
    done
    start gateway "${storage[@]}" "${urls[@]}" --http-addr 127.0.0.1:0
    ;;
  *)
    echo "SPLIT is gateway or policy" >&2
    exit 1
    ;;
esac
base=http://$addr
port=${addr##*:}

field() { grep -o "\"$1\":\"[^\"]*\"" | head -1 | cut -d'"' -f4; }
token=$(curl -sSf "$base/api/v1/auth/signup" -H 'content-type: application/json' \
  -d '{"email":"bench@example.com","password":"correct horse battery","name":"Bench"}' | field session_token)
team=$(curl -sSf "$base/api/v1/teams" -H "Authorization: Bearer $token" | field id)
"$bin" admin "${storage[@]}" set-plan "$team" enterprise --requests-per-minute 100000000 >/dev/null
# Policy's caches hear of the change through Redis in the split mode; give them its second.
if [[ -n "${SPLIT:-}" ]]; then sleep 1.5; fi
key=$(curl -sSf "$base/api/v1/account/api-keys" -H "Authorization: Bearer $token" -H 'content-type: application/json' \
  -d '{"name":"bench","permissions":"full","teams":"all"}' | field key)
for site in a b c; do
  curl -sSf "$base/api/external/v1/websites" -H "Authorization: Bearer $key" -H 'content-type: application/json' \
    -d "{\"team_id\":\"$team\",\"domain\":\"$site.bench.example\",\"name\":\"B\"}" >/dev/null
done

# Sends `n` tracker events (`POST /api/event`) on one connection, cycling through the three
# sites, 50 pages and 1,000 browser versions as the ingestion benchmark does; every answer must
# be 202.
events() {
  python3 - "$port" "$1" <<'PY'
import http.client, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
connection = http.client.HTTPConnection("127.0.0.1", port)
for i in range(n):
    site = "abc"[i % 3] + ".bench.example"
    body = '{"domain":"%s","name":"pageview","url":"https://%s/p%d"}' % (site, site, i % 50)
    agent = "Mozilla/5.0 (X11; Linux x86_64; rv:%d.0) Gecko/20100101 Firefox/128.0" % (i % 1000)
    connection.request("POST", "/api/event", body=body, headers={"Content-Type": "application/json", "User-Agent": agent})
    answer = connection.getresponse()
    answer.read()
    if answer.status != 202:
        sys.exit(f"/api/event: {answer.status}")
PY
}

# Sends `n` GETs of `path` on one connection; every answer must be 200.
send() {
  python3 - "$port" "$1" "$2" "${3:-}" <<'PY'
import http.client, sys
port, n, path, key = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
connection = http.client.HTTPConnection("127.0.0.1", port)
headers = {"Authorization": "Bearer " + key} if key else {}
for _ in range(n):
    connection.request("GET", path, headers=headers)
    answer = connection.getresponse()
    answer.read()
    if answer.status != 200:
        sys.exit(f"{path}: {answer.status}")
PY
}
# Counts one phase into `callgrind.out.<n>`: zeroed before, dumped after. callgrind_control
# exits 0 even when it finds no process, so the dump's file is what says it worked.
counted() {
  local n=$1
  shift
  callgrind_control --zero "$server" >/dev/null
  "$@"
  callgrind_control --dump "$server" >/dev/null
  for _ in $(seq 1 100); do [[ -s "$dir/callgrind.out.$n" ]] && return; sleep 0.1; done
  echo "callgrind wrote no profile for phase $n" >&2
  exit 1
}
send 300 /api/external/v1/websites "$key"
counted 1 send "$requests" /api/external/v1/websites "$key"
counted 2 send "$requests" /healthz
# The events' phase counts the writer's work too, so it waits for the writer's last batch,
# which follows the last answer by milliseconds.
settled_events() {
  events "$1"
  sleep 2
}
settled_events 300
counted 3 settled_events "$requests"
if [[ -n "${KEEP:-}" ]]; then mkdir -p "$KEEP" && cp "$dir"/callgrind.out.[123] "$KEEP"; fi
total() { grep '^summary:' "$dir/callgrind.out.$1" | cut -d' ' -f2; }
chain=$(total 1)
healthz=$(total 2)
if [[ "${SPLIT:-}" == policy ]]; then
  echo "instructions per authorized request in policy (one decision call each): $((chain / requests))"
  exit
fi
# The all-in-one's events include the writer's; the split gateway's only its own part.
where="" writer=", the writer's work included"
if [[ -n "${SPLIT:-}" ]]; then where=" in the gateway" writer=""; fi
echo "instructions per authorized request$where (GET /api/external/v1/websites): $((chain / requests))"
echo "instructions per /healthz request$where: $((healthz / requests))"
echo "ratio: $(python3 -c "print(f'{$chain / $healthz:.2f}')")"
echo "instructions per tracked event$where (POST /api/event$writer): $(($(total 3) / requests))"
