#!/bin/busybox sh
# Run by qemu-init.sh in a fresh network namespace (unshare -n), whose sysctls are its own:
# TIME_WAIT starts and every kind of end within seconds, on ports 8090 and 8091.
#   127.0.0.1:40000 -> :8090  TIME_WAIT 1, ended early by tw reuse; TIME_WAIT 2, ended early
#                              when this namespace exits
#   127.0.0.1:40000 -> :8091  an orphaned FIN_WAIT2 timewait that expires (tcp_fin_timeout 1 s)
ip link set lo up
# One ephemeral port, and tw reuse: the second request must take over the first's TIME_WAIT.
sysctl -w net.ipv4.tcp_tw_reuse=1 net.ipv4.ip_local_port_range="40000 40000" \
    net.ipv4.tcp_fin_timeout=1 >/dev/null
httpd -f -p 127.0.0.1:8090 -h "${WWW:-/www}" &
H=$!
sleep 0.5
# nc shuts its side down at the end of its input: the client usually closes first and holds
# TIME_WAIT (under emulation httpd can close first, or both at once: timewaits.rs counts either).
request() { printf 'GET /index.html HTTP/1.0\r\n\r\n' | nc 127.0.0.1 8090 >/dev/null; }
request
# tw reuse needs the TIME_WAIT's last timestamp to be more than a second old.
sleep 2.2
request
# A server that never reads nor closes, and a client killed with the connection open: the
# client's socket is orphaned in FIN_WAIT2 and handed to a timewait socket for 1 s.
nc -l -p 8091 -e sleep 6 &
S=$!
sleep 0.5
F=/tmp/never.$$
mkfifo $F
exec 3<>$F
rm $F
nc 127.0.0.1 8091 <&3 >/dev/null &
C=$!
sleep 0.5
kill $C
sleep 2.5
exec 3>&-
kill $H $S 2>/dev/null
wait
echo "timewait scenario done"
