#!/bin/bash
# healthcheck.sh - the image's HEALTHCHECK (installed as /usr/local/bin/remotemedia-healthcheck).
# With the metrics listener on (RM_METRICS_LISTEN, set by the image), GET /readyz on its port:
# the server makes a health Check through its own gRPC port with one of its tokens, so this
# works with --health-needs-token too (the container holds no token to send); without it, the
# CLI's grpc.health.v1 Check on RM_LISTEN's port. Healthy: SERVING; a draining server answers
# NOT_SERVING, so the container turns unhealthy while it drains. Ports set by flags rather
# than these variables need a HEALTHCHECK of their own (docker run --health-cmd), and so does
# RM_HEALTH_NEEDS_TOKEN without a metrics port (the CLI would need a token).
set -u
if [ -n "${RM_METRICS_LISTEN:-}" ]; then
  host=${RM_METRICS_LISTEN%:*}
  case $host in # a wildcard is reached on loopback; [::] listens on IPv6 only
    0.0.0.0 | "") host=127.0.0.1 ;;
    "[::]") host=::1 ;;
    \[*\]) host=${host#[}; host=${host%]} ;;
  esac
  # bash's /dev/tcp: the image has no HTTP client, and needs none for one request
  exec 3<>"/dev/tcp/$host/${RM_METRICS_LISTEN##*:}" || exit 1
  printf 'GET /readyz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
  read -r -t 5 _ code _ <&3 || exit 1 # the server's check takes at most 4 s
  [ "$code" = 200 ]
  exit
fi
exec /usr/local/bin/remotemedia health --timeout-ms 3000 --server "127.0.0.1:${RM_LISTEN##*:}"
