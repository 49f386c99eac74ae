package labs

import "math"

// Lexicon rules for text without a writer-supplied affect (LAB_001):
//
//   - each lexicon word contributes its (valence, arousal);
//   - an intensifier right before it multiplies both by intensifierGain;
//   - a negator among the negationWindow words before it multiplies its
//     valence by negationFactor (a negated feeling is a weaker opposite
//     feeling: "not happy" is mildly negative, not sad);
//   - valence = mean of the contributions' valence, clamped to -1..1;
//     arousal = mean of their arousal, clamped to 0..1;
//     intensity = min(1, Σ gain / intensitySaturation), so three plain
//     emotional words (or two intensified ones) saturate it.
const (
	intensifierGain     = 1.5
	negationFactor      = -0.5
	negationWindow      = 3
	intensitySaturation = 3.0
)

// lexiconAffect scores text with the built-in lexicon. hits is the number of
// lexicon words found; all values are 0 when there is none.
func lexiconAffect(text string) (a Affect, hits int) {
	ws := words(text)
	var sumV, sumA, sumGain float64
	for i, w := range ws {
		v, ar, ok := lexicon(w)
		if !ok {
			continue
		}
		gain := 1.0
		if i > 0 && isIntensifier(ws[i-1]) {
			gain = intensifierGain
		}
		for j := max(0, i-negationWindow); j < i; j++ {
			if isNegator(ws[j]) {
				v *= negationFactor
				break
			}
		}
		sumV += v * gain
		sumA += ar * gain
		sumGain += gain
		hits++
	}
	if hits == 0 {
		return Affect{}, 0
	}
	n := float64(hits)
	return Affect{
		Valence:   clamp(sumV/n, -1, 1),
		Arousal:   clamp(sumA/n, 0, 1),
		Intensity: math.Min(1, sumGain/intensitySaturation),
	}, hits
}

// lexicon returns the valence (-1..1) and arousal (0..1) of an emotional
// word.
func lexicon(w string) (valence, arousal float64, ok bool) {
	switch w {
	// Positive.
	case "happy", "glad":
		return 0.8, 0.5, true
	case "joy", "delighted", "thrilled":
		return 0.9, 0.7, true
	case "love", "loved", "wonderful", "excellent", "amazing":
		return 0.9, 0.6, true
	case "great", "success", "succeeded", "successful", "solved", "won", "win":
		return 0.8, 0.5, true
	case "good", "nice", "fine", "thanks", "thank", "grateful", "fixed", "works", "worked":
		return 0.5, 0.3, true
	case "proud", "confident", "hopeful":
		return 0.7, 0.5, true
	case "excited", "eager":
		return 0.7, 0.9, true
	case "calm", "relaxed", "peaceful", "relieved":
		return 0.5, 0.1, true
	// Negative.
	case "sad", "unhappy", "lonely", "disappointed":
		return -0.7, 0.3, true
	case "angry", "furious", "rage", "hate", "hated":
		return -0.9, 0.9, true
	case "afraid", "scared", "fear", "terrified", "panic":
		return -0.8, 0.9, true
	case "anxious", "nervous", "worried", "stressed", "stress":
		return -0.6, 0.8, true
	case "frustrated", "annoyed", "upset", "confused":
		return -0.6, 0.7, true
	case "fail", "failed", "failure", "failing", "lost", "lose":
		return -0.7, 0.6, true
	case "bad", "wrong", "problem", "error", "broken", "bug":
		return -0.5, 0.5, true
	case "terrible", "awful", "horrible", "disaster", "crash", "crashed", "outage":
		return -0.9, 0.8, true
	case "tired", "bored", "exhausted":
		return -0.4, 0.1, true
	case "urgent", "deadline", "emergency":
		return -0.3, 0.9, true
	}
	return 0, 0, false
}

func isIntensifier(w string) bool {
	switch w {
	case "very", "really", "extremely", "so", "incredibly", "super", "totally", "absolutely", "deeply", "highly":
		return true
	}
	return false
}

func isNegator(w string) bool {
	switch w {
	case "not", "no", "never", "none", "nothing", "without", "hardly", "cannot",
		"don't", "doesn't", "didn't", "isn't", "wasn't", "aren't", "weren't", "won't", "can't", "couldn't", "shouldn't":
		return true
	}
	return false
}

func clamp(x, lo, hi float64) float64 {
	if math.IsNaN(x) {
		return lo
	}
	return math.Max(lo, math.Min(hi, x))
}
