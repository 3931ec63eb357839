package grpcresolver

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/switchyard/switchyard/config"
)

// TestBadTargetFailsCalls: grpc.NewClient builds the resolver lazily, on the channel's
// first call, so a target the builder refuses fails that call with the builder's error.
func TestBadTargetFailsCalls(t *testing.T) {
	b := New(config.RegistryEtcd, newFakeRegistry(), Options{Logger: quietLogger()})
	conn, err := grpc.NewClient("etcd:///users?tag=v2", grpc.WithResolvers(b), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err) // grpc.NewClient only checks that a builder exists for the scheme
	}
	defer conn.Close()
	_, err = call(context.Background(), conn)
	if err == nil || !strings.Contains(err.Error(), "etcd targets take no query") {
		t.Fatalf("call through a bad target: %v", err)
	}
}
