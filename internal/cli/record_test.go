package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestRecordContainer(t *testing.T) {
	c := startBusyPoll(t)
	dir := t.TempDir()
	for _, name := range []string{"vpn.pb.gz", "vpn.folded", "vpn.html"} {
		t.Run(name, func(t *testing.T) {
			out := filepath.Join(dir, name)
			code, stdout, errOut := run(t, "record", "-d", "1s", "-o", out, "--container", c.Name,
				"--docker-data-root", c.DataRoot, "--docker-socket", "/nonexistent")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			for _, want := range []string{"in docker container " + c.Name, "RecvFrom <- vpnserver+0x", "start_thread", "Without symbols", "profile written to " + out} {
				if !strings.Contains(stdout, want) {
					t.Errorf("summary lacks %q:\n%s", want, stdout)
				}
			}
			data, err := os.ReadFile(out)
			if err != nil || len(data) == 0 {
				t.Fatalf("profile %s: %v", out, err)
			}
			switch filepath.Ext(name) {
			case ".gz":
				top, err := exec.Command("go", "tool", "pprof", "-top", "-nodecount=10", out).CombinedOutput()
				if err != nil || !strings.Contains(string(top), "recvfrom") {
					t.Errorf("go tool pprof -top: %v\n%s", err, top)
				}
			case ".folded":
				if !strings.Contains(string(data), ";RecvFrom;recvfrom") {
					t.Errorf("folded stacks lack ...;RecvFrom;recvfrom:\n%.500s", data)
				}
			case ".html":
				if !strings.Contains(string(data), "RecvFrom") || strings.Contains(string(data), "http://") || strings.Contains(string(data), "https://") {
					t.Errorf("html profile lacks RecvFrom or refers to the network")
				}
			}
		})
	}
}

func TestRecordBadOutput(t *testing.T) {
	code, _, errOut := run(t, "record", "1", "-o", "profile.txt")
	if code != 2 || !strings.Contains(errOut, ".pb.gz") {
		t.Errorf("exit %d, stderr %q: want a usage error naming the formats", code, errOut)
	}
}
