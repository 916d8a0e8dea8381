package state

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand"
	"reflect"
	"testing"
	"time"

	"github.com/crmsync/crmsync/funnel"
)

// The state codec encodes with github.com/segmentio/encoding/json (about
// 2.5x faster than encoding/json). The file format must not move: every
// value it writes must decode to what encoding/json's encoding decodes to,
// and be byte for byte the same except for one spelling: encoding/json
// writes U+0008 and U+000C as \b and \f, segmentio as \u0008 and \u000c.

// sameJSON fails unless got is want, up to that spelling.
func sameJSON(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) && !bytes.Equal(got, longEscapes(want)) {
		t.Fatalf("%s:\n got %s\nwant %s", what, got, want)
	}
	var a, b any
	if err := json.Unmarshal(got, &a); err != nil {
		t.Fatalf("%s: %s does not decode: %v", what, got, err)
	}
	_ = json.Unmarshal(want, &b)
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("%s: decodes to %#v, encoding/json's to %#v", what, a, b)
	}
}

var oddStrings = []string{"", "\b\f", "Acme", "<b>&amp;</b>", "\u2028\u2029", "\x00\x1f\x7f", "bad \xff\xfe utf8", "é ü 日本",
	`q"uote\back`, "tab\tnl\n", "😀", "\ufffd", "1e-7", "null"}

// longEscapes spells encoding/json's \b and \f escapes the long way.
func longEscapes(b []byte) []byte {
	var out []byte
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' || i+1 == len(b) {
			out = append(out, b[i])
			continue
		}
		i++
		switch b[i] {
		case 'b':
			out = append(out, `\u0008`...)
		case 'f':
			out = append(out, `\u000c`...)
		default:
			out = append(out, '\\', b[i])
		}
	}
	return out
}

func randJSONValue(rng *rand.Rand, depth int) any {
	switch n := rng.Intn(9); {
	case n == 0 && depth < 3:
		m := map[string]any{}
		for i := rng.Intn(5); i > 0; i-- {
			m[oddStrings[rng.Intn(len(oddStrings))]+string(rune('a'+i))] = randJSONValue(rng, depth+1)
		}
		return m
	case n == 1 && depth < 3:
		var l []any
		for i := rng.Intn(4); i > 0; i-- {
			l = append(l, randJSONValue(rng, depth+1))
		}
		return l
	case n == 2:
		return rng.NormFloat64() * math.Pow(10, float64(rng.Intn(60)-30))
	case n == 3:
		return float64(rng.Int63n(1<<53) - 1<<52)
	case n == 4:
		return rng.Intn(2) == 0
	case n == 5:
		return nil
	case n == 6:
		return json.Number("12.50")
	default:
		return oddStrings[rng.Intn(len(oddStrings))]
	}
}

func randTime(rng *rand.Rand) time.Time {
	return time.Unix(rng.Int63n(4e9), rng.Int63n(1e9)*int64(rng.Intn(2))).In(time.FixedZone("x", 3600*(rng.Intn(25)-12)))
}

func TestFastCodecWritesWhatEncodingJSONWrites(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	for i := 0; i < 3000; i++ {
		payload := map[string]any{"name": randJSONValue(rng, 0), "nested": randJSONValue(rng, 0), oddStrings[rng.Intn(len(oddStrings))]: randJSONValue(rng, 0)}
		if rng.Intn(5) == 0 {
			payload = nil
		}
		fp := Fingerprint{Hash: oddStrings[rng.Intn(len(oddStrings))], Entity: "Lead", Source: FingerprintRead, At: randTime(rng), Payload: payload}
		got, err := encodeFingerprint(fp)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(fingerprintV1{V: valueVersion, Hash: fp.Hash, Entity: fp.Entity, Source: fp.Source, At: fp.At.UTC(), Payload: fp.Payload})
		sameJSON(t, "fingerprint", got, want)

		in := Intent{ID: "0197", System: "bluerocktel", Entity: "prospect", Flow: "f", At: randTime(rng), Payload: payload,
			Match: map[string]string{"email": oddStrings[rng.Intn(len(oddStrings))]}}
		got, _ = encodeIntent(in)
		want, _ = json.Marshal(intentV1{V: valueVersion, ID: in.ID, System: in.System, Entity: in.Entity, Flow: in.Flow, At: in.At.UTC(), Match: in.Match, Payload: in.Payload})
		sameJSON(t, "intent", got, want)

		r := funnel.New("0197a3c8")
		r.Sources = map[string]funnel.Source{}
		for k, v := range payload {
			r.Fields[k] = v
			r.Sources[k] = funnel.Source{System: "tribecrm", At: randTime(rng)}
		}
		r.Links["tribecrm"] = oddStrings[rng.Intn(len(oddStrings))]
		if rng.Intn(3) == 0 {
			r.Gone = map[string]time.Time{"overplane": randTime(rng).UTC()}
		}
		got, _ = encodeRecord(r)
		v := recordV2{V: recordVersion, Fields: r.Fields, Links: r.Links, Gone: r.Gone, Sources: groupSources(r)}
		want, _ = json.Marshal(v)
		sameJSON(t, "record", got, want)
	}
}

func FuzzFastCodec(f *testing.F) {
	f.Add("Acme <b>", 1.5, int64(3))
	f.Fuzz(func(t *testing.T, s string, x float64, n int64) {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return // neither encoder writes these; the engine never stores them
		}
		fp := Fingerprint{Hash: s, Entity: s, At: time.Unix(n%4e9, 0), Payload: map[string]any{s: x, "l": []any{s, x, nil}, "m": map[string]any{s: s}}}
		got, err1 := encodeFingerprint(fp)
		want, err2 := json.Marshal(fingerprintV1{V: valueVersion, Hash: fp.Hash, Entity: fp.Entity, At: fp.At.UTC(), Payload: fp.Payload})
		if (err1 == nil) != (err2 == nil) {
			t.Fatalf("%q %v: error %v, encoding/json's %v", s, x, err1, err2)
		}
		sameJSON(t, fmt.Sprintf("%q %v", s, x), got, want)
	})
}
