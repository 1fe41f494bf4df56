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
