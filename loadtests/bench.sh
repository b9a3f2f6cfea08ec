#!/usr/bin/env bash
# One command per benchmark of BENCHMARKS.md: starts the servers it needs (release build,
# loopback only), runs the scenario, stops them. Results land in ./bench-results/.
#
#   loadtests/bench.sh connections          19,000 sockets on one embedded instance
#   loadtests/bench.sh fanout-embedded       fan-out on the embedded default (one instance)
#   loadtests/bench.sh fanout-postgres       10,000 clients / 2,000 users / 500 writes/s, 2 instances, postgres bus
#   loadtests/bench.sh fanout-redis          the same on the redis bus
#   loadtests/bench.sh fanout-redis-restart  the redis bus with Redis stopped for 3 s mid-run
#   loadtests/bench.sh rest                  REST mix at 64 concurrent clients (PostgreSQL)
#   loadtests/bench.sh rest-embedded         the same on the embedded default (SQLite)
#   loadtests/bench.sh limit                 task creation vs pgbench with the same transaction
#   loadtests/bench.sh rest-limits           `rest` (PostgreSQL) with RATE_LIMITS=off, then the default
#                                            limits in process, then in Redis (REDIS_URL), one address per user
#   loadtests/bench.sh rest-limits-embedded  the same on SQLite: off, then in process
#   loadtests/bench.sh abuse                 honest users' p99 alone and under a sign-in flood, an anonymous
#                                            socket flood and upload bombs (PostgreSQL, default limits and argon2)
#   loadtests/bench.sh abuse-embedded        the same on SQLite
#   loadtests/bench.sh reminders             100,000 tasks whose TASK_DUE_SOON reminders fall within one minute,
#                                            1,000 users (one socket each) over 2 instances, PostgreSQL
#   loadtests/bench.sh reminders-embedded    the same on one SQLite instance
#   loadtests/bench.sh team-fanout-postgres  10,000 clients in 200 projects of 50 (?projects=true), 500 project-task
#                                            writes/s, 2 instances on PostgreSQL, postgres bus
#   loadtests/bench.sh team-fanout-redis     the same on the redis bus
#   loadtests/bench.sh presence-churn        team-fanout (BUS, default postgres) with 1,000 sockets joining and
#                                            leaving projects per second in every other PHASE (15 s) of 4 (PHASES)
#   loadtests/bench.sh team-write-cost       task creation in a project of 1,000 members vs one of 1, alternating
#                                            phases on one PostgreSQL instance
#
# For `abuse*`: BASELINE and ATTACK (seconds, default 20 each), ATTACK_NICE (the attacker
# threads' nice value, default 19; 0 runs them on the honest clients' runtime).
# DURATION (seconds, default 30) shortens or lengthens the timed scenarios; CONCURRENCY
# (default 64) sets the clients of `rest`; ROUNDS (default 1) repeats the variants of
# `rest-limits*` alternately (off, on, off, on, ...). For `reminders*`: TASKS (default
# 100000), USERS (1000), WINDOW (seconds the reminders are due over, 60), SETUP (seconds
# from the start of task creation to the window, 180), LEAD (the servers' REMINDER_LEAD in
# seconds, 3600) and OVERDUE=1 to wait for the TASK_OVERDUE reminders too (with a short
# LEAD, e.g. 120).
# For the project scenarios: PROJECTS (default 200), MEMBERS (50), RATE (500); for
# presence-churn CHURN (sockets per second, 1000), PHASE (15) and PHASES (4: the write phase
# lasts PHASE x PHASES seconds, DURATION is not used), BUS (postgres or redis),
# CHURN_PROJECTS (the churn users in the first N projects only; default all),
# DB_CONNECTIONS (each instance's DATABASE_MAX_CONNECTIONS, 20), CHURN_NICE (the churn
# sockets' threads' nice value, 19; 0: on the measured clients' runtime), BARE_CHURN=1
# (the churn sockets go to `taskstream-load bare-ws` instead: what the connects alone cost
# the machine, the floor under the target); for
# team-write-cost MEMBERS (1000), CONCURRENCY (16), PHASE (10), ROUNDS (3).
# DB_SET="name=value ..." sets PostgreSQL parameters on the benchmark database only. On a
# disk whose WAL flushes stall now and then (COMMITs of 100+ ms; BENCHMARKS.md, "Projects",
# tenth session), compare phases of presence-churn with DB_SET="synchronous_commit=off" too:
# a stall landing in one phase otherwise decides the ratio.
# SERVER (default target/release/taskstream) runs another server binary, for an A/B of two builds.
# SERVER_WORKERS sets each server's number of runtime worker threads (TOKIO_WORKER_THREADS;
# default one per core).
# PORT_BASE (default 18080) moves the servers' ports (API on PORT_BASE and PORT_BASE+1,
# metrics on PORT_BASE+1011 and +1012) away from other sessions' servers.
set -euo pipefail
cd "$(dirname "$0")/.."

SCENARIO=${1:?usage: loadtests/bench.sh connections|fanout-embedded|fanout-postgres|fanout-redis|fanout-redis-restart|rest|rest-embedded|limit|rest-limits|rest-limits-embedded|abuse|abuse-embedded|reminders|reminders-embedded|team-fanout-postgres|team-fanout-redis|presence-churn|team-write-cost}
DURATION=${DURATION:-30}
OUT=bench-results
mkdir -p "$OUT"
cargo build --release --workspace --features taskstream-load/plot --quiet
SERVER=${SERVER:-target/release/taskstream}
LOAD=target/release/taskstream-load
STAMP=$(date +%Y%m%d-%H%M%S)
PIDS=()
DB=""
DATA=""
# Variables the next `start` removes from the servers' environment.
UNSET=()

cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "$DATA" ]; then rm -rf "$DATA"; fi
  if [ -n "$DB" ]; then psql -h 127.0.0.1 -U postgres -q -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" postgres || true; fi
  # A benchmark never leaves Redis down.
  if ! redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log >/dev/null
  fi
}
trap cleanup EXIT

# Cheap password hashing: the benchmarks sign up thousands of users.
# RATE_LIMITS=off: the scenarios sign up thousands of users from one address (the `rest`
# scenario's limits-on run sets its own).
# PASSWORD_HASH_QUEUE: the scenarios sign up in bursts wider than the default queue.
export ARGON2_MEMORY_KIB=256 ARGON2_ITERATIONS=1 RUST_LOG=warn RATE_LIMITS=${RATE_LIMITS:-off} \
  PASSWORD_HASH_QUEUE=${PASSWORD_HASH_QUEUE:-10000}
export JWT_SECRET=benchmark-secret-0123456789abcdef0123456789abcdef
export WS_MAX_CONNECTIONS=30000
# The servers' ports: API on PORT_BASE and PORT_BASE+1, metrics 1011 above them.
API0=${PORT_BASE:-18080}
API1=$((API0 + 1))
METRICS0=$((API0 + 1011))
METRICS1=$((API0 + 1012))

start() { # port metrics-port [env...]
  local port=$1 metrics=$2 p; shift 2
  # Another session's server on the port would answer the health check below, and the
  # load would go to it: refuse instead.
  for p in "$port" "$metrics"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "port $p is already in use; choose others with PORT_BASE" >&2
      exit 1
    fi
  done
  env "${UNSET[@]/#/-u}" BIND=127.0.0.1:$port METRICS_BIND=127.0.0.1:$metrics \
    ${SERVER_WORKERS:+TOKIO_WORKER_THREADS=$SERVER_WORKERS} "$@" "$SERVER" \
    >"$OUT/server-$port.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  for _ in $(seq 1 100); do
    if curl -fs "http://127.0.0.1:$port/health" >/dev/null 2>&1 && kill -0 "$pid" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  echo "server on $port did not start; see $OUT/server-$port.log" >&2
  exit 1
}

stop_servers() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  PIDS=()
}

drop_database() {
  if [ -n "$DB" ]; then psql -h 127.0.0.1 -U postgres -q -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" postgres; fi
  DB=""
}

# One `rest` run on a fresh server: rest_variant NAME BLOCK [server env...]. Each user comes
# from its own address 127.BLOCK.x.y, so that the per-address limits (sign-up: 3 per hour)
# see 64 clients, as in production; the per-user budgets are the defaults.
rest_variant() {
  local name=$1 block=$2; shift 2
  if [ "$BACKEND" = postgres ]; then
    fresh_database
    start $API0 $METRICS0 DATABASE_URL="$URL" DATABASE_MAX_CONNECTIONS=16 "$@"
  else
    DATA=$(mktemp -d)
    start $API0 $METRICS0 DATA_DIR="$DATA" "$@"
  fi
  "$LOAD" rest --concurrency "${CONCURRENCY:-64}" --duration "$DURATION" --url http://127.0.0.1:$API0 \
    --source-block "$block" --quiet --out "$OUT/$SCENARIO-$name-$STAMP-r$ROUND.json" || true
  stop_servers
  drop_database
  if [ -n "$DATA" ]; then rm -rf "$DATA"; DATA=""; fi
}

# Sets DB (dropped by cleanup and drop_database) and URL; called directly, not in $(...),
# whose subshell would keep DB from the cleanup.
fresh_database() {
  DB=bench_$(date +%s)_$$
  psql -h 127.0.0.1 -U postgres -q -c "CREATE DATABASE $DB" postgres
  # DB_SET="name=value ..." sets PostgreSQL parameters on this database only (profiling,
  # e.g. synchronous_commit=off); never on the cluster, which other sessions share.
  for setting in ${DB_SET:-}; do
    psql -h 127.0.0.1 -U postgres -q -c "ALTER DATABASE $DB SET ${setting%%=*} = '${setting#*=}'" postgres
  done
  URL="postgres://postgres@127.0.0.1:5432/$DB"
}

case "$SCENARIO" in
  connections)
    DATA=$(mktemp -d)
    start $API0 $METRICS0 DATA_DIR="$DATA"
    "$LOAD" connections --count 19000 --workers 2 --url http://127.0.0.1:$API0 \
      --metrics http://127.0.0.1:$METRICS0 --out "$OUT/connections-$STAMP.json"
    ;;
  fanout-embedded)
    DATA=$(mktemp -d)
    start $API0 $METRICS0 DATA_DIR="$DATA"
    "$LOAD" fanout --clients 10000 --users 2000 --rate 500 --duration "$DURATION" \
      --instances http://127.0.0.1:$API0 \
      --out "$OUT/fanout-embedded-$STAMP.json" --plot "$OUT/fanout-embedded-$STAMP.png"
    ;;
  fanout-postgres | fanout-redis | fanout-redis-restart)
    BUS=${SCENARIO#fanout-}
    BUS=${BUS%-restart}
    fresh_database
    start $API0 $METRICS0 DATABASE_URL="$URL" EVENT_BUS="$BUS" DATABASE_MAX_CONNECTIONS=20
    start $API1 $METRICS1 DATABASE_URL="$URL" EVENT_BUS="$BUS" DATABASE_MAX_CONNECTIONS=20
    if [ "$SCENARIO" = fanout-redis-restart ]; then
      # Stop Redis in the middle of the writes (sign-ups and connects take about 8 s
      # first) and start it again 3 s later: nothing may be lost.
      ( sleep $((DURATION / 2 + 8)); echo "redis stopped at $(date +%T)" >>"$OUT/fanout-redis-$STAMP.events"
        redis-cli -h 127.0.0.1 shutdown nosave >/dev/null 2>&1 || true; sleep 3
        redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
          --dir /var/lib/redis --logfile /var/log/redis/ci.log >/dev/null
        echo "redis restarted at $(date +%T)" >>"$OUT/fanout-redis-$STAMP.events" ) &
    fi
    "$LOAD" fanout --clients 10000 --users 2000 --rate 500 --duration "$DURATION" \
      --instances http://127.0.0.1:$API0,http://127.0.0.1:$API1 \
      --out "$OUT/fanout-$BUS-$STAMP.json" --plot "$OUT/fanout-$BUS-$STAMP.png"
    ;;
  rest)
    fresh_database
    start $API0 $METRICS0 DATABASE_URL="$URL" DATABASE_MAX_CONNECTIONS=16
    "$LOAD" rest --concurrency "${CONCURRENCY:-64}" --duration "$DURATION" --url http://127.0.0.1:$API0 \
      --out "$OUT/rest-$STAMP.json"
    ;;
  rest-embedded)
    DATA=$(mktemp -d)
    start $API0 $METRICS0 DATA_DIR="$DATA"
    "$LOAD" rest --concurrency "${CONCURRENCY:-64}" --duration "$DURATION" --url http://127.0.0.1:$API0 \
      --out "$OUT/rest-embedded-$STAMP.json"
    ;;
  limit)
    fresh_database
    start $API0 $METRICS0 DATABASE_URL="$URL" DATABASE_MAX_CONNECTIONS=32
    "$LOAD" limit --database-url "$URL" --concurrency 16 --duration "$DURATION" \
      --url http://127.0.0.1:$API0 --out "$OUT/limit-$STAMP.json"
    ;;
  rest-limits | rest-limits-embedded)
    BACKEND=postgres
    if [ "$SCENARIO" = rest-limits-embedded ]; then BACKEND=embedded; fi
    # "On" is every limit at its default: RATE_LIMITS names one of them at its default
    # value (an unset variable would be the same; the export above sets it to off).
    ON=RATE_LIMITS=signin=5/15m
    VARIANTS=(off on-local)
    if [ "$BACKEND" = postgres ]; then VARIANTS+=(on-redis); fi
    for ROUND in $(seq 1 "${ROUNDS:-1}"); do
      # Each round starts with a different variant, so that a machine getting busier or
      # quieter during the run does not favour one of them.
      for i in "${!VARIANTS[@]}"; do
        v=${VARIANTS[$(((i + ROUND - 1) % ${#VARIANTS[@]}))]}
        # Fresh address blocks each run: Redis keeps its counters between runs.
        case $v in
          off) rest_variant off $((100 + ROUND % 50)) RATE_LIMITS=off ;;
          on-local) rest_variant on-local $((150 + ROUND % 50)) "$ON" ;;
          on-redis) rest_variant on-redis $((200 + RANDOM % 50)) "$ON" REDIS_URL=redis://127.0.0.1:6379 ;;
        esac
      done
    done
    for f in "$OUT/$SCENARIO"-*-"$STAMP"-r*.json; do
      jq -r --arg f "$(basename "$f")" \
        '"\($f): \(.throughput_rps|floor) req/s, \(.requests) requests, \(.errors) errors, \(.rate_limited) refused (429), p99 \(.latency.p99_ms) ms"' "$f"
    done
    ;;
  abuse | abuse-embedded)
    # The defences as shipped: default RATE_LIMITS, argon2 parameters, hashing queue.
    UNSET=(RATE_LIMITS ARGON2_MEMORY_KIB ARGON2_ITERATIONS PASSWORD_HASH_QUEUE)
    if [ "$SCENARIO" = abuse ]; then
      fresh_database
      start $API0 $METRICS0 DATABASE_URL="$URL" DATABASE_MAX_CONNECTIONS=16
    else
      DATA=$(mktemp -d)
      start $API0 $METRICS0 DATA_DIR="$DATA"
    fi
    "$LOAD" abuse --url http://127.0.0.1:$API0 --baseline "${BASELINE:-20}" --attack "${ATTACK:-20}" \
      --attack-nice "${ATTACK_NICE:-19}" \
      --out "$OUT/$SCENARIO-$STAMP.json" --plot "$OUT/$SCENARIO-$STAMP.png"
    ;;
  reminders | reminders-embedded)
    LEAD=${LEAD:-3600}
    REMIND=(REMINDER_LEAD="${LEAD}s")
    if [ "$SCENARIO" = reminders ]; then
      fresh_database
      start $API0 $METRICS0 DATABASE_URL="$URL" EVENT_BUS=postgres DATABASE_MAX_CONNECTIONS=20 "${REMIND[@]}"
      start $API1 $METRICS1 DATABASE_URL="$URL" EVENT_BUS=postgres DATABASE_MAX_CONNECTIONS=20 "${REMIND[@]}"
      TARGETS=(--instances http://127.0.0.1:$API0,http://127.0.0.1:$API1
        --metrics http://127.0.0.1:$METRICS0,http://127.0.0.1:$METRICS1)
    else
      DATA=$(mktemp -d)
      start $API0 $METRICS0 DATA_DIR="$DATA" "${REMIND[@]}"
      TARGETS=(--instances http://127.0.0.1:$API0 --metrics http://127.0.0.1:$METRICS0)
    fi
    EXTRA=()
    if [ -n "${OVERDUE:-}" ]; then EXTRA+=(--overdue); fi
    echo "machine before: $(uptime)" | tee "$OUT/$SCENARIO-$STAMP.machine"
    STATUS=0
    "$LOAD" reminders --tasks "${TASKS:-100000}" --users "${USERS:-1000}" --window "${WINDOW:-60}" \
      --lead "$LEAD" --setup "${SETUP:-180}" "${TARGETS[@]}" "${EXTRA[@]}" \
      --out "$OUT/$SCENARIO-$STAMP.json" --plot "$OUT/$SCENARIO-$STAMP.png" || STATUS=$?
    echo "machine after: $(uptime)" | tee -a "$OUT/$SCENARIO-$STAMP.machine"
    exit "$STATUS"
    ;;
  team-fanout-postgres | team-fanout-redis | presence-churn)
    # Users sign up and owners create projects through the API; the other members are
    # written with SQL (the tool's setup, through psql); then the outbox (welcome mails,
    # into DATA_DIR/mail) is waited for. Only the write phase is measured.
    if [ "$SCENARIO" = presence-churn ]; then
      BUS=${BUS:-postgres}
      PHASE=${PHASE:-15}
      WRITE_S=$((PHASE * ${PHASES:-4}))
      EXTRA=(--churn-rate "${CHURN:-1000}" --phase "$PHASE" --churn-nice "${CHURN_NICE:-19}")
      if [ -n "${CHURN_PROJECTS:-}" ]; then EXTRA+=(--churn-projects "$CHURN_PROJECTS"); fi
      if [ -n "${BARE_CHURN:-}" ]; then
        # The machine's floor: the churn sockets go to a server that does nothing.
        BARE=$((API0 + 10))
        "$LOAD" bare-ws --bind "127.0.0.1:$BARE" >"$OUT/bare-ws-$BARE.log" 2>&1 &
        PIDS+=("$!")
        EXTRA+=(--churn-url "http://127.0.0.1:$BARE")
      fi
      CMD=presence-churn
    else
      BUS=${SCENARIO#team-fanout-}
      WRITE_S=$DURATION
      EXTRA=()
      CMD=team-fanout
    fi
    NAME=$SCENARIO
    if [ "$SCENARIO" = presence-churn ]; then NAME=$SCENARIO-$BUS${BARE_CHURN:+-bare}; fi
    fresh_database
    DATA=$(mktemp -d)
    start $API0 $METRICS0 DATABASE_URL="$URL" EVENT_BUS="$BUS" DATABASE_MAX_CONNECTIONS="${DB_CONNECTIONS:-20}" DATA_DIR="$DATA/a"
    start $API1 $METRICS1 DATABASE_URL="$URL" EVENT_BUS="$BUS" DATABASE_MAX_CONNECTIONS="${DB_CONNECTIONS:-20}" DATA_DIR="$DATA/b"
    echo "machine before: $(uptime)" | tee "$OUT/$NAME-$STAMP.machine"
    STATUS=0
    "$LOAD" "$CMD" --projects "${PROJECTS:-200}" --members "${MEMBERS:-50}" \
      --rate "${RATE:-500}" --duration "$WRITE_S" --database-url "$URL" "${EXTRA[@]}" \
      --instances http://127.0.0.1:$API0,http://127.0.0.1:$API1 \
      --metrics http://127.0.0.1:$METRICS0,http://127.0.0.1:$METRICS1 \
      --out "$OUT/$NAME-$STAMP.json" --plot "$OUT/$NAME-$STAMP.png" || STATUS=$?
    echo "machine after: $(uptime)" | tee -a "$OUT/$NAME-$STAMP.machine"
    exit "$STATUS"
    ;;
  team-write-cost)
    fresh_database
    DATA=$(mktemp -d)
    # The phases create far more than the default 10,000 tasks per project.
    start $API0 $METRICS0 DATABASE_URL="$URL" DATABASE_MAX_CONNECTIONS=16 DATA_DIR="$DATA" \
      MAX_TASKS_PER_PROJECT=10000000
    echo "machine before: $(uptime)" | tee "$OUT/$SCENARIO-$STAMP.machine"
    STATUS=0
    "$LOAD" team-write-cost --members "${MEMBERS:-1000}" --concurrency "${CONCURRENCY:-16}" \
      --phase "${PHASE:-10}" --rounds "${ROUNDS:-3}" --database-url "$URL" \
      --url http://127.0.0.1:$API0 --metrics http://127.0.0.1:$METRICS0 \
      --out "$OUT/$SCENARIO-$STAMP.json" || STATUS=$?
    echo "machine after: $(uptime)" | tee -a "$OUT/$SCENARIO-$STAMP.machine"
    exit "$STATUS"
    ;;
  *)
    echo "unknown scenario $SCENARIO" >&2
    exit 2
    ;;
esac
