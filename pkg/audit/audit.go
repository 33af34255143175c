// Package audit writes an instance's audit trail: one JSON line for every
// lease the instance takes and for every change it makes to transfer
// storage, each with the lease epoch it acted under. The trail is what a
// checker (see test/chaos) compares against the lease history to show that
// no instance touched transfer data while another held the lease.
//
// Each record is written with one write(2) to a file opened O_APPEND, so a
// record is in the kernel once Record returns, and survives a kill -9 of the
// process (not a crash of the machine: there is no fsync).
package audit

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// Operations recorded.
const (
	OpLease    = "lease"    // this instance became the active under Epoch
	OpWrite    = "write"    // N bytes written at Offset of Path
	OpTruncate = "truncate" // Path created or cut to Offset bytes
	OpRename   = "rename"   // Path's .part renamed to Path
	OpRemove   = "remove"   // Path removed
	// OpAdmin is an admin action (Action: stop, members.add,
	// members.remove, cancel) on Target by Caller, with its Result.
	OpAdmin = "admin"
	// OpRefused is a call or connection refused: Caller (or Remote when
	// no identity was shown) asked for Action and was refused for Result.
	OpRefused = "refused"
	// OpSwitch is a transfer (Target) moved by this instance, the active
	// under Epoch, to an alternate group of its destination agent: Action
	// is "FROM->TO", Result the reason.
	OpSwitch = "switch"
)

// Record is one line of the trail.
type Record struct {
	// Checked is when the lease was last confirmed valid before the
	// operation (Unix nanoseconds); for OpLease, when the lease was taken.
	Checked  int64  `json:"t"`
	Instance string `json:"inst"`
	Epoch    uint64 `json:"epoch"`
	Op       string `json:"op"`
	Path     string `json:"path,omitempty"`
	Offset   int64  `json:"off,omitempty"`
	N        int64  `json:"n,omitempty"`
	// Security records (OpAdmin, OpRefused) and moves (OpSwitch).
	Caller string `json:"caller,omitempty"`
	Remote string `json:"remote,omitempty"`
	Action string `json:"action,omitempty"`
	Target string `json:"target,omitempty"`
	Result string `json:"result,omitempty"`
}

// Storage reports whether r records a change to transfer storage (a
// write, truncation, rename, removal, or an endpoint's own operation such
// as a mkdir), which the lease must cover: anything but a lease and the
// security records.
func (r Record) Storage() bool {
	switch r.Op {
	case OpLease, OpAdmin, OpRefused, OpSwitch:
		return false
	}
	return true
}

// Log appends records to a file. A nil *Log records nothing.
type Log struct {
	instance string
	mu       sync.Mutex
	f        *os.File
	buf      []byte
}

// Open opens (creating) path for appending records of instance.
func Open(path, instance string) (*Log, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	return &Log{instance: instance, f: f}, nil
}

// Record appends r, stamped with the log's instance name.
func (l *Log) Record(r Record) error {
	if l == nil {
		return nil
	}
	r.Instance = l.instance
	l.mu.Lock()
	defer l.mu.Unlock()
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	l.buf = append(append(l.buf[:0], b...), '\n')
	if _, err := l.f.Write(l.buf); err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	return nil
}

// Lease records that this instance became the active under epoch at t.
func (l *Log) Lease(epoch uint64, t time.Time) error {
	return l.Record(Record{Checked: t.UnixNano(), Epoch: epoch, Op: OpLease})
}

// Security records a security record (OpAdmin or OpRefused) at t.
func (l *Log) Security(t time.Time, r Record) error {
	r.Checked = t.UnixNano()
	return l.Record(r)
}

// Close closes the file.
func (l *Log) Close() error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Close()
}

// Read parses a trail; a torn last line (the process died mid-write) is
// ignored, any other malformed line is an error.
func Read(r io.Reader) ([]Record, error) {
	var out []Record
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var bad error
	line := 0
	for sc.Scan() {
		line++
		if bad != nil {
			return nil, bad // a malformed line that was not the last
		}
		var rec Record
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			bad = fmt.Errorf("audit line %d: %w", line, err)
			continue
		}
		out = append(out, rec)
	}
	return out, sc.Err()
}

// ReadFile is Read of a file.
func ReadFile(path string) ([]Record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Read(f)
}
