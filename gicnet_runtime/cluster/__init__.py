"""Beyond one machine: propagate and reference MD on a Ray cluster (``gicnet[ray]``).

Nothing else in gicnet imports this package, and it imports Ray only when a run
starts, so the runtime works without Ray installed."""

from gicnet_runtime._lazy import lazy_exports

_EXPORTS = {
    "connect": "connect",
    "propagate_on_ray": "propagate", "ShardWorker": "propagate",
    "ShardLedger": "shards", "shard_bounds": "shards",
    "simulate_on_ray": "simulate",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
