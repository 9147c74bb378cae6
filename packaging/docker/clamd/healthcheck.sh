#!/bin/bash
# HEALTHCHECK for the mxgate-clamd image: clamd answers `zPING\0` with
# `PONG\0` once its database is loaded (clamd(8), PING). Uses bash's
# /dev/tcp, so the image needs neither clamdscan nor nc.
set -u
port=${CLAMD_PORT:-3310}
exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
printf 'zPING\0' >&3
IFS= read -r -d '' -t 5 reply <&3 || { echo "clamd sent no answer to PING" >&2; exit 1; }
[ "$reply" = PONG ] || { echo "clamd answered PING with: ${reply:-nothing}" >&2; exit 1; }
echo "clamd: PONG"
