"""Container registries: the ACR exchange, registry routing, Docker config delivery."""
