package agentclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ftagent/ftagent/pkg/api"
	"github.com/ftagent/ftagent/pkg/client"
	"github.com/ftagent/ftagent/pkg/transfer"
)

// CreateTransfer submits a request with a fresh id; the client's retries
// (to another instance after a failover) carry the same id, so the agent
// creates the transfer once.
func CreateTransfer(ctx context.Context, cl *client.Client, req transfer.Request) (transfer.View, error) {
	return CreateTransferFiles(ctx, cl, req, transfer.FilesAll)
}

// CreateTransferFiles is CreateTransfer, answered with the files as files
// (api.QueryFiles) says: transfer.FilesNone when the caller does not need them.
func CreateTransferFiles(ctx context.Context, cl *client.Client, req transfer.Request, files string) (transfer.View, error) {
	var v transfer.View
	path := api.PathTransfers
	if files != "" && files != transfer.FilesAll {
		path += "?" + url.Values{api.QueryFiles: {files}}.Encode()
	}
	ctx = client.WithRequestTimeout(ctx, CreateTimeout)
	err := cl.Do(ctx, http.MethodPost, path, api.CreateTransferRequest{ID: transfer.NewID(), Request: req}, &v)
	return v, err
}

// CreateTimeout is how long one attempt of a create may take: the active
// lists the request's files and commits them before it answers, which for a
// tree of a million files takes minutes, not the two seconds of an ordinary
// request (clientRequestTimeout). An attempt cut short would be retried and
// start the listing again. A connection that breaks still moves on at once.
const CreateTimeout = 10 * time.Minute

// GetTransfer returns one transfer as the active sees it, with the first
// page of its files (api.DefaultLimit of them, and as many directories).
func GetTransfer(ctx context.Context, cl *client.Client, id string) (transfer.View, error) {
	return GetTransferPage(ctx, cl, id, transfer.Window{})
}

// GetTransferPage returns one transfer with the files and directories of w
// (api.QueryOffset): a limit of 0 is the agent's default (api.DefaultLimit).
// An agent that does not know windows answers with every file.
func GetTransferPage(ctx context.Context, cl *client.Client, id string, w transfer.Window) (transfer.View, error) {
	path := api.TransferPath(id)
	if q := windowQuery(w); len(q) > 0 {
		path += "?" + q.Encode()
	}
	var v transfer.View
	err := cl.Do(ctx, http.MethodGet, path, nil, &v)
	return v, err
}

// GetTransferAll returns one transfer with every file and directory, asked
// for a page of api.MaxLimit at a time: for a caller that checks every
// file (the chaos checker). The view's counts are those of the last page.
func GetTransferAll(ctx context.Context, cl *client.Client, id string) (transfer.View, error) {
	w := transfer.Window{Limit: api.MaxLimit, DirLimit: api.MaxLimit}
	v, err := GetTransferPage(ctx, cl, id, w)
	if err != nil {
		return v, err
	}
	files, dirs := v.Files, v.Dirs
	for v.NextOffset > 0 || v.NextDirOffset > 0 {
		if v.NextOffset > 0 && v.NextOffset <= w.Offset || v.NextDirOffset > 0 && v.NextDirOffset <= w.DirOffset {
			return v, fmt.Errorf("transfer %s: the next page (offset %d, dirOffset %d) does not follow the last (%d, %d)",
				id, v.NextOffset, v.NextDirOffset, w.Offset, w.DirOffset)
		}
		// A list already whole is asked for past its end: none of it.
		w.Offset, w.DirOffset = v.FilesTotal, v.Directories
		if v.NextOffset > 0 {
			w.Offset = v.NextOffset
		}
		if v.NextDirOffset > 0 {
			w.DirOffset = v.NextDirOffset
		}
		if v, err = GetTransferPage(ctx, cl, id, w); err != nil {
			return v, err
		}
		files, dirs = append(files, v.Files...), append(dirs, v.Dirs...)
	}
	v.Files, v.Dirs = files, dirs
	return v, nil
}

// windowQuery is w as query parameters, leaving out what is the agent's
// default.
func windowQuery(w transfer.Window) url.Values {
	q := url.Values{}
	for _, p := range []struct {
		name string
		n    int
	}{{api.QueryOffset, w.Offset}, {api.QueryLimit, w.Limit}, {api.QueryDirOffset, w.DirOffset}, {api.QueryDirLimit, w.DirLimit}} {
		if p.n > 0 {
			q.Set(p.name, strconv.Itoa(p.n))
		}
	}
	return q
}

// GetTransferWait returns one transfer once it has ended or wait has passed
// (api.QueryWait), with its files as files says (api.QueryFiles): the first
// page of them. An agent that does not know these parameters answers at
// once with every file.
func GetTransferWait(ctx context.Context, cl *client.Client, id, files string, wait time.Duration) (TransferBody, error) {
	q := url.Values{api.QueryFiles: {files}}
	if wait > 0 {
		q.Set(api.QueryWait, wait.String())
	}
	var raw client.Raw
	if err := cl.Do(ctx, http.MethodGet, api.TransferPath(id)+"?"+q.Encode(), nil, &raw); err != nil {
		return TransferBody{}, err
	}
	return ParseTransferBody(raw)
}

// TransferBody is a transfer's view as the agent sent it: View holds what
// comes before its files (View.Files is nil, filesTotal counts them), Raw
// the whole body. A caller that prints the view as JSON writes Raw and
// never decodes the files (milliseconds for a page of 1,000, tens of them
// for the 10,000 an older agent sends, on the way to the user).
type TransferBody struct {
	transfer.View
	Raw []byte
}

// ParseTransferBody reads a transfer's view up to its files, which the
// agent writes last (transfer.View's order): the files are not read. A
// body that is not a JSON object is an error.
func ParseTransferBody(raw []byte) (TransferBody, error) {
	b := TransferBody{Raw: raw}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return b, fmt.Errorf("transfer view: not a JSON object (%v)", err)
	}
	head := raw // the view up to its files, as an object of its own
	for dec.More() {
		at := dec.InputOffset() // after the value before
		tok, err := dec.Token()
		if err != nil {
			return b, fmt.Errorf("transfer view: %w", err)
		}
		if key, _ := tok.(string); key == "files" {
			head = append(raw[:at:at], '}')
			break
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return b, fmt.Errorf("transfer view: %v: %w", tok, err)
		}
	}
	v, err := transfer.DecodeView(head)
	if err != nil {
		return b, fmt.Errorf("transfer view: %w", err)
	}
	b.View = v
	return b, nil
}

// ListOptions choose the transfers ListTransfersPage lists (see
// api.QueryState and the others).
type ListOptions struct {
	States []string
	Since  string // a time (RFC 3339) or a duration before now (24h)
	Count  int    // the page's size (0: api.DefaultLimit)
	After  string // the Next of the page before
	// DestAgent: only the transfers to this agent ("-": to this agent's
	// own storage).
	DestAgent string
}

// ListTransfersPage lists a page of the transfers opts chooses, with the
// files of each as files says; next, when more follow, is the After of
// the next page. An agent from before paging answers with every transfer
// and without filters: the page is then all of them.
func ListTransfersPage(ctx context.Context, cl *client.Client, files string, opts ListOptions) (vs []transfer.View, next string, err error) {
	q := url.Values{}
	if files != "" && files != transfer.FilesAll {
		q.Set(api.QueryFiles, files)
	}
	if len(opts.States) > 0 {
		q.Set(api.QueryState, strings.Join(opts.States, ","))
	}
	if opts.Since != "" {
		q.Set(api.QuerySince, opts.Since)
	}
	count := opts.Count
	if count <= 0 {
		count = api.DefaultLimit
	}
	q.Set(api.QueryCount, strconv.Itoa(count))
	if opts.After != "" {
		q.Set(api.QueryAfter, opts.After)
	}
	if opts.DestAgent != "" {
		q.Set(api.QueryDestAgent, opts.DestAgent)
	}
	var raw client.Raw
	if err := cl.Do(ctx, http.MethodGet, api.PathTransfers+"?"+q.Encode(), nil, &raw); err != nil {
		return nil, "", err
	}
	if b := bytes.TrimSpace(raw); len(b) > 0 && b[0] == '[' {
		err := json.Unmarshal(b, &vs)
		return vs, "", err
	}
	var page struct {
		Transfers []transfer.View `json:"transfers"`
		Next      string          `json:"next"`
	}
	if err := json.Unmarshal(raw, &page); err != nil {
		return nil, "", fmt.Errorf("decoding the transfer list: %w", err)
	}
	return page.Transfers, page.Next, nil
}

// CancelTimeout is how long one attempt of a cancel may take.
const CancelTimeout = 2 * time.Minute

// CancelTransfer cancels a transfer that has not ended; a transfer
// already cancelled is answered as cancelled (a retried cancel).
func CancelTransfer(ctx context.Context, cl *client.Client, id string) (transfer.View, error) {
	// A cancel waits for the run to stop and for its .part files to be
	// removed: seconds for a transfer of a million files.
	ctx = client.WithRequestTimeout(ctx, CancelTimeout)
	var v transfer.View
	err := cl.Do(ctx, http.MethodPost, api.CancelPath(id), nil, &v)
	return v, err
}

// WaitTransfer follows a transfer until it ends, calling update with each
// view. Across a failover it keeps asking (the client moves to the new
// active) for up to patience without an answer. It asks for an answer at
// the transfer's end or after every, whichever comes first, without the
// files until the end: it learns of the end at once, and a long transfer's
// files are not sent every time. files is transfer.FilesEnded (the view it
// returns has the first page of the files) or transfer.FilesNone (it has
// none: for a caller that needs only their count, filesTotal).
func WaitTransfer(ctx context.Context, cl *client.Client, id, files string, every, patience time.Duration, update func(transfer.View)) (TransferBody, error) {
	lastOK := time.Now()
	var last TransferBody
	for {
		asked := time.Now()
		v, err := GetTransferWait(ctx, cl, id, files, every)
		switch {
		case err == nil:
			lastOK, last = time.Now(), v
			if update != nil {
				update(v.View) // without files: they come at the end
			}
			if transfer.Terminal(v.State) {
				return v, nil
			}
		case ctx.Err() != nil:
			return last, ctx.Err()
		default:
			var apiErr *client.APIError
			if errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound {
				return last, err
			}
			if time.Since(lastOK) > patience {
				return last, err
			}
		}
		// An agent that does not wait answers at once: poll every
		// interval, as before.
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-time.After(every - time.Since(asked)):
		}
	}
}
