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
			for _, f := range b.order(i) {
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
