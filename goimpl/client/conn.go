package client

import (
	"errors"
	"net"
	"os"
	"time"

	"github.com/distcache-go/distcache/goimpl/proto"
)

// conn is one connection to the server with its buffers. A conn is used by
// one operation at a time; its buffers are reused after the socket closes.
type conn struct {
	nc   net.Conn
	rd   *proto.Reader
	wbuf []byte // the encoded request
	pbuf []byte // ADD payload scratch
}

func newConn() *conn {
	cn := &conn{}
	cn.rd = proto.NewReader(cn, proto.WantResponses)
	return cn
}

// Read lets the proto.Reader read from whichever socket the conn holds.
func (cn *conn) Read(p []byte) (int, error) { return cn.nc.Read(p) }

// failure classes of one exchange
type failKind uint8

const (
	failNone    failKind = iota
	failNet              // dead or corrupt connection: worth one reconnect with RETRY
	failTimeout          // deadline passed: the peer is alive but silent; no retry
	failReject           // answer does not belong to the request: drop the connection
)

// exchangeError is the internal error of one exchange.
type exchangeError struct {
	kind failKind
	err  error
}

func (e *exchangeError) Error() string { return e.err.Error() }
func (e *exchangeError) Unwrap() error { return e.err }

func classify(err error) *exchangeError {
	var ne net.Error
	if errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return &exchangeError{failTimeout, err}
	}
	return &exchangeError{failNet, err}
}

// exchange writes the request in cn.wbuf with one Write and reads the one
// response, checking that it belongs to the request. The returned payload
// is valid until the conn is used again. An empty payload (dc_client's "no
// server") is returned as is: the stream is still in step.
func (cn *conn) exchange(msg []byte, uid uint32, op proto.Op, deadline time.Time) ([]byte, *exchangeError) {
	if err := cn.nc.SetDeadline(deadline); err != nil {
		return nil, classify(err)
	}
	if _, err := cn.nc.Write(msg); err != nil {
		return nil, classify(err)
	}
	m, err := cn.rd.ReadMessage()
	if err != nil {
		return nil, classify(err)
	}
	if m.UID != uid || m.Op != op || cn.rd.Buffered() != 0 {
		return nil, &exchangeError{failReject, ErrBadResponse}
	}
	return m.Payload, nil
}
