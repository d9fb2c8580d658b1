#!/bin/sh
# The images' entry point (tini runs it as PID 1's child): make the container's user, whatever
# its uid, one that tools can work as, then become the command.
set -eu
# A uid the image does not know (compose passes the host's) cannot write the image's HOME:
# give it one of its own, so W&B, DVC and git find a writable home.
if [ ! -w "${HOME:-/}" ]; then
    HOME="/tmp/home-$(id -u)"
    export HOME
    mkdir -p "$HOME"
fi
exec "$@"
