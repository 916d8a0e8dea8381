package api

import (
	"slices"
	"testing"
)

// The vectors were computed outside Go (Python's hmac, hashlib.sha512 and
// base64), so Sign is held to the reading of Tribe's page, not to itself.
const (
	vecSecret = "It's a Secret to Everybody"
	vecBody   = `{"webhookId":"5b0c","payload":{"entityId":"e1"}}`
	vecHex    = "OTkxMjA4NmJmZjhhYTNkYmE5NTZmYTUxMDczMTE2NGM0ZDZmZjNiZWY1Zjk4ZGRmYzVhMGVkNTEwZWU0ZGJlYzQ3NTljY2QyYzY0MDRhNDc5ZDU0NDllY2M3NTA5MWNhMjdjMDBiOTNiZDdhNzFkMDczMmUxYTFhNzk0N2JkNDE="
	vecUpper  = "OTkxMjA4NkJGRjhBQTNEQkE5NTZGQTUxMDczMTE2NEM0RDZGRjNCRUY1Rjk4RERGQzVBMEVENTEwRUU0REJFQzQ3NTlDQ0QyQzY0MDRBNDc5RDU0NDlFQ0M3NTA5MUNBMjdDMDBCOTNCRDdBNzFEMDczMkUxQTFBNzk0N0JENDE="
	vecRaw    = "mRIIa/+Ko9upVvpRBzEWTE1v8771+Y3fxaDtUQ7k2+xHWczSxkBKR51USezHUJHKJ8ALk716cdBzLhoaeUe9QQ=="
)

func TestSignIsBase64OfTheHexHMACSHA512(t *testing.T) {
	if got := Sign(vecSecret, []byte(vecBody)); got != vecHex {
		t.Errorf("Sign = %s, want %s", got, vecHex)
	}
	if got := SignRaw(vecSecret, []byte(vecBody)); got != vecRaw {
		t.Errorf("SignRaw = %s, want %s", got, vecRaw)
	}
	want := []string{vecHex, vecUpper, vecRaw}
	if got := Signatures(vecSecret, []byte(vecBody)); !slices.Equal(got, want) {
		t.Errorf("Signatures = %q, want %q", got, want)
	}
	if Sign("other", []byte(vecBody)) == vecHex || Sign(vecSecret, []byte(vecBody+" ")) == vecHex {
		t.Error("the signature does not depend on the secret and the body")
	}
}

func TestMutationNamesRoundTrip(t *testing.T) {
	for _, rel := range []bool{false, true} {
		for _, op := range []string{OpCreate, OpUpdate, OpDelete} {
			m := Mutation(rel, op)
			if got, ok := MutationOp(m); !ok || got != op {
				t.Errorf("MutationOp(Mutation(%v, %s) = %s) = %s, %v", rel, op, m, got, ok)
			}
		}
	}
	if Mutation(true, OpDelete) != RelationshipDeletionMutation || Mutation(false, OpCreate) != EntityCreationMutation {
		t.Error("Mutation does not spell Tribe's names")
	}
	if _, ok := MutationOp("EntityMergeMutation"); ok {
		t.Error("an unknown mutation name was taken")
	}
}
