package signpolicy

import (
	"errors"
	"testing"
)

func TestChoose(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   Inputs
		want Mode
		err  error
	}{
		{"nothing given publishes unsigned", Inputs{}, Unsigned, nil},
		{"a key signs with the key", Inputs{Key: true}, Key, nil},
		{"a key with its password", Inputs{Key: true, KeyPassword: true}, Key, nil},
		{"an OIDC token signs keyless", Inputs{IDToken: true}, Keyless, nil},
		{"the Actions request pair signs keyless", Inputs{RequestURL: true, RequestToken: true}, Keyless, nil},
		{"key and token exclude each other", Inputs{Key: true, IDToken: true}, Unsigned, ErrKeyAndToken},
		{"key and request pair exclude each other", Inputs{Key: true, RequestURL: true, RequestToken: true}, Unsigned, ErrKeyAndToken},
		{"token and request pair exclude each other", Inputs{IDToken: true, RequestURL: true, RequestToken: true}, Unsigned, ErrTokenAndRequest},
		{"request URL alone", Inputs{RequestURL: true}, Unsigned, ErrRequestHalf},
		{"request token alone", Inputs{RequestToken: true}, Unsigned, ErrRequestHalf},
		{"password without key", Inputs{KeyPassword: true}, Unsigned, ErrPasswordWithoutKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Choose(tc.in)
			if got != tc.want || !errors.Is(err, tc.err) {
				t.Errorf("Choose(%+v) = %q, %v; want %q, %v", tc.in, got, err, tc.want, tc.err)
			}
		})
	}
}
