package transfer

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"time"
)

// createV2Cmd is the compact form of createCmd (kind KindCreateV2, format
// 2). A transfer's files mostly share two long directory prefixes and, below
// them, the same relative names, so the entry carries the prefixes once and
// the files as columns:
//
//   - SourceRoot and DestinationRoot: the longest common prefix of the
//     files' sources (destinations) that ends at a "/" or is a whole path.
//   - Sources: each file's source relative to SourceRoot (see joinRoot).
//   - Destinations: the same for the destinations, left out when every
//     file's relative destination equals its relative source.
//   - Bytes: each file's size.
//
// Transfer carries everything else, without its files. Applied, it becomes
// exactly the createCmd it was encoded from (see expand): the same absolute
// paths byte for byte, so the replicated state, its snapshots, views and
// resumes do not know which kind created a transfer. A plan whose files hold
// anything beyond the three columns is not encoded this way (compactCreate).
type createV2Cmd struct {
	Transfer        Transfer      `json:"transfer"` // Files left out
	MaxQueued       int           `json:"maxQueued"`
	HistoryCount    int           `json:"historyCount"`
	HistoryAge      time.Duration `json:"historyAge"`
	SourceRoot      string        `json:"sourceRoot"`
	DestinationRoot string        `json:"destinationRoot"`
	Sources         []string      `json:"sources"`
	Destinations    []string      `json:"destinations,omitempty"`
	Bytes           []int64       `json:"bytes"`
}

// joinRoot is the inverse of underRoot: root itself for an empty rel, else
// root and rel with one "/" between them. It is string concatenation, not
// filepath.Join, which cleans its result: the round trip through underRoot
// gives back every path byte for byte, whatever its "..", doubled slashes or
// names.
func joinRoot(root, rel string) string {
	switch {
	case rel == "":
		return root
	case strings.HasSuffix(root, "/"):
		return root + rel
	default:
		return root + "/" + rel
	}
}

// underRoot returns p relative to root ("" for root itself) if p is root or
// lies below it (after a "/"), with joinRoot(root, rel) == p.
func underRoot(root, p string) (string, bool) {
	if p == root {
		return "", true
	}
	prefix := root
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	if root == "" || len(p) <= len(prefix) || !strings.HasPrefix(p, prefix) {
		return "", false
	}
	return p[len(prefix):], true
}

// commonRoot is the longest root that every path is or lies under: the first
// path, cut back at its last "/" until it holds them all. False if there is
// none (paths that are not absolute, say).
func commonRoot(paths []string) (string, bool) {
	if len(paths) == 0 {
		return "", true
	}
	root := paths[0]
	for _, p := range paths[1:] {
		for {
			if _, ok := underRoot(root, p); ok {
				break
			}
			i := strings.LastIndex(root, "/")
			switch {
			case i < 0:
				return "", false
			case i == 0 && root == "/":
				return "", false
			case i == 0:
				root = "/"
			default:
				root = root[:i]
			}
		}
	}
	return root, true
}

// compactCreate encodes c as a createV2Cmd, and checks that it expands to c
// again. False if it does not (a file with more than a source, destination
// and size, paths without a common root): the proposer then writes c as it
// is.
func compactCreate(c createCmd) (createV2Cmd, bool) {
	files := c.Transfer.Files
	v := createV2Cmd{
		Transfer:     c.Transfer,
		MaxQueued:    c.MaxQueued,
		HistoryCount: c.HistoryCount,
		HistoryAge:   c.HistoryAge,
	}
	v.Transfer.Files = nil
	srcs := make([]string, len(files))
	dsts := make([]string, len(files))
	for i, f := range files {
		if !bare(f) {
			return createV2Cmd{}, false
		}
		srcs[i], dsts[i] = f.Source, f.Destination
	}
	var ok bool
	if v.SourceRoot, ok = commonRoot(srcs); !ok {
		return createV2Cmd{}, false
	}
	if v.DestinationRoot, ok = commonRoot(dsts); !ok {
		return createV2Cmd{}, false
	}
	same := true
	if len(files) > 0 {
		v.Sources, v.Bytes = make([]string, len(files)), make([]int64, len(files))
		v.Destinations = make([]string, len(files))
	}
	for i, f := range files {
		s, ok1 := underRoot(v.SourceRoot, f.Source)
		d, ok2 := underRoot(v.DestinationRoot, f.Destination)
		if !ok1 || !ok2 {
			return createV2Cmd{}, false
		}
		v.Sources[i], v.Destinations[i], v.Bytes[i] = s, d, f.Bytes
		same = same && s == d
	}
	if same {
		v.Destinations = nil
	}
	// The proof, before anything is proposed: the entry expands to the
	// very files planned.
	back, err := v.expand()
	if err != nil || len(back.Transfer.Files) != len(files) {
		return createV2Cmd{}, false
	}
	for i, f := range back.Transfer.Files {
		if f.Source != files[i].Source || f.Destination != files[i].Destination || f.Bytes != files[i].Bytes {
			return createV2Cmd{}, false
		}
	}
	return v, true
}

// bare reports whether f holds nothing but a source, a destination and a
// size, as a planned file does.
func bare(f File) bool {
	return f.State == "" && f.SHA256 == "" && f.Reason == "" && !f.Started && !f.SourceDeleted &&
		reflect.ValueOf(f.Checkpoint).IsZero()
}

// expand turns the entry back into the createCmd it was encoded from.
func (v createV2Cmd) expand() (createCmd, error) {
	n := len(v.Sources)
	if len(v.Bytes) != n || (v.Destinations != nil && len(v.Destinations) != n) {
		return createCmd{}, fmt.Errorf("%d sources, %d sizes and %d destinations", n, len(v.Bytes), len(v.Destinations))
	}
	c := createCmd{
		Transfer:     v.Transfer,
		MaxQueued:    v.MaxQueued,
		HistoryCount: v.HistoryCount,
		HistoryAge:   v.HistoryAge,
	}
	c.Transfer.Files = nil
	if n > 0 {
		c.Transfer.Files = make([]File, n)
	}
	for i := range n {
		rel := v.Sources[i]
		if v.Destinations != nil {
			rel = v.Destinations[i]
		}
		c.Transfer.Files[i] = File{
			Source:      joinRoot(v.SourceRoot, v.Sources[i]),
			Destination: joinRoot(v.DestinationRoot, rel),
			Bytes:       v.Bytes[i],
		}
	}
	return c, nil
}

// decodeCreateV2 decodes a KindCreateV2 entry's data into the createCmd it
// stands for.
func decodeCreateV2(data []byte) (createCmd, error) {
	var v createV2Cmd
	if err := json.Unmarshal(data, &v); err != nil {
		return createCmd{}, err
	}
	return v.expand()
}
