package main

import (
	"context"
	"fmt"
	"time"
)

var startupWorkload = &workload{
	name:  "startup",
	about: "exec to first answered Version call, fresh root each time",
	params: func(o options) string {
		return fmt.Sprintf("%d runs each, alternating", o.runs)
	},
	compare: func(ctx context.Context, b *bench) ([]row, error) {
		var ours, theirs []time.Duration
		for i := 0; i < b.opts.runs; i++ {
			// Alternating who goes first spreads the machine's noise, and any
			// advantage of going second, over both.
			order := []*flavor{b.ours, b.theirs}
			if i%2 == 1 {
				order[0], order[1] = order[1], order[0]
			}
			for _, f := range order {
				d, err := b.start(ctx, f, "")
				if err != nil {
					return nil, err
				}
				if err := d.stop(); err != nil {
					return nil, err
				}
				if f == b.ours {
					ours = append(ours, d.ready)
				} else {
					theirs = append(theirs, d.ready)
				}
			}
		}
		o, t := summarize(ours), summarize(theirs)
		return pair(startupMetrics(o), startupMetrics(t))
	},
}

func startupMetrics(s summary) []metric {
	return []metric{
		duration("median", s.p50),
		duration("min", s.min),
		duration("p90", s.p90),
	}
}
