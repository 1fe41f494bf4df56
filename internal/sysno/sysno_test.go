package sysno

import "testing"

func TestName(t *testing.T) {
	tests := []struct {
		arch string
		nr   int
		want string
	}{
		{"amd64", 0, "read"},
		{"amd64", 45, "recvfrom"},
		{"amd64", 202, "futex"},
		{"amd64", 232, "epoll_wait"},
		{"amd64", 435, "clone3"},
		{"arm64", 207, "recvfrom"},
		{"arm64", 98, "futex"},
		{"arm64", 25, "fcntl"},           // through the __NR3264_ alias
		{"arm64", 84, "sync_file_range"}, // arm64 lacks __ARCH_WANT_SYNC_FILE_RANGE2
		{"arm64", 80, "fstat"},
		{"amd64", 100000, "syscall_100000"},
		{"riscv", 1, "syscall_1"},
	}
	for _, tt := range tests {
		if got := Name(tt.arch, tt.nr); got != tt.want {
			t.Errorf("Name(%s, %d) = %q, want %q", tt.arch, tt.nr, got, tt.want)
		}
	}
}

func TestTakesFD(t *testing.T) {
	for _, arch := range []string{"amd64", "arm64"} {
		for name, want := range map[string]bool{"recvfrom": true, "epoll_pwait": true, "read": true, "futex": false, "sched_yield": false} {
			nr := Number(arch, name)
			if nr < 0 {
				t.Fatalf("%s has no %s", arch, name)
			}
			if got := TakesFD(arch, nr); got != want {
				t.Errorf("TakesFD(%s, %s=%d) = %v, want %v", arch, name, nr, got, want)
			}
		}
		if Max(arch) < 400 {
			t.Errorf("Max(%s) = %d", arch, Max(arch))
		}
	}
	// Every name in the hand-kept list exists on at least one architecture:
	// a typo would silently lose the fd split.
	for name := range fdFirst {
		if Number("amd64", name) < 0 && Number("arm64", name) < 0 {
			t.Errorf("fd-taking syscall %q is not a syscall on amd64 or arm64", name)
		}
	}
}
