// Package softether runs the program of the field report (seed 000), the
// SoftEther VPN Server, for real in tests: Debian's softether-vpnserver
// package, started in a docker-like container made by containertest, with
// a SoftEther VPN Client connected to it and a machine behind that client
// sending the traffic that makes the server's SecureNAT thread
// (NatThreadMain) burn a core in recvfrom, as it did in the report.
//
// What runs where:
//
//   - StartServer: /opt/vpnserver/vpnserver execsvc (a path the host does
//     not have) with its hamcore.se2, in its own PID, mount, UTS, IPC and
//     network namespaces; the network namespace has only loopback. PID 1
//     is execsvc's watchdog, which forks the server proper (a later PID
//     inside; see ServicePID) and restarts it if it dies. The root holds
//     the program, hamcore.se2, the libraries ldd names and glibc's gconv
//     modules (SoftEther will not start without iconv). LANG is unset, as
//     in a Debian image. Its configuration is written to
//     /var/lib/softether/vpn_server.config before it starts: hub DEFAULT
//     with SecureNAT on (virtual host 192.168.30.1), a user that logs in
//     anonymously, listeners on TCP 443, 992, 1194 and 5555. The server's
//     own calls home (dynamic DNS, keep-alive, NAT traversal) are off, and
//     so is its nice -20 (NoHighPriorityProcess), so that a spinning test
//     server does not starve the machine; the container is capped at one
//     core, the one-core VPS of the report.
//   - StartClient: /opt/vpnclient/vpnclient execsvc in a second container
//     that shares the server's network namespace (docker run --network
//     container:vpn) and has /dev/net/tun. It connects at start to
//     127.0.0.1:5555 and makes the virtual network adapter vpn_nic1.
//   - Attach: a Host, a machine on the VPN's LAN behind that adapter, what
//     the report's Windows PC was. It is the test process itself writing
//     Ethernet frames to vpn_nic1 through a packet socket made in the
//     shared namespace. Its UDP flows to an address outside the virtual
//     LAN each become a SecureNAT UDP session, with a host socket of its
//     own in the server.
//
// Why the server spins: SecureNAT's NAT thread waits in poll on all its
// sockets and, whenever anything happens (any packet from the VPN side
// sets its event), calls recvfrom on the socket of every UDP session until
// it returns EAGAIN (Virtual.c NatThreadMain -> NatTransactUdp ->
// Network.c RecvFrom). Each packet therefore costs one failed recvfrom per
// open session, and sessions stay open for NatUdpTimeout (60 s) after
// their last packet: a few thousand sessions and a few hundred packets a
// second keep the thread on the CPU, nearly every call EAGAIN. That is
// SoftEtherVPN issue #163; the flows a Windows PC sends (NetBIOS, SSDP,
// LLMNR, DNS) are the usual source of the sessions.
//
// Nothing leaves the machine: every flow's destination is on the server
// namespace's loopback (127.0.0.1 by default, where nothing listens), and
// that namespace has no other interface than loopback and the client's
// vpn_nic1, which carries no address and only leads back into the server.
//
// Limits: the Debian packages softether-vpnserver and softether-vpnclient
// must be installed; without them (or without the privilege containertest
// needs) tests skip through privtest, or fail when
// CPUWHY_REQUIRE_PRIVILEGED=1. The binaries are stripped, and SoftEther's
// own libraries (Mayaqua, Cedar) are linked into them statically: their
// frames are only ever vpnserver+offset. Every thread of both programs is
// named after the program, so threads are told apart by TID and CPU only;
// ThreadsCPU gives the ground truth from schedstat. A package that uses
// StartServer must call containertest.Main from its TestMain.
//
// What it does on this project's 2-core VM (shared, busy), the server
// capped at one core, 1000 packets a second: 500 sessions keep the NAT
// thread at about 25% of a core (480K recvfrom/s), 1000 at 65%, 2000 at
// 75% (0.8-1.2M recvfrom/s), all EAGAIN; when the packets stop it falls
// to about 1% (one scan every 256 ms). SecureNAT takes at most 4096
// sessions. It is not a spin on its own: the CPU follows the packets
// times the sessions.
//
// Like containertest, this test-only package makes its raw socket calls
// (AF_PACKET, setns through containertest.InNetwork) itself, outside the
// syscall door.
package softether
