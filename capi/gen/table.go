// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"strings"
)

// A ctype is a C type as a list of tokens: identifiers ("const",
// "unsigned", "char", "NAL_ADDRESS" ...) and "*".
type ctype []string

// String spells the type as the front's sources do: "const unsigned char **".
func (t ctype) String() string {
	var words []string
	stars := ""
	for _, tok := range t {
		if tok == "*" {
			stars += "*"
			continue
		}
		if stars != "" {
			words = append(words, stars)
			stars = ""
		}
		words = append(words, tok)
	}
	if stars != "" {
		words = append(words, stars)
	}
	return strings.Join(words, " ")
}

// decl spells a declaration of name with this type: "const char *s".
func (t ctype) decl(name string) string {
	s := t.String()
	if strings.HasSuffix(s, "*") {
		return s + name
	}
	return s + " " + name
}

func (t ctype) isVoid() bool { return len(t) == 1 && t[0] == "void" }

// handle returns the handle type t points to ("NAL_ADDRESS" for
// "const NAL_ADDRESS *"), or "".
func (t ctype) handle(kinds map[string]int) string {
	var rest []string
	for _, tok := range t {
		if tok != "const" {
			rest = append(rest, tok)
		}
	}
	if len(rest) == 2 && rest[1] == "*" && kinds[rest[0]] != 0 {
		return rest[0]
	}
	return ""
}

type param struct {
	typ  ctype
	name string
}

// A proto is a parsed C prototype.
type proto struct {
	ret    ctype
	name   string
	params []param
}

// String is the prototype with parameter names.
func (p proto) String() string {
	return p.ret.decl(p.name) + "(" + p.paramList(true) + ")"
}

// types is the prototype without parameter names, for comparisons.
func (p proto) types() string {
	return p.ret.decl(p.name) + "(" + p.paramList(false) + ")"
}

func (p proto) paramList(names bool) string {
	if len(p.params) == 0 {
		return "void"
	}
	var s []string
	for _, a := range p.params {
		if names {
			s = append(s, a.typ.decl(a.name))
		} else {
			s = append(s, a.typ.String())
		}
	}
	return strings.Join(s, ", ")
}

// tokens splits C text into identifiers, "*" and single punctuation.
func tokens(s string) []string {
	var out []string
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9':
			j := i
			for j < len(s) && (s[j] == '_' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= 'A' && s[j] <= 'Z' ||
				s[j] >= '0' && s[j] <= '9') {
				j++
			}
			out = append(out, s[i:j])
			i = j
		default:
			out = append(out, string(c))
			i++
		}
	}
	return out
}

func isIdent(tok string) bool {
	c := tok[0]
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// parseProto parses "RET NAME(TYPE NAME, ...)" (parameter names required
// unless unnamed is set, when a parameter may be a bare type).
func parseProto(s string, unnamed bool) (proto, error) {
	var p proto
	toks := tokens(s)
	open := -1
	for i, t := range toks {
		if t == "(" {
			open = i
			break
		}
	}
	if open < 2 || toks[len(toks)-1] != ")" || !isIdent(toks[open-1]) {
		return p, fmt.Errorf("not a prototype: %q", s)
	}
	p.name = toks[open-1]
	p.ret = ctype(toks[:open-1])
	if err := checkType(p.ret); err != nil {
		return p, fmt.Errorf("%s: return type: %v", p.name, err)
	}
	inner := toks[open+1 : len(toks)-1]
	if len(inner) == 1 && inner[0] == "void" {
		return p, nil
	}
	if len(inner) == 0 {
		return p, fmt.Errorf("%s: write (void) for no parameters", p.name)
	}
	var cur []string
	flush := func() error {
		if len(cur) == 0 {
			return fmt.Errorf("%s: empty parameter", p.name)
		}
		var a param
		last := cur[len(cur)-1]
		named := len(cur) >= 2 && isIdent(last) && !typeWord(last)
		if unnamed && !named {
			a.typ = ctype(append([]string(nil), cur...))
		} else {
			if !named {
				return fmt.Errorf("%s: parameter %q has no name", p.name, strings.Join(cur, " "))
			}
			a.typ, a.name = ctype(append([]string(nil), cur[:len(cur)-1]...)), last
		}
		if err := checkType(a.typ); err != nil {
			return fmt.Errorf("%s: parameter %s: %v", p.name, a.name, err)
		}
		p.params = append(p.params, a)
		cur = nil
		return nil
	}
	for _, t := range inner {
		if t == "," {
			if err := flush(); err != nil {
				return p, err
			}
			continue
		}
		cur = append(cur, t)
	}
	if err := flush(); err != nil {
		return p, err
	}
	return p, nil
}

// typeWord is true for the words that can end a type (so a parameter
// "unsigned int" without a name is not read as "unsigned" named "int").
func typeWord(t string) bool {
	switch t {
	case "int", "char", "long", "short", "unsigned", "signed", "void", "const":
		return true
	}
	return false
}

func checkType(t ctype) error {
	if len(t) == 0 {
		return fmt.Errorf("missing")
	}
	for _, tok := range t {
		if tok != "*" && !isIdent(tok) {
			return fmt.Errorf("unexpected %q in %q", tok, t.String())
		}
	}
	return nil
}

// The forms of a public function (see api.tab).
const (
	formCall = "call"
	formNew  = "new"
	formFree = "free"
	formC    = "c"
)

// A row is one function of the table.
type row struct {
	line    int
	lib     string // libnal, libdistcache, libdistcacheserver, engine
	form    string // for public functions
	fail    string // C expression, "" for none
	proto   proto
	nonnull []string
}

type kind struct {
	num  int
	typ  string // NAL_ADDRESS
	line int
}

// A table is api.tab, parsed and checked for consistency.
type table struct {
	kinds   []kind
	kindOf  map[string]int // type -> number
	public  []*row         // in table order
	engine  []*row         // engine rows, in table order
	order   []*row         // every row, in table order
	pubName map[string]*row
	engName map[string]*row
}

// libs are the libraries, each with its generated file and public headers.
var libs = []struct {
	name, gen string
	headers   []string
}{
	{"libnal", "nal_gen.c", []string{"libnal/nal.h"}},
	{"libdistcache", "dc_client_gen.c", []string{"distcache/dc_plug.h", "distcache/dc_client.h"}},
	{"libdistcacheserver", "dc_server_gen.c", []string{"distcache/dc_server.h"}},
}

func isLib(s string) bool {
	for _, l := range libs {
		if l.name == s {
			return true
		}
	}
	return false
}

// parseTable reads the table's text (name is for messages).
func parseTable(name, text string) (*table, error) {
	t := &table{kindOf: map[string]int{}, pubName: map[string]*row{}, engName: map[string]*row{}}
	var errs []string
	bad := func(line int, format string, a ...any) {
		errs = append(errs, fmt.Sprintf("%s:%d: %s", name, line, fmt.Sprintf(format, a...)))
	}
	for i, ln := range strings.Split(text, "\n") {
		line := i + 1
		ln = strings.TrimSpace(ln)
		if ln == "" || strings.HasPrefix(ln, "#") {
			continue
		}
		f := strings.Fields(ln)
		if f[0] == "kind" {
			var n int
			if len(f) != 3 || !isIdent(f[2]) {
				bad(line, "want: kind NUMBER TYPE")
				continue
			}
			if _, err := fmt.Sscanf(f[1], "%d", &n); err != nil || n <= 0 || fmt.Sprint(n) != f[1] {
				bad(line, "kind number %q: want a positive integer", f[1])
				continue
			}
			for _, k := range t.kinds {
				if k.num == n || k.typ == f[2] {
					bad(line, "kind %d %s: number or type already used on line %d", n, f[2], k.line)
				}
			}
			t.kinds = append(t.kinds, kind{n, f[2], line})
			t.kindOf[f[2]] = n
			continue
		}
		if len(f) < 4 {
			bad(line, "want: LIB FORM FAIL PROTOTYPE [nonnull=NAME,...]")
			continue
		}
		r := &row{line: line, lib: f[0], form: f[1], fail: f[2]}
		if r.fail == "-" {
			r.fail = ""
		}
		rest := strings.Join(f[3:], " ")
		if k := strings.LastIndex(rest, ")"); k >= 0 && k < len(rest)-1 {
			for _, a := range strings.Fields(rest[k+1:]) {
				v, ok := strings.CutPrefix(a, "nonnull=")
				if !ok {
					bad(line, "unknown annotation %q", a)
					continue
				}
				r.nonnull = append(r.nonnull, strings.Split(v, ",")...)
			}
			rest = rest[:k+1]
		}
		p, err := parseProto(rest, false)
		if err != nil {
			bad(line, "%v", err)
			continue
		}
		r.proto = p
		if r.lib == "engine" {
			if r.form != "-" || r.fail != "" || len(r.nonnull) > 0 {
				bad(line, "%s: an engine row is: engine - - PROTOTYPE", p.name)
			}
			if o := t.engName[p.name]; o != nil {
				bad(line, "%s: engine function already on line %d", p.name, o.line)
			}
			t.engName[p.name] = r
			t.engine = append(t.engine, r)
			t.order = append(t.order, r)
			continue
		}
		if !isLib(r.lib) {
			bad(line, "%s: unknown library %q", p.name, r.lib)
			continue
		}
		if o := t.pubName[p.name]; o != nil {
			bad(line, "%s: already on line %d", p.name, o.line)
		}
		t.pubName[p.name] = r
		t.public = append(t.public, r)
		t.order = append(t.order, r)
	}
	if len(errs) == 0 {
		errs = append(errs, t.consistent(name)...)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	return t, nil
}

// consistent checks what the rows say about each other.
func (t *table) consistent(name string) []string {
	var errs []string
	bad := func(r *row, format string, a ...any) {
		errs = append(errs, fmt.Sprintf("%s:%d: %s: %s", name, r.line, r.proto.name, fmt.Sprintf(format, a...)))
	}
	for _, r := range t.engine {
		if h := r.proto.ret.handle(t.kindOf); h != "" {
			bad(r, "an engine function returns dcf_ref, not %s *", h)
		}
		for _, a := range r.proto.params {
			if h := a.typ.handle(t.kindOf); h != "" {
				bad(r, "an engine function takes dcf_ref, not %s * (%s)", h, a.name)
			}
		}
	}
	for _, r := range t.public {
		p := r.proto
		void := p.ret.isVoid()
		if void && r.fail != "" || !void && r.fail == "" && r.form != formC {
			bad(r, "FAIL is - for a void function (or a c row that cannot fail), else its failure value")
		}
		for _, n := range r.nonnull {
			ok := false
			for _, a := range p.params {
				if a.name == n && a.typ[len(a.typ)-1] == "*" {
					ok = true
				}
			}
			if !ok || r.form != formCall {
				bad(r, "nonnull=%s: not a pointer parameter of a call row", n)
			}
		}
		switch r.form {
		case formCall, formC:
		case formNew:
			h := p.ret.handle(t.kindOf)
			if h == "" || len(p.params) != 0 || r.fail != "NULL" {
				bad(r, "a new row is: LIB new NULL TYPE *NAME(void), TYPE a handle kind")
			} else if f := t.pubName[h+"_free"]; f == nil || (f.form != formFree && f.form != formC) {
				bad(r, "a new row needs the free row of %s (%s_free, form free or c)", h, h)
			}
		case formFree:
			if len(p.params) != 1 || p.params[0].typ.handle(t.kindOf) == "" || !void ||
				p.name != p.params[0].typ.handle(t.kindOf)+"_free" {
				bad(r, "a free row is: LIB free - void TYPE_free(TYPE *h)")
			}
		default:
			bad(r, "unknown form %q (call, new, free, c)", r.form)
		}
		if r.form == formCall {
			for _, a := range p.params {
				if h := a.typ.handle(t.kindOf); h == "DC_CTX" {
					bad(r, "DC_CTX is not an engine handle: write its functions by hand (form c)")
				}
			}
		}
	}
	return errs
}

// engineFuncs is every engine function, in table order: the engine rows and
// the functions the generated rows call (unless an engine row names them).
func (t *table) engineFuncs() []proto {
	var out []proto
	for _, r := range t.order {
		if r.lib == "engine" {
			out = append(out, r.proto)
			continue
		}
		if r.form == formC || t.engName[r.proto.name] != nil {
			continue
		}
		out = append(out, t.engineProto(r.proto))
	}
	return out
}

// engineProto is p with dcf_ref for every handle.
func (t *table) engineProto(p proto) proto {
	e := proto{name: p.name, ret: p.ret}
	if p.ret.handle(t.kindOf) != "" {
		e.ret = ctype{"dcf_ref"}
	}
	for _, a := range p.params {
		if a.typ.handle(t.kindOf) != "" {
			a.typ = ctype{"dcf_ref"}
		}
		e.params = append(e.params, a)
	}
	return e
}
