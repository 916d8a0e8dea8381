package state

import (
	"encoding/hex"
)

// A link's value is its canonical id. Since schema version 3 an id that is
// a UUID in its canonical text form (36 characters, lowercase, as the
// engine makes them) is stored as linkUUID and its 16 bytes (17 bytes
// instead of 36); any other id is stored as it is, or after linkRaw when it
// starts with one of these two bytes. Values written before version 3 are
// the ids as they are: they read the same unless an id began with byte 1 or
// 2, which no crmsync ever generated.
const (
	linkUUID byte = 0x01
	linkRaw  byte = 0x02
)

// encodeLinkValue returns the stored form of canonical id id.
func encodeLinkValue(id string) []byte {
	if u, ok := parseUUID(id); ok {
		return append([]byte{linkUUID}, u[:]...)
	}
	if id != "" && (id[0] == linkUUID || id[0] == linkRaw) {
		return append([]byte{linkRaw}, id...)
	}
	return []byte(id)
}

// decodeLinkValue returns the canonical id of a stored link value.
func decodeLinkValue(v []byte) string {
	switch {
	case len(v) == 17 && v[0] == linkUUID:
		return formatUUID(v[1:])
	case len(v) > 0 && v[0] == linkRaw:
		return string(v[1:])
	}
	return string(v)
}

// parseUUID parses s when it is a UUID in canonical lowercase form
// (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx): exactly what formatUUID gives
// back, so that the id reads back byte for byte.
func parseUUID(s string) (u [16]byte, ok bool) {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return u, false
	}
	j := 0
	for i := 0; i < 36; {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			i++
			continue
		}
		hi, ok1 := lowerHex(s[i])
		lo, ok2 := lowerHex(s[i+1])
		if !ok1 || !ok2 {
			return u, false
		}
		u[j] = hi<<4 | lo
		j++
		i += 2
	}
	return u, true
}

func lowerHex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

func formatUUID(b []byte) string {
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:36], b[10:16])
	return string(out[:])
}
