package softether

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

const udpTable = `   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  120: 00000000:01BB 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1324077 2 0000000000000000 0
 1283: 0100007F:9C40 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1324250 2 0000000000000000 0
`

func TestParseUDPInodes(t *testing.T) {
	got, err := parseUDPInodes([]byte(udpTable))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !got["1324077"] || !got["1324250"] {
		t.Errorf("inodes %v, want 1324077 and 1324250", got)
	}
	if _, err := parseUDPInodes([]byte("header\nshort line\n")); err == nil {
		t.Error("a short line parsed")
	}
}

func FuzzParseUDPInodes(f *testing.F) {
	f.Add([]byte(udpTable))
	f.Add([]byte("h\n1 2 3 4 5 6 7 8 9 10\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseUDPInodes(b)
		if err == nil && len(m) > strings.Count(string(b), "\n")+1 {
			t.Errorf("%d inodes from %d lines", len(m), strings.Count(string(b), "\n")+1)
		}
	})
}

func TestARPRoundTrip(t *testing.T) {
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 9}
	req := arpRequest(hostMAC, HostIP, GatewayIP)
	// The gateway's reply is the request turned around.
	reply := append([]byte(nil), req...)
	copy(reply[0:6], hostMAC)
	copy(reply[6:12], mac)
	reply[14+7] = 2 // reply
	copy(reply[14+8:14+14], mac)
	copy(reply[14+14:14+18], GatewayIP)
	copy(reply[14+18:14+24], hostMAC)
	copy(reply[14+24:14+28], HostIP)
	got, ok := parseARPReply(reply, GatewayIP)
	if !ok || got.String() != mac.String() {
		t.Errorf("parseARPReply = %s, %v; want %s", got, ok, mac)
	}
	for name, frame := range map[string][]byte{
		"the request":    req,
		"short":          reply[:30],
		"other sender":   reply,
		"not ARP at all": append(append([]byte(nil), reply[:12]...), 0x08, 0x00),
	} {
		ip := GatewayIP
		if name == "other sender" {
			ip = net.IPv4(192, 168, 30, 2)
		}
		if _, ok := parseARPReply(frame, ip); ok {
			t.Errorf("%s parsed as a reply from %s", name, ip)
		}
	}
}

func FuzzParseARPReply(f *testing.F) {
	f.Add(arpRequest(hostMAC, HostIP, GatewayIP))
	f.Fuzz(func(t *testing.T, frame []byte) {
		if mac, ok := parseARPReply(frame, GatewayIP); ok && len(mac) != 6 {
			t.Errorf("MAC %x", mac)
		}
	})
}

func TestUDPFrame(t *testing.T) {
	h := &Host{IP: HostIP, MAC: hostMAC, GatewayMAC: GatewayMAC}
	dst := netip.MustParseAddrPort("127.0.0.1:9")
	f := h.udpFrame(20000, dst, []byte("abc"))
	if len(f) != 14+20+8+3 {
		t.Fatalf("frame of %d bytes", len(f))
	}
	if ipChecksum(f[14:34]) != 0 {
		t.Errorf("IPv4 header checksum does not verify: % x", f[14:34])
	}
	if got := net.IP(f[30:34]).String(); got != "127.0.0.1" {
		t.Errorf("destination %s", got)
	}
	if f[36] != 0x00 || f[37] != 0x09 || f[34] != 0x4e || f[35] != 0x20 {
		t.Errorf("ports % x, want 4e20 -> 0009", f[34:38])
	}
}

func TestServerConfig(t *testing.T) {
	tests := []struct {
		timeout time.Duration
		want    string
		ok      bool
	}{
		{60 * time.Second, "uint NatUdpTimeout 60\n", true},
		{10 * time.Second, "uint NatUdpTimeout 10\n", true},
		{9 * time.Second, "", false},
		{0, "", false},
	}
	for _, tt := range tests {
		conf, err := serverConfig(tt.timeout)
		if (err == nil) != tt.ok {
			t.Errorf("serverConfig(%v): %v", tt.timeout, err)
			continue
		}
		if !tt.ok {
			continue
		}
		for _, want := range []string{tt.want, "string VirtualHostMacAddress 5E-00-53-C0-FF-01\n", "declare client\n", "bool NoHighPriorityProcess true\n", "bool DisableNatTraversal true\n"} {
			if !strings.Contains(string(conf), want) {
				t.Errorf("serverConfig(%v) lacks %q", tt.timeout, want)
			}
		}
		if strings.Contains(string(conf), "{{") {
			t.Errorf("unrendered template left in the configuration")
		}
	}
	conf, err := clientConfig()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"bool StartupAccount true\n", "string DeviceName nic1\n", "uint Port 5555\n", "string Hostname 127.0.0.1\n"} {
		if !strings.Contains(string(conf), want) {
			t.Errorf("clientConfig lacks %q", want)
		}
	}
}
