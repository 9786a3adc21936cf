#!/usr/bin/env bash
# Instructions the all-in-one process executes per authorized request and per `/healthz`
# request, counted by valgrind's callgrind: unlike CPU time, the count is the same from run to
# run and from machine to machine, so two builds compare exactly (README, "Benchmarks").
#
#   tests/bench/instructions.sh [path/to/zenovay] [requests]
#
# Starts the binary (default target/release/zenovay) under callgrind on a fresh data
# directory, makes an Enterprise key whose limits are lifted and three websites, warms up, then
# counts `requests` (default 2000) sequential `GET /api/external/v1/websites` on one keep-alive
# connection, then as many `GET /healthz`. Kernel work (system calls, the loopback) is not
# counted. Needs valgrind, curl and python3. With `KEEP=dir`, the two profiles are copied there
# (`callgrind_annotate dir/callgrind.out.1` shows where the authorized request's instructions go).
set -euo pipefail
bin=$(realpath "${1:-target/release/zenovay}")
requests=${2:-2000}
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base=http://127.0.0.1:$port
valgrind --tool=callgrind --callgrind-out-file="$dir/callgrind.out" "$bin" --http-addr "127.0.0.1:$port" \
  --data-dir "$dir/data" >"$dir/stdout.log" 2>"$dir/stderr.log" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 1 600); do grep -q "listening on" "$dir/stdout.log" && break; sleep 0.5; done

field() { grep -o "\"$1\":\"[^\"]*\"" | head -1 | cut -d'"' -f4; }
token=$(curl -sf "$base/api/v1/auth/signup" -H 'content-type: application/json' \
  -d '{"email":"bench@example.com","password":"correct horse battery","name":"Bench"}' | field session_token)
team=$(curl -sf "$base/api/v1/teams" -H "Authorization: Bearer $token" | field id)
"$bin" admin --data-dir "$dir/data" set-plan "$team" enterprise --requests-per-minute 100000000 >/dev/null
key=$(curl -sf "$base/api/v1/account/api-keys" -H "Authorization: Bearer $token" -H 'content-type: application/json' \
  -d '{"name":"bench","permissions":"full","teams":"all"}' | field key)
for site in a b c; do
  curl -sf "$base/api/external/v1/websites" -H "Authorization: Bearer $key" -H 'content-type: application/json' \
    -d "{\"team_id\":\"$team\",\"domain\":\"$site.bench.example\",\"name\":\"B\"}" >/dev/null
done

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
# Counted from the next call on: `zero` before, `dump` after each phase.
counted() {
  callgrind_control --zero $server >/dev/null 2>&1
  send "$@"
  callgrind_control --dump $server >/dev/null 2>&1
}
send 300 /api/external/v1/websites "$key"
counted "$requests" /api/external/v1/websites "$key"
counted "$requests" /healthz
total() { grep -h '^summary:' "$dir"/callgrind.out.* | sed -n "${1}p" | cut -d' ' -f2; }
if [[ -n "${KEEP:-}" ]]; then mkdir -p "$KEEP" && cp "$dir"/callgrind.out.* "$KEEP"; fi
chain=$(total 1)
healthz=$(total 2)
echo "instructions per authorized request (GET /api/external/v1/websites): $((chain / requests))"
echo "instructions per /healthz request: $((healthz / requests))"
echo "ratio: $(python3 -c "print(f'{$chain / $healthz:.2f}')")"
