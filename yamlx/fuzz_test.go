package yamlx

import (
	"fmt"
	"testing"

	"gopkg.in/yaml.v3"
)

// FuzzDecode: whatever the text, Parse and Decode never panic, every
// problem has a line and a message, and Check finds a wrong type exactly
// when yaml.v3 fails to decode: Decode's messages rely on that.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		"name: a\ntimeout: 30s\nserver: {listen: x, port: 1}\nitems: [{id: a, steps: [x]}]\n",
		"timeout: 30\nenabled: maybe\ntags: solo\nlimits: {a: x}\n",
		"base: &b {id: x}\nitems: [*b, {<<: *b, id: y}, {<<: [1]}]\n",
		"a: &x [*x]\n",
		"name: a\nname: b\nserver:\n  port: 1\n  port: x\n",
		"a:\n\tb: 1\n",
		"level: medium\nself: {a: b}\nwhen: 2024-01-01\n",
		"items:\n  - <<: {id: a}\n    <<: {id: b}\n",
		"? [a]\n: 1\nlimits: {[x]: 1}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		doc, errs := Parse(data, "a fuzz file")
		for _, e := range errs {
			if e.Line < 1 || e.Msg == "" {
				t.Fatalf("problem without a line or message: %+v", e)
			}
		}
		if doc == nil {
			return
		}
		checked := Check(doc, fileType, Schema{})
		wrongType := false
		for _, e := range checked {
			if e.Line < 1 || e.Msg == "" {
				t.Fatalf("problem without a line or message: %+v", e)
			}
			wrongType = wrongType || e.Type != nil
		}
		for _, e := range Decode(doc, &file{}, Schema{}) {
			if e.Msg == "" {
				t.Fatalf("problem without a message: %+v", e)
			}
		}
		var v file
		err := yamlDecode(doc, &v)
		if _, isType := err.(*yaml.TypeError); err != nil && !isType {
			return // not a type problem: aliasing, a merge of a non-mapping
		}
		if (err != nil) != wrongType {
			t.Fatalf("yaml.v3 says %v; Check says %q", err, msgs(checked))
		}
	})
}

// yamlDecode is yaml.v3 alone; its panics are not type problems.
func yamlDecode(n *yaml.Node, v any) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return n.Decode(v)
}
