#!/bin/bash
# Starts the workers demo's gateway: `mxgate serve` on a copy of
# /etc/mxgate/mxgate.toml whose example [[pipeline.stage]] secrets are
# replaced by WORKER_SECRET, the value compose also gives every worker as
# MXGATE_WORKER__SECRET. The environment cannot reach those tables, hence
# the copy (in /tmp, a tmpfs: the root file system is read-only).
set -euo pipefail
src=/etc/mxgate/mxgate.toml
out=/tmp/mxgate.toml
example=example-worker-secret-CHANGE-ME
secret=${WORKER_SECRET:-}
unset WORKER_SECRET
cfg=$(<"$src")
if ! grep -qF "\"$example\"" <<<"$cfg"; then
    # Secrets written into the file itself: serve it as it is.
    [ -z "$secret" ] || { echo "WORKER_SECRET is set, but $src has no \"$example\" to replace" >&2; exit 64; }
    exec mxgate serve --config "$src"
fi
secret=${secret:-$example}
# Kept to characters that need no quoting in TOML.
case $secret in
    *[!A-Za-z0-9._~+/=-]*)
        echo "WORKER_SECRET: use letters, digits and . _ ~ + / = - only" >&2
        exit 64
        ;;
esac
[ "${#secret}" -ge 16 ] || { echo "WORKER_SECRET: at least 16 characters" >&2; exit 64; }
umask 077
printf '%s\n' "${cfg//\"$example\"/\"$secret\"}" >"$out"
exec mxgate serve --config "$out"
