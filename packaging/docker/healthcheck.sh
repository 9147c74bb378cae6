#!/bin/bash
# HEALTHCHECK for the mxgate image: GET /healthz on the admin listener and
# succeed on HTTP 200. Uses bash's /dev/tcp, so the image needs no curl.
# The admin address is MXGATE_ADMIN__LISTEN when set, else the image default.
set -u
addr=${MXGATE_ADMIN__LISTEN:-127.0.0.1:8025}
host=${addr%:*}
port=${addr##*:}
host=${host#[}
host=${host%]}
case "$host" in
    0.0.0.0 | "") host=127.0.0.1 ;;
    ::) host=::1 ;;
esac
exec 3<>"/dev/tcp/$host/$port" || exit 1
printf 'GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&3
read -r -t 5 _proto status _rest <&3 || exit 1
[ "$status" = 200 ] || { echo "healthz answered: ${status:-nothing}" >&2; exit 1; }
echo "healthz: 200"
