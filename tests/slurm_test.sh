#!/bin/bash
# A real Slurm run of README.md's job-array script ("Batches"). The script's
# text is taken from the README as it stands (the ```sh block with
# "#SBATCH --array") and submitted unchanged with
# `sbatch --wait --array=0-3` to a one-node Slurm that this test starts, on
# samples/lung_ct.ini's 4 slices (copied as study.ini, its paths made
# absolute); then `kmseg merge-summaries out/`, and the folder must be
# byte-identical to a local unsharded run (products and summary.csv).
# The job finds `kmseg` on PATH (sbatch passes the environment on): a
# wrapper in $T/bin that runs KMSEG, adding --no-timings to `run`, as the
# local run does, so that summary.csv is deterministic.
#
# Slurm here: munged (its own key, socket, pid, log and seed file in $T),
# slurmctld and slurmd in the foreground as root (SlurmUser=root),
# auth/munge through that socket, proctrack/linuxproc, task/none, no
# cgroups, no accounting, select/cons_tres with CR_CPU, one node at
# 127.0.0.1 sized by `slurmd -C`, a free port pair (not 6817/6818), state,
# spool and logs in $T; SLURM_CONF points sbatch/squeue/scontrol at it.
# At exit (trap, failure or not): jobs are cancelled, the daemons stopped by
# their ids (then killed if they linger), any process still working in $T
# (a job step) killed by its id, and $T removed.
#
# SKIP convention: where Slurm cannot start here (not root, the packages
# absent, the daemons not up within $KMS_SLURM_START_S s, default 30) the
# script prints one line `SKIP slurm: WHY` (with the last lines of the
# daemons' logs below it), counts nothing ("0 passed, 0 failed, 1 skipped")
# and exits 0: scripts/test.sh shows SKIP lines and counts them apart,
# tests/meson_case.sh reports a script that only skipped as meson's SKIP.
# Anything that goes wrong once the node is idle is a FAIL. scripts/test.sh
# runs it in the release pass only (not under sanitizers), and so does
# `meson test` (not registered when b_sanitize is set).
# Usage: tests/slurm_test.sh KMSEG   (PASS/FAIL/SKIP lines and a count)
source "$(dirname "$0")/e2e_lib.sh" || { echo "FAIL slurm: no tests/e2e_lib.sh"; exit 1; }
# the cleanup below kills what works in $T: only ever in a folder of mktemp's
case "$T" in
    /*/tmp.?*) [ -d "$T" ] || { echo "FAIL slurm: no temporary folder"; exit 1; } ;;
    *) echo "FAIL slurm: temporary folder '$T' is no mktemp -d folder"; exit 1 ;;
esac
START_S=${KMS_SLURM_START_S:-30}
# run inside a Slurm job or with sbatch defaults set, the test would pass them on
for v in $(compgen -e | grep -E '^(SLURM|SBATCH|SQUEUE|SINFO|SCANCEL|SCONTROL)_'); do unset "$v"; done
WAIT_S=${KMS_SLURM_WAIT_S:-90}
t0=$SECONDS

ctld_pid='' slurmd_pid='' munged_pid='' sbatch_pid=''
alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }
stop_pids() { # PID...: TERM, up to 10 s, then KILL
    local i p left
    for p in "$@"; do alive "$p" && kill "$p" 2>/dev/null; done
    for i in $(seq 100); do
        left=''
        for p in "$@"; do alive "$p" && left=1; done
        [ -z "$left" ] && return 0
        sleep 0.1
    done
    for p in "$@"; do alive "$p" && kill -9 "$p" 2>/dev/null; done
}
cleanup() {
    local i p
    stop_pids "$sbatch_pid"
    if alive "$ctld_pid"; then
        scancel --partition=debug >/dev/null 2>&1
        for i in $(seq 60); do
            [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break
            sleep 0.25
        done
    fi
    stop_pids "$slurmd_pid" "$ctld_pid"
    stop_pids "$munged_pid"
    # job steps outlive a stopped slurmd: a process working in $T/job
    # or $T/spool was started by this test's Slurm (T is checked above)
    if [ -n "$slurmd_pid" ]; then
        for p in /proc/[0-9]*; do
            p=${p#/proc/}
            [ "$p" = $$ ] && continue
            case "$(readlink "/proc/$p/cwd" 2>/dev/null)" in
                "$T"/job | "$T"/job/* | "$T"/spool | "$T"/spool/*) kill -9 "$p" 2>/dev/null ;;
            esac
        done
    fi
    # KMS_SLURM_LOGS=DIR keeps the daemons' logs and the config there
    if [ -n "${KMS_SLURM_LOGS:-}" ]; then
        mkdir -p "$KMS_SLURM_LOGS" && cp -r "$T/log" "$T/slurm.conf" "$KMS_SLURM_LOGS"/ 2>/dev/null
    fi
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

logs() { # the last lines of the daemons' logs, indented
    local f
    for f in "$T"/log/*; do
        [ -s "$f" ] || continue
        # NAME.out: what a daemon said before it opened NAME.log
        [[ $f == *.out && -s ${f%.out}.log ]] && continue
        echo "  --- $(basename "$f") (last lines)"
        tail -n 8 "$f" | sed 's/^/  /'
    done
}
skip() { # WHY: Slurm cannot run here
    echo "SKIP slurm: $1"
    logs
    echo "0 passed, 0 failed, 1 skipped"
    exit 0
}

# --- can Slurm run here? ------------------------------------------------------------
[ "$(id -u)" = 0 ] || skip "needs root (slurmd, SlurmUser=root)"
for c in munged mungekey slurmctld slurmd sbatch squeue sinfo scancel scontrol; do
    command -v "$c" >/dev/null || skip "$c not found (scripts/install-deps.sh --test installs slurm-wlm and munge)"
done
plugins=/usr/lib/$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)/slurm-wlm
for p in auth_munge cred_munge proctrack_linuxproc select_cons_tres task_none; do
    [ -e "$plugins/$p.so" ] || skip "Slurm plugin $plugins/$p.so not found"
done

# --- the job: README's script, study.ini, kmseg on PATH -------------------------------
awk '/^ *```sh *$/ { inb = 1; buf = ""; next }
     inb && /^ *``` *$/ { inb = 0; if (buf ~ /#SBATCH --array/) { printf "%s", buf; exit } next }
     inb { buf = buf $0 "\n" }' "$ROOT/README.md" >"$T/block"
ind=$(sed -n '1s/^\( *\).*/\1/p' "$T/block")
mkdir -p "$T/job" "$T/bin" "$T/local"
sed "s/^$ind//" "$T/block" >"$T/job/job.sh"
if ! head -1 "$T/job/job.sh" | grep -q '^#!' || ! grep -q 'kmseg run study.ini' "$T/job/job.sh"; then
    ko "README" "no job-array script (a \`\`\`sh block with #SBATCH --array, running kmseg run study.ini) in README.md"
    e2e_done
    exit
fi
sed -e "s|^input = ct|input = $SAMPLES/ct|" -e "s|^truth = masks/|truth = $SAMPLES/masks/|" \
    "$SAMPLES/lung_ct.ini" >"$T/job/study.ini"
if ! grep -q "^input = $SAMPLES/ct" "$T/job/study.ini" || ! grep -q "^truth = $SAMPLES/masks/" "$T/job/study.ini"; then
    ko "study.ini" "samples/lung_ct.ini no longer has 'input = ct' and 'truth = masks/...': update this test"
    e2e_done
    exit
fi
cat >"$T/bin/kmseg" <<EOS
#!/bin/sh
# kmseg for this test: summary.csv without timings
if [ "\$1" = run ]; then shift; exec "$KMSEG" run --no-timings "\$@"; fi
exec "$KMSEG" "\$@"
EOS
chmod 755 "$T/bin/kmseg"
export PATH=$T/bin:$PATH

# --- munge -----------------------------------------------------------------------------
# munged wants every folder up to its socket searchable by all, and the key
# private; $T is mktemp's 0700
chmod 711 "$T"
mkdir -p "$T/munge" "$T/log" "$T/state" "$T/spool" "$T/run"
chmod 700 "$T/munge"
if ! mungekey -c -k "$T/munge/munge.key" >"$T/log/mungekey.log" 2>&1; then
    skip "mungekey could not make a key"
fi
chmod 400 "$T/munge/munge.key"
chmod 711 "$T/munge"
sock=$T/munge/munge.sock
munged -F --key-file="$T/munge/munge.key" --socket="$sock" --pid-file="$T/run/munged.pid" \
    --log-file="$T/log/munged.log" --seed-file="$T/munge/seed" >>"$T/log/munged.log" 2>&1 &
munged_pid=$!
for _ in $(seq $((START_S * 4))); do
    munge -S "$sock" -n 2>/dev/null | unmunge -S "$sock" >/dev/null 2>&1 && break
    alive "$munged_pid" || skip "munged exited"
    sleep 0.25
done
munge -S "$sock" -n 2>/dev/null | unmunge -S "$sock" >/dev/null 2>&1 \
    || skip "munged gives no credentials after ${START_S} s"

# --- slurm.conf --------------------------------------------------------------------------
node=$(hostname -s 2>/dev/null || cat /proc/sys/kernel/hostname)
hw=$(slurmd -C 2>"$T/log/slurmd-C.log" | head -1)
[[ $hw == NodeName=* ]] || skip "slurmd -C does not describe this machine"
cpus=$(sed -E 's/.* CPUs=([0-9]+).*/\1/' <<<"$hw")
mem=$(sed -E 's/.* RealMemory=([0-9]+).*/\1/' <<<"$hw")
mem=$((mem * 9 / 10)) # a margin: less than the machine has, or the node drains
# sockets, cores and threads as the machine has them
topo=$(grep -oE '(Boards|SocketsPerBoard|CoresPerSocket|ThreadsPerCore)=[0-9]+' <<<"$hw" | tr '\n' ' ')
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for i in $(seq 50); do
    port=$((20000 + RANDOM % 20000))
    port_free $port && port_free $((port + 1)) && break
done
cat >"$T/slurm.conf" <<EOC
ClusterName=kmsegtest
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$port
SlurmdPort=$((port + 1))
AuthType=auth/munge
AuthInfo=socket=$sock
CredType=cred/munge
StateSaveLocation=$T/state
SlurmdSpoolDir=$T/spool
SlurmctldPidFile=$T/run/slurmctld.pid
SlurmdPidFile=$T/run/slurmd.pid
SlurmctldLogFile=$T/log/slurmctld.log
SlurmdLogFile=$T/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
MpiDefault=none
ReturnToService=2
MailProg=/bin/true
# sbatch --wait polls at 2, 10, 42 s, ... unless records of ended jobs are
# kept only a few seconds: then every 2 s (it sees each before its purge)
MinJobAge=4
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus ${topo}RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOC
export SLURM_CONF=$T/slurm.conf

# --- the daemons, up to an idle node -----------------------------------------------------
slurmctld -D -i -f "$SLURM_CONF" >>"$T/log/slurmctld.out" 2>&1 &
ctld_pid=$!
slurmd -D -N "$node" -f "$SLURM_CONF" >>"$T/log/slurmd.out" 2>&1 &
slurmd_pid=$!
state=''
for _ in $(seq $((START_S * 4))); do
    state=$(sinfo -h -o %t 2>/dev/null)
    [ "$state" = idle ] && break
    alive "$ctld_pid" || skip "slurmctld exited"
    alive "$slurmd_pid" || skip "slurmd exited"
    sleep 0.25
done
[ "$state" = idle ] || skip "the node is not idle after ${START_S} s (sinfo: '${state:-no answer}')"
ok "one-node Slurm up in $((SECONDS - t0)) s (port $port/$((port + 1)), $cpus CPUs)"

# --- the local, unsharded run to compare with
(cd "$T/local" && kmseg run "$T/job/study.ini" -q -j 2 -o out/)
rc=$?
if [ $rc = 0 ] && [ "$(ls "$T/local/out"/*_mask.png | wc -l)" = 4 ]; then
    ok "local unsharded run of the 4 sample slices"
else
    ko "local run" "exit $rc, $(ls "$T/local/out" 2>&1 | tr '\n' ' ')"
fi

# --- the array -------------------------------------------------------------------------
# the script asks for 2 CPUs a task: a one-CPU machine gets what it has
more=()
[ "$cpus" -lt 2 ] && more=(--cpus-per-task="$cpus")
t1=$SECONDS
# in the background, so that a signal to this script is handled at once
(cd "$T/job" && exec timeout "$WAIT_S" sbatch --wait --parsable --array=0-3 "${more[@]}" job.sh) \
    >"$T/sbatch.out" 2>"$T/sbatch.err" &
sbatch_pid=$!
wait $sbatch_pid
rc=$?
if [ $rc = 124 ]; then
    ko "sbatch --wait" "no end after ${WAIT_S} s: $(squeue -h -o '%i %T %R' 2>&1 | tr '\n' ';')"
    logs
    scancel --partition=debug
    e2e_done
    exit
fi
if [ $rc = 0 ]; then
    ok "sbatch --wait --array=0-3 README's script: 4 tasks done in $((SECONDS - t1)) s"
else
    ko "sbatch --wait" "exit $rc $(tr '\n' ' ' <"$T/sbatch.err")"
    for f in "$T"/job/slurm-*.out; do
        [ -f "$f" ] && echo "  --- $(basename "$f")" && tail -n 5 "$f" | sed 's/^/  /'
    done
    logs
fi
n_out=$(ls "$T"/job/slurm-*_[0-3].out 2>/dev/null | wc -l)
[ "$n_out" = 4 ] && ok "4 task logs (slurm-JOB_0..3.out)" || ko "task logs" "$n_out of 4: $(ls "$T/job")"

(cd "$T/job" && kmseg merge-summaries out/) >"$T/merge.log" 2>&1
rc=$?
rm -f "$T"/job/out/summary.shard-*
if [ $rc != 0 ]; then
    ko "merge-summaries" "exit $rc: $(cat "$T/merge.log")"
elif diff -r -x 'kmseg.resolved.ini' -x 'kmseg.run*.txt' -x 'kmseg.inputs.txt' -x 'report*.html' \
        "$T/local/out" "$T/job/out" >"$T/diff.txt" 2>&1; then
    # (the run's own record names its folder, date and command line: it
    # differs by design; each shard keeps its own facts and report)
    ok "shards through Slurm, merged: byte-identical to the unsharded run ($(ls "$T/job/out" | wc -l) files)"
else
    ko "Slurm run" "differs from the local run: $(head -5 "$T/diff.txt")"
fi
n_facts=$(ls "$T"/job/out/kmseg.run.shard-*-of-4.txt 2>/dev/null | wc -l)
[ -f "$T/job/out/kmseg.resolved.ini" ] && [ "$n_facts" = 4 ] \
    && ok "the Slurm run's provenance: kmseg.resolved.ini and each task's kmseg.run.shard-I-of-4.txt" \
    || ko "Slurm provenance" "$(ls "$T/job/out" | tr '\n' ' ')"
echo "slurm test: $((SECONDS - t0)) s"
e2e_done
