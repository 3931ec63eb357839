package config

import "reflect"

// cloneBlock copies a feature block deeply (pointers, slices and maps at any depth, as in
// headers' request.set) so routes never share anything with each other or with the built-ins.
func cloneBlock[T any](b *T) *T {
	out := new(T)
	reflect.ValueOf(out).Elem().Set(deepCopy(reflect.ValueOf(b).Elem()))
	return out
}

// deepCopy returns a copy of v that shares no pointer, slice or map with it. The config
// types hold no cycles, interfaces or unexported fields.
func deepCopy(v reflect.Value) reflect.Value {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return v
		}
		np := reflect.New(v.Type().Elem())
		np.Elem().Set(deepCopy(v.Elem()))
		return np
	case reflect.Slice:
		if v.IsNil() {
			return v
		}
		ns := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		for i := range v.Len() {
			ns.Index(i).Set(deepCopy(v.Index(i)))
		}
		return ns
	case reflect.Map:
		if v.IsNil() {
			return v
		}
		nm := reflect.MakeMapWithSize(v.Type(), v.Len())
		for it := v.MapRange(); it.Next(); {
			nm.SetMapIndex(it.Key(), deepCopy(it.Value()))
		}
		return nm
	case reflect.Struct:
		ns := reflect.New(v.Type()).Elem()
		for i := range v.NumField() {
			ns.Field(i).Set(deepCopy(v.Field(i)))
		}
		return ns
	}
	return v
}
