package mvcc

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Set and Delete write a record of another table of the state machine (the
// lease table) into this batch, so that it commits atomically with the
// batch's changes and its applied index. The key must start with the
// state machine's prefix 0x01 and must not be in one of this package's
// tables.
func (b *Batch) Set(key, value []byte, _ *pebble.WriteOptions) error {
	if err := b.foreign(key); err != nil {
		return err
	}
	return b.pb.Set(key, value, nil)
}

// Delete removes a record written by Set; see Set.
func (b *Batch) Delete(key []byte, _ *pebble.WriteOptions) error {
	if err := b.foreign(key); err != nil {
		return err
	}
	return b.pb.Delete(key, nil)
}

func (b *Batch) foreign(key []byte) error {
	if err := b.usable(); err != nil {
		return err
	}
	if len(key) < 2 || key[0] != keyspacePrefix {
		return fmt.Errorf("mvcc: foreign key %x is outside the state machine's keyspace", key)
	}
	switch key[1] {
	case tagHistory, tagCurrent, tagLease, tagMeta, tagKeyRev:
		return fmt.Errorf("mvcc: foreign key %x is in one of mvcc's tables", key)
	}
	return nil
}
