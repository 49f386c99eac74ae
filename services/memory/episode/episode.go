// Package episode defines the domain type of the memory service: one
// remembered event, its limits and defaults. It knows nothing of gRPC or SQL.
package episode

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits and defaults shared by the api (validation) and the store.
const (
	// MaxContentBytes bounds Episode.Content (UTF-8 bytes).
	MaxContentBytes = 64 << 10
	// MaxNamespaceBytes bounds Episode.Namespace; it must also be non-empty
	// and spelled in NamespaceAlphabet.
	MaxNamespaceBytes = 128
	// MaxSessionBytes bounds Episode.SessionID.
	MaxSessionBytes = 128
	// MaxSpeakerBytes bounds Episode.Speaker.
	MaxSpeakerBytes = 128
	// MaxMetadataEntries bounds len(Episode.Metadata).
	MaxMetadataEntries = 32
	// MaxMetadataKeyBytes bounds each metadata key.
	MaxMetadataKeyBytes = 64
	// MaxMetadataValueBytes bounds each metadata value.
	MaxMetadataValueBytes = 1 << 10
	// MaxQueryBytes bounds a recall query's text.
	MaxQueryBytes = 4 << 10
	// MaxBatch bounds the episodes of one write.
	MaxBatch = 500
	// DefaultLimit is the recall limit when none is given (Miller's seven).
	DefaultLimit = 7
	// MaxLimit bounds a recall limit.
	MaxLimit = 100
	// DefaultImportance is stored when the writer gives none.
	DefaultImportance = 0.5
	// DefaultPageSize is the ListEpisodes page size when none is given.
	DefaultPageSize = 50
	// MaxPageSize bounds a ListEpisodes page.
	MaxPageSize = 1000
	// MaxAccessIDs bounds the ids of one RecordAccess call.
	MaxAccessIDs = 100
	// MaxWorkingMemoryItems bounds the items of one session's working
	// memory (the orchestrator's capacity option tops out there too).
	MaxWorkingMemoryItems = 20
	// MaxWorkingMemoryContentBytes bounds a working-memory item's content:
	// the orchestrator cuts it to at most 4096 characters of up to 4 bytes.
	MaxWorkingMemoryContentBytes = 16 << 10
)

// NamespaceAlphabet describes the namespaces that can be written and read:
// 1..MaxNamespaceBytes bytes of ASCII letters, digits and . _ - : @,
// starting with a letter or digit. It keeps a namespace one URL path
// segment (no '/', no space), and leaves '*' free for namespace patterns.
const NamespaceAlphabet = "1..128 bytes of ASCII letters, digits and . _ - : @, starting with a letter or digit"

// namespaceRe is NamespaceAlphabet as a regular expression.
var namespaceRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:@-]*$`)

// ErrNamespace is what CheckNamespace and CheckLegacyNamespace wrap.
var ErrNamespace = errors.New("invalid namespace")

// CheckNamespace reports whether ns is spelled in NamespaceAlphabet; the
// error says what is wrong. Every write and read requires it.
func CheckNamespace(ns string) error {
	switch {
	case ns == "":
		return fmt.Errorf("%w: is required", ErrNamespace)
	case len(ns) > MaxNamespaceBytes:
		return fmt.Errorf("%w: must be at most %d bytes, got %d", ErrNamespace, MaxNamespaceBytes, len(ns))
	case !namespaceRe.MatchString(ns):
		return fmt.Errorf("%w: must be %s", ErrNamespace, NamespaceAlphabet)
	}
	return nil
}

// CheckLegacyNamespace accepts what the store took before NamespaceAlphabet
// was enforced (1..MaxNamespaceBytes bytes of valid UTF-8 without NUL), so
// data written under such a name can still be erased. Only the delete
// calls use it.
func CheckLegacyNamespace(ns string) error {
	switch {
	case ns == "":
		return fmt.Errorf("%w: is required", ErrNamespace)
	case len(ns) > MaxNamespaceBytes:
		return fmt.Errorf("%w: must be at most %d bytes, got %d", ErrNamespace, MaxNamespaceBytes, len(ns))
	case !utf8.ValidString(ns):
		return fmt.Errorf("%w: must be valid UTF-8", ErrNamespace)
	case strings.IndexByte(ns, 0) >= 0:
		return fmt.Errorf("%w: must not contain NUL", ErrNamespace)
	}
	return nil
}

// Affect is the emotional colouring an episode's writer supplied:
// valence -1..1, arousal 0..1, intensity 0..1.
type Affect struct {
	Valence, Arousal, Intensity float64
}

// Episode is one remembered event.
type Episode struct {
	// ID is the UUID in canonical text form; empty on write means "assign one".
	ID        string
	Namespace string
	SessionID string
	// Speaker is who said or wrote it; empty when the writer gave none.
	Speaker string
	Content string
	// Importance is 0..1.
	Importance float64
	// CreatedAt is when the episode happened; zero on write means "now".
	CreatedAt time.Time
	Metadata  map[string]string
	// Affect is nil when the writer gave none.
	Affect *Affect
	// AccessCount and LastAccessedAt are kept by the store; ignored on write.
	AccessCount    int64
	LastAccessedAt *time.Time
}
