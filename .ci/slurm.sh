#!/usr/bin/env bash
# Single-node Slurm test cluster for CI and developers: `.ci/slurm.sh up|down|status`.
#
# `up` installs Slurm 22.05 (Debian packages) with accounting (slurmdbd + a private MariaDB) if
# missing, writes /etc/slurm/slurm.conf and slurmdbd.conf, starts munged, mariadbd, slurmdbd,
# slurmctld and slurmd by hand (there is no systemd here), records their PIDs and waits until the
# node is idle and `sacct` answers. A second `up` only starts what is not running.
# `down` stops the recorded daemons by PID (never by name), newest first.
#
# Why accounting: snakemake-executor-plugin-slurm polls job states with `sacct` and validates
# `slurm_account` with `sacctmgr`; with slurmdbd both work with their defaults and `sacct` keeps a
# record of every finished job, which is what tests use to prove that jobs went through Slurm.
#
# Environment: SPARSEAE_SLURM_STATE (default /var/lib/sparseae-slurm) holds the PID file, logs,
# the database and spool directories; SPARSEAE_SLURM_TIMEOUT (default 60) bounds each wait.
set -euo pipefail

STATE=${SPARSEAE_SLURM_STATE:-/var/lib/sparseae-slurm}
TIMEOUT=${SPARSEAE_SLURM_TIMEOUT:-60}
PIDS="$STATE/pids"
LOGS="$STATE/log"
CONF_DIR=/etc/slurm
MARKER="# written by sparseae .ci/slurm.sh"
CLUSTER=sparseae
PARTITION=main
DB_PORT=${SPARSEAE_SLURM_DB_PORT:-3307}  # not 3306, so a system MariaDB can coexist
PACKAGES=(slurmctld slurmd slurm-client slurmdbd munge mariadb-server)

log() { printf '[slurm.sh] %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# --- PID bookkeeping --------------------------------------------------------------------------

# pid_of NAME: the recorded PID of daemon NAME, or nothing.
pid_of() {
    [[ -f $PIDS ]] || return 0
    awk -v n="$1" '$1 == n { p = $2 } END { if (p) print p }' "$PIDS"
}

# alive PID EXE: true if PID runs /usr/sbin/EXE (guards against recycled PIDs). Debian links
# some daemons through alternatives (slurmctld -> slurmctld-wlm), hence the resolved path.
alive() {
    local pid=$1 exe=$2 path want
    [[ -n $pid && -d /proc/$pid ]] || return 1
    path=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
    want=$(readlink -f "/usr/sbin/$exe")
    [[ ${path% (deleted)} == "$want" ]]
}

record() {
    mkdir -p "$STATE"
    local tmp="$PIDS.tmp.$$"
    { [[ -f $PIDS ]] && awk -v n="$1" '$1 != n' "$PIDS"; echo "$1 $2"; } >"$tmp"
    mv "$tmp" "$PIDS"
}

# wait_for DAEMON DESCRIPTION COMMAND...: retry COMMAND every 0.2 s until it succeeds; fail at
# once if DAEMON died meanwhile, or after TIMEOUT seconds.
wait_for() {
    local daemon=$1 what=$2 deadline=$((SECONDS + TIMEOUT))
    shift 2
    until "$@" >/dev/null 2>&1; do
        if ! alive "$(pid_of "$daemon")" "$daemon"; then
            die "$daemon exited while waiting for $what; its log ends: $(tail -n 15 "$LOGS/$daemon.log")"
        fi
        if ((SECONDS >= deadline)); then
            log "timed out after ${TIMEOUT}s waiting for $what; last log lines:"
            tail -n 20 "$LOGS"/*.log >&2 2>/dev/null || true
            return 1
        fi
        sleep 0.2
    done
}

# start NAME EXE COMMAND...: run COMMAND in the foreground mode of the daemon, in the background
# of this script, unless the recorded PID still runs EXE. `$!` is the daemon itself because every
# wrapper used (setpriv) execs without forking.
start() {
    local name=$1 exe=$2 pid
    shift 2
    pid=$(pid_of "$name")
    if alive "$pid" "$exe"; then
        log "$name already running (pid $pid)"
        return 0
    fi
    nohup "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
    pid=$!
    record "$name" "$pid"
    sleep 0.1
    alive "$pid" "$exe" || die "$name did not start (see $LOGS/$name.log): $(tail -n 5 "$LOGS/$name.log")"
    log "started $name (pid $pid)"
}

# --- installation and configuration -----------------------------------------------------------

install_packages() {
    local missing=()
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    ((${#missing[@]} == 0)) && return 0
    [[ $(id -u) == 0 ]] || die "packages missing (${missing[*]}) and not root to install them"
    log "installing ${missing[*]}"
    apt-get update -q >"$LOGS/apt.log" 2>&1 || die "apt-get update failed (see $LOGS/apt.log)"
    # policy-rc.d in containers stops postinst from starting services; we start them below.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" \
        >>"$LOGS/apt.log" 2>&1 || die "apt-get install failed (see $LOGS/apt.log)"
}

ensure_hostname() {
    local host
    host=$(hostname -s)
    if ! getent hosts "$host" >/dev/null; then
        log "adding '127.0.0.1 $host' to /etc/hosts"
        echo "127.0.0.1 $host" >>/etc/hosts
    fi
}

# write_conf PATH MODE OWNER: write stdin to PATH unless PATH exists without our marker (a real
# cluster's configuration is never overwritten).
write_conf() {
    local path=$1 mode=$2 owner=$3 tmp
    if [[ -f $path ]] && ! grep -qF "$MARKER" "$path"; then
        die "$path exists and was not written by this script; refusing to overwrite it"
    fi
    tmp=$(mktemp "$path.XXXXXX")
    cat >"$tmp"
    chmod "$mode" "$tmp"
    chown "$owner" "$tmp"
    mv "$tmp" "$path"
}

configure() {
    local host node_line db_pass
    host=$(hostname -s)
    # Each daemon that drops privileges gets a folder its user owns.
    mkdir -p "$CONF_DIR" "$STATE/ctld" "$STATE/run" "$STATE/slurmd" "$STATE/mysqlrun" /run/munge
    chown slurm:slurm "$STATE/ctld" "$STATE/run"
    chown mysql:mysql "$STATE/mysqlrun"
    chown munge:munge /run/munge

    # The node's real CPUs and memory, so Slurm accepts the node and mem_mb requests fit.
    node_line=$(slurmd -C | head -n 1)
    [[ $node_line == NodeName=* ]] || die "unexpected 'slurmd -C' output: $node_line"

    write_conf "$CONF_DIR/slurm.conf" 0644 root:root <<EOF
$MARKER
ClusterName=$CLUSTER
SlurmctldHost=$host(127.0.0.1)
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/slurmd
# Daemons run in the foreground and log to stderr, which lands in $LOGS/<daemon>.log.
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
# No cgroups on this kind of machine: plain process tracking, no task containment.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
# Keep sbatch --comment (the Slurm executor writes rule and wildcards there) in sacct.
AccountingStoreFlags=job_comment
JobCompType=jobcomp/none
MailProg=/bin/true
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Finished jobs stay visible to scontrol/squeue for 10 minutes (sacct keeps them for good).
MinJobAge=600
SlurmctldTimeout=30
SlurmdTimeout=30
$node_line NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF

    db_pass_file="$STATE/db.pass"
    if [[ ! -s $db_pass_file ]]; then
        (umask 077 && head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' >"$db_pass_file")
    fi
    db_pass=$(cat "$db_pass_file")
    write_conf "$CONF_DIR/slurmdbd.conf" 0600 slurm:slurm <<EOF
$MARKER
AuthType=auth/munge
DbdHost=$host
DbdAddr=127.0.0.1
SlurmUser=slurm
PidFile=$STATE/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$db_pass
StorageLoc=slurm_acct_db
EOF

    if [[ ! -s /etc/munge/munge.key ]]; then
        log "creating munge key"
        mungekey --create --keyfile=/etc/munge/munge.key
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
}

init_database() {
    local datadir="$STATE/mysql"
    if [[ ! -d $datadir/mysql ]]; then
        log "initialising MariaDB data directory $datadir"
        mkdir -p "$datadir"
        chown mysql:mysql "$datadir"
        mariadb-install-db --user=mysql --datadir="$datadir" --skip-test-db \
            --auth-root-authentication-method=socket >>"$LOGS/mariadb-install.log" 2>&1 ||
            die "mariadb-install-db failed (see $LOGS/mariadb-install.log)"
    fi
}

grant_database() {
    local pass
    pass=$(cat "$STATE/db.pass")
    # Root logs in through the private socket (unix_socket auth); slurmdbd uses TCP on loopback.
    mariadb --socket="$STATE/mysqlrun/mysqld.sock" -u root <<EOF
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$pass';
ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$pass';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
EOF
}

node_idle() {
    local state
    state=$(sinfo -h -N -o '%T' 2>/dev/null | head -n 1)
    [[ $state == idle || $state == mixed || $state == allocated ]]
}

cluster_registered() {
    sacctmgr -n -P show cluster format=cluster 2>/dev/null | grep -qx "$CLUSTER" &&
        sacctmgr -n -P -s list user root format=account 2>/dev/null | grep -qx root
}

# --- commands ---------------------------------------------------------------------------------

up() {
    local t0=$SECONDS
    [[ $(id -u) == 0 ]] || die "must run as root (daemons, /etc/slurm, /etc/hosts)"
    mkdir -p "$STATE" "$LOGS"
    install_packages
    ensure_hostname
    configure
    init_database

    start munged munged setpriv --reuid=munge --regid=munge --init-groups \
        /usr/sbin/munged --foreground --force
    wait_for munged "munged" munge -n

    start mariadbd mariadbd /usr/sbin/mariadbd --no-defaults --user=mysql \
        --datadir="$STATE/mysql" --socket="$STATE/mysqlrun/mysqld.sock" \
        --pid-file="$STATE/mysqlrun/mariadbd.pid" --bind-address=127.0.0.1 --port="$DB_PORT" \
        --skip-name-resolve --innodb-buffer-pool-size=64M
    wait_for mariadbd "mariadbd" mariadb --socket="$STATE/mysqlrun/mysqld.sock" -u root -e 'SELECT 1'
    grant_database

    start slurmdbd slurmdbd /usr/sbin/slurmdbd -D
    wait_for slurmdbd "slurmdbd" sacctmgr -n show cluster

    start slurmctld slurmctld /usr/sbin/slurmctld -D
    # slurmctld adds the cluster (with account root and user root) to the database on start.
    wait_for slurmctld "cluster registration in slurmdbd" cluster_registered

    start slurmd slurmd /usr/sbin/slurmd -D
    wait_for slurmd "node $(hostname -s) to be idle" node_idle
    log "cluster '$CLUSTER' up in $((SECONDS - t0)) s: partition $PARTITION, account root"
    sinfo >&2
}

down() {
    [[ -f $PIDS ]] || {
        log "nothing recorded in $PIDS; nothing to stop"
        return 0
    }
    local name exe pid deadline
    # Newest first: slurmd, slurmctld, slurmdbd, mariadbd, munged.
    for name in slurmd slurmctld slurmdbd mariadbd munged; do
        pid=$(pid_of "$name")
        exe=$name
        if alive "$pid" "$exe"; then
            kill -TERM "$pid"
            deadline=$((SECONDS + 30))
            while alive "$pid" "$exe" && ((SECONDS < deadline)); do sleep 0.2; done
            if alive "$pid" "$exe"; then
                log "$name (pid $pid) ignored TERM for 30 s; sending KILL"
                kill -KILL "$pid" || true
            fi
            log "stopped $name (pid $pid)"
        fi
    done
    rm -f "$PIDS"
}

status() {
    local name pid rc=0
    for name in munged mariadbd slurmdbd slurmctld slurmd; do
        pid=$(pid_of "$name")
        if alive "$pid" "$name"; then
            echo "$name running (pid $pid)"
        else
            echo "$name not running"
            rc=1
        fi
    done
    return "$rc"
}

case "${1:-}" in
up) up ;;
down) down ;;
status) status ;;
*)
    echo "usage: $0 up|down|status" >&2
    exit 2
    ;;
esac
