package python

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/cpuwhy/cpuwhy/test/privtest"
)

// headers are the include directories of each CPython of this machine:
// pyenv's 3.8-3.13 and Debian's 3.11 (libpython3.11-dev), whose layout
// must be pyenv's 3.11's.
func headers() map[string][]string {
	out := map[string][]string{}
	for minor := 8; minor <= 13; minor++ {
		v := "3." + strconv.Itoa(minor)
		if m, _ := filepath.Glob("/root/.pyenv/versions/" + v + ".*/include/python" + v); len(m) > 0 {
			out["pyenv-"+v] = []string{m[0], m[0] + "/internal"}
		}
	}
	out["debian-3.11"] = []string{"/usr/include/python3.11", "/usr/include/python3.11/internal", "/usr/include/x86_64-linux-gnu/python3.11"}
	return out
}

// TestLayoutsMatchHeaders compiles testdata/offsets.c against each
// version's own headers and checks every field of its Layout against
// what the compiler says.
func TestLayoutsMatchHeaders(t *testing.T) {
	cc, err := exec.LookPath("gcc")
	if err != nil {
		privtest.Require(t, "no gcc (apt-get install gcc)")
	}
	src, _ := filepath.Abs("testdata/offsets.c")
	checked := map[int]bool{}
	for name, inc := range headers() {
		t.Run(name, func(t *testing.T) {
			if _, err := os.Stat(filepath.Join(inc[0], "Python.h")); err != nil {
				privtest.Require(t, "no headers of "+name+" at "+inc[0])
			}
			bin := filepath.Join(t.TempDir(), "offsets")
			args := []string{"-o", bin, src}
			for _, d := range inc {
				args = append(args, "-I"+d)
			}
			if out, err := exec.Command(cc, args...).CombinedOutput(); err != nil {
				t.Fatalf("compiling offsets.c: %v\n%s", err, out)
			}
			out, err := exec.Command(bin).Output()
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]int{}
			sc := bufio.NewScanner(strings.NewReader(string(out)))
			for sc.Scan() {
				f := strings.Fields(sc.Text())
				if len(f) != 2 {
					t.Fatalf("line %q", sc.Text())
				}
				got[f[0]], _ = strconv.Atoi(f[1])
			}
			l, ok := layouts[got["Minor"]]
			if !ok {
				t.Fatalf("no layout for 3.%d", got["Minor"])
			}
			v := reflect.ValueOf(l)
			for i := 0; i < v.NumField(); i++ {
				field := v.Type().Field(i).Name
				want, ok := got[field]
				if !ok {
					t.Errorf("offsets.c does not print %s", field)
					continue
				}
				if have := int(v.Field(i).Int()); have != want {
					t.Errorf("3.%d %s: the table says %d, the headers %d", l.Minor, field, have, want)
				}
				delete(got, field)
			}
			for field := range got {
				t.Errorf("offsets.c prints %s, which Layout lacks", field)
			}
			checked[l.Minor] = true
		})
	}
	for minor := range layouts {
		if !checked[minor] {
			t.Logf("the layout of 3.%d was checked against no headers", minor)
		}
	}
}
