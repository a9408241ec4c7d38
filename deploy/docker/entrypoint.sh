#!/bin/bash
# Entrypoint of the Atelier image: raises the soft open-file limit to the hard
# limit the container was given, then runs the command (`atelier-gateway`, a
# worker, ...) in its place, so it is PID 1 and receives SIGTERM itself.
#
# Why: the gateway holds one descriptor per client connection, and most runtimes
# start containers with a soft limit of 1024 whatever the hard limit is.
# Kubernetes has no per-pod ulimit setting, so this is how a pod gets the node
# runtime's hard limit (containerd: 524288 or more); compose sets both limits
# with `ulimits:`. Raising the soft limit up to the hard one needs no capability.
set -euo pipefail

hard="$(ulimit -Hn)"
if [ "$hard" = unlimited ]; then
  # nofile cannot be unlimited; the kernel's ceiling is fs.nr_open.
  hard="$(cat /proc/sys/fs/nr_open)"
fi
if ! ulimit -Sn "$hard" 2>/dev/null; then
  echo "entrypoint: cannot raise the open-file limit to $hard (keeping $(ulimit -Sn))" >&2
fi
exec "$@"
