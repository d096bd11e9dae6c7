package server

import (
	"fmt"
	"os"

	"github.com/cairn-db/cairn/kv"
	"github.com/cairn-db/cairn/storage"
)

// RestoreSnapshot prepares dataDir, which must be new or empty, to start a
// new cluster from a snapshot saved by Maintenance.Snapshot (`cairn
// snapshot save`, `etcdctl snapshot save`): it checks the file, then loads
// it. Start every member of the new cluster from its own restored copy of
// the same file; their raft logs begin empty, and the data's revisions
// continue where the snapshot ended. A bad file or a used directory is
// refused before anything is written.
func RestoreSnapshot(file, dataDir string) (kv.BackupInfo, error) {
	if _, found, err := readMember(dataDir); err != nil || found {
		if err == nil {
			err = fmt.Errorf("server: restore: %s already belongs to a member (%s); restore into a new directory", dataDir, memberFile)
		}
		return kv.BackupInfo{}, err
	}
	f, err := os.Open(file)
	if err != nil {
		return kv.BackupInfo{}, fmt.Errorf("server: restore: %w", err)
	}
	defer f.Close()
	st, err := storage.Open(dataDir, storage.Options{})
	if err != nil {
		return kv.BackupInfo{}, fmt.Errorf("server: restore: %w", err)
	}
	defer st.Close()
	if !st.IsEmpty() {
		return kv.BackupInfo{}, fmt.Errorf("server: restore: %s holds a raft log; restore into a new directory", dataDir)
	}
	info, err := kv.RestoreBackup(st.DB(), f)
	if err != nil {
		return kv.BackupInfo{}, fmt.Errorf("server: restore %s: %w", file, err)
	}
	return info, nil
}
