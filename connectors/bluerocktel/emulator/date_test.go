package emulator

import (
	"net/http"
	"testing"
	"time"
)

// Every reply's Date comes from the emulator's clock, the one that stamps
// updated_at (RFC 9110 §6.6.1), frozen with Freeze: clients compare the
// two (the client's pull.go, "The overlap").
func TestDateHeaderIsTheServerClock(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 5, 4, 3, 2, 1, 0, time.UTC)
	e := newEnv(t, Options{Records: 3, Now: func() time.Time { return at }})
	check := func(want time.Time, what string) {
		t.Helper()
		_, hdr, _, _ := e.raw(t, "GET", "/api/v1/prospects", authJSON, "")
		got, err := http.ParseTime(hdr.Get("Date"))
		if err != nil || !got.Equal(want) {
			t.Errorf("%s: Date %q, want %s", what, hdr.Get("Date"), want.Format(http.TimeFormat))
		}
	}
	check(at, "running clock")
	frozen := at.Add(-time.Hour)
	e.emu.Freeze(frozen)
	check(frozen, "frozen clock")
	e.emu.Unfreeze()
	check(at, "unfrozen clock")
}
