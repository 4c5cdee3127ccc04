// SPDX-License-Identifier: Apache-2.0

package nal

import (
	"reflect"
	"testing"
)

// callAll calls every exported method of v with zero-valued arguments and
// fails the test on a panic.
func callAll(t *testing.T, name string, v any) {
	t.Helper()
	rv := reflect.ValueOf(v)
	for i := 0; i < rv.NumMethod(); i++ {
		m := rv.Method(i)
		mname := rv.Type().Method(i).Name
		args := make([]reflect.Value, m.Type().NumIn())
		for j := range args {
			args[j] = reflect.Zero(m.Type().In(j))
		}
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("%s.%s panicked: %v", name, mname, r)
				}
			}()
			m.Call(args)
		}()
	}
}

// TestNoPanicOnMisuse calls every method on nil, fresh, and freed objects.
func TestNoPanicOnMisuse(t *testing.T) {
	objs := func() []any {
		return []any{NewAddress(), NewBuffer(), NewConnection(), NewListener(), NewSelector()}
	}
	for _, o := range []any{(*Address)(nil), (*Buffer)(nil), (*Connection)(nil), (*Listener)(nil), (*Selector)(nil)} {
		callAll(t, reflect.TypeOf(o).String()+"(nil)", o)
	}
	for _, o := range objs() {
		callAll(t, reflect.TypeOf(o).String()+"(new)", o)
	}
	for _, o := range objs() {
		reflect.ValueOf(o).MethodByName("Free").Call(nil)
		callAll(t, reflect.TypeOf(o).String()+"(freed)", o)
	}
	// live objects too (Free is among the methods, so order does not matter)
	a, b := NewConnection(), NewConnection()
	a.CreatePair(b, 16)
	callAll(t, "live Connection", a)
	b.Free()
}
