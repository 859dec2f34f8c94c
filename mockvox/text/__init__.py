"""Text frontend: symbols, normalisers, per-language G2P, language segmentation."""
