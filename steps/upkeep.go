package steps

import (
	"context"
	"errors"

	"github.com/rs/zerolog"

	"github.com/rootfsctl/rootfsctl/engine"
	"github.com/rootfsctl/rootfsctl/internal/cache"
)

// CacheUpkeep returns what an apply does to the download cache around its
// run, for engine.ApplyOptions' Before and After: before the steps, it
// removes the temporaries a killed run left; after a run that changed
// something and failed nothing, it prunes the cache to maxBytes. An
// interrupted prune leaves a valid cache, and the next apply goes on.
func CacheUpkeep(c *cache.Cache, maxBytes int64) (before func(context.Context), after func(context.Context, *engine.Report)) {
	before = func(ctx context.Context) { c.CleanTemp(ctx) }
	after = func(ctx context.Context, rep *engine.Report) {
		if rep.Failed() || rep.Count(engine.StatusChanged) == 0 {
			return
		}
		log := zerolog.Ctx(ctx)
		log.Debug().Str("phase", "prune").Msg("pruning the cache")
		removed, err := c.Prune(ctx, maxBytes)
		switch {
		case errors.Is(err, context.Canceled):
			log.Warn().Int("entries", removed.Entries).Msg("cache pruning interrupted; the next apply goes on")
		case err != nil:
			log.Warn().Err(err).Msg("could not prune the cache")
		case removed.Entries > 0:
			log.Info().Int("entries", removed.Entries).Int64("bytes", removed.Bytes).Msg("pruned the cache")
		}
	}
	return before, after
}
