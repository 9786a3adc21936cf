#!/usr/bin/env bash
# Runs schemathesis against the OpenAPI document of a running product, with every check on, in
# the all-in-one mode (the `zenovay` binary on SQLite in a temporary data directory) and in the
# split mode (four processes on a fresh PostgreSQL database, dropped afterwards, and Redis).
#
# Usage: .ci/schemathesis.sh [all-in-one|split]...   (default: both)
# Environment:
#   SCHEMATHESIS               the schemathesis command (default: `schemathesis` on PATH)
#   ZENOVAY_BIN                the binary to run (default: target/debug/zenovay, built first)
#   SCHEMATHESIS_MAX_EXAMPLES  test cases per operation and phase (default 25)
#   SCHEMATHESIS_SEED          fixed seed, to reproduce a run
#   ZENOVAY_TEST_DATABASE_URL  PostgreSQL to create the run's database in (default postgres://postgres@127.0.0.1:5432/postgres)
#   ZENOVAY_TEST_REDIS_URL     Redis of the split mode (default redis://127.0.0.1:6379)
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS=${SCHEMATHESIS:-schemathesis}
BIN=${ZENOVAY_BIN:-}
MAX_EXAMPLES=${SCHEMATHESIS_MAX_EXAMPLES:-25}
ADMIN_URL=${ZENOVAY_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
REDIS_URL=${ZENOVAY_TEST_REDIS_URL:-redis://127.0.0.1:6379}
MODES=("$@")
[ ${#MODES[@]} -gt 0 ] || MODES=(all-in-one split)

command -v "$SCHEMATHESIS" >/dev/null || { echo "schemathesis: $SCHEMATHESIS not found" >&2; exit 1; }
for tool in curl jq python3; do
  command -v "$tool" >/dev/null || { echo "schemathesis: $tool not found" >&2; exit 1; }
done
if [ -z "$BIN" ]; then
  # Built here (a no-op when up to date), so that a stale binary is never the one tested.
  cargo build --locked --bin zenovay
  BIN=target/debug/zenovay
fi
BIN=$(realpath "$BIN")
SCHEMATHESIS=$(realpath "$(command -v "$SCHEMATHESIS")")
HOOKS=$(realpath .ci/schemathesis_hooks.py)

WORK=$(mktemp -d -t zenovay-schemathesis.XXXXXX)
PIDS=()
DATABASE=""
REDIS_PREFIX=""

stop_processes() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  PIDS=()
}

drop_database() {
  if [ -n "$DATABASE" ]; then
    psql "$ADMIN_URL" -q -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS \"$DATABASE\" WITH (FORCE)" >/dev/null || true
    DATABASE=""
  fi
  if [ -n "$REDIS_PREFIX" ]; then
    redis-cli -u "$REDIS_URL" --scan --pattern "${REDIS_PREFIX}*" | xargs -r redis-cli -u "$REDIS_URL" del >/dev/null || true
    REDIS_PREFIX=""
  fi
}

cleanup() {
  stop_processes
  drop_database
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# `n` ports free on the loopback right now, held together so that they differ.
free_ports() {
  python3 - "$1" <<'EOF'
import socket, sys
sockets = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in sockets:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in sockets))
EOF
}

# Starts `zenovay <args>` in the background with its log in $WORK/<name>.log.
start() {
  local name=$1
  shift
  "$BIN" "$@" >"$WORK/$name.log" 2>&1 &
  PIDS+=("$!")
}

wait_ready() {
  local base=$1 tries=0
  until curl -fsS "$base/readyz" >/dev/null 2>&1; do
    tries=$((tries + 1))
    if [ "$tries" -gt 300 ]; then
      echo "the product at $base did not become ready; logs:" >&2
      tail -n 40 "$WORK"/*.log >&2 || true
      return 1
    fi
    for pid in "${PIDS[@]}"; do
      kill -0 "$pid" 2>/dev/null || { echo "a process exited; logs:" >&2; tail -n 40 "$WORK"/*.log >&2; return 1; }
    done
    sleep 0.2
  done
}

# A JSON request; prints the body, fails on a status other than `expected`.
call() {
  local expected=$1 method=$2 url=$3 body=${4:-}
  shift 4
  local out status
  out=$(mktemp -p "$WORK")
  status=$(curl -sS -o "$out" -w '%{http_code}' -X "$method" "$url" -H 'content-type: application/json' "$@" \
    ${body:+--data "$body"})
  if [ "$status" != "$expected" ]; then
    echo "$method $url: expected $expected, got $status: $(cat "$out")" >&2
    return 1
  fi
  cat "$out"
}

# Signs a user up, puts a team on Pro with a limit schemathesis will not reach, creates a full
# key and websites, and writes the run's schemathesis.toml.
provision() {
  local base=$1 operator=$2 token team other policed key website renamed deleted domain
  local suffix=$RANDOM$RANDOM
  token=$(call 201 POST "$base/api/v1/auth/signup" \
    "{\"email\":\"ci-$suffix@example.com\",\"password\":\"correct horse battery staple\",\"name\":\"CI\"}" |
    jq -er '.data.session_token')
  team=$(call 200 GET "$base/api/v1/teams" "" -H "Authorization: Bearer $token" | jq -er '.data[0].id')
  # The team endpoints get a team of their own: a generated `nobody` key policy there must not
  # lock the key out of the websites it reads.
  other=$(call 201 POST "$base/api/v1/teams" '{"name":"Schemathesis"}' -H "Authorization: Bearer $token" |
    jq -er '.data.id')
  # And the key-policy operation a third: once `nobody` is set there, no key may change it back.
  policed=$(call 201 POST "$base/api/v1/teams" '{"name":"Policy"}' -H "Authorization: Bearer $token" |
    jq -er '.data.id')
  for t in "$team" "$other" "$policed"; do
    call 200 PUT "$base/api/v1/teams/$t/plan" \
      '{"plan":"pro","overrides":{"requests_per_minute":1000000,"requests_per_month":100000000}}' \
      -H "X-Operator-Token: $operator" >/dev/null
  done
  key=$(call 201 POST "$base/api/v1/account/api-keys" '{"name":"schemathesis","permissions":"full","teams":"all"}' \
    -H "Authorization: Bearer $token" | jq -er '.data.key')
  domain="st-$suffix.example"
  website=$(call 201 POST "$base/api/external/v1/websites" \
    "{\"team_id\":\"$team\",\"domain\":\"$domain\",\"name\":\"Schemathesis\"}" -H "Authorization: Bearer $key" |
    jq -er '.data.id')
  # Renaming and deleting get a website each, so that the statistics and the renames keep theirs.
  renamed=$(call 201 POST "$base/api/external/v1/websites" \
    "{\"team_id\":\"$team\",\"domain\":\"renamed-$suffix.example\",\"name\":\"Renamed\"}" -H "Authorization: Bearer $key" |
    jq -er '.data.id')
  deleted=$(call 201 POST "$base/api/external/v1/websites" \
    "{\"team_id\":\"$team\",\"domain\":\"deleted-$suffix.example\",\"name\":\"Deleted\"}" -H "Authorization: Bearer $key" |
    jq -er '.data.id')
  for page in / /pricing /blog/one; do
    call 202 POST "$base/api/event" "{\"domain\":\"$domain\",\"name\":\"pageview\",\"url\":\"https://$domain$page\"}" \
      -H 'user-agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0' >/dev/null
  done
  # Real ids where the document takes ids; generated ones would only ever meet a 404. A website
  # named in both the path and the body must be the same one (the document says so in prose).
  cat >"$WORK/schemathesis.toml" <<EOF
[parameters]
"path.id" = "$renamed"
"path.websiteId" = "$website"
"path.teamId" = "$other"
"query.site_id" = "$domain"
"body.site_id" = "$domain"
"body.team_id" = "$team"

[[operations]]
include-operation-id = "setApiKeyPolicy"
parameters = { "path.teamId" = "$policed" }

[[operations]]
include-operation-id = "deleteWebsite"
parameters = { "path.id" = "$deleted" }
EOF
  echo "$key"
}

run_schemathesis() {
  local mode=$1 base=$2 key=$3
  local seed=()
  [ -z "${SCHEMATHESIS_SEED:-}" ] || seed=(--seed "$SCHEMATHESIS_SEED")
  echo "== schemathesis ($mode): $base"
  # The key is sent as a header here rather than named in the config, so that reports mask it.
  # Run from the work directory: schemathesis keeps its cache in the current one.
  (cd "$WORK" && SCHEMATHESIS_HOOKS="$HOOKS" "$SCHEMATHESIS" --config-file "$WORK/schemathesis.toml" run "$base/api/external/v1/openapi.json" \
    --header "Authorization: Bearer $key" \
    --checks all \
    --max-examples "$MAX_EXAMPLES" \
    --workers 1 \
    --request-timeout 30 \
    --no-color \
    "${seed[@]}")
}

all_in_one() {
  local port operator base
  port=$(free_ports 1)
  operator=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
  base="http://127.0.0.1:$port"
  mkdir -p "$WORK/data"
  ZENOVAY_OPERATOR_TOKEN=$operator ZENOVAY_LOG=warn \
    start all-in-one --http-addr "127.0.0.1:$port" --data-dir "$WORK/data"
  wait_ready "$base"
  run_schemathesis all-in-one "$base" "$(provision "$base" "$operator")"
  stop_processes
}

split() {
  local ports http identity policy analytics operator base
  ports=$(free_ports 4)
  read -r http identity policy analytics <<<"$ports"
  operator=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
  base="http://127.0.0.1:$http"
  DATABASE="zenovay_schemathesis_$(date +%s)_$$"
  REDIS_PREFIX="zenovay-schemathesis-$$:"
  psql "$ADMIN_URL" -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE \"$DATABASE\"" >/dev/null
  export ZENOVAY_DATABASE_URL="${ADMIN_URL%/*}/$DATABASE"
  export ZENOVAY_REDIS_URL=$REDIS_URL ZENOVAY_REDIS_PREFIX=$REDIS_PREFIX
  # CI runs this beside the browser tests on two cores, where a decision's Redis call can wait
  # past the default 100 ms for a core; the 503 that follows is the product's right answer to a
  # slow Redis, not what this run checks.
  export ZENOVAY_REDIS_TIMEOUT_MS=2000
  export ZENOVAY_KEY_HASH_SECRETS="1:$(python3 -c 'import secrets; print(secrets.token_hex(32))')"
  export ZENOVAY_IDENTITY_LISTEN=127.0.0.1:$identity ZENOVAY_IDENTITY_URL=http://127.0.0.1:$identity
  export ZENOVAY_POLICY_LISTEN=127.0.0.1:$policy ZENOVAY_POLICY_URL=http://127.0.0.1:$policy
  export ZENOVAY_ANALYTICS_LISTEN=127.0.0.1:$analytics ZENOVAY_ANALYTICS_URL=http://127.0.0.1:$analytics
  export ZENOVAY_LOG=warn
  start identity identity
  start policy policy
  start analytics analytics
  ZENOVAY_OPERATOR_TOKEN=$operator start gateway --http-addr "127.0.0.1:$http" gateway
  wait_ready "$base"
  run_schemathesis split "$base" "$(provision "$base" "$operator")"
  stop_processes
  drop_database
}

for mode in "${MODES[@]}"; do
  start_time=$(date +%s)
  case "$mode" in
    all-in-one) all_in_one ;;
    split) split ;;
    *) echo "unknown mode $mode (all-in-one or split)" >&2; exit 2 ;;
  esac
  echo "schemathesis ($mode) took $(( $(date +%s) - start_time )) s"
done
