package replicated

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"time"
)

// createV2Cmd is the compact form of CreateCmd (kind KindCreateV2, format
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
// exactly the CreateCmd it was encoded from (see expand): the same absolute
// paths byte for byte, so the replicated state, its snapshots, views and
// resumes do not know which kind created a transfer. A plan whose files hold
// anything beyond the three columns is not encoded this way (CompactCreate).
type createV2Cmd struct {
	Transfer        Transfer      `json:"transfer"` // Files left out
	MaxQueued       int           `json:"maxQueued"`
	HistoryCount    int           `json:"historyCount"`
	HistoryAge      time.Duration `json:"historyAge"`
	SourceRoot      nameOf        `json:"sourceRoot"`
	DestinationRoot nameOf        `json:"destinationRoot"`
	Sources         nameList      `json:"sources"`
	Destinations    nameList      `json:"destinations,omitempty"`
	Bytes           []int64       `json:"bytes"`
}

// createV3Cmd is createV2Cmd with the transfer's directories (kind
// KindCreateV3, format 4), as two more columns relative to the same roots
// (which then hold the directories too): DirSources, and DirDestinations,
// left out when each equals its source's relative name. It is also the
// kind of a create whose names are not all plain UTF-8, even without
// directories: the names are escaped (names.go), which builds before
// format 4 would misread, so they never see them in an entry they read.
type createV3Cmd struct {
	createV2Cmd
	DirSources      nameList `json:"dirSources,omitempty"`
	DirDestinations nameList `json:"dirDestinations,omitempty"`
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

// CompactCreate encodes c as a createV2Cmd, and checks that it expands to c
// again. False if it does not (a file with more than a source, destination
// and size, paths without a common root, directories, which only
// createV3Cmd carries): the proposer then writes c as it is.
func CompactCreate(c CreateCmd) (createV2Cmd, bool) {
	if len(c.Transfer.Dirs) > 0 {
		return createV2Cmd{}, false
	}
	v, ok := CompactCreateV3(c)
	return v.createV2Cmd, ok
}

// CompactCreateV3 encodes c as a createV3Cmd, and checks that it expands to
// c again, as CompactCreate does.
func CompactCreateV3(c CreateCmd) (createV3Cmd, bool) {
	files, dirs := c.Transfer.Files, c.Transfer.Dirs
	v := createV3Cmd{createV2Cmd: createV2Cmd{
		Transfer:     c.Transfer,
		MaxQueued:    c.MaxQueued,
		HistoryCount: c.HistoryCount,
		HistoryAge:   c.HistoryAge,
	}}
	v.Transfer.Files, v.Transfer.Dirs = nil, nil
	srcs := make([]string, 0, len(files)+len(dirs))
	dsts := make([]string, 0, len(files)+len(dirs))
	for _, f := range files {
		if !bare(f) {
			return createV3Cmd{}, false
		}
		srcs, dsts = append(srcs, f.Source), append(dsts, f.Destination)
	}
	for _, d := range dirs {
		if d.State != "" || d.Reason != "" {
			return createV3Cmd{}, false
		}
		srcs, dsts = append(srcs, d.Source), append(dsts, d.Destination)
	}
	srcRoot, ok1 := commonRoot(srcs)
	dstRoot, ok2 := commonRoot(dsts)
	if !ok1 || !ok2 {
		return createV3Cmd{}, false
	}
	v.SourceRoot, v.DestinationRoot = nameOf(srcRoot), nameOf(dstRoot)
	if len(files) > 0 {
		v.Sources, v.Bytes = make([]string, len(files)), make([]int64, len(files))
		v.Destinations = make([]string, len(files))
	}
	if len(dirs) > 0 {
		v.DirSources, v.DirDestinations = make([]string, len(dirs)), make([]string, len(dirs))
	}
	same, dirsSame := true, true
	for i := range srcs {
		s, ok1 := underRoot(srcRoot, srcs[i])
		d, ok2 := underRoot(dstRoot, dsts[i])
		if !ok1 || !ok2 {
			return createV3Cmd{}, false
		}
		if i < len(files) {
			v.Sources[i], v.Destinations[i], v.Bytes[i] = s, d, files[i].Bytes
			same = same && s == d
		} else {
			v.DirSources[i-len(files)], v.DirDestinations[i-len(files)] = s, d
			dirsSame = dirsSame && s == d
		}
	}
	if same {
		v.Destinations = nil
	}
	if dirsSame {
		v.DirDestinations = nil
	}
	// The proof, before anything is proposed: the entry expands to the
	// very files and directories planned.
	back, err := v.expand()
	if err != nil || len(back.Transfer.Files) != len(files) || len(back.Transfer.Dirs) != len(dirs) {
		return createV3Cmd{}, false
	}
	for i, f := range back.Transfer.Files {
		if f.Source != files[i].Source || f.Destination != files[i].Destination || f.Bytes != files[i].Bytes {
			return createV3Cmd{}, false
		}
	}
	for i, d := range back.Transfer.Dirs {
		if d != dirs[i] {
			return createV3Cmd{}, false
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

// expand turns the entry back into the CreateCmd it was encoded from.
func (v createV2Cmd) expand() (CreateCmd, error) {
	n := len(v.Sources)
	if len(v.Bytes) != n || (v.Destinations != nil && len(v.Destinations) != n) {
		return CreateCmd{}, fmt.Errorf("%d sources, %d sizes and %d destinations", n, len(v.Bytes), len(v.Destinations))
	}
	c := CreateCmd{
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
		src, dst := v.pathsAt(v.Sources, v.Destinations, i)
		c.Transfer.Files[i] = File{Source: src, Destination: dst, Bytes: v.Bytes[i]}
	}
	return c, nil
}

// expand turns the entry back into the CreateCmd it was encoded from.
func (v createV3Cmd) expand() (CreateCmd, error) {
	c, err := v.createV2Cmd.expand()
	if err != nil {
		return c, err
	}
	n := len(v.DirSources)
	if v.DirDestinations != nil && len(v.DirDestinations) != n {
		return CreateCmd{}, fmt.Errorf("%d directory sources and %d destinations", n, len(v.DirDestinations))
	}
	c.Transfer.Dirs = nil
	if n > 0 {
		c.Transfer.Dirs = make([]Dir, n)
	}
	for i := range n {
		src, dst := v.pathsAt(v.DirSources, v.DirDestinations, i)
		c.Transfer.Dirs[i] = Dir{Source: src, Destination: dst}
	}
	return c, nil
}

// pathsAt returns the absolute source and destination of entry i of a
// column of relative sources and its column of relative destinations (nil:
// each the same as its source).
func (v createV2Cmd) pathsAt(srcs, dsts []string, i int) (src, dst string) {
	rel := srcs[i]
	if dsts != nil {
		rel = dsts[i]
	}
	return joinRoot(string(v.SourceRoot), srcs[i]), joinRoot(string(v.DestinationRoot), rel)
}

// decodeCreateV3 decodes a KindCreateV3 entry's data into the CreateCmd it
// stands for.
func decodeCreateV3(data []byte) (CreateCmd, error) {
	var v createV3Cmd
	if err := json.Unmarshal(data, &v); err != nil {
		return CreateCmd{}, err
	}
	return v.expand()
}

// decodeCreateV2 decodes a KindCreateV2 entry's data into the CreateCmd it
// stands for.
func decodeCreateV2(data []byte) (CreateCmd, error) {
	var v createV2Cmd
	if err := json.Unmarshal(data, &v); err != nil {
		return CreateCmd{}, err
	}
	return v.expand()
}
