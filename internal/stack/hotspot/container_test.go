package hotspot_test

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/proc"
	"github.com/cpuwhy/cpuwhy/internal/stack/hotspot"
	"github.com/cpuwhy/cpuwhy/test/containertest"
	"github.com/cpuwhy/cpuwhy/test/privtest"
	"github.com/cpuwhy/cpuwhy/test/scenario"
)

func TestMain(m *testing.M) { containertest.Main(m) }

// jdkRoot is the directory of the JDK whose java is in PATH.
func jdkRoot(t *testing.T) string {
	t.Helper()
	java, err := exec.LookPath("java")
	if err != nil {
		privtest.Require(t, "java is not installed (apt-get install openjdk-17-jdk-headless)")
	}
	real, err := filepath.EvalSymlinks(java)
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(filepath.Dir(real)) // .../bin/java
}

// TestContainer: a JVM in a container of the test harness, the JDK only
// inside it (at /opt/jdk, a path the host lacks) and the JVM PID 1 of its
// namespace: it is asked for its map through the container's root, in
// its own /tmp, under its own PID, and its compiled loop is named.
func TestContainer(t *testing.T) {
	jdk := jdkRoot(t)
	if _, err := os.Stat("/opt/jdk"); err == nil {
		t.Fatal("the host has /opt/jdk: the test would not tell the two apart")
	}
	p := scenario.Build(t, "javahot")
	// The JDK's run-time files (its lib and conf, symbolic links
	// followed), the libraries its own libraries need at the host's
	// paths, and the scenario's classes.
	files := map[string]string{}
	java := filepath.Join(jdk, "bin", "java")
	have := map[string]bool{} // java's own, which the container gets with it
	libs, err := containertest.SharedLibraries(java, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range libs {
		have[l] = true
	}
	for _, sub := range []string{"lib", "conf"} {
		err := filepath.WalkDir(filepath.Join(jdk, sub), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			st, err := os.Stat(path)
			if err != nil || st.IsDir() || strings.HasSuffix(path, "src.zip") {
				return nil // a dangling link, a directory, the sources
			}
			rel, _ := filepath.Rel(jdk, path)
			files["/opt/jdk/"+rel] = path
			if strings.HasSuffix(path, ".so") {
				// libjvm.so, which others need, is in the JDK.
				libs, err := containertest.SharedLibraries(path, map[string]string{"libjvm.so": ""})
				if err != nil {
					return err
				}
				for _, l := range libs {
					if !strings.HasPrefix(l, jdk) && !have[l] {
						files[l] = l
					}
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []string{"Hot.class", "Huge.class"} {
		files["/opt/jdk/app/"+c] = p.Files[c]
	}
	c := containertest.Start(t, containertest.Config{
		Program: java, Dir: "/opt/jdk/bin", RootFiles: files,
		Dirs: []string{"/tmp"},
		Args: []string{"-Xms64m", "-Xmx64m", "-cp", "/opt/jdk/app", "Hot", "compute"},
	})
	c.WaitReady(t, 60*time.Second)
	if id := (proc.FS{}).Identity(c.HostPID); id.NsPID != 1 {
		t.Fatalf("the JVM is PID %d in its namespace, want 1", id.NsPID)
	}
	maps, err := os.ReadFile("/proc/" + strconv.Itoa(c.HostPID) + "/maps")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(maps), "/opt/jdk/lib/server/libjvm.so") {
		t.Fatalf("the JVM does not run the container's libjvm.so:\n%s", maps)
	}
	tid := mainThread(t, c.HostPID)
	res := record(t, c.HostPID, false)
	if share, hot := leafShare(res, tid, hotspot.Kind, "Hot.computeLoop"); share < 0.8 {
		t.Errorf("%.0f%% of the main thread's samples end in Hot.computeLoop, want >= 80%%; hottest: %s; notes %q", 100*share, hot, res.Notes)
	}
	if !hasNote(res, "/tmp/perf-1.map") {
		t.Errorf("no note names the map the JVM wrote as it sees it (/tmp/perf-1.map): %q", res.Notes)
	}
}
