// SPDX-License-Identifier: Apache-2.0

package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/distcache-go/distcache/goimpl/cache"
)

// loadSnapshot imports the sessions a clean stop wrote to path (-snapshot),
// each with its remaining lifetime: entries that expired meanwhile are
// purged as usual. A missing file is a first start. A file that other users
// may read or write, that is not ours, or that is damaged is refused with
// one line and the server starts empty: what the file holds are TLS master
// secrets, and a half-read file must not be served.
func loadSnapshot(path string, c *cache.Cache) {
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
	if _, err := c.ReadFrom(f); err != nil {
		fmt.Fprintf(os.Stderr, "Warning, -snapshot: %s is not a snapshot of dc_server or is damaged (%v); starting empty\n", path, err)
		return
	}
	fmt.Fprintf(os.Stderr, "Info, -snapshot: %d sessions read from %s\n", c.NumItems(time.Now()), path)
}

// saveSnapshot writes the cache to path on a clean stop: to a new file of
// mode 0600 beside it, renamed over it once complete, so a crash while
// writing leaves the previous snapshot or none, never half of one.
func saveSnapshot(path string, c *cache.Cache) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after the rename, a no-op
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := c.WriteTo(tmp); err != nil {
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
