package state

import (
	"bytes"
	"fmt"

	"github.com/crmsync/crmsync/funnel"
)

// OpKind says what an Op changes.
type OpKind uint8

// The kinds of Op, one per Batch method (SetCursor with a nil cursor is
// OpDeleteCursor).
const (
	OpSetCursor OpKind = iota + 1
	OpDeleteCursor
	OpPutRecord
	OpLink
	OpUnlink
	OpPutFingerprint
	OpDeleteIntent
	OpPutDeadLetter
	OpDeleteDeadLetter
	OpPutRun
	OpPutIntent
	// OpRestoreDeadLetter is Batch.RestoreDeadLetter: a dead letter stored
	// exactly as given, not merged with the stored one.
	OpRestoreDeadLetter
)

// Op is one change of a Batch, decoded, for another state engine
// (state/pgstate) to apply with the same meaning as Store.Commit.
type Op struct {
	Kind OpKind
	// Key is the cursor key (OpSetCursor, OpDeleteCursor) or the dead-letter
	// key (OpPutDeadLetter, OpRestoreDeadLetter, OpDeleteDeadLetter).
	Key string
	// System and ID name a link, fingerprint or intent: the external id
	// (OpLink, OpUnlink, OpPutFingerprint) or the canonical id
	// (OpDeleteIntent, OpPutIntent).
	System, ID string
	// Cursor is OpSetCursor's value (non-nil, maybe empty); Target is
	// OpLink's canonical id.
	Cursor []byte
	Target string
	// Record is OpPutRecord's golden record, Links included.
	Record *funnel.Record
	// Fingerprint, DeadLetter and Run are the values of their kinds, with
	// the defaults the Batch filled in (times, attempts, key).
	Fingerprint *Fingerprint
	DeadLetter  *DeadLetter
	Run         *Run
	// Intent is OpPutIntent's create intent.
	Intent *Intent
	// Index is the change of the match index ops (OpIndexRecord, ...).
	Index *IndexOp
}

// Ops returns the changes of b in the order they were added, or the error
// that makes Commit fail without writing anything. The values are fresh
// copies. A nil or empty batch has none.
func (b *Batch) Ops() ([]Op, error) {
	if b.Empty() {
		return nil, nil
	}
	if b.err != nil {
		return nil, b.err
	}
	out := make([]Op, len(b.ops))
	for i := range b.ops {
		o, err := b.ops[i].export()
		if err != nil {
			return nil, err
		}
		out[i] = o
	}
	return out, nil
}

func (o *op) export() (Op, error) {
	sys, id, _ := bytes.Cut(o.key, []byte{0})
	switch o.kind {
	case opSetCursor:
		return Op{Kind: OpSetCursor, Key: string(o.key), Cursor: bytes.Clone(o.val)}, nil
	case opDeleteCursor:
		return Op{Kind: OpDeleteCursor, Key: string(o.key)}, nil
	case opPutRecord:
		r, err := decodeRecord(o.id, o.val)
		if err != nil {
			return Op{}, fmt.Errorf("PutRecord %s: %w", o.id, err)
		}
		r.Links = make(map[string]string, len(o.links))
		for k, v := range o.links {
			r.Links[k] = v
		}
		return Op{Kind: OpPutRecord, Record: r}, nil
	case opLink:
		return Op{Kind: OpLink, System: string(sys), ID: string(id), Target: string(o.val)}, nil
	case opUnlink:
		return Op{Kind: OpUnlink, System: string(sys), ID: string(id)}, nil
	case opPutFingerprint:
		f, err := decodeFingerprint(o.val)
		if err != nil {
			return Op{}, fmt.Errorf("PutFingerprint %s/%s: %w", sys, id, err)
		}
		return Op{Kind: OpPutFingerprint, System: string(sys), ID: string(id), Fingerprint: f}, nil
	case opDeleteIntent:
		return Op{Kind: OpDeleteIntent, System: string(sys), ID: string(id)}, nil
	case opPutIntent:
		in, err := decodeIntent(o.val)
		if err != nil {
			return Op{}, fmt.Errorf("PutIntent %s/%s: %w", sys, id, err)
		}
		return Op{Kind: OpPutIntent, System: string(sys), ID: string(id), Intent: &in}, nil
	case opPutDeadLetter, opRestoreDeadLetter:
		d, err := fromDeadLetterV1(*o.dl)
		if err != nil {
			return Op{}, fmt.Errorf("PutDeadLetter %s: %w", o.key, err)
		}
		kind := OpPutDeadLetter
		if o.kind == opRestoreDeadLetter {
			kind = OpRestoreDeadLetter
		}
		return Op{Kind: kind, Key: string(o.key), DeadLetter: &d}, nil
	case opDeleteDeadLetter:
		return Op{Kind: OpDeleteDeadLetter, Key: string(o.key)}, nil
	case opPutRun:
		r, err := decodeRun(o.val)
		if err != nil {
			return Op{}, fmt.Errorf("PutRun %s: %w", o.flow, err)
		}
		return Op{Kind: OpPutRun, Run: &r}, nil
	}
	if isIndexOp(o.kind) {
		return o.exportIndex()
	}
	return Op{}, fmt.Errorf("unknown batch op %d", o.kind)
}
