package transfer

// Views of transfers a window of files at a time (Window), for the API: a
// transfer of a million files is shown, and followed, without a view of
// every file.

// ViewPage returns the client view of one transfer, with live progress,
// its files and directories within w as files says: FilesAll, FilesNone
// (w is not used) or FilesEnded (only once the transfer has ended).
func (m *Manager) ViewPage(id, root, files string, w Window) (View, bool) {
	return m.state.ViewPage(id, root, pageOf(files, w), files == FilesEnded, m.liveOf(id))
}

// ListPage is ViewPage of the transfers f chooses, in creation order:
// each lists the files and directories of w; next is the After of the
// following page.
func (m *Manager) ListPage(root, files string, w Window, f ListFilter) (views []View, next string, err error) {
	// The live progress of every running job, looked up before the
	// state's lock is taken (liveOf takes m.mu).
	m.mu.Lock()
	ids := make([]string, 0, len(m.jobs))
	for id := range m.jobs {
		ids = append(ids, id)
	}
	m.mu.Unlock()
	live := make(map[string]func(*Transfer) (int, int64), len(ids))
	for _, id := range ids {
		if l := m.liveOf(id); l != nil {
			live[id] = l
		}
	}
	return m.state.ListViews(root, pageOf(files, w), files == FilesEnded, func(id string) func(*Transfer) (int, int64) { return live[id] }, f)
}

// pageOf is the window files lists: none for FilesNone.
func pageOf(files string, w Window) *Window {
	if files == FilesNone {
		return nil
	}
	return &w
}
