package containertest

import (
	"reflect"
	"testing"
)

// hybridMountinfo is the cgroup part of a v1/v2 hybrid host's mountinfo
// (the development VM), with a second, non-root bind mount of the cpu
// hierarchy and a mount point with an escaped space added.
const hybridMountinfo = `22 1 254:0 / / rw,relatime - ext4 /dev/vda rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
90 22 0:29 /docker/abc /mnt/cpu\040inner rw,relatime - cgroup cgroup rw,cpu
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime shared:7 - cgroup cgroup rw,cpuset
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
91 22 0:39 / /mnt/cg\040two rw,relatime - cgroup2 cgroup2 rw
`

func TestParseCgroupMounts(t *testing.T) {
	got, err := parseCgroupMounts([]byte(hybridMountinfo))
	if err != nil {
		t.Fatal(err)
	}
	want := []cgroupMount{
		{Dir: "/sys/fs/cgroup/cpu", Version: 1, Options: "rw,cpu"},
		{Dir: "/sys/fs/cgroup/cpuacct", Version: 1, Options: "rw,cpuacct"},
		{Dir: "/sys/fs/cgroup/cpuset", Version: 1, Options: "rw,cpuset"},
		{Dir: "/sys/fs/cgroup/systemd", Version: 1, Options: "rw,name=systemd"},
		{Dir: "/sys/fs/cgroup/unified", Version: 2, Options: "rw"},
		{Dir: "/mnt/cg two", Version: 2, Options: "rw"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseCgroupMounts =\n%+v\nwant\n%+v", got, want)
	}
}

func TestParseCgroupMountsMalformed(t *testing.T) {
	for _, in := range []string{
		"31 23 0:28 / /sys/fs/cgroup rw,relatime tmpfs tmpfs rw\n", // no separator
		"32 31 0:29 / /x rw - cgroup\n",                            // nothing after fstype
	} {
		if _, err := parseCgroupMounts([]byte(in)); err == nil {
			t.Errorf("parseCgroupMounts(%q) succeeded, want an error", in)
		}
	}
}

func FuzzParseCgroupMounts(f *testing.F) {
	f.Add([]byte(hybridMountinfo))
	f.Add([]byte(`1 2 3:4 /\0 /\ - cgroup2 x`))
	f.Fuzz(func(t *testing.T, data []byte) {
		parseCgroupMounts(data)
	})
}

func TestParseLdd(t *testing.T) {
	out := []byte("\tlinux-vdso.so.1 (0x00007ffd)\n" +
		"\tlibnat.so => /root/.cache/x/libnat.so (0x00007f46)\n" +
		"\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f46)\n" +
		"\t/lib64/ld-linux-x86-64.so.2 (0x00007f46)\n")
	got, err := parseLdd(out, map[string]string{"libnat.so": "/root/.cache/x/libnat.so"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseLdd = %q, want %q", got, want)
	}

	if _, err := parseLdd([]byte("\tlibmissing.so => not found\n"), nil); err == nil {
		t.Error("parseLdd accepted a missing library")
	}
}
