package hotspot

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/proc"
)

func TestRequest(t *testing.T) {
	got, err := request("jcmd", "Compiler.perfmap")
	if err != nil {
		t.Fatal(err)
	}
	if want := "1\x00jcmd\x00Compiler.perfmap\x00\x00\x00"; string(got) != want {
		t.Errorf("request = %q, want %q", got, want)
	}
	if _, err := request("jcmd", "a\x00b"); err == nil {
		t.Error("a NUL in an argument was sent")
	}
	if _, err := request("jcmd", "a", "b", "c", "d"); err == nil {
		t.Error("four arguments were sent")
	}
}

func TestParseResponse(t *testing.T) {
	for _, tt := range []struct {
		name, in string
		out      string
		refused  bool
		bad      bool
	}{
		{name: "done, no output", in: "0\n", out: ""},
		{name: "done, output", in: "0\nok\n", out: "ok\n"},
		{name: "unknown command (JDK before 17)", in: "0\njava.lang.IllegalArgumentException: Unknown diagnostic command\n", refused: true},
		{name: "error code", in: "101\nnot supported\n", refused: true},
		{name: "no newline", in: "0", bad: true},
		{name: "not a number", in: "zero\n", bad: true},
		{name: "empty", in: "", bad: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, err := parseResponse([]byte(tt.in))
			switch {
			case tt.refused:
				if !errors.Is(err, ErrRefused) {
					t.Errorf("err = %v, want ErrRefused", err)
				}
			case tt.bad:
				if err == nil || errors.Is(err, ErrRefused) {
					t.Errorf("err = %v, want a malformed answer", err)
				}
			case err != nil || out != tt.out:
				t.Errorf("parseResponse = %q, %v; want %q", out, err, tt.out)
			}
		})
	}
}

func FuzzParseResponse(f *testing.F) {
	for _, s := range []string{"0\n", "0\nok", "1\nx", "-1\n", "\n", "99999999999999999999\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := parseResponse(b)
		if err == nil && len(out) > len(b) {
			t.Fatalf("output longer than the answer")
		}
		if err != nil && len(err.Error()) > 1000 {
			t.Fatalf("error of %d bytes: an answer's line is not cut (200 bytes, quoted)", len(err.Error()))
		}
	})
}

// TestRefusingJVM: a listener that refuses the command, as a JDK before
// 17 does, over a real socket in the place a JVM's would be: the request
// fails with ErrRefused, and nothing is signalled (the socket exists).
func TestRefusingJVM(t *testing.T) {
	pid := os.Getpid()
	path := fmt.Sprintf("/tmp/.java_pid%d", pid)
	os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(); os.Remove(path) })
	got := make(chan string, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			got <- err.Error()
			return
		}
		defer c.Close()
		buf := make([]byte, 256)
		n, _ := c.Read(buf)
		got <- string(buf[:n])
		c.Write([]byte("0\njava.lang.IllegalArgumentException: Unknown diagnostic command\n"))
	}()
	a := &attacher{fs: proc.FS{}, pid: pid, nspid: pid, root: proc.FS{}.PIDPath(pid, "root"), wait: 5 * time.Second}
	_, err = a.run("Compiler.perfmap")
	if !errors.Is(err, ErrRefused) {
		t.Errorf("run = %v, want ErrRefused", err)
	}
	if req := <-got; !strings.Contains(req, "jcmd\x00Compiler.perfmap\x00") {
		t.Errorf("the listener got %q", req)
	}
}

// TestNoSIGQUITHandler: a process that does not catch SIGQUIT (a JVM
// under -Xrs) is never sent one, nor is one that catches it but is no
// JVM (Go's runtime catches it, and dies of it: this test's own
// process).
func TestNoSIGQUITHandler(t *testing.T) {
	sleep := exec.Command("sleep", "60")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleep.Process.Kill(); sleep.Wait() })
	for _, tt := range []struct {
		pid  int
		want string
	}{{sleep.Process.Pid, "does not catch SIGQUIT"}, {os.Getpid(), "no longer a JVM"}} {
		a := &attacher{fs: proc.FS{}, pid: tt.pid, nspid: tt.pid, root: proc.FS{}.PIDPath(tt.pid, "root"), wait: time.Second}
		_, err := a.run("Compiler.perfmap")
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("run on %d = %v, want %q", tt.pid, err, tt.want)
		}
		if _, err := os.Stat(fmt.Sprintf("/tmp/.attach_pid%d", tt.pid)); err == nil {
			t.Errorf("a trigger file was left for %d", tt.pid)
		}
	}
	if err := sleep.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("sleep was harmed: %v", err)
	}
}

// flat is memory at base, the rest unreadable.
type flat struct {
	base uint64
	b    []byte
}

func (m flat) ReadAt(p []byte, addr uint64) (int, error) {
	if addr < m.base || addr-m.base > uint64(len(m.b)) || uint64(len(p)) > uint64(len(m.b))-(addr-m.base) {
		return 0, errors.New("unmapped")
	}
	return copy(p, m.b[addr-m.base:]), nil
}

// jdk17 is a layout of the shape JDK 17's VMStructs give; the fuzzer
// varies the memory, not the offsets.
var jdk17 = vmLayout{methodConstMethod: 8, constMethodConsts: 8, constMethodName: 42, constPoolHolder: 24,
	constPoolLength: 68, constPoolSize: 72, klassName: 16, symbolLength: 0, symbolBody: 6}

// FuzzInterpretedMethod names a Method* in random memory: it must end,
// and a name be printable and bounded.
func FuzzInterpretedMethod(f *testing.F) {
	f.Add(make([]byte, 256), uint64(0x1008))
	f.Fuzz(func(t *testing.T, mem []byte, m uint64) {
		l := jdk17
		ms := &methods{l: &l, mem: flat{base: 0x1000, b: mem}, names: map[uint64]cachedMethod{}}
		name, ok := ms.name(m)
		if ok && (len(name) > 2*maxSymbol+1 || strings.ContainsAny(name, "\x00\n")) {
			t.Fatalf("name %q", name)
		}
	})
}
