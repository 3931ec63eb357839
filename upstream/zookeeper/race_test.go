//go:build race

package zookeeper

// raceEnabled: the race detector limits live goroutines to 8,128, so scale tests shrink.
const raceEnabled = true
