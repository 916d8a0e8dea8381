package state

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/crmsync/crmsync/funnel"
)

// randomRecord gives fields from several systems and change times, fields
// with a source but no value (emptied by a system), and fields with a value
// but no source.
func randomRecord(rng *rand.Rand) *funnel.Record {
	r := funnel.New("id")
	r.Sources = map[string]funnel.Source{}
	systems := []string{"tribecrm", "overplane", "bluerocktel"}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, name := range funnel.FieldNames() {
		switch rng.IntN(6) {
		case 0: // absent
		case 1: // a value without a source
			r.Fields[name] = name + "-v"
		case 2: // emptied by a system
			r.Sources[name] = funnel.Source{System: systems[rng.IntN(3)], At: at.Add(time.Duration(rng.IntN(2)) * time.Hour)}
		default:
			r.Fields[name] = name + "-v"
			r.Sources[name] = funnel.Source{System: systems[rng.IntN(3)], At: at.Add(time.Duration(rng.IntN(2)) * time.Hour)}
		}
	}
	if rng.IntN(2) == 0 { // every field with a value has a source
		for name := range r.Fields {
			if _, ok := r.Sources[name]; !ok {
				r.Sources[name] = funnel.Source{System: "tribecrm", At: at}
			}
		}
	}
	if len(r.Sources) == 0 {
		r.Sources = nil
	}
	return r
}

// Whatever the sources, a record reads back exactly as it was put, each
// field with the system and time its value came from.
func TestRecordSourcesRoundTrip(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	implicit := 0
	for i := 0; i < 2000; i++ {
		r := randomRecord(rng)
		data, err := encodeRecord(r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeRecord(r.ID, data)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Fatalf("record %d:\nstored %s\nreads back %#v\nwant       %#v", i, data, got.Sources, r.Sources)
		}
		if i := implicitGroup(r, groupSources(r)); i >= 0 || len(r.Sources) == 0 {
			implicit++
		}
	}
	if implicit == 0 || implicit == 2000 {
		t.Fatalf("%d of 2000 records used the group without fields: the cases are not mixed", implicit)
	}
}

// One source group for a record whose every field came from one read: the
// stored value is less than half the size of format 1's.
func TestRecordOneSourceIsCompact(t *testing.T) {
	t.Parallel()
	r := realisticGolden("00185933-765e-44a2-834c-adb9afa63c6a", 1, t0)
	v2, err := encodeRecord(r)
	if err != nil {
		t.Fatal(err)
	}
	v1, err := encodeRecordV1ForTest(r)
	if err != nil {
		t.Fatal(err)
	}
	if len(v2)*2 > len(v1) {
		t.Errorf("format 2 stores %d bytes, format 1 %d: want less than half", len(v2), len(v1))
	}
}

// Two groups that both leave out their fields cannot be decoded: reported,
// not guessed at.
func TestRecordTwoImplicitGroupsIsCorrupt(t *testing.T) {
	t.Parallel()
	data := []byte(`{"v":2,"fields":{"name":"a","stage":"lead"},"sources":[{"system":"a","at":"2026-01-01T00:00:00Z"},{"system":"b","at":"2026-01-01T00:00:00Z"}]}`)
	if _, err := decodeRecord("id", data); !errors.Is(err, errTwoImplicitGroups) {
		t.Fatalf("decode = %v, want errTwoImplicitGroups", err)
	}
}

func encodeRecordV1ForTest(r *funnel.Record) ([]byte, error) {
	v := recordV1{V: 1, ID: r.ID, Fields: r.Fields, Links: r.Links, Gone: r.Gone, Sources: map[string]sourceV1{}}
	for k, s := range r.Sources {
		v.Sources[k] = sourceV1{System: s.System, At: s.At.UTC()}
	}
	return json.Marshal(v)
}
