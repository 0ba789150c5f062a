#!/bin/busybox sh
# /init of the test VM (cargo xtask qemu): loopback HTTP churn traced by the static tracer on
# each kernel of the matrix; results on the serial console between markers; then power off.
# /modules.load lists the kernel's own modules copied in (inet_diag, tcp_diag and their
# dependencies), dependencies first: with them tracer can take its sock_diag snapshot.
# TIME_WAIT is traced twice over the same traffic (qemu-timewait.sh): with the path tracer
# chooses itself (fentry expected on this kernel) and with the timer path forced. `closes` and
# `histogram` use kernel aggregation where the kernel allows it (5.12+); `closes` runs three
# times: aggregating, aggregating with the timer path forced, and one transition at a time
# (TRACER_KERNEL_AGGREGATION=off), which the first two must agree with row for row.
# Half-open connections: 5 raw SYNs from 10.231.7.3 (trc-syns) to a listener on a dummy
# interface, whose SYN-ACKs go into the dummy (tcp_synack_retries 1: each lives 3 s), and the
# 20 completed handshakes of the churn; the TIME_WAIT runs (`run`, port 8093 too) and
# `histogram --state syn-recv` see them with the chosen path (fentry for TIME_WAIT, fentry and
# fexit on the request sockets' timer handler) and with the timer path forced, and must count
# the same. Two `run --quiet` over the TIME_WAIT ports count their TIME_WAITs under kernel
# aggregation (the server-side one in the kernel to its end), chosen path and timer path, and
# must agree with the `run` that sends every transition.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
ip link set lo up
echo "QEMU-KERNEL $(uname -r)"
for m in $(cat /modules.load); do
    insmod /lib/modules/$m.ko || echo "INSMOD-FAILED $m"
done
httpd -p 127.0.0.1:8080 -h /www
# 10.231.7.3 never answers ARP on the dummy: the SYN-ACKs to it are dropped.
ip link add d0 type dummy && ip addr add 10.231.7.1/24 dev d0 && ip link set d0 up \
    || echo "DUMMY-FAILED"
echo 1 > /proc/sys/net/ipv4/tcp_synack_retries
httpd -p 10.231.7.1:8093 -h /www
# Until it listens (port 8080 is 1F90, LISTEN is 0A in /proc/net/tcp).
n=0; until grep -q ':1F90 00000000:0000 0A' /proc/net/tcp; do
    sleep 0.2; n=$((n+1)); [ $n -gt 50 ] && break
done
# The snapshot alone (sock_diag, no eBPF): it must see httpd's listening socket.
tracer states --json > /tmp/states.json 2>/tmp/states.err
echo "STATES-EXIT $?"
tracer closes --json --duration 120 --port 8080 > /tmp/closes.json 2>/tmp/closes.err &
P1=$!
tracer histogram --state established --json --duration 120 --port 8080 > /tmp/hist.json 2>/tmp/hist.err &
P2=$!
TRACER_TIMEWAIT_HOOKS=timer tracer closes --json --duration 120 --port 8080 > /tmp/closes-timer.json 2>/tmp/closes-timer.err &
P5=$!
TRACER_KERNEL_AGGREGATION=off tracer closes --json --duration 120 --port 8080 > /tmp/closes-off.json 2>/tmp/closes-off.err &
P6=$!
# A summary (and the model's settling of timer cancels into ends) every second.
TW="run --json --no-socket --interval 1s --duration 120 --port 8090 --port 8091 --port 8092 --port 8093"
# Debug lines say which hooks follow request sockets.
RUST_LOG=tracer=debug tracer $TW > /tmp/tw-auto.json 2>/tmp/tw-auto.err &
P3=$!
TRACER_TIMEWAIT_HOOKS=timer tracer $TW > /tmp/tw-timer.json 2>/tmp/tw-timer.err &
P4=$!
# The same TIME_WAITs counted under kernel aggregation (5.12+), chosen path and timer path.
TWA="run --quiet --json --no-socket --duration 120 --port 8090 --port 8091 --port 8092"
RUST_LOG=tracer=debug tracer $TWA > /tmp/twa-auto.json 2>/tmp/twa-auto.err &
P9=$!
RUST_LOG=tracer=debug TRACER_TIMEWAIT_HOOKS=timer tracer $TWA > /tmp/twa-timer.json 2>/tmp/twa-timer.err &
P10=$!
HO="histogram --state syn-recv --json --duration 120 --port 8080 --port 8093"
tracer $HO > /tmp/ho-hist-auto.json 2>/tmp/ho-hist-auto.err &
P7=$!
TRACER_TIMEWAIT_HOOKS=timer tracer $HO > /tmp/ho-hist-timer.json 2>/tmp/ho-hist-timer.err &
P8=$!
n=0
until grep -q Ctrl-C /tmp/closes.err && grep -q Ctrl-C /tmp/hist.err && grep -q Ctrl-C /tmp/closes-timer.err \
    && grep -q Ctrl-C /tmp/closes-off.err \
    && grep -q Ctrl-C /tmp/tw-auto.err && grep -q Ctrl-C /tmp/tw-timer.err \
    && grep -q Ctrl-C /tmp/ho-hist-auto.err && grep -q Ctrl-C /tmp/ho-hist-timer.err \
    && grep -q Ctrl-C /tmp/twa-auto.err && grep -q Ctrl-C /tmp/twa-timer.err; do
    sleep 0.5; n=$((n+1)); [ $n -gt 480 ] && break
done
# Loading (the verifier, under software emulation) took this long.
echo "READY-AFTER-HALF-SECONDS $n"
i=0; while [ $i -lt 20 ]; do wget -q -O /dev/null http://127.0.0.1:8080/index.html; i=$((i+1)); done
trc-syns 10.231.7.1 8093 5
SYNS_AT=$(date +%s)
unshare -n sh /timewait.sh
# The namespace's TIME_WAITs are purged by a kernel worker after it exits, seconds later under
# emulation: until both per-transition runs have seen the 3 TIME_WAITs end early (at most 30 s).
ended() { grep -c '"note":"ended_early"' "$1"; }
n=0
until [ "$(ended /tmp/tw-auto.json)" -ge 3 ] && [ "$(ended /tmp/tw-timer.json)" -ge 3 ]; do
    sleep 0.5; n=$((n+1)); [ $n -gt 60 ] && break
done
echo "PURGED-AFTER-HALF-SECONDS $n"
# The half-opens are dropped 3 s after their SYN: 6 s leaves room for a slow VM.
while [ $(( $(date +%s) - SYNS_AT )) -lt 6 ]; do sleep 0.5; done
kill -TERM $P1 $P2 $P3 $P4 $P5 $P6 $P7 $P8 $P9 $P10
wait
echo "BEGIN-CLOSES"; cat /tmp/closes.json; echo "END-CLOSES"
echo "BEGIN-CLOSES-TIMER"; cat /tmp/closes-timer.json; echo "END-CLOSES-TIMER"
echo "BEGIN-HIST"; cat /tmp/hist.json; echo "END-HIST"
echo "BEGIN-CLOSES-OFF"; cat /tmp/closes-off.json; echo "END-CLOSES-OFF"
echo "BEGIN-AGGREGATION"
for f in closes hist closes-timer; do grep -h 'kernel aggregation' /tmp/$f.err | sed "s/^/$f: /"; done
echo "END-AGGREGATION"
echo "BEGIN-STATES"; cat /tmp/states.json; echo "END-STATES"
# tracer says so on stderr when it could not take its snapshot.
echo "BEGIN-SNAPSHOT-WARNINGS"
grep -h 'no snapshot' /tmp/states.err /tmp/closes.err /tmp/hist.err /tmp/tw-auto.err /tmp/tw-timer.err
echo "END-SNAPSHOT-WARNINGS"
for p in auto timer; do
    echo "BEGIN-HALFOPEN-$p"
    grep -E 'TIME_WAIT followed|no TIME_WAIT|half-open|request sockets followed' /tmp/tw-$p.err | sed 's/^/PATH: /'
    sed 's/^/HIST: /' /tmp/ho-hist-$p.json
    grep '"from":"SYN_RECV"' /tmp/tw-$p.json | grep '"to":"CLOSE"' | sed 's/^/END: /'
    echo "END-HALFOPEN-$p"
done
for p in auto timer; do
    echo "BEGIN-TW-$p"
    grep -E 'TIME_WAIT followed|no TIME_WAIT' /tmp/tw-$p.err | sed 's/^/PATH: /'
    grep -E '"to":"TIME_WAIT"|"note":"(expired|ended_early)"|"final":true' /tmp/tw-$p.json
    echo "END-TW-$p"
done
for p in auto timer; do
    echo "BEGIN-TWA-$p"
    grep -E 'TIME_WAIT followed|no TIME_WAIT|kernel aggregation' /tmp/twa-$p.err | sed 's/^/SAID: /'
    grep '"final":true' /tmp/twa-$p.json
    echo "END-TWA-$p"
done
echo "STDERR:"; cat /tmp/states.err /tmp/closes.err /tmp/hist.err /tmp/closes-timer.err /tmp/closes-off.err /tmp/tw-auto.err /tmp/tw-timer.err \
    /tmp/ho-hist-auto.err /tmp/ho-hist-timer.err /tmp/twa-auto.err /tmp/twa-timer.err
poweroff -f
