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
set -euo pipefail
bin=$(realpath "${1:-target/release/zenovay}")
requests=${2:-2000}
dir=$(mktemp -d)
valgrind --tool=callgrind --callgrind-out-file="$dir/callgrind.out" "$bin" --http-addr 127.0.0.1:0 \
  --data-dir "$dir/data" >"$dir/stdout.log" 2>"$dir/stderr.log" &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$dir"' EXIT
until grep -q "listening on" "$dir/stdout.log"; do
  kill -0 "$server" 2>/dev/null || { cat "$dir/stderr.log" >&2; echo "zenovay did not start" >&2; exit 1; }
  sleep 0.5
done
base=http://$(sed -n 's/.*listening on //p' "$dir/stdout.log" | head -1)
port=${base##*:}

field() { grep -o "\"$1\":\"[^\"]*\"" | head -1 | cut -d'"' -f4; }
token=$(curl -sSf "$base/api/v1/auth/signup" -H 'content-type: application/json' \
  -d '{"email":"bench@example.com","password":"correct horse battery","name":"Bench"}' | field session_token)
team=$(curl -sSf "$base/api/v1/teams" -H "Authorization: Bearer $token" | field id)
"$bin" admin --data-dir "$dir/data" set-plan "$team" enterprise --requests-per-minute 100000000 >/dev/null
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
echo "instructions per authorized request (GET /api/external/v1/websites): $((chain / requests))"
echo "instructions per /healthz request: $((healthz / requests))"
echo "ratio: $(python3 -c "print(f'{$chain / $healthz:.2f}')")"
echo "instructions per tracked event (POST /api/event, the writer's work included): $(($(total 3) / requests))"
