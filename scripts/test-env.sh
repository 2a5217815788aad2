#!/usr/bin/env bash
# Starts (or stops) the real backends the tests use, on loopback only:
#   PostgreSQL 127.0.0.1:25432, Redis 127.0.0.1:26379, Redis Cluster 127.0.0.1:27001-27003
#   (cluster bus 17001-17003). The ports lie below Linux's ephemeral range (32768-60999):
#   there, a client socket of any process (or a probe's TCP self-connect) can hold a port
#   when its server starts, which once left a cluster node unable to bind.
# `start` writes target/test-env/env with the CREDMESH_TEST_* variables the tests read.
# Servers are throw-away: their data lives under a temporary directory. PostgreSQL keeps
# little WAL (every test creates a database, each one logged whole): CI's disk is small.
set -euo pipefail
cd "$(dirname "$0")/.."

state=target/test-env
mkdir -p "$state"
base=/tmp/credmesh-test-env
pg_port=25432
redis_port=26379
cluster_ports=(27001 27002 27003)

pg_bin() { ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1; }

start_postgres() {
  local bin; bin=$(pg_bin)
  if "$bin/pg_isready" -q -h 127.0.0.1 -p $pg_port 2>/dev/null; then return; fi
  rm -rf "$base/pg"; mkdir -p "$base/pg"
  chown -R postgres:postgres "$base/pg"
  runuser -u postgres -- "$bin/initdb" -D "$base/pg/data" -A trust -U postgres >/dev/null
  runuser -u postgres -- "$bin/pg_ctl" -D "$base/pg/data" -l "$base/pg/log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $pg_port -k $base/pg -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400 -c max_wal_size=128MB -c min_wal_size=32MB" start >/dev/null \
    || { echo "error: PostgreSQL on port $pg_port did not start; its log:" >&2; cat "$base/pg/log" >&2; exit 1; }
}

# A Redis server answers on `port`: PONG, not merely a connection (a TCP self-connect
# echoes the PING back, and redis-cli then exits 0).
redis_up() { [ "$(redis-cli -p "$1" ping 2>/dev/null)" = PONG ]; }

start_redis() { # port [extra args]
  local port=$1; shift
  if redis_up "$port"; then return; fi
  # Nothing answers: whatever is left here is from a server that was killed (a stale
  # cluster nodes.conf would make the new node refuse to join a new cluster).
  rm -rf "$base/redis-$port"; mkdir -p "$base/redis-$port"
  redis-server --bind 127.0.0.1 --port "$port" --daemonize yes --save '' --appendonly no \
    --dir "$base/redis-$port" --pidfile "$base/redis-$port/pid" --logfile "$base/redis-$port/log" "$@"
  for _ in $(seq 50); do redis_up "$port" && return; sleep 0.1; done
  echo "error: redis on port $port did not start; its log:" >&2
  cat "$base/redis-$port/log" >&2 || true
  exit 1
}

start_cluster() {
  for p in "${cluster_ports[@]}"; do
    start_redis "$p" --cluster-enabled yes --cluster-port $((p - 10000)) --cluster-config-file "$base/redis-$p/nodes.conf"
  done
  if ! redis-cli -p "${cluster_ports[0]}" cluster info | grep -q 'cluster_state:ok'; then
    # Nodes left from an earlier, broken cluster forget it before the new one forms.
    for p in "${cluster_ports[@]}"; do
      redis-cli -p "$p" flushall >/dev/null 2>&1 || true
      redis-cli -p "$p" cluster reset hard >/dev/null 2>&1 || true
    done
    local out
    if ! out=$(redis-cli --cluster create $(printf '127.0.0.1:%s ' "${cluster_ports[@]}") \
      --cluster-replicas 0 --cluster-yes 2>&1); then
      echo "error: redis-cli --cluster create failed:" >&2; echo "$out" >&2; exit 1
    fi
    for _ in $(seq 100); do
      redis-cli -p "${cluster_ports[0]}" cluster info | grep -q 'cluster_state:ok' && return
      sleep 0.1
    done
    echo "error: redis cluster did not become ok:" >&2
    redis-cli -p "${cluster_ports[0]}" cluster info >&2 || true
    exit 1
  fi
}

case "${1:-start}" in
  start)
    start_postgres
    start_redis $redis_port
    start_cluster
    cat > "$state/env" <<ENV
export CREDMESH_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:$pg_port
export CREDMESH_TEST_REDIS_URL=redis://127.0.0.1:$redis_port
export CREDMESH_TEST_REDIS_CLUSTER_URL=redis-cluster://$(IFS=,; echo "${cluster_ports[*]/#/127.0.0.1:}")
ENV
    echo "test servers up: $(tr '\n' ' ' < "$state/env" | sed 's/export //g')"
    ;;
  diagnose)
    # After a failed run: any server that no longer answers, with the end of its log
    # (a server that died mid-run fails every test after it with "connection refused").
    if ! "$(pg_bin)/pg_isready" -q -h 127.0.0.1 -p $pg_port 2>/dev/null; then
      echo "PostgreSQL on port $pg_port no longer answers; the end of its log:" >&2
      tail -n 20 "$base/pg/log" >&2 2>/dev/null || true
    fi
    for p in $redis_port "${cluster_ports[@]}"; do
      if ! redis_up "$p"; then
        echo "Redis on port $p no longer answers; the end of its log:" >&2
        tail -n 10 "$base/redis-$p/log" >&2 2>/dev/null || true
      fi
    done
    ;;
  stop)
    bin=$(pg_bin)
    [ -d "$base/pg/data" ] && runuser -u postgres -- "$bin/pg_ctl" -D "$base/pg/data" -m immediate stop >/dev/null 2>&1 || true
    for p in $redis_port "${cluster_ports[@]}"; do redis-cli -p "$p" shutdown nosave >/dev/null 2>&1 || true; done
    rm -rf "$base" "$state/env"
    ;;
  *) echo "usage: $0 start|stop|diagnose" >&2; exit 2 ;;
esac
