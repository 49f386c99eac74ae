package fallback

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestBreakerOnChangeFollowsState: whatever the interleaving of calls
// failing, the probe tripping and the probe resetting, the last onChange
// (what the brain_memory_breaker_open gauge shows) equals the breaker's
// state once they are done.
func TestBreakerOnChangeFollowsState(t *testing.T) {
	for round := 0; round < 100; round++ {
		var gauge atomic.Bool
		// A slow onChange (a log line) widens the window in which a flip
		// could be reported out of order.
		b := NewBreaker(1, 0, time.Now, func(open bool) {
			time.Sleep(time.Microsecond)
			gauge.Store(open)
		})
		var wg sync.WaitGroup
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 20; i++ {
					switch (g + i) % 3 {
					case 0:
						b.Failure("call failed")
					case 1:
						b.Trip("probe failed")
					default:
						b.Reset()
					}
				}
			}()
		}
		wg.Wait()
		if open, _ := b.State(); gauge.Load() != open {
			t.Fatalf("round %d: gauge says open=%v, breaker open=%v", round, gauge.Load(), open)
		}
	}
}
