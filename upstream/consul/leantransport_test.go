package consul

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hashicorp/consul/api"
)

// TestLeanChecksTransport checks that NewClient's client decodes a marked checks query
// itself, leaves unmarked queries and error answers to the api client, and fails a marked
// query whose answer is not a checks list.
func TestLeanChecksTransport(t *testing.T) {
	const answer = `[{"Node":"n1","CheckID":"c1","ServiceName":"a","Status":"passing","ModifyIndex":7,"Output":"ok"}]`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Consul-Index", "42")
		switch r.URL.Query().Get("filter") {
		case "fail":
			http.Error(w, "injected failure", http.StatusInternalServerError)
		case "garbage":
			_, _ = w.Write([]byte(`[{"Node":`))
		default:
			_, _ = w.Write([]byte(answer))
		}
	}))
	defer srv.Close()
	cli := newClient(t, strings.TrimPrefix(srv.URL, "http://"))
	want := checkEntry{Node: "n1", CheckID: "c1", ServiceName: "a", Status: "passing", ModifyIndex: 7}

	query := func(filter string, sink *checksSink) ([]checkEntry, *api.QueryMeta, error) {
		ctx := context.Background()
		if sink != nil {
			ctx = withChecksSink(ctx, sink)
		}
		var entries []checkEntry
		meta, err := cli.Raw().Query("/v1/health/state/any", &entries, (&api.QueryOptions{Filter: filter}).WithContext(ctx))
		return entries, meta, err
	}

	var sink checksSink
	entries, meta, err := query("", &sink)
	if err != nil {
		t.Fatal(err)
	}
	if !sink.decoded || len(sink.entries) != 1 || sink.entries[0] != want || len(entries) != 0 || meta.LastIndex != 42 {
		t.Errorf("marked query: sink %+v, client decoded %+v, index %d; want the check in the sink, index 42",
			sink, entries, meta.LastIndex)
	}

	entries, _, err = query("", nil)
	if err != nil || len(entries) != 1 || entries[0] != want {
		t.Errorf("unmarked query: %+v, %v; want the client's own decoding", entries, err)
	}

	sink = checksSink{}
	if _, _, err := query("fail", &sink); err == nil || !strings.Contains(err.Error(), "500") || sink.decoded {
		t.Errorf("error answer: %v, sink decoded %v; want the client's 500 error", err, sink.decoded)
	}
	if _, _, err := query("garbage", &sink); err == nil || !strings.Contains(err.Error(), "checks answer") || sink.decoded {
		t.Errorf("garbage answer: %v, sink decoded %v; want a decoding error", err, sink.decoded)
	}
}
