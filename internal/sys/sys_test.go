package sys

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func TestDirNumbers(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"1", "42", "0", "007", "self", "12a", "4194304"} {
		if err := os.Mkdir(dir+"/"+name, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	d, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	// A scratch buffer too small for one getdents call: the listing must
	// still be complete.
	got, err := d.Numbers(nil, make([]byte, 64))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if want := []int{1, 42, 4194304}; !slices.Equal(got, want) {
		t.Errorf("Numbers = %v, want %v", got, want)
	}
	// Listing again rewinds.
	again, _ := d.Numbers(nil, make([]byte, 4096))
	if len(again) != len(got) {
		t.Errorf("second listing has %d entries, first %d", len(again), len(got))
	}
}

func TestReadProcFile(t *testing.T) {
	buf := make([]byte, 4096)
	n, err := ReadProcFile("/proc/self/stat", buf)
	if err != nil || n == 0 || buf[n-1] != '\n' {
		t.Fatalf("ReadProcFile(/proc/self/stat) = %q, %v", buf[:n], err)
	}
	if _, err := ReadProcFile("/proc/no-such-file", buf); err == nil {
		t.Error("reading a missing file succeeded")
	}
}

func TestEffectiveCaps(t *testing.T) {
	caps, err := EffectiveCaps()
	if err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 && !caps.Has(CapSysPtrace) {
		t.Log("running as root without CAP_SYS_PTRACE")
	}
	if got := CapSet(0).Missing(CapSysPtrace, CapBPF); !slices.Equal(got, []string{"CAP_SYS_PTRACE", "CAP_BPF"}) {
		t.Errorf("Missing = %v", got)
	}
}

// dirent builds one linux_dirent64 record.
func dirent(name string) []byte {
	reclen := (19 + len(name) + 1 + 7) &^ 7
	b := make([]byte, reclen)
	binary.LittleEndian.PutUint16(b[16:], uint16(reclen))
	copy(b[19:], name)
	return b
}

func FuzzAppendDirentNumbers(f *testing.F) {
	f.Add(append(dirent("1"), dirent("self")...))
	f.Add(dirent("4194304"))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 0})
	f.Fuzz(func(t *testing.T, buf []byte) {
		for _, v := range appendDirentNumbers(nil, buf) {
			if v <= 0 {
				t.Fatalf("non-positive number %d", v)
			}
		}
	})
}

func TestSocketProtocol(t *testing.T) {
	for _, tc := range []struct {
		domain, typ int
		want        string
	}{
		{unix.AF_INET, unix.SOCK_DGRAM, "UDP"},
		{unix.AF_INET6, unix.SOCK_STREAM, "TCPv6"},
		{unix.AF_UNIX, unix.SOCK_DGRAM, "UNIX"},
	} {
		fd, err := unix.Socket(tc.domain, tc.typ|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		got, err := SocketProtocol(fmt.Sprintf("/proc/self/fd/%d", fd))
		unix.Close(fd)
		if err != nil || got != tc.want {
			t.Errorf("SocketProtocol(socket(%d, %d)) = %q, %v; want %q", tc.domain, tc.typ, got, err, tc.want)
		}
	}
	if _, err := SocketProtocol("/proc/self/fd/0/nonexistent"); err == nil {
		t.Error("no error for a path that is no socket")
	}
}

func TestWatchProcess(t *testing.T) {
	cmd := exec.Command("sleep", "0.2")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w, err := WatchProcess(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if w.Exited() {
		t.Error("Exited is true for a running process")
	}
	// Not reaped yet: the pidfd still says it has exited.
	deadline := time.Now().Add(5 * time.Second)
	for !w.Exited() {
		if time.Now().After(deadline) {
			t.Fatal("Exited still false 5s after sleep 0.2 started")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cmd.Wait()
	if _, err := WatchProcess(cmd.Process.Pid); !errors.Is(err, unix.ESRCH) {
		t.Errorf("WatchProcess of a reaped process = %v, want ESRCH", err)
	}
}

func TestCheckPtraceAccess(t *testing.T) {
	cmd := exec.Command("sleep", "10")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	if err := CheckPtraceAccess(cmd.Process.Pid); err != nil {
		t.Errorf("access to our own child: %v", err)
	}
	if err := CheckPtraceAccess(1 << 30); !errors.Is(err, unix.ESRCH) {
		t.Errorf("access to a missing PID = %v, want ESRCH", err)
	}
}

func TestReadProcessMemory(t *testing.T) {
	src := []byte("stack bytes of a target")
	dst := make([]byte, len(src))
	n, err := ReadProcessMemory(os.Getpid(), dst, uint64(uintptr(unsafe.Pointer(&src[0]))))
	if err != nil || n != len(src) || string(dst) != string(src) {
		t.Fatalf("ReadProcessMemory = %d, %v, %q", n, err, dst)
	}
	if _, err := ReadProcessMemory(os.Getpid(), dst, 0); !errors.Is(err, unix.EFAULT) {
		t.Errorf("reading address 0: %v, want EFAULT", err)
	}
}
