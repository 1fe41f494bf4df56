package runtimes

import (
	"testing"

	"github.com/cpuwhy/cpuwhy/internal/stack"
	"github.com/cpuwhy/cpuwhy/internal/stack/hotspot"
	"github.com/cpuwhy/cpuwhy/internal/stack/nodev8"
	"github.com/cpuwhy/cpuwhy/internal/stack/perfmap"
)

// TestOrder: V8's own objects name a node's frames before its perf map
// does, and the JVM's runtime, which reads its map itself, comes before
// the perf map runtime (which leaves JVMs to it).
func TestOrder(t *testing.T) {
	pos := map[stack.Kind]int{}
	for i, rt := range stack.Registered() {
		pos[rt.Name()] = i + 1
	}
	for _, k := range []stack.Kind{hotspot.Kind, nodev8.Kind, perfmap.Kind} {
		if pos[k] == 0 {
			t.Fatalf("runtime %s is not registered", k)
		}
	}
	if pos[nodev8.Kind] > pos[perfmap.Kind] {
		t.Errorf("nodev8 is asked after perfmap: %v", pos)
	}
}
