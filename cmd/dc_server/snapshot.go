// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/distcache-go/distcache/goimpl/cache"
	"github.com/distcache-go/distcache/goimpl/seal"
)

// loadSnapshot imports the sessions a clean stop wrote to path (-snapshot),
// each with its remaining lifetime: entries that expired meanwhile are
// purged as usual. A missing file is a first start. A file that other users
// may read or write, that is not ours, or that is damaged is refused with
// one line and the server starts empty: what the file holds are TLS master
// secrets, and a half-read file must not be served. With keys (-sealkey)
// the file must be sealed with one of them, and without, not sealed.
func loadSnapshot(path string, c *cache.Cache, keys *seal.Keyring) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "Warning, -snapshot: cannot read %s, starting empty: %v\n", path, err)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	switch {
	case err != nil:
		fmt.Fprintf(os.Stderr, "Warning, -snapshot: cannot read %s, starting empty: %v\n", path, err)
		return
	case !st.Mode().IsRegular():
		fmt.Fprintf(os.Stderr, "Warning, -snapshot: %s is not a regular file; starting empty\n", path)
		return
	case st.Mode().Perm()&0o077 != 0:
		fmt.Fprintf(os.Stderr, "Warning, -snapshot: %s has mode %04o (others may read the sessions' secrets); refusing it and starting empty (chmod 600 %s)\n",
			path, st.Mode().Perm(), path)
		return
	}
	br := bufio.NewReader(f)
	head, _ := br.Peek(64)
	var r io.Reader = br
	switch sealed := seal.IsStream(head); {
	case sealed && keys == nil:
		fmt.Fprintf(os.Stderr, "Warning, -snapshot: %s is sealed and no -sealkey was given; starting empty\n", path)
		return
	case !sealed && keys != nil:
		fmt.Fprintf(os.Stderr, "Warning, -snapshot: %s is not sealed, and with -sealkey only a sealed snapshot is read; starting empty\n", path)
		return
	case sealed:
		r = seal.NewReader(br, keys)
	}
	if _, err := c.ReadFrom(r); err != nil {
		switch {
		case errors.Is(err, seal.ErrKeyID), errors.Is(err, seal.ErrAuth):
			fmt.Fprintf(os.Stderr, "Warning, -snapshot: %s does not open with the -sealkey keys (sealed with another key, or altered: %v); starting empty\n", path, err)
		default:
			fmt.Fprintf(os.Stderr, "Warning, -snapshot: %s is not a snapshot of dc_server or is damaged (%v); starting empty\n", path, err)
		}
		return
	}
	fmt.Fprintf(os.Stderr, "Info, -snapshot: %d sessions read from %s\n", c.NumItems(time.Now()), path)
}

// saveSnapshot writes the cache to path on a clean stop: to a new file of
// mode 0600 beside it, renamed over it once complete, so a crash while
// writing leaves the previous snapshot or none, never half of one. With
// keys (-sealkey) the file holds only ciphertext (seal.NewWriter).
func saveSnapshot(path string, c *cache.Cache, keys *seal.Keyring) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after the rename, a no-op
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	var w io.Writer = tmp
	var sw *seal.Writer
	if keys != nil {
		sw = seal.NewWriter(tmp, keys)
		w = sw
	}
	_, err = c.WriteTo(w)
	if err == nil && sw != nil {
		err = sw.Close()
	}
	if err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
