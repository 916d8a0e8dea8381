package connectors_test

import (
	"context"
	"slices"
	"testing"

	"github.com/crmsync/crmsync/connectors"
)

type noOptions struct{}

func (noOptions) Default()                                       {}
func (noOptions) Check(connectors.Settings) []connectors.Problem { return nil }

func fakeType(name string) connectors.Type {
	return connectors.Type{Name: name,
		NewOptions: func() connectors.Options { return noOptions{} },
		New: func(context.Context, connectors.Settings, connectors.Options) (connectors.Connector, error) {
			return nil, nil
		}}
}

func TestRegistryRefusesDuplicatesAndIncompleteTypes(t *testing.T) {
	if _, err := connectors.NewRegistry(fakeType("a"), fakeType("a")); err == nil {
		t.Error("a name registered twice was accepted")
	}
	if _, err := connectors.NewRegistry(connectors.Type{Name: "x"}); err == nil {
		t.Error("a type without a constructor was accepted")
	}
	r, err := connectors.NewRegistry(fakeType("zeta"), fakeType("alpha"))
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Names(); !slices.Equal(got, []string{"alpha", "zeta"}) {
		t.Errorf("names %v, want sorted", got)
	}
	if _, ok := r.Lookup("alpha"); !ok {
		t.Error("alpha not found")
	}
	if _, ok := r.Lookup("beta"); ok {
		t.Error("beta found")
	}
}
