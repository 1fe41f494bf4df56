// Package docker tests cpuwhy end to end against a real Docker engine: a
// private dockerd runs the busypoll scenario in a container, and the
// cpuwhy binary, built from this module, must name that container and
// find its spinning thread.
//
// The package holds only tests. They need root, dockerd, containerd and
// runc (Debian's docker.io), gcc for the scenario and ldd; without dockerd
// they are skipped through privtest (a failure when
// CPUWHY_REQUIRE_PRIVILEGED=1). There is no registry: the image is
// imported from a root filesystem tarball the test writes.
//
// The dockerd never touches the host's network or state: no bridge, no
// iptables, no IP forwarding, its own data root, exec root, socket and pid
// file in a temporary directory, and containers with --network none. It
// uses the cgroupfs driver, so its containers sit in /docker/<id>, the
// cgroup layout cpuwhy recognises on hosts without systemd.
package docker
