// Package container says which container a host process belongs to: the
// runtime that started it, the container id, and a human name.
//
// The identity comes from /proc/PID/cgroup (see ParseCgroup), which is cheap
// and needs no engine. The name then comes from the engine that owns the
// container, cheapest and most authoritative source first:
//
//   - Docker: the engine API over its unix socket (GET /containers/ID/json)
//     with a short timeout, else <data-root>/containers/ID/config.v2.json.
//     The data root and socket are taken from the running dockerd's command
//     line and its daemon.json, read through /proc/<dockerd>/root because
//     dockerd may run in its own mount namespace.
//   - containerd: the OCI bundle's config.json under
//     /run/containerd/io.containerd.runtime.v{2.task,1.linux}/<namespace>/ID
//     (CRI and nerdctl annotations).
//   - CRI-O: /run/containers/storage/overlay-containers/ID/userdata/config.json,
//     then containers/storage's containers.json.
//   - Podman: containers/storage's containers.json.
//   - systemd-nspawn and LXC: the name is part of the cgroup path.
//
// A Resolver caches by container id, so a refresh of `cpuwhy top` costs one
// read of /proc/PID/cgroup per process and no engine traffic for containers
// already seen. Names found are kept for the Resolver's life (container names
// do not change while the id lives); a miss is retried after NegativeTTL.
//
// # Limits
//
//   - Paths are read as the host sees them: run cpuwhy in the host's cgroup
//     namespace, or container paths are relative and may not be recognised.
//   - Nested containers (Docker in Docker, kind) are reported as the
//     outermost container, the one the host's engines know.
//   - A plain /kubepods/.../pod<uid>/<id> path does not name the runtime;
//     ParseCgroup reports containerd and the Resolver corrects it to Docker
//     when Docker knows the id.
//   - Only the first dockerd found (lowest pid) is consulted; rootless
//     dockerd and rootless podman keep their state under a user's home,
//     which is not searched.
//   - machine-NAME.scope is any machine registered with systemd-machined; it
//     is reported as systemd-nspawn, except libvirt's qemu-* VMs, which are
//     not containers and are reported as no container.
//   - Cgroup names inside a delegated subtree (a user's systemd instance, a
//     container with a writable cgroupfs) are chosen by whoever owns that
//     subtree, so a process there can pretend to be in a container. Names
//     are capped in length but kept as their creator wrote them, escape
//     sequences included; text outputs escape them (package escape).
//
// # Errors
//
// Lookup fails only when the process's cgroup file cannot be read (a pid
// that has exited gives an error matching fs.ErrNotExist) or is malformed
// (ErrMalformed). Failing to find a name is not an error: Name is empty.
package container
