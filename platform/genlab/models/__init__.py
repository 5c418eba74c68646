"""Networks only: classifiers, EBM nets, DDPM UNets, VAEs, causal layers."""
