#!/usr/bin/env bash
# A real Spark standalone cluster on this machine, from the installed pyspark: one master and
# ARIA_CLUSTER_WORKERS (2) workers of ARIA_CLUSTER_CORES (1) core and ARIA_CLUSTER_MEMORY (3g) each, every
# process bound to 127.0.0.1 on ports chosen free, each worker with its own work and local dirs.
#
#   scripts/local-cluster.sh start    # returns once every worker is registered; last line: spark://127.0.0.1:PORT
#   scripts/local-cluster.sh status   # exit 0 and the master URL as last line while the cluster is up, else 1
#   scripts/local-cluster.sh stop     # stops workers (and their executors) and the master; no JVM left behind
#
# State (pids, logs, work and local dirs, the master URL) lives in ARIA_CLUSTER_DIR (build/local-cluster).
# Run a job on it: ./spark-submit.sh pipeline --conf conf/standalone-local.toml --master "$(scripts/local-cluster.sh status | tail -1)"
set -euo pipefail
source "$(dirname "$0")/bootstrap.sh"

STATE="${ARIA_CLUSTER_DIR:-$ROOT/build/local-cluster}"
WORKERS="${ARIA_CLUSTER_WORKERS:-2}"
CORES="${ARIA_CLUSTER_CORES:-1}"
MEMORY="${ARIA_CLUSTER_MEMORY:-3g}"
START_TIMEOUT="${ARIA_CLUSTER_START_TIMEOUT:-180}"
SPARK_CLASS="$VENV/lib/python3.11/site-packages/pyspark/bin/spark-class"
if [ ! -x "$SPARK_CLASS" ]; then
  SPARK_CLASS="$("$VENV_PY" -c 'import os, pyspark; print(os.path.join(os.path.dirname(pyspark.__file__), "bin", "spark-class"))')"
fi

# Every daemon and the executors the workers launch: loopback only, small daemon heaps.
export SPARK_LOCAL_IP=127.0.0.1
export SPARK_DAEMON_MEMORY="${SPARK_DAEMON_MEMORY:-512m}"
export PYSPARK_PYTHON="$VENV_PY"
# The master's REST submission server would take the fixed port 6066; jobs are submitted in client mode.
export SPARK_MASTER_OPTS="-Dspark.master.rest.enabled=false ${SPARK_MASTER_OPTS:-}"
# Like remote nodes, the executors get the code only from the application (--py-files), never the tree.
unset SPARK_MASTER_HOST SPARK_WORKER_DIR SPARK_LOCAL_DIRS SPARK_CONF_DIR PYTHONPATH

die() { echo "local-cluster: $*" >&2; exit 1; }

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

pid_of() { cat "$STATE/$1.pid" 2>/dev/null || true; }

free_port() {
  "$VENV_PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# The master's /json/ status: "<alive workers> <registered workers>" (or nothing while it is not up).
master_workers() {
  "$VENV_PY" - "$(cat "$STATE/webui-port")" <<'EOF' 2>/dev/null || true
import json, sys, urllib.request
with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/json/", timeout=5) as response:
    workers = json.load(response).get("workers", [])
print(sum(w.get("state") == "ALIVE" for w in workers), len(workers))
EOF
}

# Processes whose working directory lies in the state folder: executors the workers launched.
strays() {
  local proc cwd
  for proc in /proc/[0-9]*; do
    cwd=$(readlink "$proc/cwd" 2>/dev/null) || continue
    case "$cwd" in "$STATE"/*) echo "${proc#/proc/}" ;; esac
  done
}

stop_pid() {  # stop_pid NAME: TERM, wait up to 20 s, then KILL
  local name=$1 pid
  pid=$(pid_of "$name")
  if alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do alive "$pid" || break; sleep 0.5; done
    if alive "$pid"; then
      echo "local-cluster: $name (pid $pid) ignored TERM; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$STATE/$name.pid"
}

cmd_stop() {
  local i pid
  for i in $(seq "$WORKERS" -1 1); do stop_pid "worker-$i"; done
  for pid in $(strays); do
    echo "local-cluster: stopping executor pid $pid left by a worker" >&2
    kill -TERM "$pid" 2>/dev/null || true
  done
  sleep 1
  for pid in $(strays); do kill -KILL "$pid" 2>/dev/null || true; done
  stop_pid master
  rm -f "$STATE/master-url"
  echo "local-cluster: stopped"
}

cmd_status() {
  local pid counts
  pid=$(pid_of master)
  if ! alive "$pid" || [ ! -f "$STATE/master-url" ]; then
    echo "local-cluster: not running (state in $STATE)"
    return 1
  fi
  counts=$(master_workers)
  echo "local-cluster: master pid $pid, web UI http://127.0.0.1:$(cat "$STATE/webui-port")/, workers alive/registered: ${counts:-unknown}"
  cat "$STATE/master-url"
}

launch() {  # launch NAME CLASS ARGS...: one daemon in the background, its pid in NAME.pid
  local name=$1
  shift
  : >"$STATE/logs/$name.log"
  (cd "$STATE" && exec nohup "$SPARK_CLASS" "$@" >>"$STATE/logs/$name.log" 2>&1 </dev/null) &
  echo $! >"$STATE/$name.pid"
}

fail_start() {
  echo "local-cluster: $*" >&2
  for log in "$STATE"/logs/*.log; do
    echo "--- $log (last lines)" >&2
    tail -n 15 "$log" >&2 || true
  done
  cmd_stop >&2
  exit 1
}

cmd_start() {
  command -v java >/dev/null 2>&1 || [ -n "${JAVA_HOME:-}" ] || die "java not found; Spark needs Java 17 or 21"
  if alive "$(pid_of master)"; then
    die "already running (scripts/local-cluster.sh status; stop it first)"
  fi
  mkdir -p "$STATE/logs"
  rm -f "$STATE"/*.pid "$STATE/master-url"
  local port webui i deadline counts
  port=$(free_port)
  webui=$(free_port)
  echo "$webui" >"$STATE/webui-port"
  launch master org.apache.spark.deploy.master.Master --host 127.0.0.1 --port "$port" --webui-port "$webui"
  for i in $(seq 1 "$WORKERS"); do
    mkdir -p "$STATE/worker-$i/work" "$STATE/worker-$i/local"
    SPARK_LOCAL_DIRS="$STATE/worker-$i/local" launch "worker-$i" org.apache.spark.deploy.worker.Worker \
      --host 127.0.0.1 --port "$(free_port)" --webui-port "$(free_port)" \
      --cores "$CORES" --memory "$MEMORY" --work-dir "$STATE/worker-$i/work" "spark://127.0.0.1:$port"
  done
  deadline=$((SECONDS + START_TIMEOUT))
  while :; do
    for name in master $(for i in $(seq 1 "$WORKERS"); do echo "worker-$i"; done); do
      alive "$(pid_of "$name")" || fail_start "$name exited during start-up"
    done
    counts=$(master_workers)
    [ "${counts%% *}" = "$WORKERS" ] && break
    [ "$SECONDS" -lt "$deadline" ] || fail_start "only ${counts:-0} of $WORKERS workers registered after ${START_TIMEOUT}s"
    sleep 1
  done
  echo "spark://127.0.0.1:$port" >"$STATE/master-url"
  echo "local-cluster: $WORKERS workers ($CORES core, $MEMORY each) registered; web UI http://127.0.0.1:$webui/; logs in $STATE/logs"
  cat "$STATE/master-url"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *) echo "usage: scripts/local-cluster.sh start|stop|status" >&2; exit 2 ;;
esac
