package episode

import "time"

// Origin says how an item came to be in a working memory.
type Origin int

// Origins, as the proto numbers them.
const (
	OriginUnspecified Origin = iota
	OriginRecalled
	OriginHeld
	OriginPredicted
)

// WorkingMemoryItem is one item of a session's working memory.
type WorkingMemoryItem struct {
	EpisodeID          string
	Content            string
	Origin             Origin
	Attention          float64
	TurnsSinceAttended int
	Rehearsals         int
	AddedAt            time.Time
	LastAttendedAt     time.Time
}

// WorkingMemory is a session's buffer. Version 0 means the session never
// had one (then UpdatedAt is zero and Items empty).
type WorkingMemory struct {
	Namespace string
	SessionID string
	Version   int64
	Items     []WorkingMemoryItem
	UpdatedAt time.Time
}
