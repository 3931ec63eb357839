package zookeeper

import (
	"errors"
	"strings"
	"testing"

	"github.com/go-zookeeper/zk"
	"github.com/switchyard/switchyard/upstream"
	"go.uber.org/goleak"
)

// goleak also proves Close takes go-zookeeper's connection goroutines down with it.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestParseNode(t *testing.T) {
	tests := []struct {
		name, node, data string
		want             upstream.Endpoint
		wantErr          string
	}{
		{name: "json", node: "a", data: `{"address":"10.0.1.5","port":8080,"weight":2,"meta":{"zone":"b"}}`,
			want: upstream.Endpoint{Key: "10.0.1.5:8080", Weight: 2, Meta: map[string]string{"zone": "b"}}},
		{name: "json host", node: "a", data: `{"host":"::1","port":9000}`, want: upstream.Endpoint{Key: "[::1]:9000"}},
		{name: "host:port", node: "a", data: "127.0.0.1:9001", want: upstream.Endpoint{Key: "127.0.0.1:9001"}},
		{name: "url", node: "a", data: "https://10.0.0.1:8443", want: upstream.Endpoint{Key: "10.0.0.1:8443", Scheme: "https"}},
		{name: "empty data uses name", node: "10.0.0.2:80", data: "", want: upstream.Endpoint{Key: "10.0.0.2:80"}},
		{name: "blank data uses name", node: "10.0.0.2:80", data: " \n", want: upstream.Endpoint{Key: "10.0.0.2:80"}},
		{name: "empty data, bad name", node: "instance-0000000001", data: "", wantErr: "node name is not host:port"},
		{name: "garbage", node: "10.0.0.2:80", data: "not an address", wantErr: "not JSON"},
		{name: "json without port", node: "a", data: `{"address":"10.0.0.1"}`, wantErr: "port 0"},
		{name: "bad json", node: "a", data: `{"address":`, wantErr: "invalid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseNode(tt.node, []byte(tt.data))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if !got.Equal(tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestCleanRoot(t *testing.T) {
	tests := []struct {
		in, want string
		bad      bool
	}{
		{in: "", want: "/services"},
		{in: "/services", want: "/services"},
		{in: "/services/", want: "/services"},
		{in: "services", want: "/services"},
		{in: "/a/b", want: "/a/b"},
		{in: "/", bad: true},
		{in: "/a//b", bad: true},
	}
	for _, tt := range tests {
		got, err := cleanRoot(tt.in)
		if tt.bad {
			if err == nil {
				t.Errorf("cleanRoot(%q) = %q, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("cleanRoot(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestBackoffBounds(t *testing.T) {
	for n := range 40 {
		d := backoff(n)
		hi := min(backoffMin<<min(n, 15), backoffMax)
		if d < hi/2 || d > hi {
			t.Fatalf("backoff(%d) = %v, want in [%v, %v]", n, d, hi/2, hi)
		}
	}
}

func TestTransient(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{zk.ErrConnectionClosed, true},
		{zk.ErrNoServer, true},
		{zk.ErrSessionExpired, true},
		{zk.ErrNoAuth, false},
		{errors.New("other"), false},
	}
	for _, tt := range tests {
		if got := transient(tt.err); got != tt.want {
			t.Errorf("transient(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// TestNewDefaults checks an empty config means one local server and the default root, and
// that Close works without the server ever answering (nothing listens on the port).
func TestNewDefaults(t *testing.T) {
	d, err := New(nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d.root != DefaultRoot {
		t.Errorf("root = %q, want %q", d.root, DefaultRoot)
	}
	d.Close()
	d.Close() // idempotent
}
