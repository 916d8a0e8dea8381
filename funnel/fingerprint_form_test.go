package funnel

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"math/rand"
	"sort"
	"testing"
)

// fmtFingerprint is FingerprintValues as it was first written (through
// fmt), the form every stored fingerprint has.
func fmtFingerprint(m map[string]any) string {
	h := sha256.New()
	fmtWriteValue(h, m, true)
	return hex.EncodeToString(h.Sum(nil)[:16])
}

func fmtWriteValue(h writer, v any, top bool) {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			if top && isMeta(k) {
				continue
			}
			keys = append(keys, k)
		}
		sort.Strings(keys)
		_, _ = h.Write([]byte("{"))
		for _, k := range keys {
			_, _ = fmt.Fprintf(h, "%q:", k)
			fmtWriteValue(h, x[k], false)
			_, _ = h.Write([]byte(","))
		}
		_, _ = h.Write([]byte("}"))
	case []any:
		_, _ = h.Write([]byte("["))
		for _, e := range x {
			fmtWriteValue(h, e, false)
			_, _ = h.Write([]byte(","))
		}
		_, _ = h.Write([]byte("]"))
	default:
		_, _ = fmt.Fprintf(h, "%T:%v", x, x)
	}
}

type writer interface{ Write([]byte) (int, error) }

var formScalars = []any{"", "Acme B.V.", "é\"\\\n\x00\u2028", "\xff\xfe", 0.0, -0.0, 1.0, 1e21, 1e-7, 123456789.125, math.MaxFloat64,
	math.SmallestNonzeroFloat64, math.Inf(1), math.Inf(-1), math.NaN(), true, false, nil, 0, -42, int64(1) << 62, int32(7), uint8(3),
	float32(1.5), []string{"a"}, map[string]string{"k": "v"}, struct{ A int }{1}}

// TestFingerprintFormUnchanged: the fast form hashes every kind of value
// exactly as the fmt form did, so no stored fingerprint changes.
func TestFingerprintFormUnchanged(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	var gen func(depth int) any
	gen = func(depth int) any {
		switch n := rng.Intn(6); {
		case n == 0 && depth < 3:
			m := map[string]any{}
			for i := rng.Intn(5); i > 0; i-- {
				m[fmt.Sprint(formScalars[rng.Intn(3)], i)] = gen(depth + 1)
			}
			return m
		case n == 1 && depth < 3:
			var l []any
			for i := rng.Intn(4); i > 0; i-- {
				l = append(l, gen(depth+1))
			}
			return l
		case n == 2:
			return rng.NormFloat64() * math.Pow(10, float64(rng.Intn(40)-20))
		default:
			return formScalars[rng.Intn(len(formScalars))]
		}
	}
	for i := 0; i < 5000; i++ {
		m := map[string]any{"name": gen(0), "email": gen(0), "created_at": gen(0), "nested": gen(0), "k\"q": gen(0)}
		if got, want := FingerprintValues(m), fmtFingerprint(m); got != want {
			t.Fatalf("value %#v: fingerprint %s, the stored form gives %s", m, got, want)
		}
	}
}

func FuzzFingerprintForm(f *testing.F) {
	f.Add("Acme", 1.5, true, int64(3))
	f.Fuzz(func(t *testing.T, s string, x float64, b bool, n int64) {
		m := map[string]any{s: x, "b": b, "n": n, "l": []any{s, x, nil}, "m": map[string]any{s: s}}
		if got, want := FingerprintValues(m), fmtFingerprint(m); got != want {
			t.Fatalf("%#v: %s, stored form %s", m, got, want)
		}
	})
}

func BenchmarkFingerprint(b *testing.B) {
	m := map[string]any{"name": "Acme B.V.", "email": "info@acme.example", "stage": "Lead", "phone": "+31 20 123 4567",
		"address": map[string]any{"street": "Main 1", "city": "Amsterdam", "country": "NL"}, "employees": 42.0, "active": true}
	b.Run("fmt", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			fmtFingerprint(m)
		}
	})
	b.Run("append", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			FingerprintValues(m)
		}
	})
}
