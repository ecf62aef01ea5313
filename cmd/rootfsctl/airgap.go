package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"

	"github.com/rootfsctl/rootfsctl/engine"
	"github.com/rootfsctl/rootfsctl/internal/mirror"
	"github.com/rootfsctl/rootfsctl/steps"
)

// contentFlags are the flags of artifacts and mirror.
type contentFlags struct {
	vars      varFlags
	platforms []string
	output    string
}

func (f *contentFlags) register(cmd *cobra.Command) {
	f.vars.register(cmd)
	cmd.Flags().StringArrayVar(&f.platforms, "platform", nil, "os/arch to list or mirror the plan for (repeatable; default: the plan's, with this host's facts)")
	cmd.Flags().StringVarP(&f.output, "output", "o", "text", "output format: text or json")
}

// content loads the plan once per platform and lists what it fetches.
func (a *app) content(file string, f *contentFlags) (steps.Content, error) {
	if f.output != "text" && f.output != "json" {
		return steps.Content{}, usagef("--output %q: use text or json", f.output)
	}
	opts, err := a.loadOptions(&f.vars)
	if err != nil {
		return steps.Content{}, err
	}
	var plans []*engine.Plan
	for _, raw := range append([]string{}, f.platforms...) {
		p, err := v1.ParsePlatform(raw)
		if err != nil || p.OS == "" || p.Architecture == "" {
			return steps.Content{}, usagef("--platform %q: want os/arch, for example linux/arm64", raw)
		}
		o := opts
		o.Host.OS, o.Host.Arch = p.OS, p.Architecture
		plan, err := a.loadWith(file, o)
		if err != nil {
			return steps.Content{}, err
		}
		plans = append(plans, plan)
	}
	if len(plans) == 0 {
		plan, err := a.loadWith(file, opts)
		if err != nil {
			return steps.Content{}, err
		}
		plans = append(plans, plan)
	}
	return steps.Inventory(plans...)
}

func (a *app) artifactsCommand() *cobra.Command {
	var f contentFlags
	cmd := &cobra.Command{
		Use:   "artifacts [--var k=v]... [--platform os/arch]... [-o text|json] PLAN",
		Short: "List everything the plan would fetch, fetching nothing",
		Long: `Lists the plan's image (reference and platforms) and every artifact its
steps download (step, name, version, platform, URL without credentials or
query, where its checksum comes from, its pinned digest if any), with the
name each has in a mirror (with --mirror, the full reference there).
Nothing is fetched: for air-gap approvals and
review, and as the list 'rootfsctl mirror' stores.`,
		Example: `  rootfsctl artifacts plans/kube-node.yaml
  rootfsctl artifacts --platform linux/amd64 --platform linux/arm64 -o json plans/kube-node.yaml`,
		Args:              usageArgs(cobra.ExactArgs(1)),
		ValidArgsFunction: planFileCompletion,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.content(args[0], &f)
			if err != nil {
				return a.failed(err)
			}
			if a.mirror != nil {
				c.In(a.mirror)
			}
			if f.output == "json" {
				return writeJSONDoc(a.stdout, c)
			}
			return writeContent(a.stdout, c)
		},
	}
	f.register(cmd)
	f.vars.registerMirror(cmd)
	a.registerPlanCompletions(cmd, &f.vars)
	return cmd
}

func writeJSONDoc(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

func writeContent(w io.Writer, c steps.Content) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tIMAGE\tPLATFORMS\tMIRROR NAME")
	for _, im := range c.Images {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", im.Step, im.Reference, strings.Join(im.Platforms, ","), im.Mirror)
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "STEP\tARTIFACT\tVERSION\tPLATFORM\tURL\tCHECKSUM\tMIRROR NAME")
	for _, ar := range c.Artifacts {
		sum := ar.Checksum
		if ar.Pinned != "" {
			sum = "pinned sha256:" + ar.Pinned[:12] + "..."
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", ar.Step, ar.Name, ar.Version, ar.Platform, ar.URL, sum, ar.Mirror)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\n%s, %s\n", engine.Plural(len(c.Images), "image"), engine.Plural(len(c.Artifacts), "artifact"))
	return err
}

// mirrorFlags are the flags of mirror.
type mirrorFlags struct {
	contentFlags
	to, from    string
	parallelism int
}

func (a *app) mirrorCommand() *cobra.Command {
	var f mirrorFlags
	cmd := &cobra.Command{
		Use:   "mirror [--var k=v]... [--platform os/arch]... --to DEST PLAN | mirror --from oci-layout:DIR --to DEST",
		Short: "Store everything a plan fetches in an OCI registry or layout",
		Long: `Fetches and verifies everything 'rootfsctl artifacts' lists, then stores it
at DEST: oci://REGISTRY/PREFIX (a registry; credentials from the Docker
config) or oci-layout:DIR (a directory to carry across an air gap). The
image goes by digest with the platforms asked for (default: the plan's);
each artifact as an OCI artifact (ORAS-compatible: one layer, the file,
titled with its name; the upstream URL and the checksum it was verified
against as annotations), named after its upstream source, so that
'apply --mirror DEST' finds it. What DEST already holds is not
transferred again. With --from oci-layout:DIR and no PLAN, a carried
layout is pushed into DEST as it is.`,
		Example: `  rootfsctl mirror --platform linux/amd64 --platform linux/arm64 --to oci://registry.site:5000/rootfsctl plans/kube-node.yaml
  rootfsctl mirror --to oci-layout:/media/usb/rootfsctl plans/kube-node.yaml
  rootfsctl mirror --from oci-layout:/media/usb/rootfsctl --to oci://registry.site:5000/rootfsctl`,
		Args:              usageArgs(cobra.MaximumNArgs(1)),
		ValidArgsFunction: planFileCompletion,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.mirrorRun(cmd, args, &f)
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&f.to, "to", "", "where to store: oci://REGISTRY/PREFIX or oci-layout:DIR (required)")
	cmd.Flags().StringVar(&f.from, "from", "", "copy a carried oci-layout:DIR instead of a plan's content")
	cmd.Flags().IntVarP(&f.parallelism, "parallelism", "j", 4, "items transferred at once")
	a.registerPlanCompletions(cmd, &f.vars)
	return cmd
}

func (a *app) mirrorRun(cmd *cobra.Command, args []string, f *mirrorFlags) error {
	if f.to == "" {
		return usagef("mirror needs --to oci://REGISTRY/PREFIX or oci-layout:DIR")
	}
	if (f.from == "") == (len(args) == 0) {
		return usagef("mirror takes a PLAN, or --from oci-layout:DIR, not both and not neither")
	}
	if f.parallelism < 1 || f.parallelism > maxParallelism {
		return usagef("-j %d: want 1 to %d", f.parallelism, maxParallelism)
	}
	to, err := mirror.ParseDest(f.to)
	if err != nil {
		return usagef("--to %v", err)
	}
	dst := &mirror.Mirror{Dest: to, Reg: a.ociRegistry()}
	log, err := a.logger()
	if err != nil {
		return err
	}
	ctx := engine.WithProgress(log.WithContext(cmd.Context()), a.progress(log))
	if err := dst.Reachable(ctx); err != nil {
		return &exitError{code: exitFailed, err: fmt.Errorf("%w; nothing was fetched or stored", err)}
	}
	start := time.Now()
	var res []steps.MirrorResult
	if f.from != "" {
		from, err := mirror.ParseDest(f.from)
		if err != nil || !from.IsLayout() {
			return usagef("--from %q: want oci-layout:DIR", f.from)
		}
		res, err = copyLayout(ctx, &mirror.Mirror{Dest: from, Reg: a.ociRegistry()}, dst, f.parallelism)
		return a.mirrorDone(f, res, start, err)
	}
	c, err := a.content(args[0], &f.contentFlags)
	if err != nil {
		return a.failed(err)
	}
	res, err = steps.Mirror(ctx, c, dst, f.parallelism)
	return a.mirrorDone(f, res, start, err)
}

// mirrorDone prints what a mirror run stored.
func (a *app) mirrorDone(f *mirrorFlags, res []steps.MirrorResult, start time.Time, err error) error {
	copied, failed := 0, 0
	for _, r := range res {
		switch {
		case r.Error != "":
			failed++
		case r.Copied:
			copied++
		}
	}
	summary := fmt.Sprintf("%s: %d copied, %d already there, %d failed, in %s", engine.Plural(len(res), "item"),
		copied, len(res)-copied-failed, failed, time.Since(start).Round(time.Millisecond))
	if copied == 0 && err == nil {
		summary += "; nothing was transferred"
	}
	if f.output == "json" {
		doc := struct {
			To      string               `json:"to"`
			Items   []steps.MirrorResult `json:"items"`
			Summary string               `json:"summary"`
			Error   string               `json:"error,omitempty"`
		}{To: f.to, Items: res, Summary: summary}
		if err != nil {
			doc.Error = err.Error()
		}
		if werr := writeJSONDoc(a.stdout, doc); werr != nil {
			return werr
		}
	} else if len(res) > 0 {
		tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ITEM\tNAME\tRESULT")
		for _, r := range res {
			what := "copied"
			switch {
			case r.Error != "":
				what = "failed: " + r.Error
			case r.Digest == "":
				what = "not reached"
			case !r.Copied:
				what = "already there"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Item, r.Name, what)
		}
		_ = tw.Flush()
		fmt.Fprintln(a.stdout, summary)
	}
	if err != nil {
		return &exitError{code: exitFailed, err: fmt.Errorf("mirror to %s: %w", f.to, err)}
	}
	return nil
}

// copyLayout pushes a carried layout into to.
func copyLayout(ctx context.Context, from, to *mirror.Mirror, parallelism int) ([]steps.MirrorResult, error) {
	stored, errs, err := mirror.Copy(ctx, from, to, parallelism)
	out := make([]steps.MirrorResult, len(stored))
	for i, st := range stored {
		out[i] = steps.MirrorResult{Item: st.Name.String(), Name: st.Name.String(), Digest: st.Digest, Copied: st.Copied}
		if i < len(errs) && errs[i] != nil {
			out[i].Error = errs[i].Error()
		}
	}
	return out, err
}
