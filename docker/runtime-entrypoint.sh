#!/bin/sh
# The runtime's entrypoint. Railway mounts an instance's volume over RUNTIME_DATA_DIR owned by root, after
# the image is built, so a chown in the Dockerfile cannot help. Started as root, this script gives that
# directory to the app user and then drops to it (setpriv, from util-linux, which Debian always has)
# before the runtime starts: nothing the instance serves ever runs as root. Started as any other user
# (docker run --user, Kubernetes runAsUser), it just runs the command.
set -eu

app_uid=${APP_UID:-10001}
data_dir=${RUNTIME_DATA_DIR:-/data}

if [ "$(id -u)" -ne 0 ]; then
    exec "$@"
fi
mkdir -p "$data_dir"
if [ "$(stat -c %u "$data_dir")" != "$app_uid" ]; then
    chown "$app_uid:$app_uid" "$data_dir"
fi
exec setpriv --reuid="$app_uid" --regid="$app_uid" --clear-groups --no-new-privs "$@"
