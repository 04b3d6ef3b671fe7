"""dualdub model code (pure PyTorch)."""
