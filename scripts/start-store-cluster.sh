#!/usr/bin/env bash
# Start a three-replica ketch store on this machine, the plain way: certificates, three config
# files written out below, and three `python -m store --config FILE` processes in the background.
# (`ketch store up --dir DIR` does the same with free ports, waiting and idempotence.)
#
#   scripts/start-store-cluster.sh [DIR]         default DIR: ./store-cluster
#   env: PYTHON (python3), HOST (127.0.0.1), BASE_PORT (24000: clients 24001-3, Raft 24011-3)
#
# Stop it with `ketch store down --dir DIR` (or kill the printed pids); talk to it with
# `ketch store put --dir DIR foo bar`: this script writes the same DIR layout the CLI reads.
#
# Three machines instead of one: run `ketch certs init --dir certs --replicas s1,s2,s3
# --host IP1 --host IP2 --host IP3` once, copy the certs directory to every machine (ca.key may
# stay behind), set HOST1..HOST3 below to the machines' addresses, and on machine N run only the
# `start sN` line at the bottom (each replica needs only its own config.json and the certs).
set -euo pipefail

PYTHON=${PYTHON:-python3}
HOST=${HOST:-127.0.0.1}
BASE_PORT=${BASE_PORT:-24000}
HOST1=$HOST HOST2=$HOST HOST3=$HOST
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"

mkdir -p "${1:-./store-cluster}"
DIR=$(cd "${1:-./store-cluster}" && pwd -P)

# 1. Certificates: the cluster CA, a serving+client pair per replica, the store-client pair for
#    tools, and the Raft peer secret.  Idempotent: existing valid files are kept.
"$PYTHON" -m ketch certs init --dir "$DIR/certs" --replicas s1,s2,s3 --host "$HOST"

# 2. One config file per replica (the JSON of store.config.ReplicaConfig).  Relative paths are
#    relative to the config file's directory.  Fields:
#      name              this replica; must be one of members
#      members           every replica: name, Raft address host:port, client URL https://host:port
#      data_dir          journal and snapshots
#      ca, cert, key     the cluster CA and this replica's certificate (mutual TLS)
#      raft_secret_file  the password all replicas share on their Raft links
#      fsync             true: a write is acknowledged once on disk on a majority
MEMBERS="[
    {\"name\": \"s1\", \"raft\": \"$HOST1:$((BASE_PORT + 11))\", \"client\": \"https://$HOST1:$((BASE_PORT + 1))\"},
    {\"name\": \"s2\", \"raft\": \"$HOST2:$((BASE_PORT + 12))\", \"client\": \"https://$HOST2:$((BASE_PORT + 2))\"},
    {\"name\": \"s3\", \"raft\": \"$HOST3:$((BASE_PORT + 13))\", \"client\": \"https://$HOST3:$((BASE_PORT + 3))\"}
  ]"
for name in s1 s2 s3; do
  mkdir -p "$DIR/$name/data"
  cat > "$DIR/$name/config.json" <<JSON
{
  "name": "$name",
  "members": $MEMBERS,
  "data_dir": "data",
  "ca": "../certs/ca.crt",
  "cert": "../certs/store-$name.crt",
  "key": "../certs/store-$name.key",
  "raft_secret_file": "../certs/raft-secret",
  "fsync": true
}
JSON
done
# The member list once more for `ketch store ... --dir DIR` (it reads DIR/cluster.json).
printf '{"fsync": true, "members": %s}\n' "$MEMBERS" > "$DIR/cluster.json"

# 3. Start the replicas in the background, each in its own session so it outlives this shell;
#    output goes to DIR/NAME/replica.log, the pid to DIR/NAME/replica.pid.
start() {
  local name=$1
  (cd "$DIR/$name" && exec setsid "$PYTHON" -m store --config "$DIR/$name/config.json" \
      </dev/null >>"$DIR/$name/replica.log" 2>&1) &
  echo $! > "$DIR/$name/replica.pid"
  echo "$name: pid $!, log $DIR/$name/replica.log"
}
start s1
start s2
start s3

echo "started; check with: $PYTHON -m ketch store status --dir $DIR"
