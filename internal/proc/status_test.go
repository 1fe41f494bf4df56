package proc

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

func TestParseStatus(t *testing.T) {
	process, err := os.ReadFile(filepath.Join("testdata", "status", "process.txt"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		data    string
		want    Status
		wantErr error
	}{
		{name: "process", data: string(process), want: Status{TGID: 23313, NsPID: 23313}},
		{name: "traced thread in a container", want: Status{TGID: 4011, NsPID: 7, TracerPID: 5120},
			data: "Name:\tNatThreadMain\nState:\tt (tracing stop)\nTgid:\t4011\nNgid:\t0\nPid:\t4017\nPPid:\t3990\nTracerPid:\t5120\nNStgid:\t4011\t1\nNSpid:\t4017\t7\n"},
		{name: "no NSpid (before Linux 4.1)", data: "Tgid:\t10\nPid:\t12\nTracerPid:\t0\n", want: Status{TGID: 10, NsPID: 12}},
		{name: "a name that looks like a field", data: "Name:\tTgid: 1\nTgid:\t10\nPid:\t10\n", want: Status{TGID: 10, NsPID: 10}},
		{name: "no Tgid", data: "Name:\tx\nPid:\t12\n", wantErr: ErrStatusFormat},
		{name: "bad Tgid", data: "Tgid:\tten\n", wantErr: ErrStatusFormat},
		{name: "negative TracerPid", data: "Tgid:\t1\nTracerPid:\t-1\n", wantErr: ErrStatusFormat},
		{name: "empty", data: "", wantErr: ErrStatusFormat},
		{name: "a JVM's ids and caught signals", want: Status{TGID: 7, NsPID: 7, EUID: 1000, EGID: 100, SigCgt: 0x100014eef},
			data: "Tgid:\t7\nPid:\t7\nUid:\t0\t1000\t1000\t1000\nGid:\t0\t100\t100\t100\nSigCgt:\t0000000100014eef\n"},
		{name: "bad SigCgt", data: "Tgid:\t1\nSigCgt:\tzz\n", wantErr: ErrStatusFormat},
		{name: "short Uid", data: "Tgid:\t1\nUid:\t0\n", wantErr: ErrStatusFormat},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseStatus([]byte(tt.data))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("ParseStatus error = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseStatus: %v", err)
			}
			if got != tt.want {
				t.Errorf("ParseStatus = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestStatusOfThread reads the status of one of the test's own threads
// by its TID, as a user naming a thread would.
func TestStatusOfThread(t *testing.T) {
	pid := os.Getpid()
	tasks, err := os.ReadDir(FS{}.PIDPath(pid, "task"))
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		tid, err := strconv.Atoi(task.Name())
		if err != nil {
			t.Fatal(err)
		}
		st, err := FS{}.Status(tid)
		if errors.Is(err, ErrGone) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if st.TGID != pid {
			t.Errorf("status of TID %d says Tgid %d, want %d", tid, st.TGID, pid)
		}
		if ts, err := (FS{}).TaskStatus(pid, tid); err == nil && ts != st {
			t.Errorf("TaskStatus(%d, %d) = %+v, Status(%d) = %+v", pid, tid, ts, tid, st)
		}
	}
	if _, err := (FS{}).Status(1 << 30); !errors.Is(err, ErrGone) {
		t.Errorf("status of a PID above pid_max: %v, want ErrGone", err)
	}
}

func FuzzParseStatus(f *testing.F) {
	f.Add([]byte("Tgid:\t10\nPid:\t12\nTracerPid:\t0\nNSpid:\t12\t1\n"))
	f.Add([]byte("Tgid:\nNSpid:\t\n:::\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := ParseStatus(data)
		if err == nil && (st.TGID < 0 || st.NsPID < 0 || st.TracerPID < 0) {
			t.Errorf("ParseStatus(%q) = %+v: negative IDs", data, st)
		}
	})
}
