package browsertest

import (
	"image"
	"image/color"
	"math"
	"testing"
)

func TestHSL(t *testing.T) {
	for _, tt := range []struct {
		c       color.RGBA
		h, s, l float64
	}{
		{color.RGBA{255, 255, 255, 255}, 0, 0, 1},
		{color.RGBA{0, 0, 0, 255}, 0, 0, 0},
		{color.RGBA{255, 0, 0, 255}, 0, 1, 0.5},
		{color.RGBA{0, 255, 0, 255}, 120, 1, 0.5},
		{color.RGBA{0, 0, 255, 255}, 240, 1, 0.5},
		{color.RGBA{255, 0, 128, 255}, 329.9, 1, 0.5},
		// hsl(22,85%,60%), the flame graph's first kernel orange, as
		// rgb(240,130,66).
		{color.RGBA{240, 130, 66, 255}, 22.1, 0.853, 0.6},
		// hsl(220,15%,80%), a thread's pale blue, as rgb(196,201,212).
		{color.RGBA{196, 201, 212, 255}, 221.3, 0.157, 0.8},
	} {
		h, s, l := HSL(tt.c)
		if math.Abs(h-tt.h) > 0.5 || math.Abs(s-tt.s) > 0.01 || math.Abs(l-tt.l) > 0.01 {
			t.Errorf("HSL(%v) = %.1f, %.3f, %.3f; want %.1f, %.3f, %.3f", tt.c, h, s, l, tt.h, tt.s, tt.l)
		}
	}
}

func TestCountAndColors(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 4, 3))
	red := color.RGBA{255, 0, 0, 255}
	img.Set(1, 1, red)
	img.Set(2, 2, red)
	if n := Count(img, func(c color.Color) bool { _, s, _ := HSL(c); return s > 0.5 }); n != 2 {
		t.Errorf("Count = %d, want 2 red pixels", n)
	}
	if n := Colors(img); n != 2 {
		t.Errorf("Colors = %d, want 2 (transparent black and red)", n)
	}
}
