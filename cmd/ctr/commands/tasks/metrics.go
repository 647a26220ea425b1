package tasks

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	v1 "github.com/containerd/cgroups/v3/cgroup1/stats"
	v2 "github.com/containerd/cgroups/v3/cgroup2/stats"
	"github.com/urfave/cli"
	"google.golang.org/protobuf/proto"

	"github.com/llitfkitfk/containerd/client"
	"github.com/llitfkitfk/containerd/cmd/ctr/commands"
)

var metricsCommand = cli.Command{
	Name:      "metrics",
	Usage:     "Get a single data point of metrics for a task with the built-in Linux runtime",
	ArgsUsage: "CONTAINER",
	Aliases:   []string{"metric"},
	Flags: []cli.Flag{
		cli.StringFlag{
			Name:  "format",
			Usage: `"table" or "json"`,
			Value: "table",
		},
	},
	Action: func(context *cli.Context) error {
		format := context.String("format")
		if format != "table" && format != "json" {
			return errors.New("format must be table or json")
		}
		c, ctx, cancel, err := commands.NewClient(context)
		if err != nil {
			return err
		}
		defer cancel()
		defer c.Close()
		task, err := loadTask(ctx, c, context.Args().First(), nil)
		if err != nil {
			return err
		}
		m, err := task.Metrics(ctx)
		if err != nil {
			return err
		}
		return printMetrics(commands.Stdout, m, format)
	},
}

// decodeMetrics decodes the runtime's cgroup statistics, v1 or v2 by the
// type URL (bare or with a type.googleapis.com/ style prefix).
func decodeMetrics(m *client.Metrics) (proto.Message, error) {
	var data proto.Message
	switch {
	case typeIs(m.TypeURL, &v1.Metrics{}):
		data = &v1.Metrics{}
	case typeIs(m.TypeURL, &v2.Metrics{}):
		data = &v2.Metrics{}
	default:
		return nil, fmt.Errorf("cannot convert metric data of type %q to cgroups.Metrics", m.TypeURL)
	}
	if err := proto.Unmarshal(m.Data, data); err != nil {
		return nil, fmt.Errorf("metrics of type %s: %w", m.TypeURL, err)
	}
	return data, nil
}

func typeIs(url string, m proto.Message) bool {
	name := string(proto.MessageName(m))
	return url == name || strings.HasSuffix(url, "/"+name)
}

func printMetrics(out io.Writer, m *client.Metrics, format string) error {
	data, err := decodeMetrics(m)
	if err != nil {
		return err
	}
	if format == "json" {
		b, err := json.MarshalIndent(data, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(out, string(b))
		return err
	}
	w := tabwriter.NewWriter(out, 1, 8, 4, ' ', 0)
	fmt.Fprintf(w, "ID\tTIMESTAMP\t\n")
	fmt.Fprintf(w, "%s\t%s\t\n\n", m.ID, m.Timestamp)
	fmt.Fprintf(w, "METRIC\tVALUE\t\n")
	switch d := data.(type) {
	case *v1.Metrics:
		if d.Memory != nil {
			fmt.Fprintf(w, "memory.usage_in_bytes\t%d\t\n", d.Memory.GetUsage().GetUsage())
			fmt.Fprintf(w, "memory.limit_in_bytes\t%d\t\n", d.Memory.GetUsage().GetLimit())
			fmt.Fprintf(w, "memory.stat.cache\t%d\t\n", d.Memory.TotalCache)
		}
		if d.CPU != nil {
			fmt.Fprintf(w, "cpuacct.usage\t%d\t\n", d.CPU.GetUsage().GetTotal())
			fmt.Fprintf(w, "cpuacct.usage_percpu\t%v\t\n", d.CPU.GetUsage().GetPerCPU())
		}
		if d.Pids != nil {
			fmt.Fprintf(w, "pids.current\t%v\t\n", d.Pids.Current)
			fmt.Fprintf(w, "pids.limit\t%v\t\n", d.Pids.Limit)
		}
	case *v2.Metrics:
		if d.Pids != nil {
			fmt.Fprintf(w, "pids.current\t%v\t\n", d.Pids.Current)
			fmt.Fprintf(w, "pids.limit\t%v\t\n", d.Pids.Limit)
		}
		if d.CPU != nil {
			fmt.Fprintf(w, "cpu.usage_usec\t%v\t\n", d.CPU.UsageUsec)
			fmt.Fprintf(w, "cpu.user_usec\t%v\t\n", d.CPU.UserUsec)
			fmt.Fprintf(w, "cpu.system_usec\t%v\t\n", d.CPU.SystemUsec)
			fmt.Fprintf(w, "cpu.nr_periods\t%v\t\n", d.CPU.NrPeriods)
			fmt.Fprintf(w, "cpu.nr_throttled\t%v\t\n", d.CPU.NrThrottled)
			fmt.Fprintf(w, "cpu.throttled_usec\t%v\t\n", d.CPU.ThrottledUsec)
		}
		if d.Memory != nil {
			fmt.Fprintf(w, "memory.usage\t%v\t\n", d.Memory.Usage)
			fmt.Fprintf(w, "memory.usage_limit\t%v\t\n", d.Memory.UsageLimit)
			fmt.Fprintf(w, "memory.swap_usage\t%v\t\n", d.Memory.SwapUsage)
			fmt.Fprintf(w, "memory.swap_limit\t%v\t\n", d.Memory.SwapLimit)
		}
	}
	return w.Flush()
}
