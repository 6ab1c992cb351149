"""One model's audits: the runner (targets, the batched optimization, the results cache),
the one place that builds it, and the engine's calls the checks make on real images."""
