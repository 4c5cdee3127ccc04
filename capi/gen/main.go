// SPDX-License-Identifier: Apache-2.0

// Command gen writes the C front's generated files from its one table,
// capi/front/api.tab, and checks that the table, those files, the public
// headers, the engine's Go exports and the built libraries agree.
//
//	go run ./capi/gen            write capi/front/api_gen.h, the *_gen.c
//	                             trampolines and dc/kinds_gen.go
//	go run ./capi/gen -check     fail (exit 1, one line per disagreement) if
//	                             a generated file is not what the table
//	                             makes, a public header differs from it, or
//	                             an export's Rescue value from its FAIL
//	  -cgo                       also compare the engine's functions with
//	                             go tool cgo -exportheader of nal/, dc/, capi/
//	  -libs DIR                  also compare each library built in DIR with
//	                             the functions the table gives it
//
// Run it from the repository's root (or give -root). make check runs
// make check-front-gen (mk/capi.mk), which uses all three checks.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
)

func main() {
	root := flag.String("root", ".", "the repository's root")
	check := flag.Bool("check", false, "check instead of writing")
	cgo := flag.Bool("cgo", false, "with -check: compare with the engine's cgo exports")
	libDir := flag.String("libs", "", "with -check: compare with the libraries built in this directory")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: go run ./capi/gen [-root DIR] [-check [-cgo] [-libs DIR]]\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 || (!*check && (*cgo || *libDir != "")) {
		flag.Usage()
		os.Exit(2)
	}
	read := func(p string) (string, error) {
		b, err := os.ReadFile(filepath.Join(*root, p))
		return string(b), err
	}
	text, err := read("capi/front/api.tab")
	if err != nil {
		fail(err.Error())
	}
	t, err := parseTable("capi/front/api.tab", text)
	if err != nil {
		fail(err.Error())
	}
	files, err := t.generate()
	if err != nil {
		fail(err.Error())
	}
	if !*check {
		for p, s := range files {
			if err := os.WriteFile(filepath.Join(*root, p), []byte(s), 0o644); err != nil {
				fail(err.Error())
			}
		}
		return
	}
	errs := checkGenerated(files, read)
	errs = append(errs, checkHeaders(t, read)...)
	src, err := exportSources(*root)
	if err != nil {
		fail(err.Error())
	}
	vals, err := rescueValues(src)
	if err != nil {
		fail(err.Error())
	}
	errs = append(errs, checkRescue(t, vals)...)
	done := "generated files, the public headers, the engine's panic failure values"
	if *cgo {
		h, err := cgoExportHeaders(*root, []string{"./nal", "./dc", "./capi"})
		if err != nil {
			fail(err.Error())
		}
		errs = append(errs, checkExports(t, h)...)
		done += ", the engine's cgo exports"
	}
	if *libDir != "" {
		syms, err := libSymbols(*libDir)
		if err != nil {
			fail(err.Error())
		}
		errs = append(errs, checkSymbols(t, syms)...)
		done += ", the libraries' symbols"
	}
	for _, e := range errs {
		fmt.Fprintln(os.Stderr, e)
	}
	if len(errs) > 0 {
		fmt.Fprintf(os.Stderr, "check-front-gen: %d disagreement(s) with capi/front/api.tab\n", len(errs))
		os.Exit(1)
	}
	fmt.Printf("check-front-gen: api.tab (%d functions, %d of the engine) agrees with the %s\n",
		len(t.public), len(t.engineFuncs()), done)
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "capi/gen:", msg)
	os.Exit(1)
}
