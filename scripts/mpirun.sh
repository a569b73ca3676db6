#!/usr/bin/env bash
# mpirun with the flags a container or a small machine needs: running as root is allowed and
# more ranks than cores may be started. Usage: scripts/mpirun.sh -np 2 build/bin/tessera env
flags=(--oversubscribe --bind-to none)
[ "$(id -u)" -eq 0 ] && flags+=(--allow-run-as-root)
exec mpirun "${flags[@]}" "$@"
