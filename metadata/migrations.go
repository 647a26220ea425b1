package metadata

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// A migration brings a database from version-1 to version.
type migration struct {
	version int64
	migrate func(*bolt.Tx) error
}

// migrations lists the upgrades of schema v1 in increasing version order.
// Bumping dbVersion means appending the step that gets older data there,
// with a test.
//
// It is empty because this daemon has only ever written dbVersion. The
// earlier revisions were containerd's own upgrades (snapshot child links,
// ingest records, sandboxes); a database containerd left at an older
// version is not migrated, only stamped.
var migrations []migration

// migrate runs, inside tx, every migration newer than from.
func migrate(tx *bolt.Tx, from int64) error {
	for _, m := range migrations {
		if m.version <= from {
			continue
		}
		if err := m.migrate(tx); err != nil {
			return fmt.Errorf("migrate metadata to %s.%d: %w", schemaVersion, m.version, err)
		}
	}
	return nil
}
