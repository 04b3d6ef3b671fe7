"""ovi model code (pure PyTorch)."""
