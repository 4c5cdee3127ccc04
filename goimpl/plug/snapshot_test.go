// SPDX-License-Identifier: Apache-2.0

package plug

import (
	"bytes"
	"testing"

	"github.com/distcache-go/distcache/goimpl/nal"
)

func TestSnapshotMidMessage(t *testing.T) {
	// Export a server plug holding a complete request and a partly sent
	// 20000-byte response, import it over a rebuilt connection, and finish
	// the exchange.
	r := newRig(t, 4096)
	req := payload(3000, 5)
	r.client.Write(false, 42, CmdGet, req)
	r.client.Commit()
	r.run(nil, func() bool { return r.server.ReadState() == ReadFull })
	uid, cmd, got, _ := r.server.Read(false)
	resp := payload(20000, 6)
	if !r.server.Write(false, uid, cmd, resp) || !r.server.Commit() || !r.server.WriteBusy() {
		t.Fatal("server reply not pending")
	}
	st := r.server.Export()
	if !bytes.Equal(st.ReadPayload, got) || st.ReadState != ReadUser {
		t.Fatal("export lost the request")
	}
	conn := r.server.Conn()
	conn.DelFromSelector()
	nc := nal.ImportConnection(conn.Export())
	np := Import(nc, st)
	if np == nil || !np.ToSelect(r.sel) {
		t.Fatal("import")
	}
	r.server.flags |= FlagNoFreeConn // the old objects no longer own the descriptor
	r.server.Free()
	r.server = np
	if _, _, g2, ok := np.Read(true); !ok || !bytes.Equal(g2, req) || !np.Consume() {
		t.Fatal("imported request")
	}
	r.run(nil, func() bool { return r.client.ReadState() == ReadFull })
	if u, _, g, _ := r.client.Read(false); u != 42 || !bytes.Equal(g, resp) {
		t.Fatal("response after import")
	}
	if Import(nil, st) != nil || Import(nc, State{ReadState: 9}) != nil || Import(nc, State{WriteState: WriteUser, WriteCmd: 0}) != nil {
		t.Fatal("inconsistent state accepted")
	}
}
