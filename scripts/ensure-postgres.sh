#!/usr/bin/env bash
# Make sure a PostgreSQL server answers on 127.0.0.1:5432 for user postgres without a password (trust), as the
# PostgreSQL backend's tests expect: nothing to do when one does; otherwise install Debian's postgresql if it is
# missing, let local TCP connections of user postgres in, and start the cluster.
set -euo pipefail
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo

answers() {
    python3 - <<'PY'
import socket, sys
try:
    socket.create_connection(("127.0.0.1", 5432), timeout=2).close()
except OSError:
    sys.exit(1)
PY
}

if answers; then
    exit 0
fi
if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
version=$(ls /usr/lib/postgresql | sort -V | tail -1)
if ! $SUDO pg_lsclusters -h | grep -q .; then
    $SUDO pg_createcluster "$version" main >/dev/null
fi
read -r cluster_version cluster_name _ < <($SUDO pg_lsclusters -h | head -1)
cluster="$cluster_version $cluster_name"
hba=/etc/postgresql/$cluster_version/$cluster_name/pg_hba.conf
if ! $SUDO grep -q "facelens-tests" "$hba"; then
    $SUDO sed -i '1i host all postgres 127.0.0.1/32 trust  # facelens-tests' "$hba"
fi
$SUDO pg_ctlcluster $cluster start || $SUDO pg_ctlcluster $cluster reload
for _ in $(seq 30); do
    answers && exit 0
    sleep 1
done
echo "PostgreSQL did not start on 127.0.0.1:5432" >&2
exit 1
