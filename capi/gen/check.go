// SPDX-License-Identifier: Apache-2.0

package main

import (
	"debug/elf"
	"fmt"
	"go/ast"
	"go/parser"
	"go/printer"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// checkGenerated compares the generated files with what is on disk (read
// by read, a path from the repository's root).
func checkGenerated(want map[string]string, read func(string) (string, error)) []string {
	var errs []string
	var paths []string
	for p := range want {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		have, err := read(p)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v (go run ./capi/gen writes it)", p, err))
			continue
		}
		if have != want[p] {
			errs = append(errs, fmt.Sprintf("%s: not what api.tab generates (first difference on line %d; go run ./capi/gen rewrites it)",
				p, firstDiff(have, want[p])))
		}
	}
	return errs
}

func firstDiff(a, b string) int {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range al {
		if i >= len(bl) || al[i] != bl[i] {
			return i + 1
		}
	}
	return len(al) + 1
}

var (
	reComment  = regexp.MustCompile(`(?s)/\*.*?\*/|//[^\n]*`)
	rePreproc  = regexp.MustCompile(`(?m)^[ \t]*#.*(\\\n.*)*$`)
	reExternC  = regexp.MustCompile(`(?m)^[ \t]*extern "C" \{[ \t]*$|^[ \t]*\}[ \t]*$`)
	reProtoEnd = regexp.MustCompile(`\)\s*$`)
)

// headerProtos returns the function prototypes of a public header.
func headerProtos(text string) ([]proto, error) {
	text = reComment.ReplaceAllString(text, " ")
	text = rePreproc.ReplaceAllString(text, " ")
	text = reExternC.ReplaceAllString(text, " ")
	var out []proto
	depth, start := 0, 0
	for i, c := range text {
		switch c {
		case '{':
			depth++
		case '}':
			depth--
		case ';':
			if depth != 0 {
				continue
			}
			st := strings.TrimSpace(text[start:i])
			start = i + 1
			if st == "" || strings.HasPrefix(st, "typedef") || strings.Contains(st, "{") ||
				!reProtoEnd.MatchString(st) {
				continue
			}
			p, err := parseProto(st, true)
			if err != nil {
				return nil, err
			}
			out = append(out, p)
		}
	}
	return out, nil
}

// checkHeaders: every public function of the headers is in the table, in
// its library, with the same types, and the table has no other.
func checkHeaders(t *table, read func(string) (string, error)) []string {
	var errs []string
	seen := map[string]bool{}
	for _, l := range libs {
		for _, h := range l.headers {
			path := "include/" + h
			text, err := read(path)
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s: %v", path, err))
				continue
			}
			ps, err := headerProtos(text)
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s: %v", path, err))
				continue
			}
			for _, p := range ps {
				seen[p.name] = true
				r := t.pubName[p.name]
				switch {
				case r == nil:
					errs = append(errs, fmt.Sprintf("%s: %s is not in api.tab", path, p.types()))
				case r.lib != l.name:
					errs = append(errs, fmt.Sprintf("api.tab:%d: %s is in %s, not %s (%s declares it)",
						r.line, p.name, r.lib, l.name, path))
				case r.proto.types() != p.types():
					errs = append(errs, fmt.Sprintf("api.tab:%d: %s differs from %s:\n  table:  %s\n  header: %s",
						r.line, p.name, path, r.proto.types(), p.types()))
				}
			}
		}
	}
	for _, r := range t.public {
		if !seen[r.proto.name] {
			errs = append(errs, fmt.Sprintf("api.tab:%d: %s is in no public header", r.line, r.proto.name))
		}
	}
	return errs
}

// compatible spells a type as cgo's export header would: no const, void *
// for dcf_ref, a struct by its typedef name, integers in one spelling.
func compatible(t ctype) string {
	var toks []string
	var ints []string
	flushInts := func() {
		if len(ints) == 0 {
			return
		}
		toks = append(toks, canonInt(ints)...)
		ints = nil
	}
	for i := 0; i < len(t); i++ {
		tok := t[i]
		switch {
		case tok == "const":
		case typeWord(tok):
			ints = append(ints, tok)
		case tok == "dcf_ref":
			flushInts()
			toks = append(toks, "void", "*")
		case tok == "struct" && i+1 < len(t) && strings.HasPrefix(t[i+1], "st_"):
			flushInts()
			toks = append(toks, strings.TrimPrefix(t[i+1], "st_"))
			i++
		default:
			flushInts()
			toks = append(toks, tok)
		}
	}
	flushInts()
	return ctype(toks).String()
}

// canonInt spells an integer type (or void) one way: "long unsigned int"
// and "unsigned long" are both "unsigned long".
func canonInt(words []string) []string {
	n := map[string]int{}
	for _, w := range words {
		n[w]++
	}
	var out []string
	if n["unsigned"] > 0 {
		out = append(out, "unsigned")
	}
	switch {
	case n["void"] > 0:
		out = append(out, "void")
	case n["char"] > 0:
		if n["signed"] > 0 {
			out = append([]string{"signed"}, out...)
		}
		out = append(out, "char")
	case n["short"] > 0:
		out = append(out, "short")
	case n["long"] > 0:
		for range n["long"] {
			out = append(out, "long")
		}
	default:
		out = append(out, "int")
	}
	return out
}

func compatibleProto(p proto) string {
	var ps []string
	for _, a := range p.params {
		ps = append(ps, compatible(a.typ))
	}
	if len(ps) == 0 {
		ps = []string{"void"}
	}
	return compatible(p.ret) + " " + p.name + "(" + strings.Join(ps, ", ") + ")"
}

// The engine's exports the loader finds by name before it uses the table.
var loaderExports = map[string]bool{"dce_abi": true, "dce_engine_version": true}

var reExport = regexp.MustCompile(`(?m)^extern (.*\bdce_\w+\(.*\));$`)

// checkExports compares the engine functions of the table with the
// prototypes of cgo's export headers (their concatenated text).
func checkExports(t *table, headers string) []string {
	var errs []string
	have := map[string]proto{}
	for _, m := range reExport.FindAllStringSubmatch(headers, -1) {
		p, err := parseProto(m[1], false)
		if err != nil {
			errs = append(errs, fmt.Sprintf("cgo export header: %v", err))
			continue
		}
		have[p.name] = p
	}
	want := map[string]bool{}
	for _, p := range t.engineFuncs() {
		name := "dce_" + p.name
		want[name] = true
		e, ok := have[name]
		if !ok {
			errs = append(errs, fmt.Sprintf("api.tab: the engine has no export %s (%s)", name, p))
			continue
		}
		p.name = name
		if compatibleProto(p) != compatibleProto(e) {
			errs = append(errs, fmt.Sprintf("api.tab: %s differs from its Go export:\n  table: %s\n  cgo:   %s",
				name, compatibleProto(p), compatibleProto(e)))
		}
	}
	var extra []string
	for name := range have {
		if !want[name] && !loaderExports[name] {
			extra = append(extra, name)
		}
	}
	sort.Strings(extra)
	for _, name := range extra {
		errs = append(errs, fmt.Sprintf("the engine exports %s, which api.tab does not list", name))
	}
	if len(have) == 0 {
		errs = append(errs, "no dce_ export in the cgo export headers")
	}
	return errs
}

// cgoExportHeaders runs go tool cgo -exportheader on the engine's packages
// and returns the headers' text.
func cgoExportHeaders(root string, pkgs []string) (string, error) {
	tmp, err := os.MkdirTemp("", "capi-gen-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	env := append(os.Environ(), "CGO_ENABLED=1")
	args := append([]string{"list", "-f", "{{.ImportPath}}\t{{.Dir}}\t{{join .CgoFiles \" \"}}\t{{join .CgoCFLAGS \" \"}}"}, pkgs...)
	cmd := exec.Command("go", args...)
	cmd.Dir, cmd.Env, cmd.Stderr = root, env, os.Stderr
	list, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go list: %v", err)
	}
	var all strings.Builder
	for i, ln := range strings.Split(strings.TrimSpace(string(list)), "\n") {
		f := strings.Split(ln, "\t")
		if len(f) != 4 || f[2] == "" {
			return "", fmt.Errorf("go list: no cgo files in %q", ln)
		}
		obj := filepath.Join(tmp, fmt.Sprint(i))
		h := filepath.Join(tmp, fmt.Sprintf("%d.h", i))
		a := []string{"tool", "cgo", "-objdir", obj, "-importpath", f[0], "-exportheader", h, "--"}
		a = append(a, strings.Fields(f[3])...)
		a = append(a, strings.Fields(f[2])...)
		cmd := exec.Command("go", a...)
		cmd.Dir, cmd.Env = f[1], env
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go tool cgo in %s: %v\n%s", f[1], err, out)
		}
		b, err := os.ReadFile(h)
		if err != nil {
			return "", err
		}
		all.Write(b)
	}
	return all.String(), nil
}

// checkSymbols: each library exports exactly its table functions (and
// libnal its private node's dcf_front_shared); syms[lib] lists the
// library's defined dynamic function symbols.
func checkSymbols(t *table, syms map[string][]string) []string {
	var errs []string
	for _, l := range libs {
		want := map[string]bool{}
		for _, r := range t.public {
			if r.lib == l.name {
				want[r.proto.name] = true
			}
		}
		if l.name == "libnal" {
			want["dcf_front_shared"] = true
		}
		have := map[string]bool{}
		for _, s := range syms[l.name] {
			have[s] = true
			if !want[s] {
				errs = append(errs, fmt.Sprintf("%s.so.1 exports %s, which api.tab does not list for it", l.name, s))
			}
		}
		var missing []string
		for s := range want {
			if !have[s] {
				missing = append(missing, s)
			}
		}
		sort.Strings(missing)
		for _, s := range missing {
			errs = append(errs, fmt.Sprintf("%s.so.1 does not export %s (api.tab lists it)", l.name, s))
		}
	}
	return errs
}

// libSymbols reads the defined dynamic function symbols of the libraries
// built in dir.
func libSymbols(dir string) (map[string][]string, error) {
	out := map[string][]string{}
	for _, l := range libs {
		f, err := elf.Open(filepath.Join(dir, l.name+".so.1"))
		if err != nil {
			return nil, err
		}
		ss, err := f.DynamicSymbols()
		f.Close()
		if err != nil {
			return nil, err
		}
		for _, s := range ss {
			if s.Section != elf.SHN_UNDEF && elf.ST_TYPE(s.Info) == elf.STT_FUNC &&
				elf.ST_BIND(s.Info) == elf.STB_GLOBAL {
				out[l.name] = append(out[l.name], s.Name)
			}
		}
	}
	return out, nil
}

// rescueValues reads, from the Go source of the engine's export layers
// (file name to text), the failure value each dce_ export's deferred
// Rescue(&ret, fail) gives after a panic: "0", "-1", "NULL" for nil.
func rescueValues(files map[string]string) (map[string]string, error) {
	out := map[string]string{}
	fset := token.NewFileSet()
	for name, text := range files {
		f, err := parser.ParseFile(fset, name, text, 0)
		if err != nil {
			return nil, err
		}
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Recv != nil || !strings.HasPrefix(fd.Name.Name, "dce_") || fd.Body == nil ||
				len(fd.Body.List) == 0 {
				continue
			}
			def, ok := fd.Body.List[0].(*ast.DeferStmt)
			if !ok || len(def.Call.Args) != 2 {
				continue
			}
			var b strings.Builder
			if err := printer.Fprint(&b, fset, def.Call.Args[1]); err != nil {
				return nil, err
			}
			v := b.String()
			if v == "nil" {
				v = "NULL"
			}
			out[strings.TrimPrefix(fd.Name.Name, "dce_")] = v
		}
	}
	return out, nil
}

// checkRescue: after a panic the engine returns what the front returns
// when it has no engine, the table's FAIL, for every public function whose
// engine function has the same name.
func checkRescue(t *table, vals map[string]string) []string {
	var errs []string
	eng := map[string]bool{}
	for _, p := range t.engineFuncs() {
		eng[p.name] = true
	}
	for _, r := range t.public {
		if r.fail == "" || !eng[r.proto.name] {
			continue
		}
		v, ok := vals[r.proto.name]
		switch {
		case !ok:
			errs = append(errs, fmt.Sprintf("api.tab:%d: dce_%s does not begin with defer Rescue(&ret, %s)",
				r.line, r.proto.name, r.fail))
		case v != r.fail:
			errs = append(errs, fmt.Sprintf("api.tab:%d: %s fails with %s, but dce_%s rescues a panic with %s",
				r.line, r.proto.name, r.fail, r.proto.name, v))
		}
	}
	return errs
}

// exportSources reads the Go files of the export layers (not tests).
func exportSources(root string) (map[string]string, error) {
	out := map[string]string{}
	for _, dir := range []string{"nal", "dc"} {
		names, err := filepath.Glob(filepath.Join(root, dir, "*.go"))
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			if strings.HasSuffix(n, "_test.go") {
				continue
			}
			b, err := os.ReadFile(n)
			if err != nil {
				return nil, err
			}
			out[n] = string(b)
		}
	}
	return out, nil
}
