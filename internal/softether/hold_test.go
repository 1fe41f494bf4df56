package softether_test

import (
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/softether"
)

func TestHold(t *testing.T) {
	sessions, _ := strconv.Atoi(os.Getenv("SE_SESSIONS"))
	rate, _ := strconv.Atoi(os.Getenv("SE_RATE"))
	hold, _ := time.ParseDuration(os.Getenv("SE_HOLD"))
	s := softether.StartServer(t, softether.ServerConfig{Name: "vpn"})
	svc, _ := s.ServicePID()
	cl := softether.StartClient(t, s)
	h := cl.Attach(t)
	if sessions > 0 {
		h.Start(t, softether.UDPLoad{Sessions: sessions, Rate: rate})
	}
	os.WriteFile("/tmp/se-hold", []byte(s.DataRoot+" "+strconv.Itoa(svc)+" "+strconv.Itoa(s.HostPID)+" "+strconv.Itoa(cl.HostPID)+"\n"), 0o644)
	time.Sleep(hold)
}
