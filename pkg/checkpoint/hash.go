package checkpoint

import (
	"bytes"
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
)

// The layout of crypto/sha256's marshalled state (crypto/internal/fips140/sha256,
// Digest.AppendBinary): the magic "sha\x03", the eight 32-bit words of the chaining
// value, the 64-byte block buffer (unused bytes zero), then the number of bytes
// hashed so far as a big-endian uint64.
const (
	stateMagic = "sha\x03"
	stateSize  = len(stateMagic) + 8*4 + sha256.BlockSize + 8
)

// NewHash returns a fresh SHA-256.
func NewHash() hash.Hash { return sha256.New() }

// SaveHash marshals h's state (h must come from NewHash or RestoreHash).
func SaveHash(h hash.Hash) ([]byte, error) {
	m, ok := h.(encoding.BinaryMarshaler)
	if !ok {
		return nil, fmt.Errorf("checkpoint: hash %T cannot save its state", h)
	}
	state, err := m.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("checkpoint: saving hash state: %w", err)
	}
	if _, err := stateLength(state); err != nil {
		return nil, err
	}
	return state, nil
}

// RestoreHash returns a SHA-256 continuing from a saved state; an empty state
// gives a fresh hash.
func RestoreHash(state []byte) (hash.Hash, error) {
	h := sha256.New()
	if len(state) == 0 {
		return h, nil
	}
	if _, err := stateLength(state); err != nil {
		return nil, err
	}
	u, ok := h.(encoding.BinaryUnmarshaler)
	if !ok {
		return nil, fmt.Errorf("checkpoint: hash %T cannot restore its state", h)
	}
	if err := u.UnmarshalBinary(state); err != nil {
		return nil, fmt.Errorf("checkpoint: restoring hash state: %w", err)
	}
	return h, nil
}

// Resume returns the hash to continue with at c.Offset (RestoreHash(c.Hash)) after
// checking that the number of bytes the saved state has hashed equals c.Offset.
// An empty state stands for zero bytes hashed.
func Resume(c Checkpoint) (hash.Hash, error) {
	if c.Offset < 0 {
		return nil, fmt.Errorf("checkpoint: offset %d is negative", c.Offset)
	}
	var n uint64
	if len(c.Hash) > 0 {
		var err error
		if n, err = stateLength(c.Hash); err != nil {
			return nil, err
		}
	}
	if n != uint64(c.Offset) {
		return nil, fmt.Errorf("checkpoint: hash state covers %d bytes but the offset is %d", n, c.Offset)
	}
	return RestoreHash(c.Hash)
}

var errBadState = errors.New("checkpoint: not a saved SHA-256 state")

// stateLength returns the byte count recorded in a marshalled SHA-256 state.
func stateLength(state []byte) (uint64, error) {
	if len(state) != stateSize {
		return 0, fmt.Errorf("%w: %d bytes, want %d", errBadState, len(state), stateSize)
	}
	if !bytes.HasPrefix(state, []byte(stateMagic)) {
		return 0, fmt.Errorf("%w: prefix %q, want %q", errBadState, state[:len(stateMagic)], stateMagic)
	}
	return binary.BigEndian.Uint64(state[stateSize-8:]), nil
}
