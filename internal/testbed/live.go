package testbed

import "sync"

// live is every testbed started and not yet stopped, for the signal handler.
var (
	liveMu sync.Mutex
	live   = map[*Testbed]struct{}{}
)

func register(tb *Testbed) {
	liveMu.Lock()
	live[tb] = struct{}{}
	liveMu.Unlock()
}

func unregister(tb *Testbed) {
	liveMu.Lock()
	delete(live, tb)
	liveMu.Unlock()
}

// stopAll stops every live testbed (used on SIGINT/SIGTERM).
func stopAll() {
	liveMu.Lock()
	tbs := make([]*Testbed, 0, len(live))
	for tb := range live {
		tbs = append(tbs, tb)
	}
	liveMu.Unlock()
	var wg sync.WaitGroup
	for _, tb := range tbs {
		wg.Go(func() { _ = tb.Stop() })
	}
	wg.Wait()
}
