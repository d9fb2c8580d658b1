#!/bin/sh
# Give HOST_UID:HOST_GID the bind-mounted folders that the engine has just created for a fresh
# clone (empty, owned by root), so the workspace's non-root user can write them. Folders that
# hold something are left as they are. Runs as root in compose's one-shot `folders` service.
#
#   own-folders DIR...
set -eu
uid="${HOST_UID:-1000}"
gid="${HOST_GID:-1000}"
for dir in "$@"; do
    if [ -d "$dir" ] && [ -z "$(ls -A "$dir")" ] && [ "$(stat -c %u:%g "$dir")" != "$uid:$gid" ]; then
        chown "$uid:$gid" "$dir"
        echo "own-folders: $dir now belongs to $uid:$gid"
    fi
done
