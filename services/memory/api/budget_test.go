package api

import (
	"testing"
	"time"
)

func TestWriteBudget(t *testing.T) {
	tests := []struct {
		qt    time.Duration
		bytes int
		want  time.Duration
	}{
		{2 * time.Second, 0, 2 * time.Second},
		{2 * time.Second, WriteBytesPerSecond, 3 * time.Second},
		// The batch: 50 × 15 KB needs more than QUERY_TIMEOUT alone.
		{2 * time.Second, 750_000, 2*time.Second + 750_000*time.Second/WriteBytesPerSecond},
		{2 * time.Second, 1 << 30, MaxWriteBudget},
		// A QUERY_TIMEOUT above the cap is never cut.
		{2 * time.Minute, 1 << 30, 2 * time.Minute},
	}
	for _, tt := range tests {
		if got := writeBudget(tt.qt, tt.bytes); got != tt.want {
			t.Errorf("writeBudget(%s, %d) = %s, want %s", tt.qt, tt.bytes, got, tt.want)
		}
	}
}
