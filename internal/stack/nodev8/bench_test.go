package nodev8

import "testing"

// BenchmarkReadLayout reads the layout from the node binary CI installs:
// the cost of attaching to a node process.
func BenchmarkReadLayout(b *testing.B) {
	f := nodeELF(b)
	for i := 0; i < b.N; i++ {
		if _, err := ReadLayout(f.ELF); err != nil {
			b.Fatal(err)
		}
	}
}
