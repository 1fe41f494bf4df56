package softether

import (
	"bytes"
	_ "embed"
	"fmt"
	"net"
	"text/template"
	"time"
)

// The configurations are the files the programs write themselves with
// default settings, taken from a run of the Debian build and trimmed of
// what they generate per installation (certificate, key, hashes, times,
// counters); the programs regenerate what is missing. Only the values the
// templates name differ from those defaults, and the settings doc.go
// lists.
var (
	//go:embed server.config.tmpl
	serverConfigText string
	//go:embed client.config.tmpl
	clientConfigText string

	serverConfigTmpl = template.Must(template.New("vpn_server.config").Option("missingkey=error").Parse(serverConfigText))
	clientConfigTmpl = template.Must(template.New("vpn_client.config").Option("missingkey=error").Parse(clientConfigText))
)

// The fixed layout of the VPN: what the configurations set and what a Host
// needs to know to talk to SecureNAT.
const (
	// Hub is the virtual hub the client joins.
	Hub = "DEFAULT"
	// User logs in to Hub with anonymous authentication.
	User = "client"
	// Port is the TCP listener the client connects to.
	Port = 5555
	// NIC is the client's virtual network adapter; the kernel interface is
	// "vpn_" + NIC.
	NIC = "nic1"
	// Account is the client's connection setting.
	Account = "cpuwhy"
)

var (
	// GatewayIP is SecureNAT's virtual host, the LAN's gateway.
	GatewayIP = net.IPv4(192, 168, 30, 1).To4()
	// GatewayMAC is the virtual host's MAC address.
	GatewayMAC = net.HardwareAddr{0x5e, 0x00, 0x53, 0xc0, 0xff, 0x01}
	// nicMAC is the client adapter's MAC address.
	nicMAC = net.HardwareAddr{0x5e, 0x00, 0x53, 0xc0, 0xff, 0x02}
)

// softetherMAC writes a MAC address as SoftEther's configuration does:
// 5E-00-53-C0-FF-01.
func softetherMAC(mac net.HardwareAddr) string {
	var b bytes.Buffer
	for i, x := range mac {
		if i > 0 {
			b.WriteByte('-')
		}
		fmt.Fprintf(&b, "%02X", x)
	}
	return b.String()
}

// serverConfig renders vpn_server.config.
func serverConfig(natUDPTimeout time.Duration) ([]byte, error) {
	secs := int(natUDPTimeout / time.Second)
	// The server clamps the timeout to [10 s, 2,000,000 s]; refusing
	// values it would change keeps what a test asks for what it gets.
	if secs < 10 || secs > 2000000 {
		return nil, fmt.Errorf("NAT UDP timeout %v is outside SoftEther's 10s..2000000s", natUDPTimeout)
	}
	var b bytes.Buffer
	err := serverConfigTmpl.Execute(&b, map[string]any{
		"Port":          Port,
		"User":          User,
		"GatewayMAC":    softetherMAC(GatewayMAC),
		"NATUDPTimeout": secs,
	})
	if err != nil {
		return nil, fmt.Errorf("rendering vpn_server.config: %w", err)
	}
	return b.Bytes(), nil
}

// clientConfig renders vpn_client.config: one account, connected at start.
func clientConfig() ([]byte, error) {
	var b bytes.Buffer
	err := clientConfigTmpl.Execute(&b, map[string]any{
		"Account": Account,
		"Hub":     Hub,
		"NIC":     NIC,
		"NICMAC":  softetherMAC(nicMAC),
		"Port":    Port,
		"User":    User,
	})
	if err != nil {
		return nil, fmt.Errorf("rendering vpn_client.config: %w", err)
	}
	return b.Bytes(), nil
}
