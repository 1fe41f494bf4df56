//go:build !amd64 && !arm64

package sample

// Other architectures get no user registers: samples then carry no user
// stack either, and Record says so in a note.
const (
	regBP = -1
	regSP = -1
	regIP = -1
	regLR = -1
)
