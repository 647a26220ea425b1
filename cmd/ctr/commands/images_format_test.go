package commands

import "testing"

func TestHumanSize(t *testing.T) {
	for _, c := range []struct {
		n    int64
		want string
	}{
		{0, "0.0 B"},
		{1023, "1023.0 B"},
		{1024, "1.0 KiB"},
		{5000, "4.9 KiB"},
		{3 << 20, "3.0 MiB"},
		{-1, "-1.0 B"},
	} {
		if got := HumanSize(c.n); got != c.want {
			t.Errorf("HumanSize(%d) = %q, want %q", c.n, got, c.want)
		}
	}
}
