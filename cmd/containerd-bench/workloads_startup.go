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
	compare: func(ctx context.Context, b *bench) (*table, error) {
		ready := map[*flavor][]time.Duration{}
		for i := 0; i < b.opts.runs; i++ {
			for _, f := range rotate(b.flavors(), i) {
				d, err := b.start(ctx, f, "")
				if err != nil {
					return nil, err
				}
				if err := d.stop(); err != nil {
					return nil, err
				}
				ready[f] = append(ready[f], d.ready)
			}
		}
		metrics := map[*flavor][]metric{}
		for f, r := range ready {
			metrics[f] = startupMetrics(summarize(r))
		}
		return tabulate(metrics, b.flavors()...)
	},
}

func startupMetrics(s summary) []metric {
	return []metric{
		duration("median", s.p50),
		duration("min", s.min),
		duration("p90", s.p90),
	}
}
