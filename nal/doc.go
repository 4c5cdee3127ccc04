// SPDX-License-Identifier: Apache-2.0

// Package nal is the cgo export layer of the engine for <libnal/nal.h>: each
// exported dce_NAL_* function has the C signature of the NAL_* function of the
// same name and is a thin conversion onto goimpl/nal. Buffer storage is
// allocated with C malloc (nal.SetAllocator), so the pointers that
// NAL_BUFFER_data and NAL_BUFFER_write_ptr hand to C stay valid C memory.
// Host names are resolved with the C library's getaddrinfo (resolve.go), as
// the C program's own lookups are.
//
// Every export (here and in dc/) begins with a deferred Rescue, so a panic
// ends in the export, which returns its failure value and prints one line
// (rescue.go); a test checks that no export lacks it.
package nal
