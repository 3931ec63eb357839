package auth

import (
	"strings"
	"testing"
)

func TestQuote(t *testing.T) {
	tests := []struct{ in, want string }{
		{"users", `"users"`},
		{"", `""`},
		{`a"b\c`, `"a\"b\\c"`},
		{"bad\r\nSet-Cookie: x", `"bad  Set-Cookie: x"`},
		{"tab\there\x7f", "\"tab\there \""},
		{"zoë", `"zoë"`},
	}
	for _, tt := range tests {
		if got := Quote(tt.in); got != tt.want {
			t.Errorf("Quote(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestValidHeaderName(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"X-Api-Key", true},
		{"x_user.id~1", true},
		{"", false},
		{"X Api", false},
		{"X-Api:", false},
		{"X-\r\nEvil", false},
		{"Zoë", false},
	}
	for _, tt := range tests {
		if got := ValidHeaderName(tt.in); got != tt.want {
			t.Errorf("ValidHeaderName(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestSameHeaderIgnoringUnderscores(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"X_User_Id", "X-User-Id", true},
		{"x_user_id", "X-User-Id", true},
		{"X-USER_ID", "X-User-Id", true},
		{"X_User_Idx", "X-User-Id", false},
		{"X_User", "X-User-Id", false},
		{"X.User_Id", "X-User-Id", false},
		{"X_User_Id", "X_User_Id", true},
		{"", "", true},
	}
	for _, tt := range tests {
		if got := sameHeaderIgnoringUnderscores(tt.a, tt.b); got != tt.want {
			t.Errorf("sameHeaderIgnoringUnderscores(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestCheckIdentityHeader(t *testing.T) {
	tests := []struct {
		in   string
		want string // substring of the error; "" for none
	}{
		{"X-User-Id", ""},
		{"Authorization", ""}, // forward auth may hand the upstream a new one
		{"X User", "not a valid header name"},
		{"", "not a valid header name"},
		{"host", "frames"},
		{"Content-Length", "frames"},
		{"transfer-encoding", "frames"},
		{"Connection", "frames"},
		{"Upgrade", "frames"},
	}
	for _, tt := range tests {
		err := CheckIdentityHeader(tt.in)
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("CheckIdentityHeader(%q) = %v, want %q", tt.in, err, tt.want)
		}
	}
}
