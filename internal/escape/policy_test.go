package escape

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// TestTextIsWrittenThroughEscape keeps the package's rule from eroding: no
// product code writes text with fmt's printing functions, which would write
// a name a target chose as it is. Formatting into a builder (fmt.Fprintf(&b,
// ...)) is allowed: that text is written later, through Fprintf, or is an
// error, which the command line prints through Fprintf. JSON goes through
// JSON; generators (//go:build ignore) are not product code.
func TestTextIsWrittenThroughEscape(t *testing.T) {
	root := filepath.Join("..", "..")
	fset := token.NewFileSet()
	checked := 0
	for _, dir := range []string{"internal", "cmd"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			if filepath.Base(filepath.Dir(path)) == "escape" {
				return nil // the one place that calls fmt on escaped arguments
			}
			f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
			if err != nil {
				return err
			}
			for _, g := range f.Comments {
				for _, c := range g.List {
					if c.Pos() < f.Package && c.Text == "//go:build ignore" {
						return nil
					}
				}
			}
			checked++
			ast.Inspect(f, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				sel, ok := call.Fun.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				if pkg, ok := sel.X.(*ast.Ident); !ok || pkg.Name != "fmt" || !strings.HasPrefix(sel.Sel.Name, "Print") && !strings.HasPrefix(sel.Sel.Name, "Fprint") {
					return true
				}
				if strings.HasPrefix(sel.Sel.Name, "Fprint") && len(call.Args) > 0 {
					if u, ok := call.Args[0].(*ast.UnaryExpr); ok && u.Op == token.AND {
						return true // into a builder of its own
					}
				}
				t.Errorf("%s: fmt.%s writes text without escaping what a target named; use escape.Fprintf", fset.Position(call.Pos()), sel.Sel.Name)
				return true
			})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if checked < 50 {
		t.Fatalf("checked only %d files: is the repository's root %s?", checked, root)
	}
}
