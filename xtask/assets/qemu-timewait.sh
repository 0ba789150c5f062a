#!/bin/busybox sh
# Run by qemu-init.sh in a fresh network namespace (unshare -n), whose sysctls are its own:
# TIME_WAIT starts and every kind of end within seconds, on ports 8090 and 8091.
#   127.0.0.1:40000 -> :8090  TIME_WAIT 1, ended early by tw reuse; TIME_WAIT 2, ended early
#                              when this namespace exits
#   127.0.0.1:40000 -> :8091  a FIN_WAIT2 timewait that expires (tcp_fin_timeout 1 s)
#   127.0.0.1:8092 <- :40000  the server closes first: its FIN_WAIT2 timewait turns TIME_WAIT
#                              at the client's FIN, and ends early when this namespace exits
# Each close is ordered by the programs, not by timing: under software emulation a server
# that closed as soon as it had answered (httpd) sometimes closed first, and an orphan whose
# FIN's ACK came while close() still held the socket was reset instead of handed over.
ip link set lo up
# One ephemeral port, and tw reuse: the second request must take over the first's TIME_WAIT.
sysctl -w net.ipv4.tcp_tw_reuse=1 net.ipv4.ip_local_port_range="40000 40000" \
    net.ipv4.tcp_fin_timeout=1 >/dev/null
# A server that echoes until the client's FIN, then closes: the client closes first (nc shuts
# its side down at the end of its input) and holds the TIME_WAIT.
request() {
    nc -l -p 8090 -e cat &
    sleep 0.5
    printf 'GET /index.html HTTP/1.0\r\n\r\n' | nc 127.0.0.1 8090 >/dev/null
    wait
}
request
# tw reuse needs the TIME_WAIT's last timestamp to be more than a second old.
sleep 2.2
request
# A server that never reads nor closes. The client, its input empty, shuts its side down and
# waits in FIN_WAIT2; killed there, its socket is handed to a timewait socket in FIN_WAIT2
# substate, which expires after 1 s.
nc -l -p 8091 -e sleep 6 &
S=$!
sleep 0.5
nc 127.0.0.1 8091 </dev/null >/dev/null &
C=$!
sleep 0.5
kill $C
sleep 2.5
kill $S 2>/dev/null
wait
# A server that closes at once, without reading: its socket, orphaned, is handed to a timewait
# socket in FIN_WAIT2 substate, which turns TIME_WAIT when the client closes at the server's
# FIN (nc ends at its peer's EOF; its input stays open until then).
nc -l -p 8092 -e true &
sleep 0.5
sleep 3 | nc 127.0.0.1 8092 >/dev/null
wait
echo "timewait scenario done"
