package python

// NameOffset is where a code object of 3.minor keeps the name read.
func NameOffset(minor int) int {
	l := layouts[minor]
	if l.CodeQualname >= 0 {
		return l.CodeQualname
	}
	return l.CodeName
}
