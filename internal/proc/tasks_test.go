package proc

import (
	"errors"
	"os/exec"
	"slices"
	"testing"
)

// TestTaskList: the thread list held open gives what Tasks gives, again
// and again, and ErrGone once the process is reaped.
func TestTaskList(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	pid := cmd.Process.Pid
	l, err := FS{}.OpenTasks(pid)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	want, err := FS{}.Tasks(pid, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		got, err := l.List(nil)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("listing %d: %v, want %v (Tasks)", i, got, want)
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	if got, err := l.List(nil); !errors.Is(err, ErrGone) {
		t.Errorf("after the process was reaped: %v, %v, want ErrGone", got, err)
	}
}
