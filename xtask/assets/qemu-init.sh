#!/bin/busybox sh
# /init of the test VM (cargo xtask qemu): loopback HTTP churn traced by the static tracer on
# a second kernel; results on the serial console between markers; then power off.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
ip link set lo up
echo "QEMU-KERNEL $(uname -r)"
httpd -p 127.0.0.1:8080 -h /www
tracer closes --json --duration 120 --port 8080 > /tmp/closes.json 2>/tmp/closes.err &
P1=$!
tracer histogram --state established --json --duration 120 --port 8080 > /tmp/hist.json 2>/tmp/hist.err &
P2=$!
n=0; until grep -q Ctrl-C /tmp/closes.err && grep -q Ctrl-C /tmp/hist.err; do sleep 0.5; n=$((n+1)); [ $n -gt 120 ] && break; done
i=0; while [ $i -lt 20 ]; do wget -q -O /dev/null http://127.0.0.1:8080/index.html; i=$((i+1)); done
sleep 1
kill -TERM $P1 $P2
wait
echo "BEGIN-CLOSES"; cat /tmp/closes.json; echo "END-CLOSES"
echo "BEGIN-HIST"; cat /tmp/hist.json; echo "END-HIST"
echo "STDERR:"; cat /tmp/closes.err /tmp/hist.err
poweroff -f
