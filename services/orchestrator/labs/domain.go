package labs

import (
	"context"
	"time"
)

// Affect is the emotional colouring of an episode as its writer gave it.
type Affect struct {
	Valence   float64 // -1..1
	Arousal   float64 // 0..1
	Intensity float64 // 0..1
}

// Emotion is an emotional state.
type Emotion struct {
	Label     string
	Valence   float64 // -1..1
	Arousal   float64 // 0..1
	Intensity float64 // 0..1
}

// Scores are memory's recall scores of one episode, each 0..1, passed on
// as memory explained them.
type Scores struct {
	Relevance  float64
	Importance float64
	Recency    float64
	Total      float64
	// OwnWords and Context split Relevance; Speaker and Time are the parts
	// for a speaker or a time the query named.
	OwnWords, Context, Speaker, Time float64
	// Contributions say how much each part added to Total.
	Contributions Contributions
}

// Contributions split a recall total into its parts.
type Contributions struct {
	OwnWords, Context, Speaker, Time, Importance, Recency float64
}

// Episode is one remembered event.
type Episode struct {
	ID         string
	Namespace  string
	SessionID  string
	Speaker    string
	Content    string
	Importance float64
	CreatedAt  time.Time
	Metadata   map[string]string
	// Affect is nil when the writer gave none.
	Affect         *Affect
	AccessCount    int64
	LastAccessedAt time.Time
}

// RecalledEpisode is one recall result.
type RecalledEpisode struct {
	Episode Episode
	Scores  Scores
}

// Source says where a recall answer came from.
type Source int

// Sources, as memory reports them.
const (
	SourceUnspecified Source = iota
	SourcePostgres
	SourceCache
	SourceNone
)

func (s Source) String() string {
	switch s {
	case SourcePostgres:
		return "postgres"
	case SourceCache:
		return "cache"
	case SourceNone:
		return "none"
	}
	return "unspecified"
}

// RecallQuery asks memory for the best episodes of a namespace.
type RecallQuery struct {
	Namespace       string
	Query           string
	Limit           int
	AsOf            time.Time
	RecencyHalfLife time.Duration
}

// RecallAnswer is memory's answer, with its trustworthiness.
type RecallAnswer struct {
	Episodes       []RecalledEpisode
	Source         Source
	Degraded       bool
	DegradedReason string
}

// ListQuery asks for one page of a namespace in ascending time order.
type ListQuery struct {
	Namespace string
	// SessionID restricts to one session when set.
	SessionID string
	// CreatedAfter keeps episodes created strictly after it when set.
	CreatedAfter time.Time
	// Limit is the page size, 1..1000.
	Limit int
}

// Memory is what the LABs need of the memory service.
type Memory interface {
	Recall(ctx context.Context, q RecallQuery) (RecallAnswer, error)
	ListEpisodes(ctx context.Context, q ListQuery) ([]Episode, error)
}

// AccessRecorder takes episode accesses for recording in the background.
// Submit never blocks: it returns false when it cannot take them (its queue
// is full), and the accesses are then not recorded.
type AccessRecorder interface {
	Submit(namespace string, ids []string) bool
}

// BufferItem is one item of the working memory.
type BufferItem struct {
	// EpisodeID is empty for the synthetic item.
	EpisodeID string
	// Content is cut to Options.ContentMaxChars characters.
	Content   string
	SessionID string
	Speaker   string
	CreatedAt time.Time
	Scores    Scores
	// Affect is nil when the episode's writer gave none.
	Affect *Affect
	// Synthetic marks the query itself standing in for an empty, degraded
	// recall. It is not a memory.
	Synthetic  bool
	Metadata   map[string]string
	Importance float64
	// Origin is how the item came into a session's buffer; OriginNone
	// without a session.
	Origin Origin
}

// real reports whether the item is a stored episode.
func (b BufferItem) real() bool { return !b.Synthetic && b.EpisodeID != "" }
