package top

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/container"
	"github.com/cpuwhy/cpuwhy/test/golden"
	"github.com/cpuwhy/cpuwhy/test/termtest"
)

// sampleFrame is the seed's situation: the VPN server's NatThreadMain
// spinning inside a docker container, beside an idle host process.
func sampleFrame() *Frame {
	return &Frame{
		Time:     time.Date(2016, 8, 20, 0, 23, 46, 0, time.UTC),
		Interval: 1.0,
		Processes: []Process{
			{PID: 812, NsPID: 812, PPID: 1, Name: "sshd", Cmdline: "sshd: /usr/sbin/sshd -D", State: "S",
				CPU: 0.5, User: 0.2, System: 0.3, NumThreads: 1, RSSBytes: 7 << 20,
				Threads: []Thread{{TID: 812, Name: "sshd", CPU: 0.5, User: 0.2, System: 0.3, State: "S", Syscall: "pselect6"}}},
			{PID: 5072, NsPID: 1, PPID: 5050, Name: "vpnserver", Cmdline: "/opt/vpnserver/vpnserver execsvc", State: "S",
				CPU: 99.1, User: 12.4, System: 86.7, NumThreads: 3, RSSBytes: 24 << 20,
				Container: &container.Info{Runtime: container.Docker, ID: "3f4a1b2c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708", Name: "vpn"},
				Threads: []Thread{
					{TID: 5072, Name: "vpnserver", State: "S", Syscall: "futex", Wchan: "futex_wait_queue"},
					{TID: 4677, Name: "NatThreadMain", CPU: 99.1, User: 12.4, System: 86.7, State: "R"},
					{TID: 4680, Name: "vpnserver", CPU: 0, State: "S", Wchan: "do_epoll_wait"},
				}},
		},
	}
}

func TestRender(t *testing.T) {
	tests := []struct {
		golden string
		write  func(*bytes.Buffer, *Frame) error
		sort   SortKey
	}{
		{"frame.txt", func(b *bytes.Buffer, f *Frame) error { return WriteText(b, f, TextOptions{}) }, SortCPU},
		{"frame-narrow.txt", func(b *bytes.Buffer, f *Frame) error { return WriteText(b, f, TextOptions{Width: 20, Limit: 1}) }, SortCPU},
		{"frame-by-pid.txt", func(b *bytes.Buffer, f *Frame) error { return WriteText(b, f, TextOptions{}) }, SortPID},
		{"frame.json", func(b *bytes.Buffer, f *Frame) error { return WriteJSON(b, f) }, SortCPU},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			f := sampleFrame()
			f.Sort(tt.sort)
			var b bytes.Buffer
			if err := tt.write(&b, f); err != nil {
				t.Fatal(err)
			}
			golden.Check(t, filepath.Join("testdata", tt.golden), b.Bytes())
		})
	}
}

// hostileFrame is a process whose names attack the terminal (issue 18).
func hostileFrame() *Frame {
	f := sampleFrame()
	f.Processes = append(f.Processes, Process{
		PID: 6225, NsPID: 6225, Name: "\x1b]0;PWNED\a\nhx", Cmdline: "\x1b[2J line\nforged \xff \u202eevil \u009b31m", State: "R",
		CPU: 50, NumThreads: 2,
		Container: &container.Info{Runtime: container.Docker, ID: "abc", Name: "c\x1b[31m\nforged"},
		Threads: []Thread{
			{TID: 6225, Name: "\x1b]0;PWNED\a\nhx", State: "S", Syscall: "futex"},
			{TID: 6226, Name: "\x1b[2Jhot\nfake\x7f", CPU: 50, State: "R"},
		},
	})
	return f
}

func TestRenderEscapesNames(t *testing.T) {
	f := hostileFrame()
	var text, js bytes.Buffer
	if err := WriteText(&text, f, TextOptions{Width: 200}); err != nil {
		t.Fatal(err)
	}
	termtest.Check(t, "text", text.String(), "hx", "fake", "forged")
	for _, want := range []string{`\x1b[2J line\nforged \xff \u202eevil \u009b31m`, `docker:c\x1b[31m\nforged`, `\x1b[2Jhot\nfake\x7f`, `\x1b]0;PWNED\a\nhx [futex]`} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text lacks %s:\n%s", want, text.String())
		}
	}
	if err := WriteJSON(&js, f); err != nil {
		t.Fatal(err)
	}
	termtest.Check(t, "JSON", js.String())
	var back Frame
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if got, want := back.Processes[2].Threads[1].Name, f.Processes[2].Threads[1].Name; got != want {
		t.Errorf("JSON thread name %q, want the exact %q", got, want)
	}
	if got, want := back.Processes[2].Container.Name, f.Processes[2].Container.Name; got != want {
		t.Errorf("JSON container name %q, want the exact %q", got, want)
	}
}

func TestSortAndFilter(t *testing.T) {
	f := sampleFrame()
	f.Sort(SortCPU)
	if f.Processes[0].PID != 5072 || f.Processes[0].Threads[0].Name != "NatThreadMain" {
		t.Errorf("CPU sort: first %d/%s, want 5072/NatThreadMain", f.Processes[0].PID, f.Processes[0].Threads[0].Name)
	}
	f.Sort(SortName)
	if f.Processes[0].Name != "sshd" {
		t.Errorf("name sort: first %s, want sshd", f.Processes[0].Name)
	}
	f.Sort(SortMem)
	if f.Processes[0].PID != 5072 {
		t.Errorf("mem sort: first %d, want 5072", f.Processes[0].PID)
	}
	for _, q := range []string{"VPN", "3f4a1b", "docker", "5072", "execsvc"} {
		if !f.Processes[0].Matches(q) {
			t.Errorf("vpnserver does not match %q", q)
		}
	}
	if f.Processes[1].Matches("vpn") {
		t.Error("sshd matches vpn")
	}
	f.Filter(func(p *Process) bool { return p.Container != nil })
	if len(f.Processes) != 1 || f.Processes[0].PID != 5072 {
		t.Errorf("filter left %+v", f.Processes)
	}
}

func TestParseSortKey(t *testing.T) {
	for _, k := range SortKeys {
		if got, err := ParseSortKey(string(k)); err != nil || got != k {
			t.Errorf("ParseSortKey(%q) = %q, %v", k, got, err)
		}
	}
	if _, err := ParseSortKey("CPU"); err != nil {
		t.Errorf("sort keys are case-insensitive: %v", err)
	}
	if _, err := ParseSortKey("heat"); err == nil {
		t.Error("ParseSortKey(heat) succeeded")
	}
}

func TestParseSyscallFile(t *testing.T) {
	tests := []struct{ in, want string }{
		{"45 0x3 0x7ffd 0x10 0x0 0x0 0x0 0x7ffc 0x7f12\n", "recvfrom"},
		{"202 0x7f 0x80 0x2 0x0 0x0 0x0 0x7ffc 0x7f12\n", "futex"},
		{"running\n", ""},
		{"-1 0x7ffc 0x7f12\n", ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := ParseSyscallFile([]byte(tt.in)); got != tt.want {
			t.Errorf("ParseSyscallFile(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestHumanBytes(t *testing.T) {
	tests := map[int64]string{0: "0B", 1023: "1023B", 1024: "1.0K", 24 << 20: "24M", 5 << 30: "5.0G", 3 << 50: "3072T"}
	for n, want := range tests {
		if got := HumanBytes(n); got != want {
			t.Errorf("HumanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
