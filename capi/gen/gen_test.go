// SPDX-License-Identifier: Apache-2.0

package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const root = "../.."

func readRepo(p string) (string, error) {
	b, err := os.ReadFile(filepath.Join(root, p))
	return string(b), err
}

func repoTable(t *testing.T) (*table, string) {
	t.Helper()
	text, err := readRepo("capi/front/api.tab")
	if err != nil {
		t.Fatal(err)
	}
	tab, err := parseTable("api.tab", text)
	if err != nil {
		t.Fatal(err)
	}
	return tab, text
}

// edit returns text with old replaced by new exactly once.
func edit(t *testing.T, text, old, new string) string {
	t.Helper()
	if strings.Count(text, old) != 1 {
		t.Fatalf("%q occurs %d times", old, strings.Count(text, old))
	}
	return strings.Replace(text, old, new, 1)
}

func wantErr(t *testing.T, errs []string, substr string) {
	t.Helper()
	for _, e := range errs {
		if strings.Contains(e, substr) {
			return
		}
	}
	t.Fatalf("no error containing %q in %q", substr, errs)
}

func TestTheRepositoryAgrees(t *testing.T) {
	tab, _ := repoTable(t)
	files, err := tab.generate()
	if err != nil {
		t.Fatal(err)
	}
	if errs := checkGenerated(files, readRepo); len(errs) > 0 {
		t.Fatal(strings.Join(errs, "\n"))
	}
	if errs := checkHeaders(tab, readRepo); len(errs) > 0 {
		t.Fatal(strings.Join(errs, "\n"))
	}
}

func TestAnEditedGeneratedFileFails(t *testing.T) {
	tab, _ := repoTable(t)
	files, _ := tab.generate()
	read := func(p string) (string, error) {
		s, err := readRepo(p)
		if p == "capi/front/nal_gen.c" {
			s = strings.Replace(s, "return 0;", "return -1;", 1)
		}
		return s, err
	}
	wantErr(t, checkGenerated(files, read), "capi/front/nal_gen.c: not what api.tab generates")
}

func TestTheHeaderCheckFails(t *testing.T) {
	_, text := repoTable(t)
	for _, c := range []struct{ name, old, new, err string }{
		{"a parameter type", "int NAL_ADDRESS_create(NAL_ADDRESS *a, const char *s, unsigned int size)",
			"int NAL_ADDRESS_create(NAL_ADDRESS *a, const char *s, int size)", "NAL_ADDRESS_create differs from include/libnal/nal.h"},
		{"a return type", "libnal call 0 unsigned int NAL_BUFFER_used(", "libnal call 0 int NAL_BUFFER_used(",
			"NAL_BUFFER_used differs"},
		{"a const", "const unsigned char *NAL_BUFFER_data(", "unsigned char *NAL_BUFFER_data(", "NAL_BUFFER_data differs"},
		{"the library", "libdistcache call 0 int DC_PLUG_io(", "libnal call 0 int DC_PLUG_io(",
			"DC_PLUG_io is in libnal, not libdistcache"},
		{"a missing row", "libdistcacheserver c - int DC_SERVER_set_default_cache(void)\n", "",
			"DC_SERVER_set_default_cache(void) is not in api.tab"},
		{"an extra row", "libnal call - void NAL_config_set_nagle(int enabled)\n",
			"libnal call - void NAL_config_set_nagle(int enabled)\nlibnal call 0 int NAL_extra(int x)\n",
			"NAL_extra is in no public header"},
	} {
		tab, err := parseTable("api.tab", edit(t, text, c.old, c.new))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		wantErr(t, checkHeaders(tab, readRepo), c.err)
	}
	// and an edited header against the real table
	tab, _ := repoTable(t)
	read := func(p string) (string, error) {
		s, err := readRepo(p)
		if p == "include/distcache/dc_client.h" {
			s = edit(t, s, "int DC_CTX_has_session(DC_CTX *ctx,", "long DC_CTX_has_session(DC_CTX *ctx,")
		}
		return s, err
	}
	wantErr(t, checkHeaders(tab, read), "DC_CTX_has_session differs from include/distcache/dc_client.h")
}

func TestHeaderProtos(t *testing.T) {
	ps, err := headerProtos(`/* x(); */
typedef struct st_A A;
typedef struct st_B { int (*f)(A *a); } B;
#define F(x) ((x) + 1)
#ifdef __cplusplus
extern "C" {
#endif
const unsigned char *A_data(const A *a);
int A_two(A *a,
		unsigned int);
#ifdef __cplusplus
}
#endif
`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range ps {
		got = append(got, p.types())
	}
	if want := "const unsigned char *A_data(const A *)|int A_two(A *, unsigned int)"; strings.Join(got, "|") != want {
		t.Fatalf("got %q, want %q", strings.Join(got, "|"), want)
	}
}

var (
	cgoOnce    string
	cgoOnceErr error
)

// The engine's real cgo export headers (go tool cgo, as make does).
func cgoHeaders(t *testing.T) string {
	t.Helper()
	if cgoOnce == "" && cgoOnceErr == nil {
		cgoOnce, cgoOnceErr = cgoExportHeaders(root, []string{"./nal", "./dc", "./capi"})
	}
	if cgoOnceErr != nil {
		t.Fatal(cgoOnceErr)
	}
	return cgoOnce
}

func TestTheExportCheck(t *testing.T) {
	tab, text := repoTable(t)
	h := cgoHeaders(t)
	if errs := checkExports(tab, h); len(errs) > 0 {
		t.Fatal(strings.Join(errs, "\n"))
	}
	// the Go side changes
	for _, c := range []struct{ name, old, new, err string }{
		{"a parameter", "extern void* dce_DC_PLUG_new(void* conn, unsigned int flags);",
			"extern void* dce_DC_PLUG_new(void* conn, int flags);", "dce_DC_PLUG_new differs from its Go export"},
		{"a result", "extern int dce_fork_fds(int* out, int n);", "extern void dce_fork_fds(int* out, int n);",
			"dce_fork_fds differs"},
		{"a missing export", "extern int dce_NAL_BUFFER_full(void* r);\n", "", "the engine has no export dce_NAL_BUFFER_full"},
		{"an extra export", "extern int dce_NAL_BUFFER_full(void* r);\n",
			"extern int dce_NAL_BUFFER_full(void* r);\nextern int dce_NAL_BUFFER_half(void* r);\n",
			"the engine exports dce_NAL_BUFFER_half, which api.tab does not list"},
	} {
		wantErr(t, checkExports(tab, edit(t, h, c.old, c.new)), c.err)
	}
	// the table changes
	for _, c := range []struct{ name, old, new, err string }{
		{"an engine row", "engine - - int fork_fds(int *out, int n)", "engine - - int fork_fds(int *out, unsigned int n)",
			"dce_fork_fds differs"},
		{"a derived signature", "libnal call 0 int NAL_CONNECTION_set_size(NAL_CONNECTION *c, unsigned int size)",
			"libnal call 0 int NAL_CONNECTION_set_size(NAL_CONNECTION *c, unsigned long size)", "dce_NAL_CONNECTION_set_size differs"},
		{"a form", "libnal call 0 int NAL_BUFFER_full(const NAL_BUFFER *b)", "libnal c 0 int NAL_BUFFER_full(const NAL_BUFFER *b)",
			"the engine exports dce_NAL_BUFFER_full, which api.tab does not list"},
	} {
		tab, err := parseTable("api.tab", edit(t, text, c.old, c.new))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		wantErr(t, checkExports(tab, h), c.err)
	}
}

func TestCompatibleSpellings(t *testing.T) {
	for _, c := range [][2]string{
		{"unsigned long", "long unsigned int"},
		{"const unsigned char **", "unsigned char **"},
		{"dcf_ref *", "void **"},
		{"const struct st_DC_CACHE_cb *", "DC_CACHE_cb *"},
		{"unsigned", "unsigned int"},
	} {
		a, b := compatible(tokens(c[0])), compatible(tokens(c[1]))
		if a != b {
			t.Errorf("%q is %q, %q is %q: want the same", c[0], a, c[1], b)
		}
	}
	for _, c := range [][2]string{{"unsigned int", "int"}, {"long", "int"}, {"char *", "unsigned char *"}, {"void *", "void **"}} {
		if compatible(tokens(c[0])) == compatible(tokens(c[1])) {
			t.Errorf("%q and %q: want different", c[0], c[1])
		}
	}
}

// symbolsOf is what the libraries would export if they followed tab.
func symbolsOf(tab *table) map[string][]string {
	s := map[string][]string{"libnal": {"dcf_front_shared"}}
	for _, r := range tab.public {
		s[r.lib] = append(s[r.lib], r.proto.name)
	}
	return s
}

func TestTheSymbolCheck(t *testing.T) {
	tab, _ := repoTable(t)
	if errs := checkSymbols(tab, symbolsOf(tab)); len(errs) > 0 {
		t.Fatal(strings.Join(errs, "\n"))
	}
	s := symbolsOf(tab)
	s["libdistcache"] = s["libdistcache"][1:] // DC_PLUG_new not written
	wantErr(t, checkSymbols(tab, s), "libdistcache.so.1 does not export DC_PLUG_new")
	s = symbolsOf(tab)
	s["libdistcacheserver"] = append(s["libdistcacheserver"], "DC_SERVER_secret")
	wantErr(t, checkSymbols(tab, s), "libdistcacheserver.so.1 exports DC_SERVER_secret, which api.tab does not list")
	if _, err := os.Stat(filepath.Join(root, "build/lib/libnal.so.1")); err == nil {
		syms, err := libSymbols(filepath.Join(root, "build/lib"))
		if err != nil {
			t.Fatal(err)
		}
		if len(syms["libnal"]) < 50 {
			t.Fatalf("libnal: %d symbols read", len(syms["libnal"]))
		}
	}
}

func TestTableErrors(t *testing.T) {
	_, text := repoTable(t)
	for _, c := range []struct{ name, old, new, err string }{
		{"a kind number twice", "kind 2 NAL_SELECTOR", "kind 1 NAL_SELECTOR", "number or type already used"},
		{"a kind that is not a number", "kind 2 NAL_SELECTOR", "kind two NAL_SELECTOR", "want a positive integer"},
		{"a void with a failure value", "libnal call - void NAL_ADDRESS_reset(", "libnal call 0 void NAL_ADDRESS_reset(",
			"FAIL is - for a void"},
		{"a result without one", "libnal call 0 int NAL_ADDRESS_can_listen(", "libnal call - int NAL_ADDRESS_can_listen(",
			"FAIL is - for a void"},
		{"an unknown form", "libnal call 0 int NAL_BUFFER_full(", "libnal cal 0 int NAL_BUFFER_full(", "unknown form"},
		{"an unknown library", "libnal call 0 int NAL_BUFFER_full(", "libnul call 0 int NAL_BUFFER_full(", "unknown library"},
		{"a free of another kind", "libnal free - void NAL_LISTENER_free(NAL_LISTENER *l)",
			"libnal free - void NAL_LISTENER_free(NAL_ADDRESS *l)", "a free row is"},
		{"a new without its free", "libnal free - void NAL_LISTENER_free(NAL_LISTENER *l)\n",
			"", "needs the free row of NAL_LISTENER"},
		{"a handle in an engine row", "engine - - int DC_PLUG_free(dcf_ref p)", "engine - - int DC_PLUG_free(DC_PLUG *p)",
			"an engine function takes dcf_ref"},
		{"nonnull on no parameter", " nonnull=octal", " nonnull=oct", "nonnull=oct: not a pointer parameter"},
		{"a row twice", "libnal call 0 int NAL_BUFFER_full(const NAL_BUFFER *b)\n",
			"libnal call 0 int NAL_BUFFER_full(const NAL_BUFFER *b)\nlibnal call 0 int NAL_BUFFER_full(const NAL_BUFFER *b)\n",
			"already on line"},
		{"an unnamed parameter", "int NAL_BUFFER_full(const NAL_BUFFER *b)", "int NAL_BUFFER_full(const NAL_BUFFER *)",
			"has no name"},
	} {
		_, err := parseTable("api.tab", edit(t, text, c.old, c.new))
		if err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.err)
		}
	}
}

// The kind numbers reach C and Go from the one row.
func TestKindNumbersHaveOneSource(t *testing.T) {
	_, text := repoTable(t)
	tab, err := parseTable("api.tab", edit(t, text, "kind 7 DC_SERVER", "kind 17 DC_SERVER"))
	if err != nil {
		t.Fatal(err)
	}
	files, err := tab.generate()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(files["capi/front/api_gen.h"], "\tDCF_K_SERVER = 17,\n") ||
		!strings.Contains(files["capi/front/api_gen.h"], "#define DCF_K_MAX 17\n") {
		t.Fatalf("api_gen.h:\n%s", files["capi/front/api_gen.h"])
	}
	if !regexp.MustCompile(`\tkServer += 17 // DC_SERVER\n`).MatchString(files["dc/kinds_gen.go"]) {
		t.Fatalf("kinds_gen.go:\n%s", files["dc/kinds_gen.go"])
	}
}

// What a call row generates: the engine first, then each handle in order,
// then the nonnull arguments, each failing with the row's value.
func TestACallTrampoline(t *testing.T) {
	tab, _ := repoTable(t)
	c := tab.trampolines("libnal", []string{"libnal/nal.h"})
	want := `DCF_PUBLIC int NAL_LISTENER_set_fs_perms(NAL_LISTENER *l, const char *octal)
{
	const struct dcf_engine *e = dcf_e();
	dcf_ref r_l;

	if (!e || !(r_l = dcf_ref_of(l)) || !octal)
		return 0;
	return e->NAL_LISTENER_set_fs_perms(r_l, octal);
}
`
	if !strings.Contains(c, want) {
		t.Fatalf("nal_gen.c has no\n%s", want)
	}
}

// After a panic the engine's export returns the table's FAIL, what the
// front returns without an engine.
func TestTheRescueCheck(t *testing.T) {
	tab, _ := repoTable(t)
	src, err := exportSources(root)
	if err != nil {
		t.Fatal(err)
	}
	vals, err := rescueValues(src)
	if err != nil {
		t.Fatal(err)
	}
	if errs := checkRescue(tab, vals); len(errs) > 0 {
		t.Fatal(strings.Join(errs, "\n"))
	}
	if vals["DC_SERVER_clients_empty"] != "1" || vals["NAL_ADDRESS_new"] != "NULL" || len(vals) < 60 {
		t.Fatalf("read %d values: %v", len(vals), vals)
	}
	server := filepath.Join(root, "dc", "server.go")
	for _, c := range []struct{ old, new, err string }{
		{"defer capinal.Rescue(&ret, 1)", "defer capinal.Rescue(&ret, 0)",
			"DC_SERVER_clients_empty fails with 1, but dce_DC_SERVER_clients_empty rescues a panic with 0"},
		{"defer capinal.Rescue(&ret, 1)", "", "dce_DC_SERVER_clients_empty does not begin with defer Rescue(&ret, 1)"},
	} {
		alt := map[string]string{}
		for k, v := range src {
			alt[k] = v
		}
		alt[server] = edit(t, src[server], c.old, c.new)
		vals, err := rescueValues(alt)
		if err != nil {
			t.Fatal(err)
		}
		wantErr(t, checkRescue(tab, vals), c.err)
	}
}
