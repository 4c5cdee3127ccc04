// SPDX-License-Identifier: Apache-2.0

package nal

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func panicky(fail bool) (ret int) {
	defer Rescue(&ret, -1)
	if fail {
		var m map[string]int
		m["x"] = 1 // a real runtime panic, not a panic() call
	}
	return 7
}

// captureStderr runs fn with Warn's descriptor redirected and returns what
// it wrote.
func captureStderr(t *testing.T, fn func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := stderrFD
	stderrFD = int(w.Fd())
	fn()
	stderrFD = old
	w.Close()
	b, _ := io.ReadAll(r)
	return string(b)
}

func TestRescueReturnsTheFailureValueAndSaysOneLine(t *testing.T) {
	rescued.last = rescued.last.AddDate(-1, 0, 0) // not rate-limited
	var got int
	out := captureStderr(t, func() { got = panicky(true) })
	if got != -1 {
		t.Fatalf("after a panic: %d, want the failure value -1", got)
	}
	if strings.Count(out, "\n") != 1 || !strings.HasPrefix(out, "distcache: internal error in ") ||
		!strings.Contains(out, "nil map") {
		t.Fatalf("stderr %q: want one line naming the error", out)
	}
	if got := panicky(false); got != 7 {
		t.Fatalf("without a panic: %d, want 7", got)
	}
}

func TestRescueLinesAreRateLimited(t *testing.T) {
	rescued.last = rescued.last.AddDate(-1, 0, 0)
	out := captureStderr(t, func() {
		for range 100 {
			panicky(true)
		}
	})
	if n := strings.Count(out, "\n"); n != 1 {
		t.Fatalf("100 panics within a second printed %d lines, want 1:\n%s", n, out)
	}
}

// Files whose exports are not checked yet (none: dc/ctx.go and
// dc/server.go got their rescue with the move onto goimpl).
var pending = map[string]bool{}

// Every //export of the cgo layers (this package and ../dc) begins with the
// deferred rescue, so no panic reaches the C caller.
func TestEveryExportRecovers(t *testing.T) {
	n := 0
	for _, dir := range []string{".", "../dc"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			file, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ParseComments)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range file.Decls {
				fd, ok := d.(*ast.FuncDecl)
				if !ok || fd.Doc == nil || !hasExport(fd) || pending[filepath.Base(f)] {
					continue
				}
				n++
				if !startsWithRescue(fd) {
					t.Errorf("%s: export %s does not begin with defer Rescue(&ret, fail) / RescueVoid()", f, fd.Name.Name)
				}
			}
		}
	}
	if n < 60 {
		t.Fatalf("found only %d exports", n)
	}
}

func hasExport(fd *ast.FuncDecl) bool {
	for _, c := range fd.Doc.List {
		if strings.HasPrefix(c.Text, "//export ") {
			return true
		}
	}
	return false
}

func startsWithRescue(fd *ast.FuncDecl) bool {
	if fd.Body == nil || len(fd.Body.List) == 0 {
		return false
	}
	ds, ok := fd.Body.List[0].(*ast.DeferStmt)
	if !ok {
		return false
	}
	var name string
	switch f := ds.Call.Fun.(type) {
	case *ast.Ident:
		name = f.Name
	case *ast.SelectorExpr:
		name = f.Sel.Name
	case *ast.IndexExpr:
		if id, ok := f.X.(*ast.Ident); ok {
			name = id.Name
		}
	}
	if name == "RescueVoid" {
		return fd.Type.Results == nil && len(ds.Call.Args) == 0
	}
	return name == "Rescue" && fd.Type.Results != nil && len(ds.Call.Args) == 2
}
