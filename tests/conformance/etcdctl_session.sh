#!/usr/bin/env bash
# Scripted etcdctl 3.4 session used by tests/etcdctl_conformance.rs.
#
# The test runs this script once against the real etcd 3.4 and once against
# the server under test (`keelson store`), each freshly started with an empty
# data dir and the same flags, normalises both outputs (IDs, raft terms and
# indexes, timestamps, sizes, ports, temp paths, the server version string)
# and requires them to be identical. Everything else - revisions, values,
# counts, error messages, exit codes, output formats - is compared verbatim.
#
# tests/conformance/etcd-3.4-reference.txt is a saved copy of the
# *normalised* output of this script against etcd 3.4.23, for humans to read.
# The test never compares against it (it always runs etcd live); regenerate it
# with KEELSON_CONFORMANCE_WRITE_REFERENCE=1 when this script changes.
#
# Inputs (environment):
#   ENDPOINT           client URL, e.g. http://127.0.0.1:2379
#   WORKDIR            scratch directory (snapshot file, watch output, ...)
#   MAX_REQUEST_BYTES  the server's --max-request-bytes
#   CTL_CMD            the client to run, split on spaces (default: etcdctl); e.g.
#                      "/path/to/keelson kv". Output headers say "### etcdctl ..."
#                      whichever client runs, so outputs stay comparable.
#
# Rules for editing: the output must be deterministic against a fresh server.
# Never sleep a fixed time to wait for something; poll with a bound instead.
# Avoid ties in sort orders and anything whose output depends on timing.
# Every etcdctl invocation runs under `timeout`, stdin from /dev/null unless
# it is meant to read stdin, stderr merged into stdout.

set -u

: "${ENDPOINT:?ENDPOINT must be set}"
: "${WORKDIR:?WORKDIR must be set}"
: "${MAX_REQUEST_BYTES:?MAX_REQUEST_BYTES must be set}"

export ETCDCTL_API=3
# Make sure nothing from the caller's environment changes etcdctl's behaviour.
unset ETCDCTL_ENDPOINTS ETCDCTL_WRITE_OUT ETCDCTL_HEX ETCDCTL_USER ETCDCTL_PASSWORD \
    ETCDCTL_CACERT ETCDCTL_CERT ETCDCTL_KEY ETCDCTL_DIAL_TIMEOUT ETCDCTL_COMMAND_TIMEOUT

read -r -a CTL <<<"${CTL_CMD:-etcdctl}"
CTL_TIMEOUT=20
WATCH_PIDS=""
cleanup() {
    local p
    for p in $WATCH_PIDS; do kill -TERM "$p" 2>/dev/null; done
}
trap cleanup EXIT

# --foreground keeps timeout (and etcdctl) in this script's process group, so
# the test harness can kill everything the script started with one signal.
ctl() {
    timeout --foreground -k 5 "$CTL_TIMEOUT" "${CTL[@]}" --endpoints="$ENDPOINT" "$@"
}

# run ARGS...: print the command, run it (stdin /dev/null), print its exit code.
run() {
    echo "### etcdctl $*"
    ctl "$@" </dev/null 2>&1
    echo "exit=$?"
}

# run_capture ARGS...: like run, but also leaves the output in $OUT.
run_capture() {
    local rc
    echo "### etcdctl $*"
    OUT=$(ctl "$@" </dev/null 2>&1)
    rc=$?
    printf '%s\n' "$OUT"
    echo "exit=$rc"
}

# run_stdin ARGS... <<EOF ... EOF: like run, but feeds the here-document to
# etcdctl's stdin (echoed first, prefixed with "#> ", so it is part of the
# compared output too).
run_stdin() {
    local input="$WORKDIR/stdin.txt"
    cat >"$input"
    echo "### etcdctl $* <<EOF"
    sed 's/^/#> /' "$input"
    echo "### EOF"
    ctl "$@" <"$input" 2>&1
    echo "exit=$?"
}

# current_revision: the store's current revision, read from a get header.
current_revision() {
    ctl get current-revision-probe -w json </dev/null 2>/dev/null |
        sed -n 's/.*"revision":\([0-9][0-9]*\).*/\1/p'
}

# wait_lines FILE N: poll (bounded, ~15 s) until FILE has at least N lines.
wait_lines() {
    local file=$1 want=$2 i
    for ((i = 0; i < 300; i++)); do
        if [ "$(wc -l <"$file")" -ge "$want" ]; then
            return 0
        fi
        sleep 0.05
    done
    return 1
}

# start_watch NAME ARGS...: start `etcdctl watch ARGS...` in the background,
# output to $WORKDIR/watch-NAME.out; sets WATCH_PID.
start_watch() {
    local name=$1
    shift
    echo "### etcdctl watch $* &   (background)"
    : >"$WORKDIR/watch-$name.out"
    # A simple command (not the ctl function), so that $! is timeout's own PID
    # and killing it forwards the signal to etcdctl.
    timeout --foreground -k 5 "$CTL_TIMEOUT" "${CTL[@]}" --endpoints="$ENDPOINT" watch "$@" \
        </dev/null >"$WORKDIR/watch-$name.out" 2>&1 &
    WATCH_PID=$!
    WATCH_PIDS="$WATCH_PIDS $WATCH_PID"
}

# finish_watch NAME PID N: wait for N output lines (bounded), kill the watch
# by its PID and print what it wrote.
finish_watch() {
    local name=$1 pid=$2 want=$3
    if wait_lines "$WORKDIR/watch-$name.out" "$want"; then
        echo "### watch $name: got the expected $want lines"
    else
        echo "### watch $name: TIMED OUT waiting for $want lines"
    fi
    kill -TERM "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    cat "$WORKDIR/watch-$name.out"
    echo "### end of watch $name output"
}

echo "### conformance session start"
echo "### revision probe: $(current_revision)"

########################################################################
# put / get with every range flag
########################################################################

# Create k1..k5 so that every sort target yields a different, tie-free order:
#   key      create  mod  version  value
#   k1       3       13   3        elder3
#   k2       5       5    1        banana
#   k3       2       15   5        cherry5
#   k4       6       16   2        date2
#   k5       4       14   4        apple4
run put k3 cherry
run put k1 elder
run put k5 apple
run put k2 banana
run put k4 date
run put k3 cherry2
run put k5 apple2
run put k1 elder2
run put k3 cherry3
run put k5 apple3
run put k3 cherry4
run put k1 elder3
run put k5 apple4
run put k3 cherry5
run put k4 date2
run put a0 "value with spaces"
run put zz last
run put empty ""
run put ключ значение
echo "### revision probe: $(current_revision)"

run get k1
run get k1 -w json
run get k1 -w fields
run get k1 --hex
run get "value with spaces"
run get a0 -w json
run get empty
run get empty -w json
run get ключ -w json
run get nokey
run get nokey -w json
run get k1 k3
run get k1 k3 -w json
run get --prefix k
run get --prefix k -w json
run get --prefix k -w fields
run get --prefix k --limit 2
run get --prefix k --limit 2 -w json
run get --prefix k --limit 5 -w json
run get --prefix k --keys-only
run get --prefix k --keys-only -w json
run get --prefix k --print-value-only
run get --prefix k --print-value-only --keys-only
run get --prefix k --order=DESCEND
run get --prefix k --order=ASCEND --keys-only
for target in CREATE KEY MODIFY VALUE VERSION; do
    run get --prefix k --sort-by=$target --keys-only
    run get --prefix k --sort-by=$target --order=ASCEND --keys-only
    run get --prefix k --sort-by=$target --order=DESCEND --keys-only
done
run get --prefix k --sort-by=VALUE --order=DESCEND
run get --prefix k --sort-by=MODIFY --order=DESCEND --limit=2 -w json
run get --prefix k --sort-by=version --order=descend --limit=3 --keys-only
run get --from-key k3
run get --from-key k3 --keys-only --limit=2 -w json
run get --from-key "" --keys-only
run get --from-key k3 --sort-by=CREATE --order=DESCEND --keys-only
run get k3 --rev=10
run get k3 --rev=10 -w json
run get k3 --rev=1
run get --prefix k --rev=6 -w json
run get --prefix k --rev=6 --limit=1 -w json
run get k3 --rev=0
run get k3 --rev=-1
run get --prefix k --consistency=s --keys-only
# client-side argument errors (same etcdctl, so these must match trivially)
run get --prefix k --sort-by=FOO
run get --prefix k --order=SIDEWAYS
run get --prefix --from-key k
# --count-only does not exist in etcdctl 3.4 (added in 3.5): usage error
run get --prefix k --count-only

########################################################################
# put --prev-kv, --ignore-value, --ignore-lease
########################################################################

run put k2 banana2 --prev-kv
run put k2 banana3 --prev-kv -w json
run put newkey fresh --prev-kv
run put newkey2 fresh2 --prev-kv -w json
run put k2 --ignore-value
run get k2 -w json
run put nokey --ignore-value
run put k2 ignored --ignore-value
run put k2 banana4 --ignore-lease
run get k2 -w json
run put nokey2 value --ignore-lease
run put k2 banana5 --ignore-lease --lease=1234
run put k2 banana5 --lease=1234
run put k2
run get k2
echo "### revision probe: $(current_revision)"

########################################################################
# del
########################################################################

run put d/1 one
run put d/2 two
run put d/3 three
run put d/4 four
run put d/5 five
run put e/1 eone
run del d/1
run del d/1
run del nokey
run del d/2 --prev-kv
run del d/3 --prev-kv -w json
run del d/4 d/5 -w json
run put d/6 six
run put d/7 seven
run del --prefix d/ --prev-kv
run del --prefix d/
run del --prefix e/ -w json
run put zz/1 x1
run put zz/2 x2
run del --from-key zz/1 --prev-kv
run del --from-key zz/1 -w json
run get --from-key z --keys-only
echo "### revision probe: $(current_revision)"

########################################################################
# txn (from stdin)
########################################################################

# success branch, all four compare targets
run_stdin txn <<'EOF'
value("k3") = "cherry5"
version("k3") = "5"
create("k3") = "2"
mod("k3") = "15"

put t/1 one
get k3
del nokey

put t/1 failed

EOF

# failure branch
run_stdin txn <<'EOF'
value("k3") = "cherry5"
version("k3") > "5"

put t/2 should-not-happen

put t/2 two
get t/ --prefix
del t/1
get t/1

EOF

# inequalities and absent keys
run_stdin txn <<'EOF'
value("k1") != "x"
version("k1") < "10"
mod("k1") < "14"
create("nokey") = "0"
version("nokey") = "0"

put t/3 three

get k1

EOF

# empty compares: a blank line ends each section (compares, success,
# failure), so an empty section is a single blank line
run_stdin txn <<'EOF'

put t/4 four
put t/5 five


EOF

run_stdin txn -w json <<'EOF'
mod("k3") = "15"

put t/6 six
get t/ --prefix
del t/4

put t/6 failed

EOF

run_stdin txn -w json <<'EOF'
create("k3") > "100"

put t/7 should-not-happen

get k3
put t/7 seven
del t/nothing

EOF
run get --prefix t/ -w json
echo "### revision probe: $(current_revision)"

########################################################################
# watch
########################################################################

WREV=$(($(current_revision) + 1))
echo "### watch start revision: $WREV"

# Live watch started at the next revision: the output is the same whether it
# registers before the writes or catches up from history.
start_watch live --prefix w/ --prev-kv --rev="$WREV"
LIVE_PID=$WATCH_PID
run put w/1 a
run put w/1 b
run put w/2 c
run del w/1
run_stdin txn <<'EOF'

put w/3 d
del w/2
put w/4 e


EOF
run put w/4 f
run del --prefix w/ --prev-kv
run put w/5 g
# Expected output lines (an event is "PUT|DELETE", [prev key, prev value,]
# key, value): PUT w/1 a (3), PUT w/1 b (5), PUT w/2 c (3), DELETE w/1 (5),
# PUT w/3 d (3), DELETE w/2 (5), PUT w/4 e (3), PUT w/4 f (5),
# DELETE w/3 (5), DELETE w/4 (5), PUT w/5 g (3) = 45
finish_watch live "$LIVE_PID" 45

# Replays of history with --rev.
start_watch replay --prefix w/ --rev="$WREV"
finish_watch replay "$WATCH_PID" 33
start_watch replay-json --prefix w/ --rev="$WREV" -w json
finish_watch replay-json "$WATCH_PID" 1
start_watch replay-json-prev --prefix w/ --rev="$WREV" --prev-kv -w json
finish_watch replay-json-prev "$WATCH_PID" 1
start_watch replay-key w/4 --rev="$WREV" --prev-kv
finish_watch replay-key "$WATCH_PID" 13
start_watch replay-range w/2 w/4 --rev="$((WREV + 2))"
finish_watch replay-range "$WATCH_PID" 12
echo "### revision probe: $(current_revision)"

########################################################################
# endpoint health / status / hashkv (before any lease exists)
########################################################################

run endpoint health
run endpoint health -w json
run endpoint status
run endpoint status -w json
run endpoint status -w fields
run endpoint hashkv
run endpoint hashkv -w json
run endpoint hashkv --rev=10
run endpoint hashkv --rev=10 -w json

########################################################################
# compaction
########################################################################

run compaction 5
run get k2 --rev=4
run get k2 --rev=5
run get --prefix k --rev=5 -w json
run compaction 5
run compaction 3
run compaction --physical 12
run get --prefix k --rev=11
run get --prefix k --rev=12
run get --prefix k --rev=12 -w json
# a watch from a compacted revision is cancelled by the server
run watch k1 --rev=4
run compaction 1000
run endpoint hashkv -w json
echo "### revision probe: $(current_revision)"

########################################################################
# leases
########################################################################

run_capture lease grant 600
L1=$(printf '%s\n' "$OUT" | awk '/granted/ {print $2}')
run_capture lease grant 300 -w json
L2=$(printf '%016x' "$(printf '%s\n' "$OUT" | sed -n 's/.*"ID":\([0-9][0-9]*\).*/\1/p')")
echo "### leases: L1=$L1 L2=$L2"
run lease keep-alive --once "$L1"
run lease keep-alive --once "$L1" -w json
run put lk/1 v1 --lease="$L1"
run put lk/3 v3 --lease="$L2" -w json
# etcd lists a lease's attached keys in Go map order (random), so --keys is
# only used while a lease has exactly one key.
run lease timetolive "$L1" --keys
run lease timetolive "$L1" --keys -w json
run lease timetolive "$L2" --keys -w json
run put lk/2 v2 --lease="$L1"
run put lk/4 v4
run get --prefix lk/ -w json
run put lk/4 v4b --lease="$L1" --prev-kv
run put lk/4 v4c --ignore-lease
run get lk/4 -w json
run lease timetolive "$L1"
run lease timetolive "$L1" -w json
run lease timetolive "$L2" -w json
run lease list
run lease list -w json
run lease revoke "$L1"
run get --prefix lk/
run get --prefix lk/ -w json
run lease revoke "$L1"
run lease timetolive "$L1"
run lease timetolive "$L1" --keys -w json
run lease keep-alive --once "$L1"
run put lk/5 v5 --lease="$L1"
run lease revoke 1234
run lease timetolive 1234
run lease timetolive 1234 -w json
run lease keep-alive --once 1234
run lease grant 9000000001
run lease revoke "$L2" -w json
run get --prefix lk/ --keys-only
run lease list
run lease list -w json
echo "### revision probe: $(current_revision)"

########################################################################
# cluster and maintenance
########################################################################

run member list
run member list -w json
run member list -w fields
run snapshot save "$WORKDIR/snapshot.db"
run defrag
run alarm list
run alarm list -w json
run get --prefix k -w json

########################################################################
# error cases
########################################################################

run get k1 --rev=100000
run get --prefix k --rev=100000 -w json
# Request size limits: etcd rejects a proposal whose encoded request exceeds
# --max-request-bytes ("request is too large"); gRPC itself rejects messages
# over --max-request-bytes + 512 KiB.
OK_LEN=$((MAX_REQUEST_BYTES - 1024))
head -c "$OK_LEN" /dev/zero | tr '\0' 'o' >"$WORKDIR/value-ok"
echo "### etcdctl put big-ok <$OK_LEN-byte value on stdin>"
ctl put big-ok <"$WORKDIR/value-ok" 2>&1
echo "exit=$?"
echo "### etcdctl get big-ok --print-value-only | wc -c"
ctl get big-ok --print-value-only </dev/null 2>&1 | wc -c
run del big-ok
BIG_LEN=$((MAX_REQUEST_BYTES + 1024))
BIG=$(head -c "$BIG_LEN" /dev/zero | tr '\0' 'x')
echo "### etcdctl put big <$BIG_LEN-byte value as an argument>"
ctl put big "$BIG" </dev/null 2>&1
echo "exit=$?"
HUGE_LEN=$((MAX_REQUEST_BYTES + 512 * 1024 + 4096))
head -c "$HUGE_LEN" /dev/zero | tr '\0' 'h' >"$WORKDIR/value-huge"
echo "### etcdctl put huge <$HUGE_LEN-byte value on stdin>"
ctl put huge <"$WORKDIR/value-huge" 2>&1
echo "exit=$?"
run get --prefix big --keys-only
run get huge --keys-only
run_stdin txn <<'EOF'

put dup 1
put dup 2


EOF
run_stdin txn <<'EOF'

put dup 1
del dup


EOF
run_stdin txn <<'EOF'

put dup1 1

put dup2 2
put dup2 3

EOF
run get --prefix dup

# TTLs below the minimum (1.5 x election timeout, rounded up to whole
# seconds: 2 s with the default flags) are raised to it. These leases expire
# on their own, so nothing after this depends on them.
run lease grant 1
run lease grant 0

echo "### revision probe: $(current_revision)"
echo "### conformance session end"
