// SPDX-License-Identifier: Apache-2.0

// Package dc is the cgo export layer of the engine for <distcache/dc_plug.h>,
// <distcache/dc_client.h> and <distcache/dc_server.h>: each exported dce_DC_*
// function has the C signature of the DC_* function of the same name and is a
// thin conversion onto goimpl/plug, goimpl/client/dcctx and goimpl/server.
//
// The C front (capi/front) owns the handles that C programs see; what it passes
// here are engine references made by nal.Save (nal/refs.go). The dce_
// prefix keeps the engine's symbols from ever interposing on the front's.
package dc
