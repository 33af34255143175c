package transfer

import "github.com/ftagent/ftagent/pkg/ha"

// The transfer kinds are in every build's first command format. A kind added
// later, or one whose data changes in a way older builds would misread, is
// registered at the format that introduced it (see ha.RegisterKind): the
// active then proposes it only once every instance reads that format.
func init() {
	for _, k := range Kinds {
		ha.RegisterKind(k, 1)
	}
}
