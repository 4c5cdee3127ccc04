// SPDX-License-Identifier: Apache-2.0

package plug

import (
	"reflect"
	"testing"

	"github.com/distcache-go/distcache/goimpl/nal"
)

// TestNoPanicOnMisuse calls every method of nil, fresh and freed plugs
// with zero-valued arguments.
func TestNoPanicOnMisuse(t *testing.T) {
	a, b := nal.NewConnection(), nal.NewConnection()
	a.CreatePair(b, 16)
	defer b.Free()
	unused := nal.NewConnection()
	freed := New(nal.NewConnection(), 0)
	freed.Free()
	for name, p := range map[string]*Plug{"nil": nil, "unused conn": New(unused, 0), "live": New(a, 0), "freed": freed} {
		rv := reflect.ValueOf(p)
		for i := 0; i < rv.NumMethod(); i++ {
			m := rv.Method(i)
			args := make([]reflect.Value, m.Type().NumIn())
			for j := range args {
				args[j] = reflect.Zero(m.Type().In(j))
			}
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Errorf("%s plug: %s panicked: %v", name, rv.Type().Method(i).Name, r)
					}
				}()
				m.Call(args)
			}()
		}
	}
}
