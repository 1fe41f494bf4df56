package sample

import "testing"

// TestGrownRing: rings grow only where locked memory is unlimited and
// within the budget over all CPUs, and the watermark leaves half the
// base ring of room whatever the size.
func TestGrownRing(t *testing.T) {
	const page = 4096
	for _, c := range []struct {
		name            string
		base, cpus      int
		unlimited       bool
		wantPages       int
		wantWatermarkKB uint32
	}{
		{"root, 2 CPUs: 4x", 128, 2, true, 512, 2048 - 256},
		{"root, 4 CPUs: 4x, 8 MiB in all", 128, 4, true, 512, 2048 - 256},
		{"root, 8 CPUs: 2x within 8 MiB", 128, 8, true, 256, 1024 - 256},
		{"root, 16 CPUs: 1x within 8 MiB", 128, 16, true, 128, 512 - 256},
		{"root, 64 CPUs: as it was", 128, 64, true, 128, 512 - 256},
		{"limited user, 2 CPUs: as it was", 128, 2, false, 128, 512 - 256},
		{"small base, 1 CPU: 4x at most", 16, 1, true, 64, 256 - 32},
	} {
		t.Run(c.name, func(t *testing.T) {
			pages := grownRing(c.base, page, c.cpus, c.unlimited)
			if pages != c.wantPages {
				t.Errorf("grownRing(%d, %d CPUs, unlimited %v) = %d pages, want %d", c.base, c.cpus, c.unlimited, pages, c.wantPages)
			}
			if w := watermark(pages, c.base, page); w != c.wantWatermarkKB<<10 {
				t.Errorf("watermark of %d pages (base %d) = %d KiB, want %d", pages, c.base, w>>10, c.wantWatermarkKB)
			}
		})
	}
}
