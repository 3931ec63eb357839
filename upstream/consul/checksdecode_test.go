package consul

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestDecodeChecks(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		want    []checkEntry
		wantErr string
	}{
		{name: "null", body: " null ", want: nil},
		{name: "empty", body: "[]", want: []checkEntry{}},
		{name: "null element", body: "[null]", want: []checkEntry{{}}},
		{name: "fields kept, others skipped",
			body: `[{"Node":"n1","CheckID":"service:a","Name":"x","Status":"critical","Output":"it \"failed\"\n",
				"ServiceName":"a","ServiceTags":["t1",{"deep":[1,-2.5e3,true,false,null]}],"Definition":{},
				"CreateIndex":3,"ModifyIndex":42}]`,
			want: []checkEntry{{Node: "n1", CheckID: "service:a", ServiceName: "a", Status: "critical", ModifyIndex: 42}}},
		{name: "escapes and unicode decoded", body: `[{"Node":"n\u00e9\/1","ServiceName":"caf\u00e9 ☕"}]`,
			want: []checkEntry{{Node: "né/1", ServiceName: "café ☕"}}},
		{name: "escaped member name", body: `[{"\u004eode":"n1"}]`, want: []checkEntry{{Node: "n1"}}},
		{name: "null fields", body: `[{"Node":null,"ModifyIndex":null}]`, want: []checkEntry{{}}},
		{name: "last duplicate wins", body: `[{"Node":"a","Node":"b"}]`, want: []checkEntry{{Node: "b"}}},
		{name: "two checks", body: "[{\"Node\":\"a\"},\n\t{\"Node\":\"b\",\"ModifyIndex\":18446744073709551615}]",
			want: []checkEntry{{Node: "a"}, {Node: "b", ModifyIndex: 18446744073709551615}}},

		{name: "not an array", body: `{"Node":"a"}`, wantErr: "not an array"},
		{name: "empty body", body: ``, wantErr: "not an array"},
		{name: "truncated", body: `[{"Node":"a"`, wantErr: "invalid JSON"},
		{name: "unterminated string", body: `[{"Node":"a`, wantErr: "unterminated string"},
		{name: "data after", body: `[] []`, wantErr: "data after the answer"},
		{name: "check not an object", body: `["a"]`, wantErr: "not an object"},
		{name: "negative index", body: `[{"ModifyIndex":-1}]`, wantErr: "unsigned integer"},
		{name: "fractional index", body: `[{"ModifyIndex":1.5}]`, wantErr: "unsigned integer"},
		{name: "index overflow", body: `[{"ModifyIndex":18446744073709551616}]`, wantErr: "unsigned integer"},
		{name: "index as string", body: `[{"ModifyIndex":"1"}]`, wantErr: "want a number"},
		{name: "node as number", body: `[{"Node":1}]`, wantErr: "want a string"},
		{name: "bad literal", body: `[{"Output":tru}]`, wantErr: "invalid JSON"},
		{name: "bad number", body: `[{"CreateIndex":01}]`, wantErr: "invalid JSON"},
		{name: "bad exponent", body: `[{"CreateIndex":1e}]`, wantErr: "invalid JSON"},
		{name: "control character", body: "[{\"Node\":\"a\x01\"}]", wantErr: "control character"},
		{name: "bad escape", body: `[{"Node":"\x"}]`, wantErr: "bad escape"},
		{name: "short unicode escape", body: `[{"Node":"\u12"}]`, wantErr: "invalid JSON"},
		{name: "missing colon", body: `[{"Node" "a"}]`, wantErr: "invalid JSON"},
		{name: "too deep", body: `[{"Definition":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}]`, wantErr: "nested too deeply"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeChecks([]byte(tt.body))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (got == nil) != (tt.want == nil) || len(got) != len(tt.want) {
				t.Fatalf("got %#v, want %#v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("entry %d: got %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

// TestDecodeChecksLikeEncodingJSON decodes a real-shaped answer both ways.
func TestDecodeChecksLikeEncodingJSON(t *testing.T) {
	body := checksAnswer(t, 50)
	assertDecodesLikeEncodingJSON(t, body)
	if got, err := decodeChecks(body); err != nil || len(got) != 51 || got[1].ServiceName != "svc00000" {
		t.Fatalf("decodeChecks: %d entries, %v", len(got), err)
	}
}

// FuzzDecodeChecks checks decodeChecks against encoding/json on arbitrary bytes: never a
// panic, and the same answer (or both an error) wherever the two are meant to agree.
func FuzzDecodeChecks(f *testing.F) {
	f.Add(checksAnswer(f, 2))
	f.Add([]byte(`[{"Node":"a","ModifyIndex":1,"ServiceTags":[{"x":[1.5e-3,null]}]},null]`))
	f.Add([]byte(`[{"Node":"\u00e9\ud83d\ude00","Status":"pass\"ing"}]`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		assertDecodesLikeEncodingJSON(t, data)
	})
}

func assertDecodesLikeEncodingJSON(t *testing.T, data []byte) {
	t.Helper()
	got, err := decodeChecks(data)
	if err == nil && !json.Valid(data) {
		t.Fatalf("accepted invalid JSON %q", data)
	}
	// encoding/json also matches member names case-insensitively (with Unicode folds such as
	// the Kelvin sign for k); Consul writes them exactly, and decodeChecks only takes those.
	if hasFoldedName(data) {
		return
	}
	var want []checkEntry
	wantErr := json.Unmarshal(data, &want)
	if err != nil {
		if wantErr == nil && !strings.Contains(err.Error(), "nested too deeply") {
			t.Fatalf("decodeChecks(%q): %v; encoding/json decodes it", data, err)
		}
		return
	}
	if wantErr != nil {
		t.Fatalf("decodeChecks(%q) succeeded; encoding/json: %v", data, wantErr)
	}
	if (got == nil) != (want == nil) || len(got) != len(want) {
		t.Fatalf("decodeChecks(%q) = %#v, encoding/json %#v", data, got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("decodeChecks(%q) entry %d = %+v, encoding/json %+v", data, i, got[i], want[i])
		}
	}
}

// hasFoldedName says whether data may hold a member name encoding/json would take for a
// checkEntry field that decodeChecks would not: a case variant, or anything escaped or
// outside ASCII (which may fold to one).
func hasFoldedName(data []byte) bool {
	if bytes.Contains(data, []byte(`\u`)) {
		return true
	}
	for _, c := range data {
		if c >= 0x80 {
			return true
		}
	}
	lower := bytes.ToLower(data)
	for _, name := range []string{"Node", "CheckID", "ServiceName", "Status", "ModifyIndex"} {
		if bytes.Count(lower, []byte(`"`+strings.ToLower(name)+`"`)) != bytes.Count(data, []byte(`"`+name+`"`)) {
			return true
		}
	}
	return false
}
