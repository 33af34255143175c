package transfer

// Small files to another agent, many in one request: the sender reads each
// whole, and sends its name, size and digest, then its bytes; the receiver
// writes them as .part files without a sync each, makes the batch durable
// at once, checks each digest, renames them into place together, and
// records them in one entry of its log. So a group of small files costs the
// receiver one sync, one rename pass and one log entry, and the sender one
// round trip, as the local small-file pipeline does (smallpipe.go).

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/ftagent/ftagent/pkg/checkpoint"
	"github.com/ftagent/ftagent/pkg/transfer/endpoint"
	"github.com/ftagent/ftagent/pkg/transfer/replicated"
)

// FileFrame heads one file of a request of several: a line of JSON,
// followed by the file's Size bytes.
type FileFrame struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	Digest string `json:"digest"` // SHA-256, hex, of the bytes as the sender read them
}

// maxFrameHeader bounds the JSON line of a frame.
const maxFrameHeader = 64 << 10

// WriteFrame writes a frame's header and data to w.
func WriteFrame(w io.Writer, f FileFrame, data []byte) error {
	if int64(len(data)) != f.Size {
		return fmt.Errorf("frame of %s: %d bytes for a size of %d", f.Path, len(data), f.Size)
	}
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	if _, err := w.Write(append(b, '\n')); err != nil {
		return err
	}
	_, err = w.Write(data)
	return err
}

// readFrame reads the next frame's header (io.EOF when there is none).
func readFrame(r *bufio.Reader) (FileFrame, error) {
	line, err := r.ReadSlice('\n')
	if err == io.EOF && len(line) == 0 {
		return FileFrame{}, io.EOF
	}
	if errors.Is(err, bufio.ErrBufferFull) {
		return FileFrame{}, inboundErr(InboundRefused, "a file's header is longer than %d bytes", maxFrameHeader)
	}
	if err != nil {
		return FileFrame{}, err
	}
	var f FileFrame
	if err := json.Unmarshal(line, &f); err != nil {
		return FileFrame{}, inboundErr(InboundRefused, "a file's header: %v", err)
	}
	if f.Size < 0 || f.Size > smallFileMax || f.Digest == "" {
		return FileFrame{}, inboundErr(InboundRefused, "%s: a file sent whole has a size of 0 to %d bytes and a digest", f.Path, smallFileMax)
	}
	return f, nil
}

// FileResult is the outcome of one file of a request of several: Code is
// empty when it was committed, else the refusal's (Inbound*).
type FileResult struct {
	Path  string `json:"path"`
	Code  string `json:"code,omitempty"`
	Error string `json:"error,omitempty"`
}

// ReceiveFiles receives small files whole, as the frames of body, and
// commits those it can: the results are in the frames' order. An error
// (the lease lost, the body cut, storage failing) means nothing of the
// batch was recorded; files it renamed into place are then found by the
// sender's next status request (ReceiveStatus).
func (m *Manager) ReceiveFiles(ctx context.Context, ref InboundRef, overwrite bool, body io.Reader) ([]FileResult, error) {
	ref.Path = ""
	wctx, lease, _, done, err := m.begin(ctx, ref)
	if err != nil {
		return nil, err
	}
	defer done()
	if a, ok := body.(interface{ Abort() }); ok {
		stop := context.AfterFunc(wctx, a.Abort)
		defer stop()
	}
	parts, err := m.ep.BeginParts(wctx)
	if err != nil {
		return nil, classifyInbound("begin the batch", err)
	}
	defer parts.Close()
	type item struct {
		frame FileFrame
		abs   string
		res   FileResult
	}
	var items []*item
	br := bufio.NewReaderSize(body, maxFrameHeader)
	buf := make([]byte, 256<<10)
	for {
		fr, err := readFrame(br)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		it := &item{frame: fr, res: FileResult{Path: fr.Path}}
		items = append(items, it)
		refuse := func(err error) {
			var ie *InboundError
			if errors.As(err, &ie) {
				it.res.Code, it.res.Error = ie.Code, ie.Error()
			} else {
				it.res.Code, it.res.Error = InboundRefused, err.Error()
			}
		}
		data := io.LimitReader(br, fr.Size)
		if it.abs, err = m.resolveInbound(fr.Path); err != nil {
			refuse(err)
		} else if !overwrite {
			if exists, err := m.ep.Exists(wctx, it.abs); err != nil {
				return nil, fmt.Errorf("check %s: %w", it.abs, err)
			} else if exists {
				refuse(inboundErr(InboundExists, "destination exists: %s", it.abs))
			}
		}
		if it.res.Code != "" {
			// Its bytes are read past, not written.
			if _, err := io.CopyBuffer(io.Discard, data, buf); err != nil {
				return nil, fmt.Errorf("read %s: %w", fr.Path, err)
			}
			continue
		}
		part, err := m.ep.OpenPart(wctx, it.abs, 0)
		if err != nil {
			if endpoint.Permanent(err) {
				refuse(classifyInbound("open "+endpoint.PartName(it.abs), err))
				if _, err := io.CopyBuffer(io.Discard, data, buf); err != nil {
					return nil, fmt.Errorf("read %s: %w", fr.Path, err)
				}
				continue
			}
			return nil, classifyInbound("open "+endpoint.PartName(it.abs), err)
		}
		h := checkpoint.NewHash()
		n, err := io.CopyBuffer(io.MultiWriter(part, h), data, buf)
		cerr := part.Close()
		if err == nil && n != fr.Size {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			if cause := context.Cause(wctx); wctx.Err() != nil {
				var ie *InboundError
				if errors.As(cause, &ie) {
					return nil, cause
				}
			}
			return nil, classifyInbound("write "+endpoint.PartName(it.abs), err)
		}
		if cerr != nil {
			return nil, classifyInbound("close "+endpoint.PartName(it.abs), cerr)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != fr.Digest {
			if err := m.ep.Remove(wctx, endpoint.PartName(it.abs)); err != nil {
				m.log.Warn().Err(err).Str("file", it.abs).Msg("remove the .part of a file whose digest differs")
			}
			refuse(inboundErr(InboundDigest, "%s: SHA-256 of what was written here is %s, the sender read %s", it.abs, got, fr.Digest))
		}
	}
	var paths []string
	var written []*item
	for _, it := range items {
		if it.res.Code == "" {
			paths, written = append(paths, it.abs), append(written, it)
		}
	}
	if len(paths) == 0 {
		return results(items, func(it *item) FileResult { return it.res }), nil
	}
	if err := parts.Sync(wctx, paths); err != nil {
		return nil, classifyInbound("sync the batch", err)
	}
	if err := m.raft.VerifyLease(lease.Epoch); err != nil {
		return nil, fmt.Errorf("lease check before rename: %w", err)
	}
	errs := m.ep.RenameAll(wctx, paths, overwrite)
	var renamed []string
	var recorded []replicated.InboundDone
	for k, it := range written {
		switch err := errs[k]; {
		case err == nil, errors.Is(err, endpoint.ErrAlreadyCommitted):
			renamed = append(renamed, it.abs)
			recorded = append(recorded, replicated.InboundDone{Path: it.abs, Size: it.frame.Size, Digest: it.frame.Digest})
		case errors.Is(err, endpoint.ErrExists):
			it.res.Code, it.res.Error = InboundExists, "destination exists: "+it.abs
			if err := m.ep.Remove(wctx, endpoint.PartName(it.abs)); err != nil {
				m.log.Warn().Err(err).Str("file", it.abs).Msg("remove the .part of a file refused")
			}
		case endpoint.Permanent(err):
			it.res.Code, it.res.Error = InboundRefused, fmt.Sprintf("rename into place: %v", err)
		default:
			return nil, classifyInbound("rename into place", err)
		}
	}
	if len(renamed) > 0 {
		if err := m.ep.SyncDirs(context.WithoutCancel(wctx), renamed); err != nil {
			return nil, classifyInbound("sync the directories", err)
		}
		if err := m.applyInbound(lease, replicated.InboundCmd{Op: replicated.InboundFiles, Agent: ref.Agent, ID: ref.ID,
			SenderEpoch: ref.Epoch, Time: time.Now().UTC(), Files: recorded}); err != nil {
			return nil, err
		}
		inboundCommitted()
	}
	return results(items, func(it *item) FileResult { return it.res }), nil
}

func results[T any](items []T, f func(T) FileResult) []FileResult {
	out := make([]FileResult, len(items))
	for i, it := range items {
		out[i] = f(it)
	}
	return out
}
